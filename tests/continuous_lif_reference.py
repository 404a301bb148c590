"""Event-driven, exact continuous-time simulator of a recurrent current-based LIF layer with
an LI readout, for tau_mem = 2 tau_syn (independent of the engine; test oracle).

Between events a neuron with membrane V0 and current I0 follows (s = time since the last
event, x = exp(-s / tau_mem), so exp(-s / tau_syn) = x**2)::

    I(s) = I0 x**2,      V(s) = (V0 + I0) x - I0 x**2

so the next threshold crossing solves a quadratic in x exactly: spike times are smooth
functions of the weights, and central finite differences of the loss need no averaging
over a time grid. An input or recurrent spike of weight w adds w to I at once (no
transmission delay); a spiking neuron resets V to 0.
"""

from __future__ import annotations

import numpy as np


def _next_crossing(v0: np.ndarray, i0: np.ndarray, threshold: float, tau_mem: float
                   ) -> np.ndarray:
    """Time (ms) until each neuron's V reaches ``threshold`` (inf if never)."""
    # threshold crossing: -I0 x^2 + (V0 + I0) x - theta = 0 with x in (0, 1]; the first
    # crossing in time is the largest root below 1
    a, b, c = -i0, v0 + i0, -threshold
    out = np.full(v0.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - 4 * a * c
        sq = np.sqrt(np.where(disc >= 0, disc, 0.0))
        roots = np.stack([(-b + sq) / (2 * a), (-b - sq) / (2 * a)])
        linear = np.abs(a) < 1e-300
        roots[:, linear] = (threshold / b[linear])[None]
    ok = (disc >= 0)[None] & (roots > 0) & (roots < 1.0 - 1e-15) & np.isfinite(roots)
    best = np.where(ok, roots, -np.inf).max(axis=0)
    hit = best > 0
    out[hit] = -tau_mem * np.log(best[hit])
    return out


def simulate(w_in: np.ndarray, w_rec: np.ndarray | None, input_times: list[np.ndarray],
             input_units: list[np.ndarray], tau_mem: float, threshold: float = 1.0
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hidden spike trains of one recurrent (or feed-forward, ``w_rec=None``) LIF layer.

    Args:
        w_in: [hidden, inputs] input weights.
        w_rec: [hidden, hidden] recurrent weights (row = target) or None.
        input_times / input_units: per sample, input spike times (ms) and input indices.
        tau_mem: membrane time constant in ms (tau_syn = tau_mem / 2).

    Returns:
        per sample (spike times in ms, neuron indices), in time order.
    """
    n_hidden = w_in.shape[0]
    result = []
    for times, units in zip(input_times, input_units, strict=True):
        order = np.argsort(times, kind="stable")
        times, units = times[order], units[order]
        v, i = np.zeros(n_hidden), np.zeros(n_hidden)
        t, k = 0.0, 0
        out_t, out_n = [], []
        while True:
            t_next_input = times[k] if k < len(times) else np.inf
            wait = _next_crossing(v, i, threshold, tau_mem)
            n = int(np.argmin(wait))
            t_spike = t + wait[n]
            if not np.isfinite(t_spike) and k >= len(times):
                break
            t_event = min(t_spike, t_next_input)
            x = np.exp(-(t_event - t) / tau_mem)
            v, i = (v + i) * x - i * x * x, i * x * x
            t = t_event
            if t_spike <= t_next_input:
                v[n] = 0.0
                out_t.append(t)
                out_n.append(n)
                if w_rec is not None:
                    i += w_rec[:, n]
            else:
                i += w_in[:, units[k]]
                k += 1
        result.append((np.array(out_t), np.array(out_n, dtype=int)))
    return result


def readout_traces(spikes: list[tuple[np.ndarray, np.ndarray]], w_out: np.ndarray,
                   sample_times: np.ndarray, tau_mem: float) -> np.ndarray:
    """LI readout membranes [batch, len(sample_times), outputs] driven by hidden spikes."""
    traces = np.zeros((len(spikes), len(sample_times), w_out.shape[0]))
    for b, (times, units) in enumerate(spikes):
        s = sample_times[:, None] - times[None, :]
        x = np.exp(-np.clip(s, 0.0, None) / tau_mem)
        kernel = np.where(s > 0, x - x * x, 0.0)  # [time, spikes]
        traces[b] = kernel @ w_out[:, units].T
    return traces
