"""snnTorch 1.0 surrogate-gradient BPTT on the benchmark task.

Hidden: ``snntorch.RSynaptic`` (all-to-all recurrent Linear, reset to zero, default
atan surrogate); readout: ``snntorch.Synaptic`` with ``reset_mechanism="none"`` (a
leaky integrator; its membrane is the readout). alpha/beta are spikeforge's per-step
decays. snnTorch adds the synaptic current to the membrane with gain 1 per step, so the
shared weights are scaled by ``syn_gain`` (see ``task.weight_scale``) for equal rates,
and the learning rate with them (Adam's steps are then the same relative to the weights).
Finite activity: snnTorch's default initialisation gave NaN gradients at T >= 500 on
this task; the shared finite initial weights (recurrent bias 0) avoid that. The input
projection of all steps is one matmul; the time loop iterates ``unbind(0)``.

usage: benchmarks/.venv-peers/bin/python benchmarks/impl_snntorch.py --T 100
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

    import snntorch
    import torch
    import torch_loop

    alpha_mem, alpha_syn, _ = tk.decays()
    scale = tk.weight_scale(1.0)
    w = tk.make_weights(task)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc_in = torch.nn.Linear(task.n_inputs, task.n_hidden, bias=False)
            self.lif = snntorch.RSynaptic(
                alpha=alpha_syn, beta=alpha_mem, all_to_all=True,
                linear_features=task.n_hidden, threshold=tk.THRESHOLD, reset_mechanism="zero",
            )  # fmt: skip
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.readout = snntorch.Synaptic(
                alpha=alpha_syn, beta=alpha_mem, reset_mechanism="none"
            )
            with torch.no_grad():
                self.fc_in.weight.copy_(torch.from_numpy(w["w_in"] * scale))
                self.lif.recurrent.weight.copy_(torch.from_numpy(w["w_rec"] * scale))
                self.lif.recurrent.bias.zero_()
                self.fc_out.weight.copy_(torch.from_numpy(w["w_out"] * scale))

        def forward(self, x):  # [T, B, in]
            spk, syn, mem = self.lif.reset_mem()
            syn_o, mem_o = self.readout.reset_mem()
            h = self.fc_in(x)
            out_sum = 0.0
            n_spikes = 0.0
            for h_t in h.unbind(0):
                spk, syn, mem = self.lif(h_t, spk, syn, mem)
                _, syn_o, mem_o = self.readout(self.fc_out(spk), syn_o, mem_o)
                out_sum = out_sum + mem_o
                n_spikes = n_spikes + spk.detach().sum()
            return out_sum / x.shape[0], n_spikes

    model = Net()

    record = torch_loop.run(
        "snntorch", task, model, "dense_tb", model, args.mode, args.threads, lr=task.lr * scale,
        extra={"peer_version": snntorch.__version__},
    )  # fmt: skip
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
