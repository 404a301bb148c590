"""A trial objective for the credential tests, run by spawned and Dask worker processes:
it records what the worker received (its command line and the pickled payload) and
checks that it can reach the store through the storage reference."""

from __future__ import annotations

import os
import pickle
from pathlib import Path


def record_what_the_worker_sees(payload):
    """Write ``cmdline`` and ``payload.pkl`` into the trial's run folder, then open the
    study through ``payload["storage"]`` and return the number of trials it holds."""
    from spikeforge.experiments.credentials import resolve_storage
    from spikeforge.experiments.space import require_optuna
    from spikeforge.experiments.sweep import open_storage

    run_dir = Path(payload["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cmdline").write_bytes(Path(f"/proc/{os.getpid()}/cmdline").read_bytes())
    (run_dir / "payload.pkl").write_bytes(pickle.dumps(payload))
    study = require_optuna().load_study(study_name=payload["study_name"],
                                 storage=open_storage(resolve_storage(payload["storage"])))
    seen = len(study.get_trials(deepcopy=False))
    return {"state": "complete", "val_accuracy": 0.5 + 0.01 * seen, "test_accuracy": 0.5}
