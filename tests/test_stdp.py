"""STDP: trace updates equal the pair rule's closed form, WTA / homeostasis /
normalisation behave as specified, assignment readout, and a run folder end to end."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import load_config
from spikeforge.train.stdp import StdpNetwork, StdpParams, StdpRule, pair_update
from spikeforge.train.stdp_readout import assign_labels, classify, response_matrix

RULE = StdpRule(a_plus=0.1, a_minus=0.06, tau_plus=20.0, tau_minus=10.0)


def closed_form(rule, pre, post, dt):
    total = 0.0
    for tp in pre:
        for tq in post:
            lag = (tq - tp) * dt
            total += (rule.a_plus * math.exp(-lag / rule.tau_plus) if lag >= 0
                      else -rule.a_minus * math.exp(lag / rule.tau_minus))
    return total


@pytest.mark.parametrize("pre, post", [([3], [10]), ([10], [3]), ([5], [5]),
                                       ([1, 4, 30], [6, 20]), ([0, 2], [1, 3, 39])])
@pytest.mark.parametrize("dt", [1.0, 0.5])
def test_trace_updates_match_closed_form(pre, post, dt):
    got = pair_update(RULE, np.array(pre), np.array(post), 40, dt)
    assert got == pytest.approx(closed_form(RULE, pre, post, dt), rel=1e-12, abs=1e-15)


def test_single_pairs_by_hand():
    assert pair_update(RULE, np.array([3]), np.array([10]), 20, 1.0) == pytest.approx(
        0.1 * math.exp(-7 / 20))
    assert pair_update(RULE, np.array([10]), np.array([3]), 20, 1.0) == pytest.approx(
        -0.06 * math.exp(-7 / 10))


def make_net(**kw):
    params = StdpParams(**{"n_neurons": 3, "norm": None, "inhibition": 0.0, **kw})
    net = StdpNetwork(4, params, RULE, 1.0, seed=0)
    net.weight[:] = 0.0
    return net


def test_winner_take_all_and_potentiation_of_winner_only():
    net = make_net(threshold=0.2, theta_plus=0.2)
    net.weight[:, 1] = 1.0  # neuron 1 receives the strongest drive
    net.weight[:, 0] = 0.9
    steps, units = np.array([0, 0, 0]), np.array([0, 1, 2])
    w_before = net.weight.copy()
    counts, _ = net.present(steps, units, 30, learn=True)
    assert counts[1] >= 1
    assert counts.sum() <= 30  # wta: at most one spike per step
    assert np.all(net.weight[3] <= w_before[3])  # silent input: only depression possible
    grew = net.weight[:3, 1] - w_before[:3, 1]
    assert np.all(grew >= -1e-12)  # pre-before-post: potentiation, clipped at w_max = 1
    assert net.theta[1] == pytest.approx(0.2 * counts[1] * math.exp(0), rel=1e-3)
    assert net.theta[2] == 0.0


def test_lateral_inhibition_silences_losers():
    drive = dict(threshold=0.5, theta_plus=0.0)
    free = make_net(wta=False, **drive)
    free.weight[:, :] = 0.8
    counts_free, _ = free.present(np.zeros(4, int), np.arange(4), 30, learn=False)
    inhibited = make_net(wta=False, inhibition=100.0, **drive)
    inhibited.weight[:, :] = 0.8
    inhibited.weight[:, 0] = 0.9  # neuron 0 reaches threshold first
    counts_inh, _ = inhibited.present(np.zeros(4, int), np.arange(4), 30, learn=False)
    assert np.all(counts_free > 0)
    assert counts_inh[0] > 0 and counts_inh[1:].sum() == 0


def test_homeostatic_threshold_decays():
    net = make_net(threshold=0.1, theta_plus=0.5, tau_theta=10.0)
    net.weight[:, 0] = 1.0
    counts, _ = net.present(np.zeros(4, int), np.arange(4), 40, learn=True)
    assert counts[0] >= 1
    # after the last spike theta decays with exp(-dt/tau_theta) per step
    assert 0 < net.theta[0] < 0.5 * counts[0]
    frozen = net.theta.copy()
    net.present(np.zeros(4, int), np.arange(4), 40, learn=False)  # evaluation: no homeostasis
    assert np.all(net.theta < frozen + 1e-15)  # only decays


def test_weight_normalisation_after_sample():
    params = StdpParams(n_neurons=5, norm=2.0)
    net = StdpNetwork(16, params, RULE, 1.0, seed=3)
    np.testing.assert_allclose(net.weight.sum(0), 2.0)
    net.present(np.arange(16) % 5, np.arange(16), 20, learn=True)
    np.testing.assert_allclose(net.weight.sum(0), 2.0)
    assert net.weight.min() >= 0 and net.weight.max() <= RULE.w_max


def test_assignment_readout():
    responses = np.array([[3, 0, 0], [2, 1, 0], [0, 0, 4], [0, 1, 5]], dtype=float)
    labels = np.array([0, 0, 1, 1])
    assignments = assign_labels(responses, labels, 2)
    assert assignments.tolist() == [0, 0, 1]
    assert classify(responses, assignments, 2).tolist() == [0, 0, 1, 1]
    silent = response_matrix(np.zeros((1, 3)), np.array([[-0.5, -0.1, -0.9]]))
    assert silent.argmax() == 1 and silent.max() < 1


def test_config_method_and_section():
    cfg = load_config(None, {"train.method": "stdp", "stdp.n_neurons": 20})
    assert cfg.train.method == "stdp" and cfg.stdp.n_neurons == 20
    with pytest.raises(SpikeforgeError, match="stdp"):
        load_config(None, {"stdp.bogus": 1})


def test_stdp_runner_in_process_small(tmp_path):
    """train_run dispatches train.method=stdp to the STDP runner: run folder, resume."""
    from spikeforge.data.base import DatasetSplits
    from spikeforge.data.digits import load
    from spikeforge.experiments.runner import train_run

    full = load()
    splits = DatasetSplits("digits", full.train.subset(np.arange(150)),
                           full.val.subset(np.arange(60)), full.test.subset(np.arange(60)))
    cfg = load_config(None, {"train.method": "stdp", "stdp.n_neurons": 20, "train.epochs": 2})
    res = train_run(cfg, tmp_path / "run", splits=splits)
    assert res["method"] == "stdp" and res["epochs"] == 2
    assert res["test_accuracy"] > 0.2 and res["latency_steps"] == 40
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for name in ("checkpoint.pt", "model.pt", "results.json", "receptive_fields.png",
                 "weight_distribution.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert train_run(cfg, tmp_path / "run", splits=splits) == json.loads(
        (tmp_path / "run" / "results.json").read_text())  # complete run: returned as is


@pytest.mark.slow
def test_stdp_run_folder_end_to_end(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--epochs", "1", "--out", str(out), "--json",
            "--set", "train.method=stdp", "--set", "stdp.n_neurons=30",
            "--set", "stdp.max_train_samples=400"]
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["method"] == "stdp" and res["epochs"] == 1
    assert res["test_accuracy"] > 0.3  # chance 0.1
    assert res["latency_steps"] == 40 and res["sops_per_inference"] > 0
    for name in ("config.yaml", "run.json", "metrics.jsonl", "checkpoint.pt", "model.pt",
                 "results.json", "receptive_fields.png", "weight_distribution.png",
                 "learning_curves.png"):
        assert (out / name).is_file(), name
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "evaluate", str(out),
                           "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout.strip().splitlines()[-1])
    assert again["test_accuracy"] == pytest.approx(res["test_accuracy"])
