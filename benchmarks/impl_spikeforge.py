"""spikeforge on the benchmark task: EventProp (``--backend event``) or the dense NumPy
reference path (``--backend reference``).

``--input events`` (the native path): inputs are handed over as sparse
:class:`spikeforge.engine.Events`, built from the shared batches before the first step,
and the hidden layer passes spikes to the readout as sparse records (no dense
[B, T, 256] tensor). ``--input dense`` (the README's Python API, defaults only): a dense
float32 ``[B, T, 700]`` spike tensor goes into ``LIF(700, 256, recurrent=True)`` and its
dense spike output into ``LI(256, 20)``, as a user of the drop-in layers writes it.

usage: python benchmarks/impl_spikeforge.py --backend event --input events --T 100 --batch 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import task as tk  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tk.add_common_args(parser)
    parser.add_argument("--backend", choices=("event", "reference"), default="event")
    parser.add_argument("--input", choices=("events", "dense"), default="events")
    args = parser.parse_args(argv)
    tk.set_threads(args.threads)
    task = tk.task_from_args(args)

    import torch
    import torch_loop

    from spikeforge.nn import LI, LIF, event_input

    weights = tk.make_weights(task)
    hidden = LIF(
        task.n_inputs, task.n_hidden, recurrent=True, tau_mem=tk.TAU_MEM, tau_syn=tk.TAU_SYN,
        threshold=tk.THRESHOLD, dt=tk.DT, backend=args.backend,
        **({"dense_output": False} if args.input == "events" else {}),
    )  # fmt: skip
    readout = LI(
        task.n_hidden, task.n_classes, tau_mem=tk.TAU_MEM, tau_syn=tk.TAU_SYN, dt=tk.DT,
        backend=args.backend,
    )  # fmt: skip
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(weights["w_in"]))
        hidden.recurrent_weight.copy_(torch.from_numpy(weights["w_rec"]))
        readout.weight.copy_(torch.from_numpy(weights["w_out"]))
    model = torch.nn.ModuleList([hidden, readout])

    def forward(inputs):
        spikes = hidden(event_input(inputs) if args.input == "events" else inputs)
        v = readout(spikes)  # [B, T, n_classes]
        return v.mean(dim=1), hidden.last_record.events.n_events

    name = f"spikeforge-{args.backend}" if args.input == "events" else "spikeforge-api"
    if args.input == "dense" and args.backend != "event":
        name += f"-{args.backend}"
    input_format = "events" if args.input == "events" else "dense_bt"
    record = torch_loop.run(
        name, task, model, input_format, forward, args.mode, args.threads,
    )  # fmt: skip
    import numba

    record["numba_threads"] = numba.get_num_threads()
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
