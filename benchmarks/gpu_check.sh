#!/usr/bin/env bash
# GPU check: on a machine with one NVIDIA GPU, in under 8 minutes,
#   1. every CUDA/GPU test (pytest -k "cuda or gpu": simulator kernel tests and the real-GPU
#      tests that skip elsewhere),
#   2. the training-step benchmark at T = 100 and T = 1000 (SHD shape: 700 -> 256 recurrent
#      LIF -> 20 LI, batch 32, benchmarks/task.py): spikeforge EventProp (fused kernels),
#      spikeforge EventProp on the torch dense loop, spikeforge BPTT, plain PyTorch BPTT and,
#      when importable, snnTorch, Norse and SpikingJelly, all on the same GPU, with the
#      peak GPU memory of each (torch.cuda.max_memory_allocated),
#   3. the digits main job (`spikeforge train --data digits --device cuda`),
# and writes summary.md + summary.json (plus logs) into one folder.
#
# usage: benchmarks/gpu_check.sh [OUT_DIR]
#   OUT_DIR default: $OUT if set, else benchmarks/results; a gpu-check-<date> folder is
#   made inside. PYTHON overrides the interpreter (default .venv/bin/python).
# Without a CUDA GPU visible to torch it stops at once with one error line and exit 2.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
BASE="${1:-${OUT:-$ROOT/benchmarks/results}}"
START=$SECONDS
BUDGET=${GPU_CHECK_BUDGET_S:-460}   # whole run, seconds (under 8 minutes with the summary)

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "error: benchmarks/gpu_check.sh needs an NVIDIA GPU visible to torch" \
         "(torch.cuda.is_available() is False for $PY); run it on a GPU machine" >&2
    exit 2
fi

DIR="$BASE/gpu-check-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$DIR"
echo "gpu_check: writing to $DIR"
left() { echo $(( BUDGET - (SECONDS - START) )); }
cap() { local want=$1 rest; rest=$(left); [ "$rest" -lt "$want" ] && want=$rest; echo $(( want > 5 ? want : 5 )); }

# --- 0. the machine ------------------------------------------------------------------------
"$PY" - > "$DIR/machine.json" <<'EOF'
import json, platform, torch, numba
info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "cuda": torch.version.cuda, "hip": torch.version.hip, "numba": numba.__version__,
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        "python": platform.python_version()}
try:
    from numba import cuda
    info["numba_cuda"] = bool(cuda.is_available())
except Exception as exc:  # noqa: BLE001
    info["numba_cuda"] = f"unavailable: {exc}"
print(json.dumps(info))
EOF
cat "$DIR/machine.json"

# --- 1. tests ------------------------------------------------------------------------------
echo "gpu_check: CUDA/GPU tests"
timeout "$(cap 170)" "$PY" -m pytest -q -p no:cacheprovider -rs -k "cuda or gpu" tests \
    > "$DIR/tests.log" 2>&1
echo $? > "$DIR/tests.rc"
tail -3 "$DIR/tests.log"

# --- 2. training-step benchmark ------------------------------------------------------------
cat > "$DIR/gpu_bench.py" <<'EOF'
"""One training step (zero_grad, forward, cross-entropy on the time-mean readout,
backward, Adam) of one implementation on the GPU; prints one JSON line."""
import argparse, json, sys, time

p = argparse.ArgumentParser()
p.add_argument("--impl", required=True)
p.add_argument("--T", type=int, default=100)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--device", default="cuda")
p.add_argument("--benchmarks", required=True)
args = p.parse_args()
sys.path.insert(0, args.benchmarks)
import numpy as np
import torch
import task as tk

task = tk.Task(n_steps=args.T, batch=args.batch, timed_steps=args.steps,
               warmup_steps=args.warmup)
dev = torch.device(args.device)
w = tk.make_weights(task)
alpha_mem, alpha_syn, syn_gain = tk.decays()
record = {"impl": args.impl, "T": args.T, "batch": args.batch, "device": str(dev)}


def spikeforge_net(method, backend):
    import spikeforge.nn as snn
    common = dict(tau_mem=tk.TAU_MEM, tau_syn=tk.TAU_SYN, dt=tk.DT, backend=backend)
    hidden = snn.LIF(task.n_inputs, task.n_hidden, recurrent=True, threshold=tk.THRESHOLD,
                     method=method, **common)
    readout = snn.LI(task.n_hidden, task.n_classes, method=method, **common)
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(w["w_in"]))
        hidden.recurrent_weight.copy_(torch.from_numpy(w["w_rec"]))
        readout.weight.copy_(torch.from_numpy(w["w_out"]))
    model = torch.nn.ModuleList([hidden, readout]).to(dev)

    def forward(x):  # x [B, T, in]
        spikes = hidden(x)
        return readout(spikes).mean(dim=1), spikes.detach().sum()
    return model, forward, "btc"


def torch_net():
    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return (v >= 0).to(v.dtype)

        @staticmethod
        def backward(ctx, grad):
            (v,) = ctx.saved_tensors
            return grad / (1.0 + 10.0 * v.abs()) ** 2

    model = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.from_numpy(v))
                                    for k, v in w.items()}).to(dev)

    def forward(x):  # x [T, B, in]
        h = x @ model["w_in"].t()
        v = h.new_zeros(x.shape[1], task.n_hidden)
        i = torch.zeros_like(v)
        vo = h.new_zeros(x.shape[1], task.n_classes)
        io, out, n = torch.zeros_like(vo), torch.zeros_like(vo), h.new_zeros(())
        for h_t in h.unbind(0):
            v = alpha_mem * v + syn_gain * i
            i = alpha_syn * i
            z = Spike.apply(v - tk.THRESHOLD)
            v = v * (1.0 - z.detach())
            i = i + h_t + z @ model["w_rec"].t()
            vo = alpha_mem * vo + syn_gain * io
            io = alpha_syn * io + z @ model["w_out"].t()
            out, n = out + vo, n + z.detach().sum()
        return out / x.shape[0], n
    return model, forward, "tbc"


def snntorch_net():
    import snntorch
    scale = tk.weight_scale(1.0)
    record["peer_version"] = snntorch.__version__

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = torch.nn.Linear(task.n_inputs, task.n_hidden, bias=False)
            self.lif = snntorch.RSynaptic(alpha=alpha_syn, beta=alpha_mem, all_to_all=True,
                                          linear_features=task.n_hidden,
                                          threshold=tk.THRESHOLD, reset_mechanism="zero")
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.readout = snntorch.Synaptic(alpha=alpha_syn, beta=alpha_mem,
                                             reset_mechanism="none")
            with torch.no_grad():
                self.fc_in.weight.copy_(torch.from_numpy(w["w_in"] * scale))
                self.lif.recurrent.weight.copy_(torch.from_numpy(w["w_rec"] * scale))
                self.lif.recurrent.bias.zero_()
                self.fc_out.weight.copy_(torch.from_numpy(w["w_out"] * scale))

        def forward(self, x):
            spk, syn, mem = self.lif.reset_mem()
            syn_o, mem_o = self.readout.reset_mem()
            out, n = 0.0, 0.0
            for h_t in self.fc_in(x).unbind(0):
                spk, syn, mem = self.lif(h_t, spk, syn, mem)
                _, syn_o, mem_o = self.readout(self.fc_out(spk), syn_o, mem_o)
                out, n = out + mem_o, n + spk.detach().sum()
            return out / x.shape[0], n
    model = Net().to(dev)
    return model, model, "tbc"


def norse_net():
    import norse
    from norse.torch import LICell, LIFParameters, LIFRecurrentCell
    record["peer_version"] = norse.__version__
    params = LIFParameters(tau_mem_inv=torch.tensor(1e3 / tk.TAU_MEM),
                           tau_syn_inv=torch.tensor(1e3 / tk.TAU_SYN),
                           v_th=torch.tensor(tk.THRESHOLD), v_reset=torch.tensor(0.0))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = LIFRecurrentCell(task.n_inputs, task.n_hidden, p=params, dt=1e-3)
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.readout = LICell(dt=1e-3)

        def forward(self, x):
            state, state_o, out, n = None, None, 0.0, 0.0
            for x_t in x.unbind(0):
                z, state = self.lif(x_t, state)
                v, state_o = self.readout(self.fc_out(z), state_o)
                out, n = out + v, n + z.detach().sum()
            return out / x.shape[0], n
    model = Net().to(dev)
    return model, model, "tbc"


def spikingjelly_net():
    import spikingjelly
    from spikingjelly.activation_based import neuron, surrogate
    record["peer_version"] = getattr(spikingjelly, "__version__", "?")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = torch.nn.Linear(task.n_inputs, task.n_hidden, bias=False)
            self.fc_rec = torch.nn.Linear(task.n_hidden, task.n_hidden, bias=False)
            self.fc_out = torch.nn.Linear(task.n_hidden, task.n_classes, bias=False)
            self.lif = neuron.LIFNode(tau=tk.TAU_MEM, v_threshold=tk.THRESHOLD, v_reset=0.0,
                                      surrogate_function=surrogate.ATan(), detach_reset=True)
            with torch.no_grad():
                self.fc_in.weight.copy_(torch.from_numpy(w["w_in"]))
                self.fc_rec.weight.copy_(torch.from_numpy(w["w_rec"]))
                self.fc_out.weight.copy_(torch.from_numpy(w["w_out"]))

        def forward(self, x):
            self.lif.reset()
            h = self.fc_in(x)
            z = h.new_zeros(x.shape[1], task.n_hidden)
            vo = h.new_zeros(x.shape[1], task.n_classes)
            out, n = 0.0, 0.0
            for h_t in h.unbind(0):
                z = self.lif(h_t + self.fc_rec(z))
                vo = alpha_mem * vo + self.fc_out(z)
                out, n = out + vo, n + z.detach().sum()
            return out / x.shape[0], n
    model = Net().to(dev)
    return model, model, "tbc"


BUILDERS = {
    "spikeforge-eventprop": lambda: spikeforge_net("eventprop", "auto"),
    "spikeforge-eventprop-torchloop": lambda: spikeforge_net("eventprop", "torch"),
    "spikeforge-bptt": lambda: spikeforge_net("bptt", "auto"),
    "torch-bptt": torch_net,
    "snntorch": snntorch_net,
    "norse": norse_net,
    "spikingjelly": spikingjelly_net,
}
try:
    model, forward, layout = BUILDERS[args.impl]()
except ImportError as exc:
    record.update(status="skipped", reason=f"not installed ({exc.name})")
    print(json.dumps(record))
    sys.exit(0)
if args.impl == "spikeforge-eventprop-torchloop":
    from spikeforge.nn import device_functional as dfn
    dfn._function_for = lambda call, x: dfn.DeviceEventPropFunction  # force the torch loop
if args.impl == "spikeforge-eventprop" and dev.type == "cuda":
    from spikeforge.engine import gpu_api
    record["fused_kernels"] = gpu_api.available()
opt = torch.optim.Adam(model.parameters(), lr=task.lr)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
times, losses, spikes = [], [], []
for step in range(task.total_steps):
    x = torch.from_numpy(tk.make_inputs(task, step)).to(dev)
    y = torch.from_numpy(tk.make_labels(task, step)).to(dev)
    if layout == "tbc":
        x = x.transpose(0, 1).contiguous()
    if step == task.warmup_steps and dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    sync()
    t0 = time.perf_counter()
    opt.zero_grad()
    mean_v, n_spikes = forward(x)
    loss = torch.nn.functional.cross_entropy(mean_v, y)
    loss.backward()
    opt.step()
    sync()
    if step >= task.warmup_steps:
        times.append(time.perf_counter() - t0)
    losses.append(loss.item())
    spikes.append(float(n_spikes))
record.update(
    status="ok", seconds_per_step=float(np.median(times)), loss_first=losses[0],
    loss_last=losses[-1], grads_finite=all(bool(torch.isfinite(p.grad).all())
                                           for p in model.parameters() if p.grad is not None),
    hidden_rate_hz=spikes[0] / (task.batch * task.n_hidden * task.n_steps * tk.DT / 1e3),
    peak_gpu_mb=(torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None),
)
print(json.dumps(record))
EOF

echo "gpu_check: training benchmark"
: > "$DIR/bench.jsonl"
IMPLS="spikeforge-eventprop spikeforge-eventprop-torchloop spikeforge-bptt torch-bptt snntorch norse spikingjelly"
for T in 100 1000; do
    for impl in $IMPLS; do
        if [ "$(left)" -lt 150 ]; then   # keep time for the digits job
            echo "{\"impl\": \"$impl\", \"T\": $T, \"status\": \"skipped\", \"reason\": \"time budget\"}" >> "$DIR/bench.jsonl"
            continue
        fi
        line=$(timeout "$(cap 60)" "$PY" "$DIR/gpu_bench.py" --impl "$impl" --T "$T" \
               --benchmarks "$ROOT/benchmarks" 2>>"$DIR/bench.log" | tail -1; exit "${PIPESTATUS[0]}")
        rc=$?
        if [ -z "$line" ] || [ "${line:0:1}" != "{" ]; then
            line="{\"impl\": \"$impl\", \"T\": $T, \"status\": \"failed\", \"reason\": \"exit $rc (see bench.log)\"}"
        fi
        echo "$line" | tee -a "$DIR/bench.jsonl"
    done
done

# --- 3. digits main job on the GPU ---------------------------------------------------------
echo "gpu_check: digits --device cuda"
timeout "$(cap 120)" "$PY" -m spikeforge.cli train --data digits --device cuda \
    --out "$DIR/digits" --json > "$DIR/digits.log" 2>&1
echo $? > "$DIR/digits.rc"
tail -1 "$DIR/digits.log"

# --- 4. summary ----------------------------------------------------------------------------
"$PY" - "$DIR" <<'EOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
machine = json.loads((d / "machine.json").read_text())
tests_rc = int((d / "tests.rc").read_text())
tests_tail = (d / "tests.log").read_text().strip().splitlines()[-1:] or [""]
bench = [json.loads(l) for l in (d / "bench.jsonl").read_text().splitlines() if l.strip()]
digits_rc = int((d / "digits.rc").read_text())
digits = None
for line in reversed((d / "digits.log").read_text().splitlines()):
    if line.startswith("{"):
        digits = json.loads(line)
        break
summary = {"machine": machine, "tests": {"exit": tests_rc, "summary": tests_tail[0]},
           "benchmark": bench, "digits": {"exit": digits_rc, "result": digits}}
rows = ["| T | implementation | status | s / step | peak GPU MiB | hidden Hz | loss first -> last |",
        "|---|---|---|---|---|---|---|"]
for r in bench:
    ok = r.get("status") == "ok"
    rows.append(
        f"| {r['T']} | {r['impl']}{' (fused)' if r.get('fused_kernels') else ''} | "
        f"{r.get('status')}{'' if ok else ': ' + str(r.get('reason', ''))} | "
        f"{r['seconds_per_step']:.4f} | {r['peak_gpu_mb']:.0f} | {r['hidden_rate_hz']:.1f} | "
        f"{r['loss_first']:.3f} -> {r['loss_last']:.3f} |" if ok else
        f"| {r['T']} | {r['impl']} | {r.get('status')}: {r.get('reason', '')} | | | | |")
for T in sorted({r["T"] for r in bench}):
    ok = {r["impl"]: r for r in bench if r["T"] == T and r.get("status") == "ok"}
    libraries = [ok[k] for k in ("snntorch", "norse", "spikingjelly") if k in ok]
    for group in (libraries, [ok[k] for k in ("torch-bptt",) if k in ok]):
        if "spikeforge-eventprop" not in ok or not group:
            continue
        best = min(group, key=lambda r: r["seconds_per_step"])
        me = ok["spikeforge-eventprop"]
        summary.setdefault("eventprop_vs_fastest_peer", {})[f"{T} {best['impl']}"] = {
            "T": T, "peer": best["impl"],
            "speedup": best["seconds_per_step"] / me["seconds_per_step"],
            "memory_ratio": me["peak_gpu_mb"] / best["peak_gpu_mb"]}
md = [f"# GPU check: {machine['gpu']}", "",
      f"torch {machine['torch']} (CUDA {machine['cuda']}), numba {machine['numba']}, "
      f"numba.cuda usable: {machine['numba_cuda']}", "",
      f"## Tests (pytest -k 'cuda or gpu'): exit {tests_rc}", "", f"    {tests_tail[0]}", "",
      "## Training step (SHD shape, batch 32, recurrent 256 LIF, Adam)", "", *rows, ""]
for c in summary.get("eventprop_vs_fastest_peer", {}).values():
    md.append(f"- T = {c['T']}: EventProp {c['speedup']:.2f}x faster than {c['peer']}, "
              f"{c['memory_ratio']:.3f}x its peak GPU memory")
md += ["", f"## digits, --device cuda: exit {digits_rc}", "",
       f"    {json.dumps(digits) if digits else 'no result (see digits.log)'}", ""]
(d / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
(d / "summary.md").write_text("\n".join(md))
print("\n".join(md))
EOF
echo "gpu_check: done in $(( SECONDS - START )) s; summary in $DIR/summary.md"
fail=0
[ "$(cat "$DIR/tests.rc")" = "0" ] || fail=1
[ "$(cat "$DIR/digits.rc")" = "0" ] || fail=1
exit $fail
