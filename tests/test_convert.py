"""ANN->SNN conversion: rate/TTFS/FS codes reproduce the ANN, BatchNorm folding, SOP
counting, model files, rejection of unsupported layers, CLI end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.convert.arch import build_ann, load_ann, preset_arch, save_ann
from spikeforge.convert.ifnet import convert_network
from spikeforge.convert.parse import split_stages
from spikeforge.convert.simulate import fs_code, simulate_fs, simulate_rate, simulate_ttfs
from spikeforge.energy.counting import fan_out
from spikeforge.errors import SpikeforgeError


def small_mlp(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                layer.bias.uniform_(-0.05, 0.2)
    return model.eval()


def hidden_activations(model, x):
    """ANN ReLU outputs of each hidden stage and the logits."""
    acts = []
    for i, ops in enumerate(split_stages(model)):
        x = nn.Sequential(*ops)(x)
        if i < len(split_stages(model)) - 1:
            x = torch.relu(x)
        acts.append(x)
    return acts


@pytest.fixture
def mlp_case():
    model = small_mlp()
    x = torch.rand(64, 1, 2, 3)
    net = convert_network(model, x, percentile=100.0)
    with torch.no_grad():
        acts = hidden_activations(model, x)
    return model, x, net, acts


def test_rate_code_reproduces_activations(mlp_case):
    """Rates x lambda_l match the ANN's ReLU activations; output potential / T matches the
    logits / lambda_{L-1}. Tolerance: 2 % of lambda_l at T = 1000 (reset by subtraction
    leaves a bounded residual potential, so the error shrinks as 1/T)."""
    model, x, net, acts = mlp_case
    sim = simulate_rate(net, x, 1000)
    for rate, act, scale in zip(sim.rates, acts[:-1], net.scales, strict=False):
        assert torch.allclose(rate * scale, act, atol=0.02 * scale)
    logits = acts[-1]
    assert torch.allclose(sim.output / 1000 * net.stages[-1].scale, logits,
                          atol=0.02 * net.stages[-1].scale)
    assert (sim.predictions[-1] == logits.argmax(1)).float().mean() >= 0.95
    short = simulate_rate(net, x, 10)  # and the error really depends on T
    err_short = (short.rates[0] * net.scales[0] - acts[0]).abs().max()
    err_long = (sim.rates[0] * net.scales[0] - acts[0]).abs().max()
    assert err_long < err_short


def test_single_if_neuron_count_is_rounded_rate():
    """One IF neuron with constant drive z per step, v_init 0.5: N = floor(z T + 0.5)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).eval()
    with torch.no_grad():
        model[1].weight.fill_(1.0)
        model[1].bias.zero_()
        model[3].weight.fill_(1.0)
        model[3].bias.zero_()
    x = torch.tensor([0.0, 0.13, 0.5, 0.77, 1.0]).reshape(5, 1, 1, 1)
    net = convert_network(model, torch.ones(1, 1, 1, 1), percentile=100.0)
    sim = simulate_rate(net, x, 100)
    # input neuron fires floor(100 x + 0.5) times, the hidden relays them one to one
    expected = torch.floor(x.reshape(-1) * 100 + 0.5) / 100
    assert torch.allclose(sim.rates[0].reshape(-1), expected)


def test_ttfs_is_quantised_relu(mlp_case):
    """TTFS: hidden decoded value 1 - k/W equals min(ReLU(a)/lambda, 1) rounded to 1/W
    (first layer: ANN on the W-quantised input), at most one spike per neuron."""
    model, x, net, _ = mlp_case
    window = 16
    sim = simulate_ttfs(net, x, window)
    xq = torch.floor(x * window + 0.5).clamp(max=window) / window
    a1 = torch.relu(net.stages[0].current(xq))
    assert (sim.rates[0] - a1.clamp(max=1.0)).abs().max() <= 0.5 / window + 1e-5
    assert sim.steps == [window * len(net.stages)]
    n_neurons = [int(np.prod(net.input_shape))] + [int(np.prod(s.out_shape))
                                                   for s in net.stages[:-1]]
    for counts, n in zip(sim.spike_counts, n_neurons, strict=True):
        assert counts.max() <= len(x) and counts.size == n  # <= one spike per neuron


def test_few_spike_code_and_network(mlp_case):
    """FS binary code: decoded value within half an LSB of the value; network output close
    to the ANN logits / lambda for K = 12."""
    values = torch.tensor([0.0, 0.1, 0.333, 0.5, 0.9, 0.99, -0.3])
    spikes, decoded = fs_code(values, 6)
    assert spikes.shape == (6, 7)
    assert (decoded - values.clamp(0, 1 - 2**-6)).abs().max() <= 2**-7 + 1e-7
    assert spikes[:, -1].sum() == 0  # negative potentials never spike (ReLU)
    model, x, net, acts = mlp_case
    sim = simulate_fs(net, x, 12)
    expected = acts[-1] / net.stages[-1].scale
    assert torch.allclose(sim.output, expected, atol=0.01)
    assert (sim.predictions[0] == acts[-1].argmax(1)).all()


def test_batchnorm_folding_and_conv_stage():
    torch.manual_seed(1)
    model = build_ann(preset_arch("cnn", (1, 8, 8), 10, (16,)))
    for m in model:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.rand(8, 1, 8, 8)
    stages = split_stages(model)
    y = x
    for i, ops in enumerate(stages):
        y = nn.Sequential(*ops)(y)
        if i < len(stages) - 1:
            y = torch.relu(y)
    assert not any(isinstance(op, nn.BatchNorm2d) for s in stages for op in s)
    assert torch.allclose(y, model(x), atol=1e-5)
    net = convert_network(model, x, 100.0)
    sim = simulate_fs(net, x, 14)
    assert torch.allclose(sim.output * net.stages[-1].scale, model(x), atol=0.05)


def test_fanout_matches_weights_and_brute_force():
    model = small_mlp()
    model[1].weight.data[:, 2] = 0.0  # input unit 2 has no synapses
    net = convert_network(model, torch.rand(4, 1, 2, 3), 100.0)
    assert np.array_equal(net.stages[0].fanout, fan_out(model[1].weight))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * 4 * 4, 2)).eval()
    cnet = convert_network(conv, torch.rand(4, 1, 4, 4), 100.0)
    # a pixel reaches 2 channels x (3x3 neighbourhood clipped at the border)
    fo = cnet.stages[0].fanout.reshape(4, 4)
    assert fo[0, 0] == 2 * 4 and fo[1, 1] == 2 * 9 and fo[0, 1] == 2 * 6
    assert cnet.stages[0].macs == 2 * 16 * 9


@pytest.mark.parametrize("layer, name", [(nn.MaxPool2d(2), "MaxPool2d"),
                                         (nn.Sigmoid(), "Sigmoid")])
def test_unsupported_layer_is_named(layer, name):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), layer, nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(SpikeforgeError, match=f"layer '2' \\({name}\\) is not supported"):
        split_stages(model)


def test_bad_structure_rejected():
    with pytest.raises(SpikeforgeError, match="BatchNorm1d"):
        split_stages(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.BatchNorm1d(3),
                                   nn.Linear(3, 2)))
    with pytest.raises(SpikeforgeError, match="end with a Linear"):
        split_stages(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))


def test_model_file_roundtrip_and_errors(tmp_path):
    arch = preset_arch("mlp", (1, 2, 3), 3, (8,))
    model = build_ann(arch).eval()
    path = tmp_path / "m.pt"
    save_ann(path, model, arch, (1, 2, 3), "digits", 0.5)
    loaded, meta = load_ann(path)
    x = torch.rand(5, 1, 2, 3)
    assert torch.equal(loaded(x), model(x)) and meta["input_shape"] == (1, 2, 3)
    with pytest.raises(SpikeforgeError, match="does not exist"):
        load_ann(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SpikeforgeError, match="unreadable"):
        load_ann(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(SpikeforgeError, match="not a spikeforge ANN"):
        load_ann(tmp_path / "other.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_model_file_never_runs_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "spikeforge-ann-v1", "arch": _Evil()}, path)
    with pytest.raises(SpikeforgeError, match="unreadable"):
        load_ann(path)
    assert "pwned" not in capsys.readouterr().out


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "spikeforge.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_cli_train_ann_and_convert(tmp_path):
    proc = run_cli("train-ann", "--data", "digits", "--epochs", "3", "--hidden", "32",
                   "--out", "ann.pt", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ann = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ann["ann_test_accuracy"] > 0.5
    proc = run_cli("convert", "ann.pt", "--data", "digits", "--method", "fs", "--steps", "16",
                   "--out", "conv", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["steps"] == 16 and res["method"] == "fs"
    assert res["test_accuracy"] >= ann["ann_test_accuracy"] - 0.05
    assert res["ann_test_accuracy"] == pytest.approx(ann["ann_test_accuracy"])
    assert res["sops_per_inference"] > 0 and res["ann_macs"] == 64 * 32 + 32 * 10
    for name in ("config.yaml", "run.json", "metrics.jsonl", "results.json", "latency.csv",
                 "accuracy_vs_steps.png", "accuracy_vs_sops.png"):
        assert (tmp_path / "conv" / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "conv" / "metrics.jsonl").open()]
    assert [r["param"] for r in rows] == list(range(1, 9))
    proc = run_cli("convert", "ann.pt", "--data", "digits", "--method", "fs-fit", "--steps", "8",
                   "--out", "fit", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    fit = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fit["method"] == "fs-fit" and fit["steps"] == 8
    rows = [json.loads(line) for line in (tmp_path / "fit" / "metrics.jsonl").open()]
    assert [r["steps"] for r in rows] == list(range(2, 9))
    assert rows[-1]["code"] == "4/4" and all(r["param"] == max(map(int, r["code"].split("/")))
                                             for r in rows)
    assert "fs-fit" in proc.stdout and "4/4" in (tmp_path / "fit" / "latency.csv").read_text()
    # bad input: one-line error, exit 2, nothing written
    for args, msg in ((("missing.pt",), "does not exist"),
                      (("ann.pt", "--method", "xyz", "--out", "bad"), "unknown conversion"),
                      (("ann.pt", "--data", "yinyang", "--out", "bad"), "image dataset")):
        proc = run_cli("convert", *args, cwd=tmp_path)
        assert proc.returncode == 2 and msg in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_steps_to_match_requires_staying_within_tolerance():
    from spikeforge.convert.evaluate import latency_grid, steps_to_match

    rows = [{"steps": s, "accuracy": a} for s, a in
            [(1, 0.5), (2, 0.95), (4, 0.90), (8, 0.955), (16, 0.96)]]
    assert steps_to_match(rows, 0.96) == 8  # 2 steps touch the target but 4 drop out
    assert steps_to_match(rows, 0.99) is None
    assert latency_grid("fs", 12, 3) == [1, 2, 3, 4]
    assert latency_grid("ttfs", 40, 2) == [1, 2, 4, 8, 16, 20]
    with pytest.raises(SpikeforgeError, match="too short"):
        latency_grid("fs", 2, 3)


def test_rate_grid_is_dense_up_to_32_steps():
    from spikeforge.convert.evaluate import latency_grid

    assert latency_grid("rate", 256, 3) == list(range(1, 33)) + [64, 128, 256]
    assert latency_grid("rate", 5, 3) == [1, 2, 3, 4, 5]
    assert latency_grid("fs-fit", 12, 3) == [1, 2, 3, 4]


def test_few_spike_per_population_k_and_gain(mlp_case):
    """Per-population K: latency is their sum, a uniform list equals the int; a gain c
    codes value / c, so the decoded hidden value is within c 2^-(K+1) of
    min(value, c (1 - 2^-K)); the spike simulation equals the decoded fast path."""
    from spikeforge.convert.fs_fit import fs_output

    model, x, net, acts = mlp_case
    uniform = simulate_fs(net, x, 5)
    listed = simulate_fs(net, x, [5, 5, 5])
    assert torch.equal(uniform.output, listed.output)
    sim = simulate_fs(net, x, [3, 9, 4], gains=[2.0, 0.5, 1.0])
    assert sim.steps == [16]
    value = torch.relu(net.stages[0].current(fs_code(x / 2.0, 3)[1] * 2.0))
    expected = value.clamp(max=0.5 * (1 - 2**-9))
    assert (sim.rates[0] - expected).abs().max() <= 0.5 * 2**-10 + 1e-6
    assert sim.rates[0].max() > 0.25  # the gain really changed the coded range
    fast, _ = fs_output(net, x, (3, 9, 4), fit_gains=False)
    ref = simulate_fs(net, x, [3, 9, 4])
    assert torch.allclose(fast, ref.output, atol=1e-5)
    with pytest.raises(SpikeforgeError, match="one K per spiking population"):
        simulate_fs(net, x, [3, 4])
    with pytest.raises(SpikeforgeError, match="gains must be positive"):
        simulate_fs(net, x, 3, gains=[1.0, 0.0, 1.0])


def test_fitted_gain_codes_binary_input_exactly():
    """A binary input needs one step when the code's scale is fitted (c = 2: levels 0, 1);
    with the plain code (c = 1) K = 1 can only send 0 or 0.5."""
    from spikeforge.convert.fs_fit import _best_gain, _quantise

    values = torch.randn(4000) * 0.6 + 0.3  # closed form used in fitting == spike code
    for k in (1, 2, 3, 7):
        for g in (0.25, 0.7, 1.0, 2.0):
            assert torch.equal(_quantise(values, k, g), fs_code(values / g, k)[1] * g)
    x = (torch.rand(200, 30) > 0.6).float()
    gain = _best_gain(x, 1, fit_gain=True)
    assert gain == 2.0
    assert torch.equal(_quantise(x, 1, gain), x)
    assert _quantise(x, 1, 1.0).max() == 0.5
    small = torch.rand(5000) * 0.3  # small values only: a finer step beats the full range
    assert _best_gain(small, 2, fit_gain=True) < 1.0


def test_fit_fs_codes_greedy_path(mlp_case):
    """One code per total latency from populations to k_max x populations, each one step
    shorter than the next in exactly one population; the longest is the uniform code and
    (K = 8 here) agrees with the ANN; binary inputs drop to 1 step along the way."""
    from spikeforge.convert.evaluate import evaluate_latency, steps_to_match
    from spikeforge.convert.fs_fit import ann_output, fit_fs_codes, fs_output

    model, x, net, acts = mlp_case
    xb = (x > 0.5).float()
    codes = fit_fs_codes(net, xb, k_max=8)
    assert [c.steps for c in codes] == list(range(3, 25))
    assert codes[0].bits == (1, 1, 1) and codes[-1].bits == (8, 8, 8)
    for short, long in zip(codes, codes[1:], strict=False):
        diff = [b - a for a, b in zip(short.bits, long.bits, strict=True)]
        assert sorted(diff) == [0, 0, 1]
    out, _ = fs_output(net, xb, codes[-1].bits)
    assert (out.argmax(1) == ann_output(net, xb).argmax(1)).all()
    assert any(c.bits[0] == 1 and c.gains[0] == 2.0 for c in codes[-10:])
    y = ann_output(net, xb).argmax(1)
    rows = evaluate_latency(net, xb, y, "fs-fit", 24, codes=codes)
    assert [r["steps"] for r in rows] == list(range(3, 25))
    assert rows[-1]["code"] == "8/8/8" and rows[-1]["param"] == 8
    assert rows[-1]["accuracy"] == 1.0 and steps_to_match(rows, 1.0) is not None
    with pytest.raises(SpikeforgeError, match="fitted codes"):
        evaluate_latency(net, xb, y, "fs-fit", 24)
