"""The fused CUDA kernels for delayed layers (engine/gpu_delay_loop.py) against the CPU
drivers (engine/delay_loop.py).

Under Numba's CUDA simulator in a subprocess (the simulator must be on before numba is
first imported), on tiny shapes: identical spikes and per-spike values; weight, delay,
input-timing and lam_I-trace gradients to float32 tolerance for LIF feed-forward and
recurrent (interpolated delays), ALIF recurrent with rounded delays and the LI readout;
and two-layer DelayedLIF -> DelayedLI networks on the fused autograd Function against
the same layers on the CPU kernels (outputs, every parameter gradient, dL/dx).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SIMULATED = textwrap.dedent('''
    import json, os
    assert os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
    import numpy as np
    import torch
    from spikeforge.engine import api, gpu_api, gpu_delay_api as gda
    from spikeforge.engine.delay_layers import (DelayedSynapses, DelaySteps,
                                                delayed_backward, delayed_forward)
    from spikeforge.events import Events
    from spikeforge.model import ALIFParams, LIFParams
    from spikeforge.nn import gpu_delays
    from spikeforge.nn.delays import DelayedLI, DelayedLIF

    B, T, N_IN, N = 2, 30, 6, 8
    CASES = {
        "lif_feedforward": (LIFParams(), False, "interpolate"),
        "lif_recurrent": (LIFParams(), True, "interpolate"),
        "alif_recurrent_round": (ALIFParams(tau_adapt=30.0, beta=0.5), True, "round"),
        "li_readout": (LIFParams(spiking=False), False, "interpolate"),
    }

    def gap(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.abs(a - b).max() / max(1e-6, np.abs(b).max())) if b.size else 0.0

    def t(a):
        return None if a is None else torch.from_numpy(a)

    def kernel_case(params, recurrent, mode, seed):
        rng = np.random.default_rng(seed)
        x = (rng.random((B, T, N_IN)) < 0.3).astype(np.float32)
        w_in = rng.normal(0.6, 0.5, (N_IN, N)).astype(np.float32)
        d_in = rng.uniform(0.0, 6.0, (N_IN, N)).astype(np.float32)
        w_rec = rng.normal(0.0, 0.4, (N, N)).astype(np.float32) if recurrent else None
        d_rec = rng.uniform(0.0, 6.0, (N, N)).astype(np.float32) if recurrent else None
        arrays = api.NeuronArrays.from_params(params, N, 1.0, np.float32)
        steps = lambda d: None if d is None else DelaySteps.from_ms(d, 1.0, mode, np.float32)
        synapses = DelayedSynapses(w_in, steps(d_in), w_rec, steps(d_rec))
        neurons = gpu_api.DeviceNeurons(arrays.model, t(arrays.table), 1.0, params.spiking)
        device_in = gda.DeviceDelays.from_ms(t(d_in), 1.0, mode)
        device_rec = None if d_rec is None else gda.DeviceDelays.from_ms(t(d_rec), 1.0, mode)
        events = gda.DeviceEvents.of(t(x), t(w_in))
        args = (events, t(w_in), device_in, t(w_rec), device_rec, neurons)
        out = gda.delayed_forward(*args)
        cpu = delayed_forward(Events.from_dense(x), synapses, arrays)
        row = {}
        if params.spiking:
            gpu = out.to_events()
            row["n_spikes"] = cpu.n_events
            row["same_spikes"] = bool(np.array_equal(cpu.ptr, gpu.ptr)
                                      and np.array_equal(cpu.step, gpu.step)
                                      and np.array_equal(cpu.unit, gpu.unit))
            row["x1"] = gap(gpu.isyn, cpu.isyn)
            dldt = rng.normal(size=cpu.n_events).astype(np.float32)
            ref = delayed_backward(Events.from_dense(x), synapses, arrays, cpu, dldt,
                                   want_input_timing=True, want_trace=True)
            mine = gda.delayed_backward(*args, out, out.gather(t(cpu.dense_of(dldt,
                                        np.float32))), want_input_timing=True,
                                        want_trace=True)
        else:
            row["v"] = gap(out.numpy(), cpu)
            grad_v = rng.normal(size=cpu.shape).astype(np.float32)
            ref = delayed_backward(Events.from_dense(x), synapses, arrays, grad_v=grad_v,
                                   want_input_timing=True, want_trace=True)
            mine = gda.delayed_backward(*args, grad_v=t(grad_v), want_input_timing=True,
                                        want_trace=True)
        for key in ("grad_w_in", "grad_d_in", "grad_w_rec", "grad_d_rec", "input_dldt",
                    "lam_i_trace"):
            if getattr(ref, key) is not None:
                row[key] = gap(getattr(mine, key).numpy(), getattr(ref, key))
                row[key + "_max"] = float(np.abs(getattr(ref, key)).max())
        return row

    def network(fused, recurrent):
        torch.manual_seed(5)
        hidden = DelayedLIF(N_IN, N, recurrent=recurrent, max_delay=6.0, weight_mean=0.6)
        readout = DelayedLI(N, 3, max_delay=6.0)
        gen = torch.Generator().manual_seed(2)
        x = (torch.rand(B, T, N_IN, generator=gen) < 0.3).float().requires_grad_()
        if fused:
            h = gpu_delays.run_fused(hidden, x, *hidden.clamped_delays())
            v = gpu_delays.run_fused(readout, h, *readout.clamped_delays())
        else:
            v = readout(hidden(x))
        (v.sum(dim=1) ** 2).mean().backward()
        grads = [p.grad.numpy() for p in [*hidden.parameters(), *readout.parameters()]]
        return v.detach().numpy(), grads + [x.grad.numpy()]

    rows = {name: kernel_case(*case, seed) for seed, (name, case) in
            enumerate(CASES.items())}
    for recurrent in (False, True):
        v_cpu, g_cpu = network(False, recurrent)
        v_gpu, g_gpu = network(True, recurrent)
        rows[f"autograd_recurrent_{recurrent}"] = {
            "v": gap(v_gpu, v_cpu), "n_grads": len(g_cpu),
            "grads": max(gap(a, b) for a, b in zip(g_gpu, g_cpu)),
            "smallest_grad": min(float(np.abs(b).max()) for b in g_cpu)}
    print("RESULT " + json.dumps(rows))
''')


@pytest.fixture(scope="module")
def simulated():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


GRADS = ("grad_w_in", "grad_d_in", "grad_w_rec", "grad_d_rec", "input_dldt", "lam_i_trace")


@pytest.mark.parametrize("case", ["lif_feedforward", "lif_recurrent", "alif_recurrent_round"])
def test_delayed_gpu_kernels_match_cpu_spikes_and_gradients(simulated, case):
    row = simulated[case]
    assert row["n_spikes"] > 20  # the case exercises spikes
    assert row["same_spikes"]
    assert row["x1"] < 1e-5
    for key in GRADS:
        if key in row:
            assert row[key + "_max"] > 1e-2, key  # a gradient that is not trivially zero
            assert row[key] < 1e-4, (key, row[key])
    assert ("grad_w_rec" in row) == case.endswith(("recurrent", "round"))


def test_delayed_gpu_readout_kernel_matches_cpu(simulated):
    row = simulated["li_readout"]
    assert row["v"] < 1e-5
    for key in ("grad_w_in", "grad_d_in", "input_dldt", "lam_i_trace"):
        assert row[key] < 1e-4, (key, row[key])


@pytest.mark.parametrize("recurrent", [False, True])
def test_fused_delayed_network_matches_cpu_layers(simulated, recurrent):
    row = simulated[f"autograd_recurrent_{recurrent}"]
    assert row["n_grads"] == (7 if recurrent else 5)  # weights, delays (x2 recurrent), dL/dx
    assert row["smallest_grad"] > 1e-3
    assert row["v"] < 1e-5 and row["grads"] < 1e-4


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda_only
def test_cuda_delayed_layers_use_the_fused_kernels_and_match_cpu():
    from spikeforge.engine import gpu_api
    from spikeforge.nn import gpu_delays
    from spikeforge.nn.delays import DelayedLI, DelayedLIF

    if not gpu_api.available():
        pytest.skip("numba.cuda cannot use this GPU (e.g. ROCm): host copies run")
    torch.manual_seed(0)
    layers = [DelayedLIF(40, 64, recurrent=True, max_delay=20.0, weight_mean=0.3),
              DelayedLI(64, 5, max_delay=20.0)]
    x = (torch.rand(4, 200, 40) < 0.1).float()
    outputs, grads = [], []
    for device in ("cpu", "cuda"):
        net = torch.nn.Sequential(*layers).to(device)
        assert device == "cpu" or gpu_delays.runs_fused(net[0], x.to(device))
        net.zero_grad()
        v = net(x.to(device))
        (v.sum(dim=1) ** 2).mean().backward()
        outputs.append(v.detach().cpu())
        grads.append([p.grad.detach().cpu() for p in net.parameters()])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * float(a.abs().max()))
