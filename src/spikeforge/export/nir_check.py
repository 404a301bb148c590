"""``spikeforge import-nir FILE --check``: the graph, what each node became, and how the
imported network agrees with NIR's own equations on random input.

The reference is :func:`spikeforge.export.nir_reference.simulate` (NIR's continuous-time
equations, integrated exactly between fine steps). Two comparisons:

* **grid**: thresholds checked only at spikeforge's step ends (``dt``): the same
  continuous-time problem on the same grid, so any difference is a parameter-mapping
  error; expect identical spike counts and readouts equal to float rounding.
* **fine**: thresholds checked every ``dt / substeps``: NIR's semantics up to that grid;
  spikeforge's one-spike-per-step grid differs from it, so counts agree closely but not
  exactly (Pearson r over samples x neurons of every spiking layer).

Random input: ``samples`` samples of ``steps`` steps; in sample b every input channel
spikes with probability rising linearly from 2 % (first sample) to 10 % (last) per
step, so counts vary across samples as well as neurons.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError


def random_input(n_inputs: int, samples: int, steps: int, seed: int) -> np.ndarray:
    """Input spikes ``[samples, steps, n_inputs]`` (0/1, float32) as described above."""
    rng = np.random.default_rng(seed)
    rate = np.linspace(0.02, 0.1, samples)[:, None, None] if samples > 1 else 0.06
    return (rng.random((samples, steps, n_inputs)) < rate).astype(np.float32)


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _shape(node) -> list[int] | None:
    types = getattr(node, "output_type", None)
    if not isinstance(types, dict) or not types:
        return None
    value = next(iter(types.values()))
    return None if value is None else [int(v) for v in np.asarray(value).ravel()]


def check_nir(path: Path, dt: float | None = None, readout: str | None = None,
              samples: int = 8, steps: int = 100, seed: int = 0,
              substeps: int = 20, writer: str | None = None) -> dict:
    """Import the NIR file at ``path`` and compare it with the reference simulator
    (``writer``: correct a writer's recorded values first, see
    :mod:`spikeforge.export.nir_writers`; the reference then runs the corrected graph).

    Returns a JSON-friendly dict: ``graph`` (nodes with type and output shape, edges),
    ``became`` (node -> what the import made of it), ``network`` (inputs, layer sizes,
    dt in ms, readout) and ``agreement`` (``grid`` and ``fine``, see the module
    docstring; ``readout_correlation`` is over voltages [samples, steps, outputs], or over
    output spike counts [samples, outputs] for a spiking output).
    """
    import nir

    from spikeforge.engine import Events
    from spikeforge.export.agreement import spikeforge_output
    from spikeforge.export.nir_import import import_graph, inline_graph, read_graph
    from spikeforge.export.nir_reference import simulate
    from spikeforge.export.nir_writers import correct_graph

    if samples < 1 or steps < 1 or substeps < 1:
        raise SpikeforgeError("--samples, --steps and --substeps must be >= 1")
    graph = correct_graph(read_graph(Path(path)), writer, dt)
    nodes, edges = inline_graph(graph)
    report = import_graph(graph, dt, readout)
    model = report.model
    spec = model.network.spec
    x = random_input(spec.n_inputs, samples, steps, seed)
    ours = spikeforge_output(model, Events.from_dense(x))
    ours_counts = np.concatenate([c.ravel() for c in ours.counts]) if ours.counts else None
    agreement = {}
    for key, on_grid, sub in (("grid", True, 1), ("fine", False, substeps)):
        ref = simulate(graph, x, spec.dt, substeps=sub, spike_area=report.spike_area,
                       threshold_on_grid=on_grid)
        ref_counts = (np.concatenate([c.ravel() for c in ref.counts.values()])
                      if ref.counts else None)
        entry: dict = {"substeps": sub, "thresholds": "every dt" if on_grid
                       else f"every dt/{sub}"}
        if ours_counts is not None and ref_counts is not None \
                and ours_counts.size == ref_counts.size:
            entry.update(
                spikes_spikeforge=int(ours_counts.sum()), spikes_reference=int(ref_counts.sum()),
                identical_spike_counts=float(np.mean(ours_counts == ref_counts)),
                spike_count_correlation=_pearson(ours_counts.astype(float), ref_counts))
        entry["max_abs_readout_difference"] = float(np.max(np.abs(ours.readout - ref.readout)))
        if spec.layers[-1].neuron.spiking:  # spikes per step differ on the fine grid: counts
            entry["readout_correlation"] = _pearson(ours.readout.sum(axis=1).ravel(),
                                                    ref.readout.sum(axis=1).ravel())
        else:
            entry["readout_correlation"] = _pearson(ours.readout.ravel(), ref.readout.ravel())
        agreement[key] = entry
    return {
        "file": str(path),
        "graph": {"nodes": [{"name": k, "type": type(v).__name__, "shape": _shape(v)}
                            for k, v in nodes.items() if not isinstance(v, nir.NIRGraph)],
                  "edges": [list(e) for e in edges]},
        "became": report.nodes,
        "network": {"n_inputs": spec.n_inputs, "layers": [ly.size for ly in spec.layers],
                    "dt_ms": spec.dt, "readout": model.readout,
                    "spike_area_s": report.spike_area},
        "input": {"samples": samples, "steps": steps, "seed": seed,
                  "rate": "2 % to 10 % per step, rising over the samples"},
        "agreement": agreement,
    }


def print_check(result: dict) -> None:
    """Human-readable form of :func:`check_nir`'s result."""
    print(f"NIR graph {result['file']}:")
    for node in result["graph"]["nodes"]:
        shape = "" if node["shape"] is None else f" {node['shape']}"
        print(f"  {node['name']:<16} {node['type']}{shape}")
    print("  edges: " + ", ".join(f"{a} -> {b}" for a, b in result["graph"]["edges"]))
    print("what each node became:")
    for name, line in result["became"].items():
        print(f"  {name:<16} {line}")
    net = result["network"]
    print(f"network: {net['n_inputs']} inputs, layers {net['layers']}, dt {net['dt_ms']:g} ms, "
          f"readout {net['readout']}, spikes are pulses of area {net['spike_area_s']:g} s")
    inp = result["input"]
    print(f"agreement with NIR's equations (reference simulator) on {inp['samples']} random "
          f"samples x {inp['steps']} steps ({inp['rate']}, seed {inp['seed']}):")
    for key, entry in result["agreement"].items():
        print(f"  {key} (thresholds {entry['thresholds']}):")
        if "spikes_spikeforge" in entry:
            corr = entry["spike_count_correlation"]
            print(f"    spikes                   spikeforge {entry['spikes_spikeforge']}, "
                  f"reference {entry['spikes_reference']}")
            print(f"    identical spike counts   {entry['identical_spike_counts'] * 100:.2f} %")
            print(f"    spike-count correlation  {'n/a' if corr is None else f'{corr:.4f}'}")
        corr = entry["readout_correlation"]
        print(f"    readout correlation      {'n/a' if corr is None else f'{corr:.4f}'}")
        print(f"    max |readout difference| {entry['max_abs_readout_difference']:.3g}")
