"""How well a gradient predicts the change of the time-discretised loss.

For one hidden LIF layer (100 Poisson inputs at 10 Hz -> 32 LIF -> 5 LI, batch 16,
``sum_exp`` loss) it computes the hidden-weight gradient g by EventProp or surrogate BPTT
and the central finite difference of the loss along g / |g| for several step sizes.
A faithful gradient gives a finite difference close to |g|; a negative one means the
gradient points uphill for the simulated (time-stepped) network. Prints one JSON line.

    python benchmarks/gradient_fidelity.py --method eventprop --duration-ms 1000 --dt 1.0

``--reference-dt 0.1`` also computes the same network's EventProp gradient at a fine step
(same input spike times, same weights) and reports its cosine with the gradient at
``--dt``: how close the coarse-grid gradient is to the continuous-time one.
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
    parser.add_argument("--recurrent", action="store_true", help="recurrent hidden layer")
    parser.add_argument("--reference-dt", type=float, default=None,
                        help="also compare with the EventProp gradient at this finer step (ms)")
    args = parser.parse_args()
    n_in, n_out, batch = 100, 5, 16
    rng = np.random.default_rng(0)
    # input spike times on a 1 ms grid (10 Hz), placed on whatever step grid is simulated
    spikes_ms = rng.random((batch, int(round(args.duration_ms)), n_in)) < 10.0 / 1000
    labels = torch.tensor(rng.integers(0, n_out, batch))
    hidden, readout, x = _network(args, args.dt, args.method, spikes_ms)

    def loss() -> torch.Tensor:
        return readout_loss(readout(hidden(x)), labels, "sum_exp")

    loss().backward()
    grad = hidden.weight.grad.clone()
    extra = {}
    if args.reference_dt is not None:
        fine_hidden, fine_readout, fine_x = _network(args, args.reference_dt, "eventprop",
                                                     spikes_ms)
        readout_loss(fine_readout(fine_hidden(fine_x)), labels, "sum_exp").backward()
        fine = fine_hidden.weight.grad
        extra = {"cosine_with_reference_dt": float((grad * fine).sum()
                                                   / (grad.norm() * fine.norm())),
                 "reference_grad_norm": float(fine.norm())}
    direction = grad / grad.norm()
    rate = float(hidden(x).detach().sum()) / (batch * 32 * args.duration_ms / 1000)
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
                      "fd_along_grad": slopes, **extra}))


def _network(args, dt: float, method: str, spikes_ms: np.ndarray):
    """The probe network at step ``dt`` (ms), same seed -> same weights, and its input
    [B, T, 100] with the 1 ms spike grid ``spikes_ms`` placed on the ``dt`` grid."""
    per_ms = int(round(1.0 / dt)) if dt < 1.0 else 1
    if dt < 1.0:
        x = np.zeros((spikes_ms.shape[0], spikes_ms.shape[1] * per_ms, spikes_ms.shape[2]))
        x[:, ::per_ms] = spikes_ms
    else:
        stride = int(round(dt))
        x = spikes_ms.reshape(spikes_ms.shape[0], -1, stride, spikes_ms.shape[2]).sum(2)
    torch.manual_seed(0)
    hidden = snn.LIF(spikes_ms.shape[2], 32, dt=dt, weight_mean=args.weight_mean,
                     recurrent=args.recurrent, method=method,
                     min_vdot=args.min_vdot).double()
    readout = snn.LI(32, 5, dt=dt, weight_std=20.0, method=method).double()
    return hidden, readout, torch.from_numpy(x.astype(np.float64))


if __name__ == "__main__":
    main()
