"""Brian2 model of a spikeforge network (stand-alone: needs only numpy and brian2).

Written by ``spikeforge export RUN --to brian2`` next to ``weights.npz``. Usage::

    python brian2_model.py weights.npz inputs.npz results.npz

``inputs.npz`` holds ``steps`` (int, [E]), ``units`` (int, [E]) and ``ptr`` (int, [B+1]):
the input events of B samples (sample b owns events ptr[b]:ptr[b+1]). ``results.npz``
receives per-layer spike ``counts_k`` [B, N_k] and the readout trace ``readout``
[B, T, C] (membrane voltages; spikes 0/1 for a spiking output layer).

Neuron model (dimensionless, identical to spikeforge's)::

    tau_mem dv/dt = -v + I,   tau_syn dI/dt = -I,   on a presynaptic spike: I += w
    v >= threshold -> spike, v = 0          (LI readout: no threshold)

integrated with Brian2's ``exact`` method on a clock of dt. Brian2's schedule per step
(state update, thresholds, synaptic propagation, resets) is spikeforge's per-step order,
so a spike at step n changes the target's current at step n and its voltage from n + 1.
The B samples run in parallel as B disconnected copies of the network. Per-synapse
delays of (q + f) steps are two synapses: weight (1 - f) w after q steps, f w after
q + 1 steps (spikeforge's interpolation rule; f = 0 for rounded delays).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

import numpy as np


def _numpy_compat() -> None:
    """Brian2 2.9 (the last release for Python 3.11) refers to ``np.ndarray.ptp``, removed
    in NumPy 2.4; load its units module with ``np.ptp`` instead (no files are changed)."""
    if hasattr(np.ndarray, "ptp") or "brian2" in sys.modules:
        return

    class _Loader(importlib.machinery.SourceFileLoader):
        def get_code(self, fullname):
            text = self.get_data(self.path).decode("utf-8")
            return compile(text.replace("np.ndarray.ptp)", "np.ptp)"), self.path, "exec",
                           dont_inherit=True)

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != "brian2.units.fundamentalunits":
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None:
                spec.loader = _Loader(fullname, spec.origin)
            return spec

    sys.meta_path.insert(0, _Finder())


def import_simulator():
    """Import brian2 (with the NumPy compatibility loader)."""
    _numpy_compat()
    import brian2

    return brian2


EQUATIONS = """
dv/dt = (-v + I) / tau_mem : 1
dI/dt = -I / tau_syn : 1
"""


def build(weights, ptr, steps, units, n_steps: int, target: str = "numpy"):
    """Build the Brian2 network for B samples; returns (network, monitors dict)."""
    b2 = import_simulator()
    b2.prefs.codegen.target = target
    b2.start_scope()
    dt = float(weights["dt_ms"]) * b2.ms
    clock = b2.Clock(dt=dt)
    n_batch = len(ptr) - 1
    n_in = int(weights["n_inputs"])
    sample = np.repeat(np.arange(n_batch), np.diff(ptr))
    index = sample * n_in + np.asarray(units, dtype=np.int64)
    source = b2.SpikeGeneratorGroup(n_batch * n_in, index, np.asarray(steps) * dt, clock=clock,
                                    name="inputs")
    objects, monitors = [source], {}
    for k in range(int(weights["n_layers"])):
        w = np.asarray(weights[f"w{k}"], dtype=np.float64)  # [out, in]
        n_out = w.shape[0]
        spiking = bool(weights[f"spiking{k}"])
        namespace = {"tau_mem": float(weights[f"tau_mem{k}"]) * b2.ms,
                     "tau_syn": float(weights[f"tau_syn{k}"]) * b2.ms,
                     "theta": float(weights[f"threshold{k}"])}
        extra = dict(threshold="v >= theta", reset="v = 0") if spiking else {}
        group = b2.NeuronGroup(n_batch * n_out, EQUATIONS, method="exact", clock=clock,
                               namespace=namespace, name=f"layer{k}", **extra)
        objects.append(group)
        objects.append(_connect(b2, source, group, w, n_batch, f"syn{k}", clock,
                                weights.get(f"dq{k}"), weights.get(f"df{k}")))
        if f"rec{k}" in weights:
            rec = np.asarray(weights[f"rec{k}"], dtype=np.float64)
            objects.append(_connect(b2, group, group, rec, n_batch, f"rec{k}", clock,
                                    weights.get(f"rdq{k}"), weights.get(f"rdf{k}")))
        if spiking:
            monitors[f"spikes{k}"] = b2.SpikeMonitor(group, name=f"spikemon{k}")
            objects.append(monitors[f"spikes{k}"])
        else:
            monitors["voltage"] = b2.StateMonitor(group, "v", record=True, clock=clock,
                                                  when="before_thresholds", name="vmon")
            objects.append(monitors["voltage"])
        source = group
    network = b2.Network(*objects)
    network.n_steps, network.sim_dt = n_steps, dt
    return network, monitors


def synapse_table(w, q=None, f=None):
    """Synapses of one ``[out, in]`` weight matrix: (post, pre, weight, delay in steps).

    A delay of (q + f) steps (spikeforge's interpolated delay) becomes two synapses:
    weight (1 - f) w after q steps and f w after q + 1 steps.
    """
    post, pre = np.nonzero(w)
    weight = w[post, pre]
    if q is None:
        return post, pre, weight, np.zeros(post.size, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)[post, pre]
    f = np.asarray(f, dtype=np.float64)[post, pre]
    split = f > 0
    return (np.concatenate([post, post[split]]), np.concatenate([pre, pre[split]]),
            np.concatenate([weight * (1.0 - f), weight[split] * f[split]]),
            np.concatenate([q, q[split] + 1]))


def _connect(b2, pre, post, w, n_batch, name, clock, q=None, f=None):
    """Block-diagonal copies of the ``[out, in]`` weight matrix, one per sample."""
    post_idx, pre_idx, wts, steps = synapse_table(w, q, f)
    n_out, n_in = w.shape
    offsets = np.arange(n_batch)[:, None]
    syn = b2.Synapses(pre, post, "w : 1", on_pre="I_post += w", clock=clock, name=name)
    syn.connect(i=(offsets * n_in + pre_idx).ravel(), j=(offsets * n_out + post_idx).ravel())
    syn.w[:] = np.tile(wts, n_batch)
    if steps.any():
        syn.delay[:] = np.tile(steps, n_batch) * clock.dt
    return syn


def simulate(weights, ptr, steps, units, n_steps: int, target: str = "numpy"):
    """Run B samples; returns {'counts_k': [B, N_k], 'readout': [B, T, C]}."""
    network, monitors = build(weights, ptr, steps, units, n_steps, target)
    network.run(n_steps * network.sim_dt)
    return collect(weights, monitors, len(ptr) - 1, n_steps)


def collect(weights, monitors, n_batch: int, n_steps: int):
    b2 = import_simulator()
    dt = float(weights["dt_ms"]) * b2.ms
    out = {}
    n_layers = int(weights["n_layers"])
    for k in range(n_layers):
        n_out = np.asarray(weights[f"w{k}"]).shape[0]
        if f"spikes{k}" in monitors:
            mon = monitors[f"spikes{k}"]
            idx = np.asarray(mon.i[:], dtype=np.int64)
            step = np.rint(np.asarray(mon.t[:] / dt)).astype(np.int64)
            counts = np.bincount(idx, minlength=n_batch * n_out).reshape(n_batch, n_out)
            out[f"counts{k}"] = counts
            if k == n_layers - 1:
                trace = np.zeros((n_batch, n_steps, n_out))
                trace[idx // n_out, step, idx % n_out] = 1.0
                out["readout"] = trace
        else:
            v = np.asarray(monitors["voltage"].v[:])  # [B * C, T]
            out["readout"] = v.reshape(n_batch, n_out, -1)[:, :, :n_steps].transpose(0, 2, 1)
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        raise SystemExit("usage: python brian2_model.py weights.npz inputs.npz results.npz")
    weights = dict(np.load(argv[0]))
    inputs = np.load(argv[1])
    result = simulate(weights, inputs["ptr"], inputs["steps"], inputs["units"],
                      int(inputs["n_steps"]))
    np.savez(argv[2], **result)


if __name__ == "__main__":
    main()
