"""How well a gradient predicts the change of the time-discretised loss.

For one hidden LIF layer (100 Poisson inputs at 10 Hz -> 32 LIF -> 5 LI, batch 16,
``sum_exp`` loss) it computes the hidden-weight gradient g by EventProp or surrogate BPTT
and the central finite difference of the loss along g / |g| for several step sizes.
A faithful gradient gives a finite difference close to |g|; a negative one means the
gradient points uphill for the simulated (time-stepped) network. Prints one JSON line.

    python benchmarks/gradient_fidelity.py --method eventprop --duration-ms 1000 --dt 1.0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import spikeforge.nn as snn
from spikeforge.train.losses import readout_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("eventprop", "bptt"), default="eventprop")
    parser.add_argument("--duration-ms", type=float, default=1000.0)
    parser.add_argument("--dt", type=float, default=1.0)
    parser.add_argument("--weight-mean", type=float, default=0.6)
    parser.add_argument("--min-vdot", type=float, default=0.01)
    args = parser.parse_args()
    n_in, n_hidden, n_out, batch = 100, 32, 5, 16
    n_steps = int(round(args.duration_ms / args.dt))
    rng = np.random.default_rng(0)
    x = (rng.random((batch, n_steps, n_in)) < 10.0 * args.dt / 1000).astype(np.float64)
    x = torch.from_numpy(x)
    labels = torch.tensor(rng.integers(0, n_out, batch))
    torch.manual_seed(0)
    hidden = snn.LIF(n_in, n_hidden, dt=args.dt, weight_mean=args.weight_mean,
                     method=args.method, min_vdot=args.min_vdot).double()
    readout = snn.LI(n_hidden, n_out, dt=args.dt, weight_std=20.0,
                     method=args.method).double()

    def loss() -> torch.Tensor:
        return readout_loss(readout(hidden(x)), labels, "sum_exp")

    loss().backward()
    grad = hidden.weight.grad.clone()
    direction = grad / grad.norm()
    rate = float(hidden(x).detach().sum()) / (batch * n_hidden * args.duration_ms / 1000)
    slopes = {}
    for eps in (0.1, 0.03, 0.01):
        with torch.no_grad():
            hidden.weight += eps * direction
            plus = loss().item()
            hidden.weight -= 2 * eps * direction
            minus = loss().item()
            hidden.weight += eps * direction
        slopes[str(eps)] = (plus - minus) / (2 * eps)
    print(json.dumps({**vars(args), "hidden_rate_hz": rate, "grad_norm": float(grad.norm()),
                      "fd_along_grad": slopes}))


if __name__ == "__main__":
    main()
