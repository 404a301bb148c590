"""The command line starts without the heavy modules: ``--help`` and a config error
import neither torch nor numba nor the engine (what keeps them well under 1.5 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "numba", "spikeforge.nn", "spikeforge.engine")

PROBE = """
import sys
from spikeforge.cli import main
sys.argv = ["spikeforge", *{argv!r}]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = [name for name in {heavy!r} if name in sys.modules]
print("RESULT", code, ",".join(heavy) or "-", file=sys.stderr)
"""


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0),
    (["train", "-h"], 0),
    (["train", "--set", "train.epochs=-1"], 2),
    (["sweep", "--space", "space.yaml", "--set", "train.epochs=-1"], 2),
    (["cv", "--set", "train.epochs=-1"], 2),
])
def test_cli_start_up_skips_heavy_imports(argv: list[str], code: int) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                            capture_output=True, text=True, timeout=120)
    line = [row for row in result.stderr.splitlines() if row.startswith("RESULT")][-1]
    assert line == f"RESULT {code} -", result.stderr[-2000:]
    if code == 2:
        assert "error: invalid config value train.epochs" in result.stderr
