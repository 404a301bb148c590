"""Sweep search spaces: ``SPACE.yaml`` -> validated Optuna distributions over config paths.

A space file maps dotted :class:`RunConfig` paths to what to try::

    train.lr: {low: 1.0e-4, high: 1.0e-1, log: true}   # float range, log scale
    train.batch_size: {low: 16, high: 64, step: 16}    # int range (all bounds ints)
    model.tau_mem: {low: 5.0, high: 40.0, grid: 4}     # float range, 4 points for grid
    model.hidden: {choices: [[32], [64, 64]]}          # any YAML values
    model.recurrent: [false, true]                     # shorthand for choices

Every path is checked against the config schema and every bound / choice is checked by
validating a full config with it, so mistakes surface before any trial starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from spikeforge.errors import SpikeforgeError
from spikeforge.experiments.config import RunConfig, load_config

_SCALAR = (bool, int, float, str, type(None))
_RANGE_KEYS = {"low", "high", "log", "step", "type", "grid"}


def require_optuna():
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SpikeforgeError(
            "sweeps need Optuna; install it with: pip install \"spikeforge[sweep]\""
        ) from exc
    return optuna


def config_paths(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """All dotted leaf paths of a config model, e.g. ``["seed", "data.name", ...]``."""
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths.extend(config_paths(annotation, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


@dataclass(frozen=True)
class Param:
    """One swept config path: its Optuna distribution and how values map to the config.

    Non-scalar choices (lists such as ``model.hidden``) travel through Optuna as their
    JSON text and are decoded back with :meth:`decode`.
    """

    path: str
    distribution: Any
    grid: tuple[Any, ...] | None
    encoded: bool = False

    def decode(self, value: Any) -> Any:
        """Optuna's stored value -> the config value."""
        return json.loads(value) if self.encoded else value

    def numeric(self) -> bool:
        categorical = require_optuna().distributions.CategoricalDistribution
        return not isinstance(self.distribution, categorical)


@dataclass(frozen=True)
class SearchSpace:
    """The validated parameters of a sweep, in file order."""

    params: tuple[Param, ...]

    def distributions(self) -> dict[str, Any]:
        return {p.path: p.distribution for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        """Finite values per parameter for the grid sampler (raises if one is continuous)."""
        grid = {}
        for p in self.params:
            if p.grid is None:
                raise SpikeforgeError(
                    f"grid sampler needs finite values for {p.path}: add 'step' or 'grid: N' "
                    "to its range, or list 'choices'"
                )
            grid[p.path] = list(p.grid)
        return grid

    def grid_size(self) -> int:
        return int(np.prod([len(v) for v in self.grid().values()]))

    def overrides(self, optuna_params: dict[str, Any]) -> dict[str, Any]:
        """Optuna trial params -> dotted config overrides."""
        by_path = {p.path: p for p in self.params}
        return {path: by_path[path].decode(value) for path, value in optuna_params.items()}


def _parse_one(path: str, spec: Any, where: str) -> tuple[Param, list[Any]]:
    """One entry -> (Param, values to validate against the config)."""
    dist = require_optuna().distributions
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise SpikeforgeError(
            f"{where}: {path} must be a range {{low, high}} or a list of choices, not {spec!r}"
        )
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra:
            raise SpikeforgeError(f"{where}: {path} mixes 'choices' with {sorted(extra)}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpikeforgeError(f"{where}: {path} has an empty list of choices; give one or more")
        encoded = not all(isinstance(c, _SCALAR) for c in choices)
        stored = [json.dumps(c) for c in choices] if encoded else choices
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise SpikeforgeError(f"{where}: {path} lists the same choice twice")
        param = Param(path, dist.CategoricalDistribution(stored), tuple(stored), encoded)
        return param, list(choices)
    unknown = set(spec) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(spec):
        raise SpikeforgeError(
            f"{where}: {path} needs 'low' and 'high' (optional log, step, type, grid) or "
            f"'choices'; got keys {sorted(spec)}"
        )
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SpikeforgeError(f"{where}: {path}.{name} must be a number, not {value!r}")
    if not low < high:
        raise SpikeforgeError(
            f"{where}: {path} has an empty range (low={low} >= high={high}); make low < high"
        )
    if log and low <= 0:
        raise SpikeforgeError(f"{where}: {path} uses log scale, so low must be > 0 (got {low})")
    if log and step is not None:
        raise SpikeforgeError(f"{where}: {path} cannot combine log scale with a step")
    if step is not None and step <= 0:
        raise SpikeforgeError(f"{where}: {path}.step must be > 0 (got {step})")
    kind = spec.get("type") or ("int" if all(
        isinstance(v, int) for v in (low, high, step if step is not None else 1)) else "float")
    if kind not in ("int", "float"):
        raise SpikeforgeError(f"{where}: {path}.type must be 'int' or 'float', not {kind!r}")
    n_grid = spec.get("grid")
    if n_grid is not None and (not isinstance(n_grid, int) or n_grid < 2):
        raise SpikeforgeError(f"{where}: {path}.grid must be an integer >= 2 (got {n_grid!r})")
    if kind == "int":
        if any(isinstance(v, float) and not float(v).is_integer() for v in (low, high)):
            raise SpikeforgeError(f"{where}: {path} is an int range but has fractional bounds")
        low, high, step_i = int(low), int(high), int(step or 1)
        distribution = dist.IntDistribution(low, high, log=log, step=step_i)
        if n_grid is not None:
            points = np.geomspace(low, high, n_grid) if log else np.linspace(low, high, n_grid)
            grid = tuple(sorted({int(round(v)) for v in points}))
        else:
            grid = tuple(range(low, high + 1, step_i))
    else:
        low, high = float(low), float(high)
        distribution = dist.FloatDistribution(low, high, log=log, step=step)
        if n_grid is not None:
            points = np.geomspace(low, high, n_grid) if log else np.linspace(low, high, n_grid)
            grid = tuple(float(v) for v in points)
        elif step is not None:
            grid = tuple(float(v) for v in np.arange(low, high + step / 2, step))
        else:
            grid = None
    return Param(path, distribution, grid), [low, high]


def parse_space(tree: Any, base_config: Path | None = None,
                base_overrides: dict[str, Any] | None = None,
                where: str = "search space") -> SearchSpace:
    """Validate a parsed space mapping against the config schema (and ``base_config``).

    Raises :class:`SpikeforgeError` naming the file, the path and the fix on any problem.
    """
    if not isinstance(tree, dict) or not tree:
        raise SpikeforgeError(
            f"{where} must be a non-empty mapping of config paths, e.g. 'train.lr: "
            "{low: 0.001, high: 0.1, log: true}'"
        )
    known = config_paths()
    params, seen = [], set()
    for path, spec in tree.items():
        path = str(path)
        if path not in known:
            sections = sorted({p.split(".")[0] for p in known})
            close = [p for p in known if p.rsplit(".", 1)[-1] == path.rsplit(".", 1)[-1]]
            hint = f"did you mean {close[0]}?" if close else f"paths start with {sections}"
            raise SpikeforgeError(f"{where}: unknown config path {path!r}; {hint}")
        if path in seen:
            raise SpikeforgeError(f"{where}: {path} is listed twice")
        if path in (base_overrides or {}):
            raise SpikeforgeError(
                f"{where}: {path} is swept here and also fixed by --set {path}=...; the "
                "sweep would override it in every trial: drop one of the two")
        seen.add(path)
        param, values = _parse_one(path, spec, where)
        for value in values:
            try:
                load_config(base_config, {**(base_overrides or {}), path: value})
            except SpikeforgeError as exc:
                raise SpikeforgeError(f"{where}: {path}={value!r} is not allowed ({exc})") from exc
        params.append(param)
    return SearchSpace(tuple(params))


def stored_space(tree: dict[str, Any]) -> SearchSpace:
    """The space of a mapping that was validated when its sweep started (no config checks;
    for decoding stored trial values)."""
    return SearchSpace(tuple(_parse_one(str(path), spec, "stored search space")[0]
                             for path, spec in tree.items()))


def load_space(path: Path, base_config: Path | None = None,
               base_overrides: dict[str, Any] | None = None) -> tuple[SearchSpace, Any]:
    """Read and validate ``SPACE.yaml``; returns (space, the raw parsed tree)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpikeforgeError(f"cannot read search space {path}: {exc.strerror}") from exc
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpikeforgeError(f"search space {path} is not valid YAML; fix the syntax") from exc
    return parse_space(tree, base_config, base_overrides, where=str(path)), tree
