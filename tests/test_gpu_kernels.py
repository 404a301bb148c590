"""The fused CUDA kernels (engine/gpu_loop.py) against the CPU drivers.

The kernels run under Numba's CUDA simulator in a subprocess (the simulator must be on
before numba is first imported) on tiny shapes: identical spikes, per-spike values and
gradients to float32 tolerance, for LIF feed-forward and recurrent, ALIF recurrent and
the LI readout, and the autograd Function built on them against the torch dense loop.
Tests on a real GPU skip without CUDA.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

SIMULATED = textwrap.dedent('''
    import json, os
    assert os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
    import numpy as np
    import torch
    import spikeforge.nn as snn
    from spikeforge.engine import api, gpu_api
    from spikeforge.events import Events
    from spikeforge.model import ALIFParams, LIFParams
    from spikeforge.nn import device_functional as dfn
    from spikeforge.nn.gpu_functional import FusedEventPropFunction

    B, T, N_IN, N = 2, 20, 6, 8
    CASES = {
        "lif_feedforward": (LIFParams(), False),
        "lif_recurrent": (LIFParams(), True),
        "alif_recurrent": (ALIFParams(tau_adapt=30.0, beta=0.5), True),
        "li_readout": (LIFParams(spiking=False), False),
    }

    def gap(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.abs(a - b).max() / max(1e-6, np.abs(b).max())) if b.size else 0.0

    def kernel_case(params, recurrent, seed):
        rng = np.random.default_rng(seed)
        x = (rng.random((B, T, N_IN)) < 0.3).astype(np.float32)
        w_in = rng.normal(0.6, 0.5, (N_IN, N)).astype(np.float32)
        w_rec = rng.normal(0.0, 0.4, (N, N)).astype(np.float32) if recurrent else None
        arrays = api.NeuronArrays.from_params(params, N, 1.0, np.float32)
        neurons = gpu_api.DeviceNeurons(arrays.model, torch.from_numpy(arrays.table), 1.0,
                                        params.spiking)
        t = lambda a: None if a is None else torch.from_numpy(a)
        out = gpu_api.forward(t(x), t(w_in), t(w_rec), neurons)
        row = {}
        if params.spiking:
            cpu, gpu = api.forward(x, w_in, w_rec, arrays), out.to_events()
            row["n_spikes"] = cpu.n_events
            row["same_spikes"] = bool(np.array_equal(cpu.ptr, gpu.ptr)
                                      and np.array_equal(cpu.step, gpu.step)
                                      and np.array_equal(cpu.unit, gpu.unit))
            row["x1"] = gap(gpu.isyn, cpu.isyn)
            if cpu.extra is not None:
                row["x2"] = gap(gpu.extra, cpu.extra)
            dldt = rng.normal(size=cpu.n_events).astype(np.float32)
            ref = api.backward(x, w_in, w_rec, arrays, cpu, dldt, want_trace=True)
            oracle = api.backward(Events.from_dense(x), w_in, w_rec, arrays, cpu, dldt,
                                  want_input_timing=True, backend="reference")
            mine = gpu_api.backward(t(x), t(w_in), t(w_rec), neurons, out,
                                    out.gather(t(cpu.dense_of(dldt, np.float32))),
                                    want_input_timing=True, want_trace=True)
            timing = mine.input_dldt.numpy()[np.nonzero(x)]
            row["input_timing"] = gap(timing, oracle.input_dldt)
        else:
            v = api.forward(x, w_in, None, arrays)
            row["v"] = gap(out.numpy(), v)
            grad_v = rng.normal(size=v.shape).astype(np.float32)
            ref = api.backward(x, w_in, None, arrays, grad_v=grad_v, want_trace=True)
            mine = gpu_api.backward(t(x), t(w_in), None, neurons, grad_v=t(grad_v),
                                    want_trace=True)
        row["grad_w_in"] = gap(mine.grad_w_in.numpy(), ref.grad_w_in)
        row["lam_i_trace"] = gap(mine.lam_i_trace.numpy(), ref.lam_i_trace)
        if recurrent:
            row["grad_w_rec"] = gap(mine.grad_w_rec.numpy(), ref.grad_w_rec)
        return row

    def network_grads(fused):
        """Two-layer recurrent network on the torch path; ``fused``: every layer through
        FusedEventPropFunction (as on a GPU) instead of the torch dense loop."""
        torch.manual_seed(3)
        net = torch.nn.Sequential(
            snn.LIF(N_IN, N, recurrent=True, backend="torch", weight_mean=0.6),
            snn.LI(N, 3, backend="torch"))
        original = dfn.DeviceEventPropFunction
        if fused:
            dfn.DeviceEventPropFunction = FusedEventPropFunction
        try:
            x = (torch.rand(B, T, N_IN, generator=torch.Generator().manual_seed(4)) < 0.3)
            v = net(x.float())
            (v.sum(dim=1) ** 2).mean().backward()
        finally:
            dfn.DeviceEventPropFunction = original
        return v.detach().numpy(), [p.grad.numpy() for p in net.parameters()]

    rows = {name: kernel_case(p, rec, seed) for seed, (name, (p, rec)) in
            enumerate(CASES.items())}
    v_loop, g_loop = network_grads(False)
    v_fused, g_fused = network_grads(True)
    rows["autograd"] = {"v": gap(v_fused, v_loop),
                        "grads": max(gap(a, b) for a, b in zip(g_fused, g_loop))}
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


@pytest.mark.parametrize("case", ["lif_feedforward", "lif_recurrent", "alif_recurrent"])
def test_gpu_kernels_match_cpu_spikes_and_gradients(simulated, case):
    row = simulated[case]
    assert row["n_spikes"] > 5  # the case exercises spikes
    assert row["same_spikes"]
    for key in ("x1", "x2", "grad_w_in", "grad_w_rec", "lam_i_trace", "input_timing"):
        if key in row:
            assert row[key] < 1e-4, (key, row[key])


def test_gpu_readout_kernel_matches_cpu(simulated):
    row = simulated["li_readout"]
    assert row["v"] < 1e-5 and row["grad_w_in"] < 1e-4 and row["lam_i_trace"] < 1e-4


def test_fused_autograd_function_matches_torch_dense_loop(simulated):
    assert simulated["autograd"]["v"] < 1e-5
    assert simulated["autograd"]["grads"] < 1e-4


def test_threads_per_block_cover_every_neuron():
    from spikeforge.engine import gpu_loop

    for n in (1, 8, 33, 1024, 1025, 4096):
        threads = gpu_loop.threads_for(n)
        assert threads % 32 == 0 and threads <= gpu_loop.MAX_THREADS
        assert threads * gpu_loop.MAX_PER_THREAD >= n


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda_only
def test_cuda_fused_layers_match_the_torch_loop_on_gpu():
    import spikeforge.nn as snn
    from spikeforge.engine import gpu_api
    from spikeforge.nn import device_functional as dfn

    if not gpu_api.available():
        pytest.skip("numba.cuda cannot use this GPU (e.g. ROCm): the torch loop runs")
    torch.manual_seed(0)
    net = torch.nn.Sequential(snn.ALIF(40, 64, recurrent=True, weight_mean=0.3),
                              snn.LI(64, 5)).cuda()
    x = (torch.rand(4, 200, 40, device="cuda") < 0.1).float()
    call = dfn.DeviceCall(net[0].model, torch.zeros(1, 64, device="cuda"), 1.0, True, 0.01,
                          None)
    assert dfn._function_for(call, x) is not dfn.DeviceEventPropFunction

    def run(force_loop):
        original = dfn._function_for
        if force_loop:
            dfn._function_for = lambda call, x: dfn.DeviceEventPropFunction
        try:
            net.zero_grad()
            v = net(x)
            v.pow(2).mean().backward()
        finally:
            dfn._function_for = original
        return v.detach().cpu().numpy(), [p.grad.cpu().numpy() for p in net.parameters()]

    v_fused, g_fused = run(False)
    v_loop, g_loop = run(True)
    np.testing.assert_allclose(v_fused, v_loop, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_fused, g_loop, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
