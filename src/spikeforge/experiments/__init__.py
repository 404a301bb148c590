"""Experiments: validated run configs, run folders and reports."""

from spikeforge.experiments.config import RunConfig, load_config

__all__ = ["RunConfig", "load_config"]
