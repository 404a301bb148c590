"""CLI command groups, one module per topic; each exposes ``register(app)``."""

SET_HELP = ("Set one config field by its dotted path, section.key=value (e.g. "
            "train.lr=0.005, model.hidden=[256], data.dt=0.5 for a 0.5 ms step); "
            "repeat --set for several fields.")
"""Help text of every command's ``--set`` option."""
