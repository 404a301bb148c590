"""NaN and inf in dense images given to the encoders and to the ANN route's image splits:
a SpikeforgeError naming the sample (Python API), one line and exit code 2 (CLI)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from spikeforge.convert.images import ImageSplits
from spikeforge.data.encoding import encode_images, latency_encode, poisson_encode
from spikeforge.errors import SpikeforgeError


def _images(bad_value: float, sample: int = 3, pixel: int = 10) -> np.ndarray:
    x = np.random.default_rng(0).random((6, 4, 4))
    x.reshape(6, -1)[sample, pixel] = bad_value
    return x


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["latency", "log_latency", "poisson"])
def test_encoders_name_the_first_non_finite_sample(bad, method):
    x = _images(bad)
    x.reshape(6, -1)[5, 0] = bad  # a second bad sample: the first one is named
    with pytest.raises(SpikeforgeError) as info:
        encode_images(x, method, dt=1.0, t_max_ms=20.0, n_steps=20, max_rate_hz=100.0)
    text = str(info.value)
    assert f"sample 3 holds {bad} at pixel 10" in text
    assert "2 non-finite values in 2 of 6 samples" in text
    assert "np.nan_to_num" in text and "\n" not in text


def test_out_of_range_names_the_sample_and_its_span():
    x = _images(0.5)
    x[2, 0, 0] = 255.0
    with pytest.raises(SpikeforgeError, match=r"sample 2 spans \[[0-9.e-]+, 255\]; rescale"):
        latency_encode(x, t_max_ms=20.0, dt=1.0)
    with pytest.raises(SpikeforgeError, match="poisson_encode expects values in"):
        poisson_encode(x, 20, 1.0, 100.0, seed=0)


def test_finite_images_encode_as_before():
    x = _images(0.25)
    steps, units = latency_encode(x, t_max_ms=20.0, dt=1.0)[3]
    # pixel 10 of sample 3 is 0.25: linear latency 0.75 * 20 ms = 15 steps
    assert steps[list(units).index(10)] == 15
    assert len(encode_images(x, "poisson", 1.0, 20.0, 20, 100.0)) == 6


def test_image_splits_refuse_non_finite_images():
    good = torch.rand(4, 1, 2, 2)
    bad = good.clone()
    bad[1, 0, 1, 0] = float("nan")
    y = torch.zeros(4, dtype=torch.long)
    ImageSplits("mine", good, y, good, y, good, y, 10)
    with pytest.raises(SpikeforgeError, match=r"mine val_x: sample 1 holds nan at pixel 2"):
        ImageSplits("mine", good, y, bad, y, good, y, 10)


def test_cli_reports_nan_images_in_one_line_with_exit_2(tmp_path, monkeypatch, capsys):
    """``train --data digits`` on images where sample 7 has a NaN pixel (sklearn's loader
    patched): exit 2, one line naming the sample, no run folder."""
    import sklearn.datasets

    from spikeforge import cli
    from spikeforge.data import digits

    real = sklearn.datasets.load_digits

    def with_nan():
        bunch = real()
        bunch.images = bunch.images.copy()
        bunch.images[7, 2, 3] = np.nan
        return bunch

    monkeypatch.setattr(digits, "load_digits", with_nan)
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["spikeforge", "train", "--data", "digits", "--out",
                                      str(out), "--set", "train.threads=1"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: latency_encode: sample 7 holds nan at pixel 19 ")
    assert len(lines) == 1, lines
    assert not out.exists()
