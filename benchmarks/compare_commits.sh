#!/usr/bin/env bash
# Time the spikeforge training step of two commits side by side (interleaved runs, same
# machine, same venv): one JSON line per run with the commit added.
#   benchmarks/compare_commits.sh OLD_REV NEW_REV [T] [REPEATS]
# Each commit is checked out into a temporary git worktree and imported through
# PYTHONPATH, so the project's venv (torch, numba) is shared; its benchmark script is the
# one of that commit (the task definition in benchmarks/task.py is the same).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: compare_commits.sh OLD_REV NEW_REV [T] [REPEATS]}
new=${2:?usage: compare_commits.sh OLD_REV NEW_REV [T] [REPEATS]}
steps=${3:-1000}
repeats=${4:-3}
python=${PYTHON:-$(pwd)/.venv/bin/python}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/old" 2>/dev/null; git worktree remove --force "$work/new" 2>/dev/null; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/old" "$old"
git worktree add -q --detach "$work/new" "$new"
for _ in $(seq "$repeats"); do
  for side in old new; do
    rev=$([ "$side" = old ] && echo "$old" || echo "$new")
    PYTHONPATH="$work/$side/src" "$python" "$work/$side/benchmarks/impl_spikeforge.py" \
      --backend event --T "$steps" --batch 32 --threads 2 2>/dev/null | grep '^{' | tail -1 |
      "$python" -c "import json, sys; r = json.loads(sys.stdin.read()); r['commit'] = '$rev'; print(json.dumps(r))"
  done
done
