"""The ``stdp`` section of a run config (used when ``train.method`` is ``stdp``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StdpConfig(BaseModel):
    """Unsupervised STDP layer (Diehl & Cook 2015 style); see :mod:`spikeforge.train.stdp`.

    Epochs and seed come from ``train.epochs`` and ``seed``; time constants are in ms,
    weights and thresholds are dimensionless (threshold 1 = the LIF threshold).
    """

    model_config = ConfigDict(extra="forbid")

    n_neurons: int = Field(100, ge=1, description="excitatory neurons")
    tau_mem: float = Field(20.0, gt=0)
    tau_syn: float = Field(5.0, gt=0)
    threshold: float = Field(1.0, gt=0)
    a_plus: float = Field(0.1, ge=0, description="potentiation per unit pre trace")
    a_minus: float = Field(0.06, ge=0, description="depression per unit post trace")
    tau_plus: float = Field(20.0, gt=0, description="pre trace time constant (ms)")
    tau_minus: float = Field(20.0, gt=0, description="post trace time constant (ms)")
    w_max: float = Field(1.0, gt=0)
    weight_mean: float | None = Field(
        0.25, gt=0, description="weight normalisation: each neuron's incoming weights sum "
        "to weight_mean x inputs after every sample (null: off)")
    theta_plus: float = Field(0.03, ge=0, description="adaptive threshold step per spike")
    tau_theta: float = Field(1e5, gt=0, description="adaptive threshold decay (ms)")
    inhibition: float = Field(10.0, ge=0, description="lateral inhibition per spike")
    wta: bool = Field(True, description="at most one neuron spikes per step")
    max_train_samples: int | None = Field(
        None, ge=1, description="present only the first N (shuffled) training samples per "
        "epoch (large datasets such as MNIST)")
