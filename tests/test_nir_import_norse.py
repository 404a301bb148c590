"""Graphs written by Norse's own exporter (``norse.torch.to_nir``, Norse 1.1.0) import with
``--writer norse`` and agree with Norse's run of the network that wrote them.

The networks are built in Norse, run by Norse on random input spikes (one Norse step per
spikeforge step, dt = 0.1 ms, so Norse's forward Euler is close to spikeforge's exact
steps), exported with Norse's ``to_nir`` and written to an HDF5 file with ``nir.write`` (without
compression: Norse's parameters are scalars, which nir 1.0.8 cannot write gzipped);
spikeforge imports the file at the same dt. Without ``--writer norse`` the file is refused
with a hint (Norse records dt·tau for tau).
"""

import json

import numpy as np
import pytest
import torch

from spikeforge.engine import Events
from spikeforge.errors import SpikeforgeError
from spikeforge.export import read_nir
from spikeforge.export.agreement import spikeforge_output
from spikeforge.export.nir_check import check_nir

norse = pytest.importorskip("norse.torch", reason="Norse not installed (pip install norse)")
nir = pytest.importorskip("nir", reason="NIR import needs the nir package")

DT_S = 1e-4  # Norse's step and the import's dt (0.1 ms)
B, T, N_IN, N_HID, N_OUT = 12, 400, 16, 24, 5


def _cells(kind: str):
    """(hidden cell, output cell) of one Norse network kind, at dt = DT_S."""
    lif = norse.LIFParameters(tau_mem_inv=torch.tensor(1 / 10e-3),
                              tau_syn_inv=torch.tensor(1 / 5e-3), v_th=torch.tensor(1.0))
    lif_out = norse.LIFParameters(tau_mem_inv=torch.tensor(1 / 15e-3),
                                  tau_syn_inv=torch.tensor(1 / 4e-3), v_th=torch.tensor(1.0))
    box = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1 / 8e-3), v_th=torch.tensor(1.0))
    if kind == "CubaLIF":
        return norse.LIFCell(lif, dt=DT_S), norse.LIFCell(lif_out, dt=DT_S)
    if kind == "LIF":
        return norse.LIFBoxCell(box, dt=DT_S), norse.LIFCell(lif_out, dt=DT_S)
    return norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(1.0)), dt=DT_S), \
        norse.LIFCell(lif_out, dt=DT_S)


def _network(kind: str):
    torch.manual_seed(3)
    hidden, out = _cells(kind)
    first = torch.nn.Linear(N_IN, N_HID, bias=True)
    second = torch.nn.Linear(N_HID, N_OUT, bias=False)
    gain = {"CubaLIF": 0.25, "LIF": 8.0, "IF": 0.1}[kind]  # outputs at ~30-50 Hz
    with torch.no_grad():
        first.weight.mul_(0).add_(torch.rand(N_HID, N_IN) * gain)
        first.bias.fill_(0.002 * gain)
        second.weight.mul_(0).add_(torch.rand(N_OUT, N_HID) * 0.15)
    return norse.SequentialState(first, hidden, second, out)


def _norse_counts(net, x: np.ndarray) -> np.ndarray:
    """Output spike counts [B, N_OUT] of Norse running ``net`` on x [B, T, N_IN]."""
    state, counts = None, torch.zeros(B, N_OUT)
    with torch.no_grad():
        inputs = torch.from_numpy(x)
        for n in range(T):
            z, state = net(inputs[:, n], state)
            counts += z
    return counts.numpy()


def _input() -> np.ndarray:
    rng = np.random.default_rng(1)
    rate = np.linspace(0.01, 0.05, B)[:, None, None]  # 1 % .. 5 % per 0.1 ms step
    return (rng.random((B, T, N_IN)) < rate).astype(np.float32)


def _write(tmp_path, net):
    graph = norse.to_nir(net, torch.zeros(1, N_IN), dt=DT_S)
    path = tmp_path / "norse.nir"
    nir.write(str(path), graph, compression=None)  # nir 1.0.8 cannot gzip Norse's scalars
    return path


@pytest.mark.parametrize("kind", ["CubaLIF", "LIF", "IF"])
def test_norse_written_file_agrees_with_norse(tmp_path, kind):
    net = _network(kind)
    x = _input()
    theirs = _norse_counts(net, x)
    path = _write(tmp_path, net)
    model = read_nir(path, dt=DT_S * 1e3, writer="norse")
    ours = spikeforge_output(model, Events.from_dense(x)).counts[-1]
    assert ours.shape == theirs.shape
    assert 0.5 * theirs.sum() < ours.sum() < 2.0 * theirs.sum(), (ours.sum(), theirs.sum())
    r = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1]
    print(f"{kind}: spikeforge {ours.sum():.0f} / Norse {theirs.sum():.0f} spikes, r = {r:.4f}")
    assert r >= 0.95, r
    # the reference simulator of NIR's equations, on the corrected graph, agrees too
    check = check_nir(path, DT_S * 1e3, samples=8, steps=200, writer="norse")
    assert check["agreement"]["grid"]["spike_count_correlation"] >= 0.95


def test_norse_file_without_writer_is_refused_with_the_fix(tmp_path):
    path = _write(tmp_path, _network("LIF"))
    with pytest.raises(SpikeforgeError, match="--writer norse"):
        read_nir(path, dt=DT_S * 1e3)


def test_import_nir_cli_takes_the_writer(tmp_path):
    from export_helpers import cli

    path = _write(tmp_path, _network("CubaLIF"))
    out = tmp_path / "m.pt"
    _, stdout, _ = cli("import-nir", str(path), "--dt", "0.1", "--writer", "norse", "--out",
                       str(out), "--json")
    assert json.loads(stdout.strip().splitlines()[-1])["layers"] == [N_HID, N_OUT]
    assert out.is_file()
    code, stdout, stderr = cli("import-nir", str(path), "--writer", "lava", "--check",
                               check=False)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: unknown NIR writer 'lava'") and stderr.count("\n") == 1
