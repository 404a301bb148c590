"""SpikingJelly 2.0 surrogate-gradient BPTT on the benchmark task.

Hidden: ``CUBALIFNode`` (current-based LIF; c_decay/v_decay = spikeforge's per-step
decays, hard reset to 0, its default Rect surrogate) with a hand-added recurrent
``nn.Linear(256, 256)`` (SpikingJelly has no all-to-all recurrent CUBA layer; its
``LinearRecurrentContainer`` would add a different [in + out, in] projection).
Readout: ``nn.Linear`` + ``CUBALIFNode`` with an unreachable threshold (1e9), i.e. a
leaky integrator whose membrane ``v`` is the readout. SpikingJelly adds the current to
the membrane with gain 1 per step, so the shared weights are scaled by ``syn_gain``
(``task.weight_scale``) and the learning rate with them (equal relative updates).
Single-step mode (the recurrence needs the previous step's spikes); the input
projection of all steps is one matmul and the loop iterates ``unbind(0)``.

usage: benchmarks/.venv-peers/bin/python benchmarks/impl_spikingjelly.py --T 100
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
    args = parser.parse_args(argv)
    tk.set_threads(args.threads)
    task = tk.task_from_args(args)

    import importlib.metadata

    import torch
    import torch_loop
    from spikingjelly.activation_based import functional, neuron

    alpha_mem, alpha_syn, _ = tk.decays()
    scale = tk.weight_scale(1.0)
    w = tk.make_weights(task)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc_in = torch.nn.Linear(task.n_inputs, task.n_hidden, bias=False)
            self.fc_rec = torch.nn.Linear(task.n_hidden, task.n_hidden, bias=False)
            self.lif = neuron.CUBALIFNode(
                c_decay=alpha_syn, v_decay=alpha_mem, v_threshold=tk.THRESHOLD, v_reset=0.0
            )
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.readout = neuron.CUBALIFNode(
                c_decay=alpha_syn, v_decay=alpha_mem, v_threshold=1e9, v_reset=0.0
            )
            with torch.no_grad():
                self.fc_in.weight.copy_(torch.from_numpy(w["w_in"] * scale))
                self.fc_rec.weight.copy_(torch.from_numpy(w["w_rec"] * scale))
                self.fc_out.weight.copy_(torch.from_numpy(w["w_out"] * scale))

        def forward(self, x):  # [T, B, in]
            functional.reset_net(self)
            h = self.fc_in(x)
            z = h.new_zeros(x.shape[1], task.n_hidden)
            out_sum = 0.0
            n_spikes = 0.0
            for h_t in h.unbind(0):
                z = self.lif(h_t + self.fc_rec(z))
                self.readout(self.fc_out(z))
                out_sum = out_sum + self.readout.v
                n_spikes = n_spikes + z.detach().sum()
            return out_sum / x.shape[0], n_spikes

    model = Net()

    record = torch_loop.run(
        "spikingjelly", task, model, "dense_tb", model, args.mode, args.threads,
        lr=task.lr * scale,
        extra={"peer_version": importlib.metadata.version("spikingjelly")},
    )  # fmt: skip
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
