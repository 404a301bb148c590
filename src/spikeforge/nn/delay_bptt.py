"""Surrogate-gradient BPTT for delayed LIF / LI layers (dense torch ops, autograd in time).

Same dynamics as :mod:`spikeforge.engine.delay_loop`: per step the neuron model's
integrate, threshold (Heaviside forward, fast-sigmoid surrogate derivative
1 / (slope |V - theta| + 1)^2 backward, reset detached), then the currents arriving at
that step. A delay
d = (q + f) dt delivers (1 - f) w x[n] at n + q and f w x[n] at n + q + 1, written as
x[n - q] + f (x[n - q - 1] - x[n - q]) so that autograd gives the delay gradient
w (x[n-q-1] - x[n-q]) / dt (for rounded delays f is 0 in value with the same gradient:
a straight-through estimate). Synapses are grouped by their integer delay q: one matmul
pair per distinct q for feed-forward input; recurrent input is scheduled step by step.
Memory is O(batch x time x neurons), as for any BPTT.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeforge.events import Events
from spikeforge.neurons import model_of
from spikeforge.nn.bptt import surrogate_spike
from spikeforge.nn.functional import numpy_dtype
from spikeforge.nn.records import SpikeRecord, attach, timing_from_dense


def _split(delay: torch.Tensor, dt: float, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer steps q (no gradient) and the fraction f (gradient 1/dt w.r.t. the delay)."""
    steps = delay / dt
    if mode == "round":
        q = torch.round(steps.detach())
        return q.long(), steps - steps.detach()
    q = torch.floor(steps.detach())
    return q.long(), steps - q


def _shift(x: torch.Tensor, q: int) -> torch.Tensor:
    """x [B, T, C] delayed by q steps (zeros enter at the start)."""
    if q == 0:
        return x
    n_steps = x.shape[1]
    if q >= n_steps:
        return torch.zeros_like(x)
    return torch.cat([x.new_zeros(x.shape[0], q, x.shape[2]), x[:, : n_steps - q]], dim=1)


GATHER_LIMIT = 20_000_000
"""Largest batch x time x out x in for which feed-forward delays are applied by one gather
(fast); larger layers loop over the distinct integer delays instead (less memory)."""


def delayed_currents(x: torch.Tensor, w: torch.Tensor, delay: torch.Tensor, dt: float,
                     mode: str) -> torch.Tensor:  # fmt: skip
    """Arriving currents [B, T, out] from x [B, T, in] via weights/delays [out, in] (ms)."""
    q, f = _split(delay, dt, mode)
    n_batch, n_steps, n_in = x.shape
    if n_batch * n_steps * w.numel() <= GATHER_LIMIT:
        pad = int(q.max()) + 1
        x_pad = torch.cat([x.new_zeros(n_batch, pad, n_in), x], dim=1)
        index = torch.arange(n_steps, device=x.device)[:, None, None] - q[None] + pad
        unit = torch.arange(n_in, device=x.device)[None, None, :]
        now, before = x_pad[:, index, unit], x_pad[:, index - 1, unit]
        return (torch.einsum("btoi,oi->bto", now, w)
                + torch.einsum("btoi,oi->bto", before - now, w * f))  # fmt: skip
    out = x.new_zeros(n_batch, n_steps, w.shape[0])
    for value in torch.unique(q).tolist():
        mask = (q == value).to(w.dtype)
        now, before = _shift(x, value), _shift(x, value + 1)
        out = out + now @ (w * mask).T + (before - now) @ (w * f * mask).T
    return out


def run(x: torch.Tensor, w_in: torch.Tensor, d_in: torch.Tensor, w_rec: torch.Tensor | None,
        d_rec: torch.Tensor | None, params, table: torch.Tensor, dt: float, mode: str,
        slope: float) -> torch.Tensor:  # fmt: skip
    """Simulate; returns spikes (spiking params) or V after integration (readout), both
    [B, T, out]. The neuron maths are the model's (:mod:`spikeforge.neurons`) with its
    factor table ``table`` [K, out]; the spike has the fast-sigmoid surrogate derivative
    with ``slope``."""
    model = model_of(params)
    n_batch, n_steps, _ = x.shape
    arrive = delayed_currents(x, w_in, d_in, dt, mode)
    pending: dict[int, torch.Tensor] = {}
    groups = []
    if w_rec is not None:
        q_rec, f_rec = _split(d_rec, dt, mode)
        for value in torch.unique(q_rec).tolist():
            mask = (q_rec == value).to(w_rec.dtype)
            groups.append((value, (w_rec * (1.0 - f_rec) * mask).T, (w_rec * f_rec * mask).T))
    v = x.new_zeros(n_batch, w_in.shape[0])
    i_syn, aux = torch.zeros_like(v), torch.zeros_like(v)
    outputs = []
    for n in range(n_steps):
        v, i_syn, aux = model.integrate(v, i_syn, aux, table)
        if params.spiking:
            s = surrogate_spike(model.margin(v, i_syn, aux, table), "fast_sigmoid", slope)
            v, i_syn, aux = model.reset(v, i_syn, aux, s, s.detach(), table)
            outputs.append(s)
            for value, now, later in groups:
                for m, mat in ((n + value, now), (n + value + 1, later)):
                    if m < n_steps:
                        add = s @ mat
                        pending[m] = pending[m] + add if m in pending else add
        else:
            outputs.append(v)
        i_syn = i_syn + arrive[:, n]
        if n in pending:
            i_syn = i_syn + pending.pop(n)
    return torch.stack(outputs, dim=1)


class _EventsToDense(torch.autograd.Function):
    """Dense view of upstream events; the dense gradient becomes spike timing in the record."""

    @staticmethod
    def forward(ctx, token, record: SpikeRecord, dtype_probe):
        ctx.record, ctx.shape = record, token.shape
        dense = record.events.to_dense(numpy_dtype(dtype_probe.dtype))
        return torch.from_numpy(dense).to(dtype_probe.device)

    @staticmethod
    def backward(ctx, grad):
        record = ctx.record
        if record.from_layer:
            record.dldt += timing_from_dense(grad, record.events, record.dt)
        return torch.zeros((), dtype=grad.dtype).expand(ctx.shape), None, None  # token: CPU


def dense_input(x: torch.Tensor, upstream: SpikeRecord | None, dtype: torch.dtype,
                device: torch.device | str = "cpu"):
    """The layer input as a dense [B, T, in] tensor on ``device`` (gradients reach an
    upstream record)."""
    if upstream is None:
        return x
    token = x if x.requires_grad else x.detach()
    return _EventsToDense.apply(token, upstream, torch.empty(0, dtype=dtype, device=device))


class _FoldTiming(torch.autograd.Function):
    """Identity on dense BPTT spikes; in backward, timing sensitivities that record-aware
    consumers (e.g. the spike-count regulariser) put in the record are turned into a dense
    gradient: dL/dt_k = g becomes -g dt/2 at the spike's step and +g dt/2 at the next
    (the least-squares inverse of the G[n+1] - G[n] timing rule)."""

    @staticmethod
    def forward(ctx, spikes, record: SpikeRecord):
        ctx.record = record
        return spikes.view_as(spikes)

    @staticmethod
    def backward(ctx, grad):
        record = ctx.record
        if not np.any(record.dldt):
            return grad, None
        ev = record.events
        extra = np.zeros((ev.n_batch, ev.n_steps + 1, ev.n_units))
        b = ev.sample_index()
        np.add.at(extra, (b, ev.step, ev.unit), -0.5 * record.dldt * record.dt)
        np.add.at(extra, (b, ev.step + 1, ev.unit), 0.5 * record.dldt * record.dt)
        record.dldt[:] = 0.0
        return grad + torch.from_numpy(extra[:, :-1]).to(grad), None


def with_record(spikes: torch.Tensor, dt: float) -> tuple[torch.Tensor, SpikeRecord]:
    """Attach a :class:`SpikeRecord` to dense BPTT spikes (for rasters, rates, regularisers)."""
    events = Events.from_dense(spikes.detach().cpu().numpy())
    record = SpikeRecord(events=events, dt=dt)
    out = _FoldTiming.apply(spikes, record)
    return attach(out, record), record
