#!/usr/bin/env bash
# Build GeNN 5.4.0 + mlGeNN 2.4.0 from source into a separate venv for the
# mlGeNN EventProp benchmark (impl_mlgenn.py).  Their code is never copied into
# this repository: point this script at source trees exported elsewhere.
#
# usage: benchmarks/setup_mlgenn.sh GENN_SRC_DIR ML_GENN_SRC_DIR [VENV_DIR]
#   GENN_SRC_DIR     tree of genn-team/genn at tag 5.4.0
#   ML_GENN_SRC_DIR  tree of genn-team/ml_genn at tag ml_genn_2_4_0
#   VENV_DIR         default: benchmarks/.venv-mlgenn (git-ignored)
# Only PyGeNN's single-threaded CPU backend is built (CUDA_PATH unset); the
# build compiles C++ and takes ~5 minutes on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 2 ]; then
  echo "error: usage: $0 GENN_SRC_DIR ML_GENN_SRC_DIR [VENV_DIR]" >&2
  exit 2
fi
genn_src="$(cd "$1" && pwd)"
mlgenn_src="$(cd "$2" && pwd)"
venv="${3:-$here/.venv-mlgenn}"
for f in "$genn_src/setup.py" "$mlgenn_src/ml_genn/setup.py"; do
  [ -f "$f" ] || { echo "error: $f not found; pass the GeNN and ml_genn source trees" >&2; exit 2; }
done
command -v g++ >/dev/null || { echo "error: g++ not found; install it (apt-get install -y g++)" >&2; exit 2; }
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "setuptools>=61" pybind11 psutil pkgconfig numpy wheel
(cd "$genn_src" && env -u CUDA_PATH "$venv/bin/pip" install --no-build-isolation .)
# ml_genn in editable mode from the exported tree (never copied here).
"$venv/bin/pip" install -e "$mlgenn_src/ml_genn"
"$venv/bin/python" -c "import pygenn, ml_genn; print('pygenn', pygenn.__version__ if hasattr(pygenn, '__version__') else '?', 'ml_genn ok')"
