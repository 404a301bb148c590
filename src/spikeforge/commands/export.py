"""``spikeforge export``, ``spikeforge import-nir`` and ``spikeforge energy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from spikeforge.commands import MODEL_FILE_DATA, MODEL_FILE_DATA_DIR


def _print_agreement(report: dict) -> None:
    print(f"agreement with {report['target']} on {report['n_samples']} test samples:")
    print(f"  class agreement          {report['class_agreement'] * 100:.2f} %")
    print(f"  spike-count correlation  {report['spike_count_correlation']:.4f}")
    print(f"  identical spike counts   {report['identical_spike_counts'] * 100:.2f} % "
          f"of (sample, neuron) pairs; spikes {report['spikes_spikeforge']} vs "
          f"{report['spikes_target']}")
    print(f"  max |readout difference| {report['max_abs_readout_difference']:.3g}")
    print(f"  test accuracy            spikeforge {report['accuracy_spikeforge']:.4f}, "
          f"target {report['accuracy_target']:.4f}")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        run_dir: Annotated[Path, typer.Argument(help="Run folder (or a model file).")],
        to: Annotated[str, typer.Option("--to", help="nir, brian2 or nest.")],
        out: Annotated[Path | None, typer.Option(
            help="Output file (nir) or folder (brian2/nest); default inside RUN_DIR.")] = None,
        check: Annotated[bool, typer.Option(
            "--check", help="Simulate test samples in the target and report agreement.")
        ] = False,
        samples: Annotated[int | None, typer.Option(
            help="Check at most this many test samples (default: all).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    ) -> None:
        """Export a trained network to NIR, Brian2 or NEST (--check: agreement on test)."""
        from spikeforge.experiments.loading import load_any
        from spikeforge.export.run_export import check_target, default_output, export

        check_target(to)
        model = load_any(run_dir, with_data=check)
        result = export(model, to, out or default_output(run_dir, to), check, samples)
        if as_json:
            print(json.dumps(result))
            return
        for path in result["files"]:
            print(f"wrote {path}")
        for report in result.get("agreement", []):
            _print_agreement(report)

    @app.command("import-nir")
    def import_nir_cmd(
        nir_file: Annotated[Path, typer.Argument(help="NIR graph (HDF5) to import.")],
        out: Annotated[Path | None, typer.Option(
            help="spikeforge model file to write (.pt). Default: none (then --check is "
                 "needed).")] = None,
        dt: Annotated[float | None, typer.Option(
            help="Time step in ms the graph was written for and simulated at: a spike is "
                 "one step of amplitude 1 (snnTorch: 0.1, Norse: its from_nir dt, 1.0 by "
                 "default; Sinabs: 1000, one step per NIR second). Default: from a "
                 "spikeforge file, else 1.0.")] = None,
        readout: Annotated[str | None, typer.Option(
            help="sum, sum_exp, max or first_spike (default: from the file).")] = None,
        writer: Annotated[str | None, typer.Option(
            help="Correct what this library records differently from the NIR "
                 "specification before importing: norse (Norse's to_nir writes dt·tau for "
                 "tau; give its dt as --dt). Default: none.")] = None,
        check: Annotated[bool, typer.Option(
            "--check", help="Print the graph, what each node became and the agreement with "
                            "NIR's equations (reference simulator) on random input.")] = False,
        samples: Annotated[int, typer.Option(
            help="--check: random input samples.", show_default=True)] = 8,
        steps: Annotated[int, typer.Option(
            help="--check: time steps per sample.", show_default=True)] = 100,
        seed: Annotated[int, typer.Option(
            help="--check: seed of the random input.", show_default=True)] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    ) -> None:
        """Read a NIR graph into a spikeforge model file (--check: agreement with NIR's
        equations on random input)."""
        from spikeforge.errors import SpikeforgeError
        from spikeforge.export.run_export import import_nir

        if out is None and not check:
            raise SpikeforgeError("import-nir needs --out FILE (the model file to write) or "
                                  "--check (or both)")
        result: dict = {}
        if check:
            from spikeforge.export.nir_check import check_nir, print_check

            result["check"] = check_nir(nir_file, dt, readout, samples, steps, seed,
                                        writer=writer)
        if out is not None:
            result.update(import_nir(nir_file, out, dt, readout, writer))
        if as_json:
            print(json.dumps(result))
            return
        if check:
            print_check(result.pop("check"))
        for key, value in result.items():
            print(f"{key}: {value}")

    @app.command("energy")
    def energy_cmd(
        run_dir: Annotated[Path, typer.Argument(
            help="Run folder written by `spikeforge train`, or a model file (.pt) from "
            "`export`/`import-nir` with --data (reports go to MODEL-energy/).")],
        data: MODEL_FILE_DATA = None,
        data_dir: MODEL_FILE_DATA_DIR = None,
        samples: Annotated[int | None, typer.Option(
            help="Count over at most this many test samples (default: all).")] = None,
        repeats: Annotated[int, typer.Option(help="Timing repetitions.")] = 5,
        threads: Annotated[int, typer.Option(help="CPU threads for the measurements.")] = 1,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line.")] = False,
    ) -> None:
        """Count SOPs and ANN MACs per inference; modelled and measured energy and time."""
        from spikeforge.data.base import first_batch
        from spikeforge.energy.report import energy_report, print_report
        from spikeforge.experiments.loading import load_run

        out_dir = run_dir
        if run_dir.is_file():
            from spikeforge.errors import SpikeforgeError
            from spikeforge.experiments.evaluate_model import model_file_with_data

            if data is None:
                raise SpikeforgeError(
                    f"{run_dir} is a model file, which names no dataset; add --data NAME "
                    "(and --data-dir DIR)")
            model = model_file_with_data(run_dir, data,
                                         None if data_dir is None else str(data_dir))
            out_dir = run_dir.with_name(f"{run_dir.stem}-energy")
            out_dir.mkdir(exist_ok=True)
        else:
            model = load_run(run_dir)
        events, _ = first_batch(model.splits.test, samples)
        report = energy_report(model.network, events, out_dir, repeats, threads)
        if as_json:
            print(json.dumps(report))
        else:
            print_report(report)
