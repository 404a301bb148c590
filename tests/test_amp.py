"""train.amp: BPTT under torch.autocast (bf16 / fp16 matrix products, float32 state and
loss), tested on the CPU's autocast; refused for the float32 kernels of other methods."""

import json

import pytest
import torch

from export_helpers import cli
from spikeforge.data import load as load_data
from spikeforge.experiments.config import load_config
from spikeforge.experiments.loading import run_trainer


def _trainer(amp: str):
    config = load_config(None, {"train.method": "bptt", "train.amp": amp,
                                "train.epochs": 1, "train.threads": 1})
    splits = load_data("digits", dt=config.data.dt)
    torch.manual_seed(0)
    return run_trainer(config, splits)


def _first_batch_loss(trainer) -> float:
    events, labels = trainer.splits.train.collate(list(trainer.splits.train)[:32])
    with torch.no_grad():
        loss, _ = trainer._loss_and_predictions(events, labels)
    return float(loss)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_changes_the_products_but_not_the_state_dtype(amp):
    reference = _first_batch_loss(_trainer("none"))
    trainer = _trainer(amp)
    products = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: products.append(out.dtype))
    try:
        low = _first_batch_loss(trainer)
    finally:
        hook.remove()
    assert products and all(dtype == torch.float32 for dtype in products)  # layer outputs
    assert low != reference  # the matrix products did run in half precision
    assert low == pytest.approx(reference, rel=2e-2)
    assert (trainer.scaler is not None) == (amp == "fp16")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_bptt_with_amp_learns_digits_and_checkpoints_its_loss_scale(tmp_path, amp):
    out = tmp_path / "run"
    _, stdout, _ = cli("train", "--method", "bptt", "--set", f"train.amp={amp}", "--set",
                       "train.epochs=4", "--set", "train.threads=1", "--out", str(out),
                       "--json")
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["test_accuracy"] >= 0.8
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ("grad_scaler" in state) == (amp == "fp16")


def test_amp_with_eventprop_is_a_one_line_config_error(tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("train", "--set", "train.amp=bf16", "--out", str(out),
                               check=False)
    assert code == 2 and stdout == "" and not out.exists()
    assert stderr.count("\n") == 1 and "train.amp=bf16 needs train.method=bptt" in stderr


@pytest.mark.parametrize("method, expected", [("bptt", 16), ("eventprop", 256)])
def test_evaluation_batches_of_bptt_are_training_sized(monkeypatch, method, expected):
    """BPTT's dense forward holds batch x T x inputs values, so it evaluates in training-
    sized batches (256 samples of the SHD recipe would need ~16 GB); the event-driven
    methods evaluate 256 at a time."""
    import spikeforge.train.trainer as trainer_module

    config = load_config(None, {"train.method": method, "train.batch_size": 16,
                                "train.threads": 1})
    trainer = run_trainer(config, load_data("digits", dt=config.data.dt))
    sizes = []
    real = trainer_module.iterate_batches

    def recording(dataset, batch_size, *args, **kwargs):
        sizes.append(batch_size)
        return real(dataset, batch_size, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "iterate_batches", recording)
    result = trainer.evaluate(trainer.splits.val)
    assert sizes == [expected] and 0.0 <= result.accuracy <= 1.0
