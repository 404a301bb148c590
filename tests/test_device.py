"""Device selection: train.device / --device, device-independent checkpoints, resume on
another backend (the torch path is the CUDA path's code, run here on the CPU)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from spikeforge.data import DatasetSplits
from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import (
    config_device,
    load_splits,
    network_spec,
    resolve_device,
    train_settings,
)
from spikeforge.nn import build_network
from spikeforge.train.checkpoint import load_checkpoint, save_checkpoint
from spikeforge.train.trainer import Trainer

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_device_defaults_to_auto_and_is_validated():
    assert load_config(None).train.device == "auto"
    assert load_config(None, {"train.device": "cuda:1"}).train.device == "cuda:1"
    with pytest.raises(SpikeforgeError, match="train.device"):
        load_config(None, {"train.device": "gpu"})


@no_cuda
def test_auto_is_the_cpu_without_cuda_and_cuda_is_refused():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(SpikeforgeError, match="CUDA is not available"):
            resolve_device(name)


def test_eprop_follows_the_device_like_the_gradient_methods():
    config = load_config(None, {"train.method": "eprop"})
    assert config_device(config) == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(SpikeforgeError, match="CUDA is not available"):
            config_device(load_config(None, {"train.method": "eprop", "train.device": "cuda"}))


@pytest.mark.parametrize("method", ["stdp"])
def test_cpu_only_methods_train_on_the_cpu(method):
    assert config_device(load_config(None, {"train.method": method})) == torch.device("cpu")
    with pytest.raises(SpikeforgeError, match="CPU only"):
        config_device(load_config(None, {"train.method": method, "train.device": "cuda"}))


@needs_cuda
def test_cuda_auto_and_index_resolve():
    assert resolve_device("auto").type == "cuda"
    with pytest.raises(SpikeforgeError, match="visible"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@no_cuda
def test_cli_device_cuda_without_cuda_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.cli", "train", "--data", "digits", "--epochs", "1",
         "--device", "cuda", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CUDA" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _small_run():
    config = load_config(None, {"model.hidden": [16], "train.batch_size": 16,
                                "train.epochs": 3, "train.lr_schedule": "constant"})
    full = load_splits(config)
    pick = np.arange(64)
    splits = DatasetSplits(full.name, full.train.subset(pick), full.val.subset(pick[:32]),
                           full.test.subset(pick[:32]))
    return config, splits


def _trainer(config, splits, backend: str) -> Trainer:
    torch.manual_seed(config.seed)
    network = build_network(network_spec(config, splits.train), "eventprop", "cpu",
                            backend=backend)
    return Trainer(train_settings(config), splits, network)


def test_checkpoint_of_a_torch_path_run_resumes_on_the_cpu_engine(tmp_path):
    config, splits = _small_run()
    gpu_like = _trainer(config, splits, "torch")
    gpu_like.train_epoch(0)
    save_checkpoint(tmp_path / "checkpoint.pt", gpu_like.state(1))
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(t.device.type == "cpu" for t in state["model"].values())

    resumed = _trainer(config, splits, "event")
    assert resumed.load_state(state) == 1
    for epoch in (1, 2):
        gpu_like.train_epoch(epoch)
        resumed.train_epoch(epoch)
    for (name, a), b in zip(gpu_like.network.state_dict().items(),
                            resumed.network.state_dict().values(), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=2e-4, atol=2e-5, err_msg=name)
    a, b = gpu_like.evaluate(splits.test), resumed.evaluate(splits.test)
    assert a.loss == pytest.approx(b.loss, rel=1e-4)
    np.testing.assert_array_equal(a.predictions, b.predictions)


@needs_cuda
def test_cuda_checkpoint_resumes_on_the_cpu(tmp_path):
    config, splits = _small_run()
    torch.manual_seed(config.seed)
    network = build_network(network_spec(config, splits.train), "eventprop", "cuda")
    on_gpu = Trainer(train_settings(config), splits, network)
    on_gpu.train_epoch(0)
    save_checkpoint(tmp_path / "checkpoint.pt", on_gpu.state(1))
    resumed = _trainer(config, splits, "event")
    resumed.load_state(load_checkpoint(tmp_path / "checkpoint.pt"))
    on_gpu.train_epoch(1)
    resumed.train_epoch(1)
    for a, b in zip(on_gpu.network.state_dict().values(),
                    resumed.network.state_dict().values(), strict=True):
        np.testing.assert_allclose(b.numpy(), a.cpu().numpy(), rtol=1e-3, atol=1e-4)
