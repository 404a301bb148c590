#!/usr/bin/env bash
# Create the peer-library venv for the benchmarks (never a spikeforge dependency).
#
# usage: benchmarks/setup_peers.sh [VENV_DIR]     (default: benchmarks/.venv-peers)
# Installs torch 2.13.0 (CPU; the same pinned wheel as the project venv), snnTorch 1.0.0,
# Norse 1.1.0, SpikingJelly 2.0.0, numpy and psutil.  torch is pinned on every pip call
# so that no peer can upgrade or replace it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv-peers}"
python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q)
"${pip[@]}" --upgrade pip
# The CPU wheel: from pip's find-links (/opt/wheels here) or PyTorch's CPU index.
"${pip[@]}" "torch==2.13.0" numpy psutil \
  || "${pip[@]}" "torch==2.13.0" numpy psutil --extra-index-url https://download.pytorch.org/whl/cpu
"${pip[@]}" "torch==2.13.0" "snntorch==1.0.0" "norse==1.1.0" "spikingjelly==2.0.0"
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was replaced: {torch.__version__}"
for name in ("torch", "snntorch", "norse", "spikingjelly"):
    print(name, md.version(name))
PY
