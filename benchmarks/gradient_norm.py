"""Gradient norm of a random SHD-shaped recurrent network over short and long windows.

700 Bernoulli inputs (p = 0.015 per 1 ms step) -> 256 recurrent LIF -> 20 LI, batch 32,
``sum_exp`` loss, one EventProp backward; prints the hidden firing rate and the norm of
the whole gradient for T = 100 and 1000 steps and two input weight means. A gradient that
grows by orders of magnitude with T (rather than a few-fold) signals adjoint blow-up.

    python benchmarks/gradient_norm.py
"""

from __future__ import annotations

import json

import torch

import spikeforge.nn as snn
from spikeforge.train import readout_loss


def main() -> None:
    torch.set_num_threads(1)
    for n_steps in (100, 1000):
        for weight_mean in (0.03, 0.05):
            torch.manual_seed(0)
            hidden = snn.LIF(700, 256, recurrent=True, weight_mean=weight_mean, weight_std=0.3)
            net = torch.nn.Sequential(hidden, snn.LI(256, 20))
            gen = torch.Generator().manual_seed(1)
            x = (torch.rand(32, n_steps, 700, generator=gen) < 0.015).float()
            labels = torch.randint(0, 20, (32,), generator=gen)
            readout_loss(net(x), labels, "sum_exp").backward()
            norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in net.parameters()))
            rate = hidden.last_record.events.n_events / (32 * 256 * n_steps / 1000)
            print(json.dumps({"T": n_steps, "weight_mean": weight_mean,
                              "hidden_rate_hz": round(rate, 1), "grad_norm": float(norm)}))


if __name__ == "__main__":
    main()
