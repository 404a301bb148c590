"""adLIF on the fused CUDA kernels (engine/gpu_loop.py, bound by gpu_specialise with no
adLIF-specific code) against the CPU drivers, under Numba's CUDA simulator in a
subprocess (it must be on before numba is first imported): identical spikes, per-spike
values and gradients to float32 tolerance, feed-forward and recurrent."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SIMULATED = textwrap.dedent('''
    import json, os
    assert os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
    import numpy as np
    import torch
    from spikeforge.engine import api, gpu_api
    from spikeforge.events import Events
    from spikeforge.neurons import AdLIFParams

    B, T, N_IN, N = 2, 30, 6, 8
    PARAMS = AdLIFParams(tau_adapt=30.0, a=2.0, b=0.5)

    def gap(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.abs(a - b).max() / max(1e-6, np.abs(b).max())) if b.size else 0.0

    def case(recurrent, seed):
        rng = np.random.default_rng(seed)
        x = (rng.random((B, T, N_IN)) < 0.3).astype(np.float32)
        w_in = rng.normal(0.8, 0.5, (N_IN, N)).astype(np.float32)
        w_rec = rng.normal(0.0, 0.4, (N, N)).astype(np.float32) if recurrent else None
        arrays = api.NeuronArrays.from_params(PARAMS, N, 1.0, np.float32)
        neurons = gpu_api.DeviceNeurons(arrays.model, torch.from_numpy(arrays.table), 1.0, True)
        t = lambda a: None if a is None else torch.from_numpy(a)
        out = gpu_api.forward(t(x), t(w_in), t(w_rec), neurons)
        cpu, gpu = api.forward(x, w_in, w_rec, arrays), out.to_events()
        row = {"n_spikes": int(cpu.n_events),
               "same_spikes": bool(np.array_equal(cpu.ptr, gpu.ptr)
                                   and np.array_equal(cpu.step, gpu.step)
                                   and np.array_equal(cpu.unit, gpu.unit)),
               "x1": gap(gpu.isyn, cpu.isyn), "x2": gap(gpu.extra, cpu.extra),
               "adapted": float(np.abs(cpu.extra).max())}
        dldt = rng.normal(size=cpu.n_events).astype(np.float32)
        ref = api.backward(x, w_in, w_rec, arrays, cpu, dldt, want_trace=True)
        oracle = api.backward(Events.from_dense(x), w_in, w_rec, arrays, cpu, dldt,
                              want_input_timing=True, backend="reference")
        mine = gpu_api.backward(t(x), t(w_in), t(w_rec), neurons, out,
                                out.gather(t(cpu.dense_of(dldt, np.float32))),
                                want_input_timing=True, want_trace=True)
        row["input_timing"] = gap(mine.input_dldt.numpy()[np.nonzero(x)], oracle.input_dldt)
        row["grad_w_in"] = gap(mine.grad_w_in.numpy(), ref.grad_w_in)
        row["lam_i_trace"] = gap(mine.lam_i_trace.numpy(), ref.lam_i_trace)
        if recurrent:
            row["grad_w_rec"] = gap(mine.grad_w_rec.numpy(), ref.grad_w_rec)
        return row

    print("RESULT " + json.dumps({"feedforward": case(False, 0), "recurrent": case(True, 1)}))
''')


@pytest.fixture(scope="module")
def simulated():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.parametrize("case", ["feedforward", "recurrent"])
def test_adlif_gpu_kernels_match_cpu_spikes_and_gradients(simulated, case):
    row = simulated[case]
    assert row["n_spikes"] > 5 and row["adapted"] > 0.3  # spikes and adaptation exercised
    assert row["same_spikes"]
    for key in ("x1", "x2", "grad_w_in", "grad_w_rec", "lam_i_trace", "input_timing"):
        if key in row:
            assert row[key] < 1e-4, (key, row[key])
