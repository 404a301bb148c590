"""The shared benchmark task: sizes, seeds, inputs, labels and initial weights.

NumPy only, so every implementation's interpreter (project venv, peers venv, mlGeNN
venv) imports the same definition. All times are in ms.

Task (SHD shape): 700 Bernoulli input channels (p = 0.015 per 1 ms step) ->
256 recurrent current-based LIF (tau_mem 20 ms, tau_syn 5 ms, threshold 1) ->
20 leaky-integrator readout; loss = cross-entropy on the time-mean of the readout
voltage; Adam, lr 1e-3.

Weights are drawn once here in spikeforge's convention (exact per-step integration,
see ``spikeforge.model.neurons``)::

    V[n+1] = alpha_mem V[n] + syn_gain I[n]
    I[n+1] = alpha_syn I[n] + (input spikes at n) @ W_in.T + (own spikes at n) @ W_rec.T

Every implementation starts from these same weights, rescaled by
:func:`weight_scale` to its own integration scheme so that the initial hidden
firing rates match (each peer adds input current to V with its own per-step gain).
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

N_INPUTS = 700
N_HIDDEN = 256
N_CLASSES = 20
INPUT_P = 0.015  # spike probability per input channel per step
TAU_MEM = 20.0  # ms
TAU_SYN = 5.0  # ms
THRESHOLD = 1.0
DT = 1.0  # ms
LR = 1e-3
SEED = 1234
WARMUP_STEPS = 2

# Initial weights, spikeforge convention: N(mean, std / sqrt(fan_in)).  Chosen so the
# hidden layer fires at ~25-35 Hz on this input at the start of training.
W_IN_MEAN = 0.022
W_IN_STD = 3.0
W_REC_STD = 0.5
W_OUT_STD = 1.0


@dataclass(frozen=True)
class Task:
    """One benchmark configuration (sizes and schedule)."""

    n_steps: int = 100
    batch: int = 32
    n_hidden: int = N_HIDDEN
    n_inputs: int = N_INPUTS
    n_classes: int = N_CLASSES
    lr: float = LR
    timed_steps: int = 5
    warmup_steps: int = WARMUP_STEPS
    seed: int = SEED

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.timed_steps


def decays(dt: float = DT, tau_mem: float = TAU_MEM, tau_syn: float = TAU_SYN):
    """(alpha_mem, alpha_syn, syn_gain) of the exact per-step integration (dimensionless)."""
    alpha_mem = math.exp(-dt / tau_mem)
    alpha_syn = math.exp(-dt / tau_syn)
    syn_gain = tau_syn / (tau_syn - tau_mem) * (alpha_syn - alpha_mem)
    return alpha_mem, alpha_syn, syn_gain


def weight_scale(peer_gain: float, peer_syn_decay: float | None = None) -> float:
    """Factor to multiply the shared weights by for an implementation whose membrane
    receives ``peer_gain * I`` per step and whose current decays by ``peer_syn_decay``
    per step (instead of spikeforge's ``syn_gain`` and ``alpha_syn``): it equalises the
    total charge one input spike delivers to the membrane, gain / (1 - decay)."""
    _, alpha_syn, syn_gain = decays()
    peer_syn_decay = alpha_syn if peer_syn_decay is None else peer_syn_decay
    return (syn_gain / (1.0 - alpha_syn)) / (peer_gain / (1.0 - peer_syn_decay))


def make_inputs(task: Task, step: int = 0) -> np.ndarray:
    """Input spikes float32 [batch, n_steps, n_inputs] (0/1) for training step ``step``.

    Fixed seed: every implementation sees identical batches in the same order.
    """
    rng = np.random.default_rng([task.seed, 1, step, task.n_steps, task.batch])
    shape = (task.batch, task.n_steps, task.n_inputs)
    return (rng.random(shape, dtype=np.float32) < INPUT_P).astype(np.float32)


def make_labels(task: Task, step: int = 0) -> np.ndarray:
    """Random class labels int64 [batch] for training step ``step``."""
    rng = np.random.default_rng([task.seed, 2, step, task.batch])
    return rng.integers(0, task.n_classes, size=task.batch, dtype=np.int64)


def make_weights(task: Task) -> dict[str, np.ndarray]:
    """Initial weights float32 in torch layout [out, in]: w_in, w_rec, w_out."""
    rng = np.random.default_rng([task.seed, 3, task.n_hidden])
    n_in, n_h, n_out = task.n_inputs, task.n_hidden, task.n_classes
    w_in = rng.normal(W_IN_MEAN, W_IN_STD / math.sqrt(n_in), size=(n_h, n_in))
    w_rec = rng.normal(0.0, W_REC_STD / math.sqrt(n_h), size=(n_h, n_h))
    w_out = rng.normal(0.0, W_OUT_STD / math.sqrt(n_h), size=(n_out, n_h))
    return {
        "w_in": w_in.astype(np.float32),
        "w_rec": w_rec.astype(np.float32),
        "w_out": w_out.astype(np.float32),
    }


def make_batches(task: Task) -> list[tuple[np.ndarray, np.ndarray]]:
    """All batches of the run as (flat indices int64 of the input spikes in the
    [batch, n_steps, n_inputs] array, in C order, labels), generated one at a time so no
    dense batch stays resident (a dense T = 1000 batch is 90 MB)."""
    batches = []
    for s in range(task.total_steps):
        batches.append((np.flatnonzero(make_inputs(task, s)), make_labels(task, s)))
    return batches


def unravel(flat: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample, step, channel) int64 arrays of flat [batch, n_steps, n_inputs] indices."""
    sample, rest = np.divmod(flat, task.n_steps * task.n_inputs)
    step, channel = np.divmod(rest, task.n_inputs)
    return sample, step, channel


# --- measurement helpers (shared by all implementation scripts) -----------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    kb = _status_kb("VmRSS")
    if kb is None:
        import psutil  # fallback off Linux

        return psutil.Process().memory_info().rss / 1e6
    return kb * 1024 / 1e6


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB since start or the last :func:`reset_peak_rss`."""
    kb = _status_kb("VmHWM")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
    return kb * 1024 / 1e6


class Meter:
    """Times training steps and tracks memory around them.

    Call :meth:`start` right before the first (warm-up) training step, then wrap each
    step in :meth:`step`. Training memory = peak RSS from :meth:`start` on minus the RSS
    at :meth:`start` (imports, data and model construction excluded).
    """

    def __init__(self, task: Task) -> None:
        self.task = task
        self.times: list[float] = []
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.cpu_times: list[float] = []
        self.finite = True
        self.rss_start = 0.0
        self.peak_reset = False
        self.peak_before_start = 0.0

    def start(self) -> None:
        self.peak_before_start = peak_rss_mb()
        self.rss_start = rss_mb()
        self.peak_reset = reset_peak_rss()

    def record(
        self, seconds: float, rate_hz: float, loss: float | None, grads_finite: bool,
        cpu_seconds: float = float("nan"),
    ) -> None:  # fmt: skip
        """One step: wall seconds, hidden rate (Hz), loss (None: not reported by the
        implementation), gradient (or updated weight) finiteness, CPU seconds."""
        self.times.append(seconds)
        self.cpu_times.append(cpu_seconds)
        self.rates.append(rate_hz)
        self.losses.append(float("nan") if loss is None else loss)
        self.finite = self.finite and grads_finite and (loss is None or math.isfinite(loss))

    def result(self, impl: str, mode: str, extra: dict | None = None) -> dict:
        """The JSON record of this run (one line of the results file)."""
        timed = self.times[self.task.warmup_steps :]
        timed_rates = self.rates[self.task.warmup_steps :]
        peak = peak_rss_mb()
        absolute_peak = peak if self.peak_reset else max(peak, self.peak_before_start)
        median = float(np.median(timed)) if timed else float("nan")
        units = self.task.batch
        record = {
            "impl": impl,
            "mode": mode,
            **asdict(self.task),
            "s_per_step": median,
            "s_per_step_min": float(np.min(timed)) if timed else float("nan"),
            "s_per_step_all": [round(t, 6) for t in self.times],
            "cpu_s_per_step": float(np.median(self.cpu_times[self.task.warmup_steps :]))
            if timed
            else float("nan"),
            "samples_per_s": units / median if median > 0 else float("nan"),
            "train_mem_mb": max(peak - self.rss_start, 0.0),
            "peak_rss_mb": absolute_peak,
            "rss_before_mb": self.rss_start,
            "hidden_rate_hz": float(np.mean(timed_rates)) if timed_rates else float("nan"),
            "hidden_rate_first_hz": self.rates[0] if self.rates else float("nan"),
            "hidden_rate_last_hz": self.rates[-1] if self.rates else float("nan"),
            "loss_first": self.losses[0] if self.losses else float("nan"),
            "loss_last": self.losses[-1] if self.losses else float("nan"),
            "finite": self.finite,
            "peak_exact": self.peak_reset,
        }
        if extra:
            record.update(extra)
        return record


def rate_hz(n_spikes: float, task: Task, n_samples: int | None = None) -> float:
    """Mean hidden firing rate in Hz from a spike count over one batch."""
    n = task.batch if n_samples is None else n_samples
    return float(n_spikes) / (n * task.n_steps * task.n_hidden) / (DT * 1e-3)


def _plain(value):
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit(record: dict) -> None:
    """Print the record as the last stdout line (the orchestrator parses it)."""
    sys.stdout.write(json.dumps(_plain(record)) + "\n")
    sys.stdout.flush()


def add_common_args(parser) -> None:
    """Command-line options every implementation script accepts."""
    parser.add_argument("--T", type=int, default=100, help="time steps (1 ms each)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=N_HIDDEN)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=WARMUP_STEPS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--mode", choices=("train", "infer"), default="train",
        help="train: forward+backward+Adam step; infer: forward only, no grad",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON line (default)")


def task_from_args(args) -> Task:
    return Task(
        n_steps=args.T, batch=args.batch, n_hidden=args.hidden, lr=args.lr,
        timed_steps=args.steps, warmup_steps=args.warmup,
    )  # fmt: skip


def set_threads(n: int) -> None:
    """Pin thread pools (torch, numba, OpenMP, BLAS) to ``n`` threads.

    In a fresh benchmark process this runs before the heavy imports and sets the
    environment. When numba is already loaded (an implementation called in-process, as
    the tests do), its pool may be running: changing ``NUMBA_NUM_THREADS`` then makes
    the next JIT compilation fail, so the pool is narrowed with
    ``numba.set_num_threads`` instead.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    else:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def now() -> float:
    return time.perf_counter()
