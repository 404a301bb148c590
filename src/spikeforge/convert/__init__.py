"""ANN->SNN conversion: a trained ReLU network becomes integrate-and-fire neurons.

Python API::

    from spikeforge.convert import convert_network, simulate_rate, load_ann
    model, meta = load_ann("runs/ann-digits-mlp.pt")      # or any nn.Sequential ReLU net
    net = convert_network(model, calibration_images, percentile=99.9)
    result = simulate_rate(net, test_images, n_steps=64)   # or simulate_ttfs / simulate_fs
    codes = fit_fs_codes(net, calibration_images, k_max=8)  # per-population K and scale
    result = simulate_fs(net, test_images, codes[3].bits, codes[3].gains)

``convert_file`` / ``train_ann_file`` are what ``spikeforge convert`` / ``train-ann`` run.
"""

from spikeforge.convert.api import convert_file, train_ann_file
from spikeforge.convert.arch import build_ann, load_ann, preset_arch, save_ann
from spikeforge.convert.evaluate import evaluate_latency, steps_to_match
from spikeforge.convert.fs_fit import FSCode, fit_fs_codes
from spikeforge.convert.ifnet import ConvertedNetwork, convert_network
from spikeforge.convert.simulate import simulate_fs, simulate_rate, simulate_ttfs

__all__ = [
    "ConvertedNetwork",
    "FSCode",
    "build_ann",
    "convert_file",
    "convert_network",
    "evaluate_latency",
    "fit_fs_codes",
    "load_ann",
    "preset_arch",
    "save_ann",
    "simulate_fs",
    "simulate_rate",
    "simulate_ttfs",
    "steps_to_match",
    "train_ann_file",
]
