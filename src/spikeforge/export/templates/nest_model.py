"""NEST model of a spikeforge network (stand-alone: needs only numpy and NEST >= 3).

Written by ``spikeforge export RUN --to nest`` next to ``weights.npz``. Usage::

    python nest_model.py weights.npz inputs.npz results.npz

(file formats as in ``brian2_model.py``: inputs ``ptr``, ``steps``, ``units``,
``n_steps``; results ``counts_k`` [B, N_k] and ``readout`` [B, T, C]).

Parameter mapping onto ``iaf_psc_exp`` (exact integration on the grid, like spikeforge)::

    C_m dV/dt = -(V - E_L) C_m / tau_m + I_syn,  tau_syn dI_syn/dt = -I_syn

With ``C_m = tau_m`` (pF, numerically equal to ms), ``E_L = V_reset = 0``,
``V_th = threshold``, ``t_ref = 0``, ``tau_syn_ex = tau_syn_in = tau_syn`` and weights in
pA equal to spikeforge's weights, V (mV) follows spikeforge's dimensionless V exactly.
The LI readout is ``iaf_psc_exp`` with an unreachable threshold.

Timing: spikeforge delivers a spike to the next layer's current in the step it is
emitted; NEST's minimum delay is one step. For a feed-forward network this only shifts
each layer's trajectory: an input event at spikeforge step n is a generator spike at
(n + 1) dt (delay dt), layer k's spikes and voltages at spikeforge step n appear in NEST
at time (n + 2 + k) dt. The simulation runs n_steps + n_layers + 1 steps and the
recorded data are shifted back. (Recurrent layers cannot be mapped this way.)
A per-synapse delay of (q + f) steps becomes two connections, weight (1 - f) w with
delay (q + 1) dt and f w with delay (q + 2) dt (spikeforge's interpolation rule).
"""

from __future__ import annotations

import sys

import numpy as np

NEVER = 1e12  # threshold of the non-spiking readout


def import_simulator():
    """Import NEST quietly."""
    import nest

    return nest


def synapse_table(w, q=None, f=None):
    """Synapses of one ``[out, in]`` weight matrix: (post, pre, weight, delay in steps);
    a delay of (q + f) steps becomes weight (1 - f) w after q and f w after q + 1 steps."""
    post, pre = np.nonzero(w)
    weight = w[post, pre]
    if q is None:
        return post, pre, weight, np.zeros(post.size, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)[post, pre]
    f = np.asarray(f, dtype=np.float64)[post, pre]
    split = f > 0
    return (np.concatenate([post, post[split]]), np.concatenate([pre, pre[split]]),
            np.concatenate([weight * (1.0 - f), weight[split] * f[split]]),
            np.concatenate([q, q[split] + 1]))


def _params(weights, k: int) -> dict:
    tau_mem, tau_syn = float(weights[f"tau_mem{k}"]), float(weights[f"tau_syn{k}"])
    spiking = bool(weights[f"spiking{k}"])
    return {"tau_m": tau_mem, "C_m": tau_mem, "tau_syn_ex": tau_syn, "tau_syn_in": tau_syn,
            "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0, "I_e": 0.0, "t_ref": 0.0,
            "V_th": float(weights[f"threshold{k}"]) if spiking else NEVER}


def build(weights, ptr, steps, units, n_steps: int, threads: int = 1):
    """Create the network for B samples in a fresh NEST kernel; returns (info, monitors)."""
    nest = import_simulator()
    nest.ResetKernel()
    try:
        nest.verbosity = nest.VerbosityLevel.ERROR
    except AttributeError:  # NEST < 3.9
        nest.set_verbosity("M_ERROR")
    dt = float(weights["dt_ms"])
    nest.SetKernelStatus({"resolution": dt, "local_num_threads": threads})
    n_batch, n_in = len(ptr) - 1, int(weights["n_inputs"])
    sample = np.repeat(np.arange(n_batch), np.diff(ptr))
    channel = sample * n_in + np.asarray(units, dtype=np.int64)
    times = (np.asarray(steps, dtype=np.int64) + 1) * dt
    order = np.lexsort((times, channel))
    channel, times = channel[order], times[order]
    bounds = np.searchsorted(channel, np.arange(n_batch * n_in + 1))
    generators = nest.Create("spike_generator", n_batch * n_in)
    generators.set([{"spike_times": times[bounds[c]:bounds[c + 1]].tolist()}
                    for c in range(n_batch * n_in)])
    pre_ids, monitors, layers = np.asarray(generators.tolist()), {}, []
    n_layers = int(weights["n_layers"])
    for k in range(n_layers):
        w = np.asarray(weights[f"w{k}"], dtype=np.float64)
        n_out = w.shape[0]
        group = nest.Create("iaf_psc_exp", n_batch * n_out, params=_params(weights, k))
        post_ids = np.asarray(group.tolist())
        post_idx, pre_idx, wts, lag = synapse_table(w, weights.get(f"dq{k}"),
                                                    weights.get(f"df{k}"))
        offsets = np.arange(n_batch)[:, None]
        src = pre_ids[(offsets * w.shape[1] + pre_idx).ravel()]
        dst = post_ids[(offsets * n_out + post_idx).ravel()]
        nest.Connect(src, dst, conn_spec="one_to_one",
                     syn_spec={"weight": np.tile(wts, n_batch),
                               "delay": np.tile((lag + 1) * dt, n_batch)})
        if bool(weights[f"spiking{k}"]):
            recorder = nest.Create("spike_recorder")
            nest.Connect(group, recorder)
            monitors[f"spikes{k}"] = recorder
        else:
            meter = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": dt})
            nest.Connect(meter, group)
            monitors["voltage"] = meter
        layers.append(group)
        pre_ids = post_ids
    info = {"layers": layers, "first_id": [int(g.tolist()[0]) for g in layers],
            "sim_time": (n_steps + n_layers + 1) * dt, "dt": dt}
    return info, monitors


def simulate(weights, ptr, steps, units, n_steps: int, threads: int = 1):
    """Run B samples; returns {'counts_k': [B, N_k], 'readout': [B, T, C]}."""
    nest = import_simulator()
    info, monitors = build(weights, ptr, steps, units, n_steps, threads)
    nest.Simulate(info["sim_time"])
    return collect(weights, info, monitors, len(ptr) - 1, n_steps)


def collect(weights, info, monitors, n_batch: int, n_steps: int):
    dt, out = info["dt"], {}
    n_layers = int(weights["n_layers"])
    for k in range(n_layers):
        n_out = np.asarray(weights[f"w{k}"]).shape[0]
        first = info["first_id"][k]
        if f"spikes{k}" in monitors:
            ev = monitors[f"spikes{k}"].get("events")
            idx = np.asarray(ev["senders"], dtype=np.int64) - first
            step = np.rint(np.asarray(ev["times"]) / dt).astype(np.int64) - (2 + k)
            keep = (step >= 0) & (step < n_steps)
            idx, step = idx[keep], step[keep]
            out[f"counts{k}"] = np.bincount(idx, minlength=n_batch * n_out).reshape(
                n_batch, n_out)
            if k == n_layers - 1:
                trace = np.zeros((n_batch, n_steps, n_out))
                trace[idx // n_out, step, idx % n_out] = 1.0
                out["readout"] = trace
        else:
            ev = monitors["voltage"].get("events")
            idx = np.asarray(ev["senders"], dtype=np.int64) - first
            step = np.rint(np.asarray(ev["times"]) / dt).astype(np.int64) - (2 + k)
            keep = (step >= 0) & (step < n_steps)
            trace = np.zeros((n_batch, n_steps, n_out))
            trace[idx[keep] // n_out, step[keep], idx[keep] % n_out] = np.asarray(
                ev["V_m"])[keep]
            out["readout"] = trace
    return out


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        raise SystemExit("usage: python nest_model.py weights.npz inputs.npz results.npz")
    weights = dict(np.load(argv[0]))
    inputs = np.load(argv[1])
    result = simulate(weights, inputs["ptr"], inputs["steps"], inputs["units"],
                      int(inputs["n_steps"]))
    np.savez(argv[2], **result)


if __name__ == "__main__":
    main()
