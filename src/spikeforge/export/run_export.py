"""High-level export operations used by the CLI (one call per command).

They take a loaded network (:class:`LoadedModel`, e.g. from
:func:`spikeforge.experiments.loading.load_any`), never a run folder's config.
"""

from __future__ import annotations

import json
from pathlib import Path

from spikeforge.atomic import write_text_atomic
from spikeforge.errors import SpikeforgeError
from spikeforge.export import agreement
from spikeforge.export.network_io import LoadedModel
from spikeforge.export.nir_io import read_nir, write_nir

TARGETS = ("nir", "brian2", "nest")


def nir_round_trip(model: LoadedModel, path: Path, max_samples: int | None) -> dict:
    """Re-import the written NIR file and compare its outputs with the original."""
    back = read_nir(path)
    back.splits = model.splits

    def simulate(events):
        return agreement.spikeforge_output(back, events)

    return agreement.check(model, model.splits.test, simulate, "nir (spikeforge re-import)",
                           max_samples)


def check_target(target: str) -> None:
    """Raise :class:`SpikeforgeError` unless ``target`` is one of :data:`TARGETS`."""
    if target not in TARGETS:
        raise SpikeforgeError(f"unknown export target {target!r}; choose one of {TARGETS}")


def default_output(source: Path, target: str) -> Path:
    """Where ``export`` writes by default: ``SOURCE/model.nir`` (nir) or the folder
    ``SOURCE/export_<target>`` (brian2, nest)."""
    return Path(source) / ("model.nir" if target == "nir" else f"export_{target}")


def export(model: LoadedModel, target: str, out: Path, check: bool,
           max_samples: int | None) -> dict:
    """Export ``model`` to ``target`` at ``out`` (a file for nir, a folder otherwise);
    with ``check``, simulate the first ``max_samples`` test samples and compare."""
    check_target(target)
    if check and model.splits is None:
        raise SpikeforgeError("--check needs a run folder (its test set), not a model file")
    result: dict = {"target": target}
    if target == "nir":
        path = Path(out)
        write_nir(model, path)
        result["files"] = [str(path)]
        if check:
            result["agreement"] = [nir_round_trip(model, path, max_samples)]
            from spikeforge.export.nir_consumers import snntorch_check

            consumer = snntorch_check(model, path, max_samples)
            if consumer is not None:
                result["agreement"].append(consumer)
    else:
        from spikeforge.export import simulator_export as se

        folder = Path(out)
        if check:
            se.require(target)
        result["files"] = [str(p) for p in se.write_simulator_export(model, target, folder)]
        if check:
            report = agreement.check(model, model.splits.test,
                                     lambda events: se.simulate(model, target, events),
                                     target, max_samples)
            write_text_atomic(folder / "agreement.json", json.dumps(report, indent=2) + "\n")
            result["agreement"] = [report]
    return result


def import_nir(path: Path, out: Path, dt: float | None, readout: str | None,
               writer: str | None = None) -> dict:
    """Read a NIR file and write a spikeforge model file (``writer``: see
    :mod:`spikeforge.export.nir_writers`)."""
    from spikeforge.export.network_io import save_model_file

    model = read_nir(path, dt, readout, writer)
    save_model_file(out, model)
    spec = model.network.spec
    return {"model_file": str(out), "n_inputs": spec.n_inputs,
            "layers": [layer.size for layer in spec.layers], "dt_ms": spec.dt,
            "readout": model.readout}
