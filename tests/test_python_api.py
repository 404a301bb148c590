"""The Python API as a new user meets it: the README's examples run verbatim, datasets
load with defaults, and layers read what the datasets yield."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spikeforge.data
import spikeforge.nn as snn
from spikeforge.errors import SpikeforgeError
from spikeforge.events import Events

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_examples_run_and_digits_learn() -> None:
    blocks = python_api_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    accuracy = re.search(r"test accuracy ([0-9.]+)", result.stdout)
    assert accuracy is not None, result.stdout
    assert float(accuracy.group(1)) >= 0.9


def test_load_has_defaults_and_yields_torch_batches() -> None:
    splits = spikeforge.data.load("digits")
    assert splits.train.dt == 1.0 and splits.train.n_inputs == 64
    assert spikeforge.data.load_dataset("digits").train.n_steps == splits.train.n_steps
    loader = torch.utils.data.DataLoader(splits.train, batch_size=8,
                                         collate_fn=splits.train.collate)
    events, labels = next(iter(loader))
    assert isinstance(events, Events) and events.n_batch == 8
    assert labels.dtype == torch.long and labels.shape == (8,)
    assert spikeforge.data.load("digits", dt=0.5).train.n_steps == 2 * splits.train.n_steps


def test_load_rejects_unknown_names() -> None:
    with pytest.raises(SpikeforgeError, match="unknown dataset 'nope'"):
        spikeforge.data.load("nope")


def test_events_to_tensor_matches_to_dense() -> None:
    x = (torch.rand(3, 7, 5) < 0.3).float() * 2.0
    events = Events.from_dense(x.numpy())
    dense = events.to_tensor()
    assert dense.dtype == torch.float32 and dense.shape == (3, 7, 5)
    assert torch.equal(dense, x)
    assert events.to_tensor(torch.float64).dtype == torch.float64
    np.testing.assert_array_equal(dense.numpy(), events.to_dense())


def test_sequential_reads_events_like_dense_input() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(snn.LIF(64, 32, weight_mean=0.8), snn.LI(32, 10, weight_std=20.0))
    splits = spikeforge.data.load("digits")
    events, _ = splits.train.collate([splits.train[i] for i in range(6)])
    from_events = net(events)
    from_dense = net(events.to_tensor())
    assert from_events.shape == (6, splits.train.n_steps, 10)
    torch.testing.assert_close(from_events, from_dense)
    from_events.sum().backward()
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_bptt_layer_reads_events() -> None:
    torch.manual_seed(0)
    layer = snn.LIF(5, 4, method="bptt", weight_mean=1.0)
    x = (torch.rand(2, 10, 5) < 0.5).float()
    torch.testing.assert_close(layer(Events.from_dense(x.numpy())), layer(x))


def test_wrong_shape_names_batch_first_and_transpose() -> None:
    layer = snn.LIF(5, 4)
    with pytest.raises(SpikeforgeError, match=r"\(batch first\).*transpose\(0, 1\)"):
        layer(torch.zeros(2, 10, 6))
    with pytest.raises(SpikeforgeError, match="expected a torch tensor"):
        layer(np.zeros((2, 10, 5)))
