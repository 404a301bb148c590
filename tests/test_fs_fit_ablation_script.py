"""scripts/fs_fit_ablation.py: the three few-spike codes it compares, on a tiny ANN."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import load_script
from spikeforge.convert.api import convert_file, train_ann_file


@pytest.fixture(scope="module")
def script():
    yield load_script("fs_fit_ablation")
    sys.modules.pop("fs_fit_ablation", None)


def test_ablation_variants_and_agreement_with_convert(tmp_path, script, capsys):
    model = tmp_path / "ann.pt"
    train_ann_file("digits", model, hidden=(32,), epochs=3)
    assert script.main([str(model), "--data", "digits"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["populations"] == 2
    for name in ("k_only", "gain_only", "both"):
        steps, code = result[name]["steps_within_1pt"], result[name]["code"]
        assert steps is not None and sum(map(int, code.split("/"))) == steps
        assert result[name]["accuracy"] >= result["ann_test_accuracy"] - 0.01 - 1e-9
    k_gain, k_gain2 = result["gain_only"]["code"].split("/")
    assert k_gain == k_gain2  # one K for every population
    # "both" is the shipped fs-fit code: same steps as `convert --method fs-fit` from the
    # same start (K = 4 per population for 8 steps over 2 populations)
    assert script.main([str(model), "--data", "digits", "--k-max", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shipped = convert_file(model, "digits", method="fs-fit", steps=8, out=tmp_path / "fit",
                           threads=1)
    assert shipped["steps_within_1pt"] == result["both"]["steps_within_1pt"]


def test_missing_model_is_one_line_error(tmp_path, script, capsys):
    assert script.main([str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
