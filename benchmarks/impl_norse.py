"""Norse 1.1 surrogate-gradient BPTT on the benchmark task.

Hidden: ``norse.torch.LIFRecurrent`` (input and recurrent weights inside the module,
autapses allowed as in spikeforge, default SuperSpike surrogate); readout:
``torch.nn.Linear`` + ``norse.torch.LI``. Time constants are spikeforge's
(tau_mem 20 ms, tau_syn 5 ms, dt 1 ms). Norse integrates with forward Euler: the membrane
receives ``dt/tau_mem * I`` per step and I decays by ``1 - dt/tau_syn``, so the shared
weights are rescaled to deliver the same charge per input spike (``task.weight_scale``). Finite,
spiking activity: Norse's default initialisation left the hidden layer almost silent on
this task; the shared initial weights give the same rate as every other implementation.

usage: benchmarks/.venv-peers/bin/python benchmarks/impl_norse.py --T 100
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

    import norse.torch as norse
    import torch
    import torch_loop

    dt_s = tk.DT * 1e-3
    scale = tk.weight_scale(tk.DT / tk.TAU_MEM, 1.0 - tk.DT / tk.TAU_SYN)
    w = tk.make_weights(task)
    tau_mem_inv, tau_syn_inv = 1e3 / tk.TAU_MEM, 1e3 / tk.TAU_SYN  # 1/s

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            p = norse.LIFParameters(
                tau_syn_inv=torch.as_tensor(tau_syn_inv), tau_mem_inv=torch.as_tensor(tau_mem_inv),
                v_th=torch.as_tensor(tk.THRESHOLD), v_reset=torch.as_tensor(0.0),
                v_leak=torch.as_tensor(0.0),
            )  # fmt: skip
            self.lif = norse.LIFRecurrent(task.n_inputs, task.n_hidden, p=p, autapses=True, dt=dt_s)
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.readout = norse.LI(
                p=norse.LIParameters(
                    tau_syn_inv=torch.as_tensor(tau_syn_inv),
                    tau_mem_inv=torch.as_tensor(tau_mem_inv),
                    v_leak=torch.as_tensor(0.0),
                ),
                dt=dt_s,
            )
            with torch.no_grad():
                self.lif.input_weights.copy_(torch.from_numpy(w["w_in"] * scale))
                self.lif.recurrent_weights.copy_(torch.from_numpy(w["w_rec"] * scale))
                self.fc_out.weight.copy_(torch.from_numpy(w["w_out"] * scale))

        def forward(self, x):  # [T, B, in]
            z, _ = self.lif(x)  # [T, B, H]
            v, _ = self.readout(self.fc_out(z))  # [T, B, C]
            return v.mean(dim=0), z.detach().sum()

    model = Net()

    record = torch_loop.run(
        "norse", task, model, "dense_tb", model, args.mode, args.threads, lr=task.lr * scale,
        extra={"peer_version": importlib.metadata.version("norse")},
    )  # fmt: skip
    tk.emit(record)
    return record


if __name__ == "__main__":
    main()
