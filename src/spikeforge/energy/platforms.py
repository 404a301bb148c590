"""Per-platform energy figures (modelled energy = operation counts x these figures).

Every figure carries its source. They are published per-operation energies, not
measurements of this machine; absolute values are indicative (process node, memory
traffic and idle power are not included), ratios between rows are the useful result.
Figures we could not verify against a primary source are left out rather than guessed
(e.g. SpiNNaker2 per-SOP energy, Loihi per-neuron-update energy).
"""

from __future__ import annotations

from dataclasses import dataclass

# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014,
# 45 nm at 0.9 V: 32-bit float add 0.9 pJ, multiply 3.7 pJ; 32-bit int add 0.1 pJ,
# multiply 3.1 pJ.
FP32_ADD, FP32_MUL, INT32_ADD, INT32_MUL = 0.9e-12, 3.7e-12, 0.1e-12, 3.1e-12


@dataclass(frozen=True)
class Platform:
    """Energy per operation (joules). ``None``: the platform/figure does not apply.

    sop: one synaptic operation (an accumulate, or a chip's synaptic event).
    neuron_update: one neuron state update in one time step (clock-driven cost).
    mac: one multiply-accumulate of the equivalent ANN.
    """

    name: str
    sop: float | None
    neuron_update: float | None
    mac: float | None
    source: str


PLATFORMS: tuple[Platform, ...] = (
    Platform(
        "CMOS 45nm fp32", FP32_ADD, 3 * FP32_MUL + 2 * FP32_ADD, FP32_MUL + FP32_ADD,
        "Horowitz ISSCC 2014 (45 nm): SOP = fp32 add 0.9 pJ; MAC = mult 3.7 + add 0.9 pJ; "
        "neuron update = 3 mult + 2 add (V = a V + g I, I = a I, threshold compare)",
    ),
    Platform(
        "CMOS 45nm int32", INT32_ADD, 3 * INT32_MUL + 2 * INT32_ADD, INT32_MUL + INT32_ADD,
        "Horowitz ISSCC 2014 (45 nm): SOP = int32 add 0.1 pJ; MAC = mult 3.1 + add 0.1 pJ; "
        "neuron update = 3 mult + 2 add",
    ),
    Platform(
        "Loihi", 23.6e-12, None, None,
        "Davies et al., IEEE Micro 38(1) 2018: 23.6 pJ per synaptic spike operation "
        "(14 nm); neuron-update energy not modelled",
    ),
    Platform(
        "TrueNorth", 26e-12, None, None,
        "Merolla et al., Science 345:668 2014: 26 pJ per synaptic event (28 nm; "
        "46 GSOPS/W); neuron-update energy not modelled",
    ),
    Platform(
        "SpiNNaker", 43e-9, 100e-9, None,
        "Sharp et al., J Neurosci Methods 210:110 2012: 43 nJ per postsynaptic potential "
        "and 100 nJ per neuron per ms (whole-system figures, 130 nm SpiNNaker 1); neuron "
        "update taken per 1 ms of simulated time",
    ),
)


def modelled_energy(platform: Platform, sops: float, neuron_updates: float, dt_ms: float,
                    macs_per_inference: int, macs_per_step: int) -> dict[str, float | None]:
    """Modelled joules per inference for the SNN and for the ANN (both MAC conventions)."""
    snn = None
    if platform.sop is not None:
        snn = sops * platform.sop
        if platform.neuron_update is not None:
            per_update = platform.neuron_update
            if platform.name == "SpiNNaker":  # figure is per neuron per ms of simulation
                per_update = platform.neuron_update * dt_ms
            snn += neuron_updates * per_update
    return {
        "snn_j": snn,
        "snn_synaptic_only_j": None if platform.sop is None else sops * platform.sop,
        "ann_per_inference_j": None if platform.mac is None else macs_per_inference * platform.mac,
        "ann_per_step_j": None if platform.mac is None else macs_per_step * platform.mac,
    }
