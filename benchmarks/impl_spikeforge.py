"""spikeforge on the benchmark task: EventProp (``--backend event``) or the dense NumPy
reference path (``--backend reference``).

Inputs are handed over as sparse :class:`spikeforge.engine.Events` (spikeforge's native
format), built from the shared batches before the first step; the hidden layer passes
spikes to the readout as sparse records (no dense [B, T, 256] tensor).

usage: python benchmarks/impl_spikeforge.py --backend event --T 100 --batch 32
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
    args = parser.parse_args(argv)
    tk.set_threads(args.threads)
    task = tk.task_from_args(args)

    import torch
    import torch_loop

    from spikeforge.nn import LI, LIF, event_input

    weights = tk.make_weights(task)
    hidden = LIF(
        task.n_inputs, task.n_hidden, recurrent=True, tau_mem=tk.TAU_MEM, tau_syn=tk.TAU_SYN,
        threshold=tk.THRESHOLD, dt=tk.DT, dense_output=False, backend=args.backend,
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

    def forward(events):
        spikes = hidden(event_input(events))
        v = readout(spikes)  # [B, T, n_classes]
        return v.mean(dim=1), hidden.last_record.events.n_events

    record = torch_loop.run(
        f"spikeforge-{args.backend}", task, model, "events", forward, args.mode, args.threads,
    )  # fmt: skip
    import numba

    record["numba_threads"] = numba.get_num_threads()
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
