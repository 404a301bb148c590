"""configs/nmnist_conv.yaml learns the synthetic moving-pattern N-MNIST task (>= 0.9 test
accuracy) with EventProp and with BPTT. Slow: minutes per method on a 2-core machine
(README, Event-camera data, for the measured numbers and times)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spikeforge.data import nmnist

RECIPE = Path(__file__).parents[1] / "configs" / "nmnist_conv.yaml"


@pytest.mark.slow
@pytest.mark.parametrize(("method", "epochs", "dt"), [
    ("eventprop", 12, 2.0),
    # BPTT costs ~15-25x EventProp per batch on this conv net (dense [B*T, 2312] x
    # [2312, 9248] products through time), so it runs at 4 ms steps (measured 0.905
    # after 10 epochs, 0.895 after 8: just above the bar)
    ("bptt", 10, 4.0),
])
def test_nmnist_conv_recipe_reaches_90_percent(tmp_path, method, epochs, dt):
    nmnist.write_moving_patterns(tmp_path / "data", 60, 20, seed=0)
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.cli", "train", "--config", str(RECIPE),
         "--data-dir", str(tmp_path / "data"), "--epochs", str(epochs), "--out",
         str(tmp_path / "run"), "--set", f"train.method={method}", "--set", f"data.dt={dt}",
         "--json"],
        capture_output=True, text=True, timeout=6 * 3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["test_accuracy"] >= 0.9, result
