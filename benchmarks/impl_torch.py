"""Plain PyTorch surrogate-gradient BPTT on the benchmark task (no SNN library).

Same dynamics as spikeforge (exact per-step integration, reset to 0), so it starts at
the same hidden firing rate with the unscaled shared weights. The feed-forward input
current of all steps is one matmul; the time loop iterates ``unbind(0)`` (indexing
``h[t]`` would make the backward pass O(T^2)). Surrogate: SuperSpike / fast sigmoid
derivative 1 / (1 + 10 |v - threshold|)^2.

usage: python benchmarks/impl_torch.py --T 100 --batch 32
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

    import torch
    import torch_loop

    class SuperSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v >= 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):
            (v,) = ctx.saved_tensors
            return grad / (1.0 + 10.0 * v.abs()) ** 2

    alpha_mem, alpha_syn, syn_gain = tk.decays()

    class Net(torch.nn.Module):
        def __init__(self, w: dict) -> None:
            super().__init__()
            self.w_in = torch.nn.Parameter(torch.from_numpy(w["w_in"]))
            self.w_rec = torch.nn.Parameter(torch.from_numpy(w["w_rec"]))
            self.w_out = torch.nn.Parameter(torch.from_numpy(w["w_out"]))

        def forward(self, x):  # x [T, B, in]
            h = x @ self.w_in.t()  # [T, B, H]
            n_b = x.shape[1]
            v = h.new_zeros(n_b, self.w_in.shape[0])
            i = torch.zeros_like(v)
            vo = h.new_zeros(n_b, self.w_out.shape[0])
            io = torch.zeros_like(vo)
            out_sum = torch.zeros_like(vo)
            n_spikes = h.new_zeros(())
            for h_t in h.unbind(0):
                v = alpha_mem * v + syn_gain * i
                i = alpha_syn * i
                z = SuperSpike.apply(v - tk.THRESHOLD)
                v = v * (1.0 - z.detach())
                i = i + h_t + z @ self.w_rec.t()
                vo = alpha_mem * vo + syn_gain * io
                io = alpha_syn * io + z @ self.w_out.t()
                out_sum = out_sum + vo
                n_spikes = n_spikes + z.detach().sum()
            return out_sum / x.shape[0], n_spikes

    model = Net(tk.make_weights(task))

    record = torch_loop.run("torch-bptt", task, model, "dense_tb", model, args.mode, args.threads)
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
