"""Sweeps as plain data: the search space, the objective and the sampler, checked.

A sweep searches a few parameters of an experiment; each trial is a new version of it.
This module parses and checks what a person writes — the body of a ``%%sweep`` cell or the
arguments of :meth:`mlmd_magic.Store.sweep` — without MLMD or Optuna::

    experiment: t21-baseline          # the base; each trial overrides it
    objective: {metric: eval.accuracy, direction: maximize}
    sampler: tpe                      # tpe | random | grid
    trials: 12
    workers: 2
    seed: 0
    space:
      learning_rate: {loguniform: [1.0e-4, 1.0e-1]}
      hidden: {choice: [[32], [64, 32], [128, 64]]}
      epochs: {int: [3, 10]}
      dropout: {uniform: [0.0, 0.5]}
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ValidationError
from .values import canonical_json, check_value, flatten, kept_kind

__all__ = ["DISTRIBUTIONS", "MAX_GRID_POINTS", "SAMPLERS", "Dimension", "Objective", "SweepSpec", "check_grid_size",
           "check_space_keys", "grid_points", "parse_objective", "parse_space", "parse_spec", "sweep_arguments"]

SAMPLERS = ("tpe", "random", "grid")
# each distribution: an example, and what it needs
DISTRIBUTIONS = MappingProxyType({
    "loguniform": ("{loguniform: [1.0e-4, 1.0e-1]}", "low > 0, low < high"),
    "uniform": ("{uniform: [0.0, 0.5]}", "low < high"),
    "int": ("{int: [3, 10]}", "whole numbers low <= high, an optional step third: [16, 128, 16]"),
    "choice": ("{choice: [[32], [64, 32], [128, 64]]}", "one or more values"),
})
_FORMS = "; ".join(f"{example} ({needs})" for example, needs in DISTRIBUTIONS.values())
_LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error")
_KEYS = frozenset({"experiment", "objective", "sampler", "trials", "workers", "space", "seed", "description"})
MAX_TRIALS = 10_000
MAX_WORKERS = 64
# a grid's points are walked in a shuffled order every worker computes alike; past this many a
# grid is no sweep a budget of at most MAX_TRIALS trials covers, and the order costs memory
MAX_GRID_POINTS = 100_000
_EXACT_INT = 2**53  # the largest magnitude below which every whole number is a float too


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: ``kind`` is loguniform, uniform, int or choice."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The form it is written in: ``{"int": [3, 10]}``."""
        if self.kind == "choice":
            return {"choice": list(self.choices)}
        if self.kind == "int":
            bounds = [int(self.low), int(self.high)] + ([self.step] if self.step != 1 else [])
            return {"int": bounds}
        return {self.kind: [self.low, self.high]}

    def samples(self) -> list[Any]:
        """Values it can take at its edges (every choice): checked against the parameter's kind."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]

    def count(self) -> int | None:
        """How many values :meth:`grid` lists, counted without listing them; None for continuous ranges.

        >>> Dimension("epochs", "int", low=1, high=10**9).count()
        1000000000
        """
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return (int(self.high) - int(self.low)) // self.step + 1
        return None

    def grid(self) -> list[Any] | None:
        """Every value, for the grid sampler; None for continuous ranges. Lists them all: count
        them with :meth:`count` first (``{int: [1, 1000000000]}`` is a billion)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step))
        return None


@dataclass(frozen=True)
class Objective:
    """What a sweep optimises: ``metric`` of ``split`` (``eval.accuracy``), ``direction``."""

    split: str
    metric: str
    direction: str

    @property
    def key(self) -> str:
        return f"{self.split}.{self.metric}"

    def to_dict(self) -> dict[str, str]:
        return {"metric": self.key, "direction": self.direction}

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep definition (see the module's docstring)."""

    experiment: str
    objective: Objective
    space: dict[str, Dimension]
    sampler: str = "tpe"
    trials: int = 10
    workers: int = 1
    seed: int = 0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def space_dict(self) -> dict[str, Any]:
        return {name: dim.to_dict() for name, dim in self.space.items()}

    def content(self) -> dict[str, Any]:
        """What defines a version of the sweep (the trial budget and workers do not: raising
        ``trials`` continues the same search)."""
        return {"experiment": self.experiment, "space": self.space_dict(), "objective": self.objective.to_dict(),
                "sampler": self.sampler, "seed": self.seed, "description": self.description}


def _number(value: Any) -> bool:
    """A real number (an int or a float, not a bool or text) that stays finite as a float: Optuna
    keeps every bound, ints included, as a float (``10**400`` overflows it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _dimension(name: str, spec: Any) -> Dimension:
    """``{"loguniform": [lo, hi]}`` and friends -> a :class:`Dimension`."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValidationError(f"space {name!r} must be one distribution, e.g. {name}: {DISTRIBUTIONS['int'][0]}; "
                              f"the forms are {_FORMS}")
    ((kind, args),) = spec.items()
    kind = str(kind)
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(kind, list(DISTRIBUTIONS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValidationError(f"space {name!r}: unknown distribution {kind!r}; {hint}write one of {_FORMS}")
    example = f"write {name}: {DISTRIBUTIONS[kind][0]} ({DISTRIBUTIONS[kind][1]})"
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ValidationError(f"space {name!r}: choice needs a list of one or more values; {example}")
        check_value(args, f"space {name!r}")
        encoded = [canonical_json(v) for v in args]
        if len(set(encoded)) != len(encoded):
            raise ValidationError(f"space {name!r}: a choice is listed twice; {example}")
        return Dimension(name, "choice", choices=tuple(json.loads(e) for e in encoded))
    if not isinstance(args, list) or len(args) not in ((2, 3) if kind == "int" else (2,)) \
            or not all(_number(a) for a in args):
        raise ValidationError(f"space {name!r}: {kind} needs [low, high] as finite numbers; {example}")
    low, high = args[0], args[1]
    if kind == "int":
        if not all(isinstance(a, int) for a in args):  # 3.0 too: a whole number is written 3, as in overrides
            whole = [int(a) if float(a).is_integer() else a for a in args]
            hint = f"write [{', '.join(map(str, whole))}]" if all(isinstance(a, int) for a in whole) else example
            raise ValidationError(f"space {name!r}: int takes whole numbers, got {args}; {hint}")
        if not all(abs(a) <= _EXACT_INT for a in args):
            raise ValidationError(f"space {name!r}: int bounds and step must lie within ±2**53 "
                                  f"({_EXACT_INT:,}), the whole numbers a float (as Optuna keeps them) "
                                  f"holds exactly; {example}")
        step = int(args[2]) if len(args) == 3 else 1
        if step < 1:
            raise ValidationError(f"space {name!r}: the step must be 1 or more; {example}")
        if low > high:
            raise ValidationError(f"space {name!r}: the range [{low}, {high}] is empty (low > high); {example}")
        return Dimension(name, "int", low=int(low), high=int(high), step=step)
    if low >= high:
        raise ValidationError(f"space {name!r}: the range [{low}, {high}] is empty (low must be below high); "
                              f"{example}")
    if kind == "loguniform" and low <= 0:
        raise ValidationError(f"space {name!r}: loguniform needs low > 0 (got {low}); {example}")
    if not math.isfinite(float(high) - float(low)):  # Optuna's samplers scale by the width
        raise ValidationError(f"space {name!r}: the range [{low}, {high}] is too wide: high - low overflows a "
                              f"float; narrow it; {example}")
    return Dimension(name, kind, low=float(low), high=float(high))


def parse_space(space: Any) -> dict[str, Dimension]:
    """Check a search space ``{parameter: distribution}``.

    >>> parse_space({"epochs": {"int": [3, 10]}})["epochs"].grid()
    [3, 4, 5, 6, 7, 8, 9, 10]

    Raises
    ------
    ValidationError
        For an unknown distribution or an empty range, with an example of the right form.
    """
    if not isinstance(space, dict) or not space:
        raise ValidationError(f"space must map parameters to distributions, e.g. "
                              f"{{learning_rate: {DISTRIBUTIONS['loguniform'][0]}, "
                              f"epochs: {{int: [3, 10]}}}}; the forms are {_FORMS}")
    return {str(name): _dimension(str(name), spec) for name, spec in space.items()}


def check_space_keys(space: dict[str, Dimension], params: dict[str, Any], experiment: str = "the experiment"
                     ) -> None:
    """Every searched key must be a parameter of the experiment, and every value it may take
    of the parameter's kind, by the rules overrides follow (:func:`~mlmd_magic.core.values.kept_kind`):
    over a whole-number parameter ``int`` bounds and every ``choice`` are whole numbers (``3.0``
    included, as in overrides: write ``3``) and ``uniform``/``loguniform`` are refused (write
    ``int:``); over a real-valued one, ints are numbers too.

    >>> check_space_keys(parse_space({"epochs": {"choice": [5, 10]}}), {"epochs": 10})
    >>> check_space_keys(parse_space({"epochs": {"choice": [5, 7.5]}}), {"epochs": 10})
    Traceback (most recent call last):
    ...
    mlmd_magic.errors.ValidationError: space 'epochs' (choice) must be a whole number like ..., got 7.5; ...

    Raises
    ------
    ValidationError
        Naming the closest parameter for an unknown key, or the value of another kind.
    """
    flat = flatten(params)
    known = list(flat)
    for name, dim in space.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValidationError(f"space key {name!r} is not a parameter of {experiment}; {hint}"
                                  f"its parameters are {', '.join(known) or 'none'}")
        current = flat[name]
        if dim.kind in ("uniform", "loguniform") and isinstance(current, int) and not isinstance(current, bool):
            example, needs = DISTRIBUTIONS["int"]
            raise ValidationError(f"space {name!r}: the parameter is a whole number ({current}), and {dim.kind} "
                                  f"draws fractions; write {name}: {example} ({needs})")
        for value in dim.samples():
            kept_kind(current, value, f"space {name!r} ({dim.kind})", experiment)


def grid_points(space: dict[str, Dimension]) -> int | None:
    """How many points a grid over ``space`` has (the product of each parameter's count, never
    listed); None when a parameter is a continuous range."""
    size = 1
    for dim in space.values():
        count = dim.count()
        if count is None:
            return None
        size *= count
    return size


def check_grid_size(space: dict[str, Dimension]) -> int:
    """The number of points of a grid over ``space``, refused past :data:`MAX_GRID_POINTS`.

    >>> check_grid_size(parse_space({"epochs": {"int": [3, 10]}, "hidden": {"choice": [[4], [8]]}}))
    16

    Raises
    ------
    ValidationError
        For a continuous range (the grid cannot enumerate it) or too many points, saying what to write.
    """
    continuous = [d.name for d in space.values() if d.count() is None]
    if continuous:
        raise ValidationError(f"the grid sampler needs values to enumerate: write {continuous[0]!r} as "
                              f"{DISTRIBUTIONS['choice'][0]} or {{int: [low, high, step]}}, or "
                              "use sampler: tpe or random")
    size = grid_points(space) or 0
    if size > MAX_GRID_POINTS:
        factors = " × ".join(f"{d.name}: {d.count() or 0:,}" for d in space.values())
        raise ValidationError(f"the grid has {size:,} points ({factors}), more than {MAX_GRID_POINTS:,}; use "
                              "sampler: random or tpe (they draw from the same space), or a coarser step "
                              "({int: [low, high, step]}) or fewer choices")
    return size


def parse_objective(objective: Any) -> Objective:
    """``{"metric": "eval.accuracy", "direction": "maximize"}`` or ``"eval.accuracy"`` (loss-like
    metrics are minimised, others maximised, unless ``direction`` says).

    >>> parse_objective("eval.loss").direction
    'minimize'

    Raises
    ------
    ValidationError
        For a metric not written SPLIT.NAME or a direction other than maximize/minimize.
    """
    example = "objective: {metric: eval.accuracy, direction: maximize}"
    if isinstance(objective, str):
        objective = {"metric": objective}
    if not isinstance(objective, dict) or "metric" not in objective:
        raise ValidationError(f"objective needs a metric, e.g. {example}")
    unknown = sorted(set(map(str, objective)) - {"metric", "direction"})
    if unknown:
        raise ValidationError(f"unknown key(s) {', '.join(map(repr, unknown))} in the objective; e.g. {example}")
    metric = objective["metric"]
    if not isinstance(metric, str) or metric.count(".") != 1 or not all(metric.split(".")):
        raise ValidationError(f"objective metric must be SPLIT.NAME (a split of the data source and a metric "
                              f"the trainer reports), got {metric!r}; e.g. {example}")
    split, name = metric.split(".")
    direction = objective.get("direction")
    if direction is None:
        direction = "minimize" if name.lower() in _LOWER_IS_BETTER else "maximize"
    if direction not in ("maximize", "minimize"):
        raise ValidationError(f"objective direction must be maximize or minimize, got {direction!r}; e.g. {example}")
    return Objective(split, name, str(direction))


def _count(value: Any, what: str, top: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
        raise ValidationError(f"{what} must be a whole number from 1 to {top}, got {value!r}")
    return value


def parse_spec(*, experiment: Any, space: Any, objective: Any, sampler: Any = "tpe", trials: Any = 10,
               workers: Any = 1, seed: Any = 0, description: Any = None) -> SweepSpec:
    """Check every argument of a sweep (the parameters of the experiment are checked by the store).

    Raises
    ------
    ValidationError
        For any argument that is not of the documented form; the message shows the right one.
    """
    if not isinstance(experiment, str) or not experiment:
        raise ValidationError("a sweep needs experiment: NAME (or NAME@N), the experiment each trial overrides")
    if sampler not in SAMPLERS:
        close = difflib.get_close_matches(str(sampler), SAMPLERS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValidationError(f"unknown sampler {sampler!r}; {hint}use one of {', '.join(SAMPLERS)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValidationError(f"seed must be a whole number >= 0, got {seed!r}")
    if description is not None and not isinstance(description, str):
        raise ValidationError("description must be text")
    dims = parse_space(space)
    if sampler == "grid":
        check_grid_size(dims)  # counted, never listed: {int: [1, 1000000000]} would be ~36 GB
    return SweepSpec(experiment=experiment, objective=parse_objective(objective), space=dims, sampler=str(sampler),
                     trials=_count(trials, "trials", MAX_TRIALS), workers=_count(workers, "workers", MAX_WORKERS),
                     seed=seed, description=description or "")


def sweep_arguments(body: Any, where: str = "the cell body") -> dict[str, Any]:
    """Keyword arguments of :meth:`mlmd_magic.Store.sweep` from a ``%%sweep`` body.

    Raises
    ------
    ValidationError
        For a body that is not a mapping, an unknown key or a missing one.
    """
    if not isinstance(body, dict):
        raise ValidationError(f"{where} must be a YAML mapping with experiment, objective, space "
                              "(and sampler, trials, workers, seed, description)")
    body = {str(k): v for k, v in body.items()}
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValidationError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}{hint}; a sweep takes "
                              f"{', '.join(sorted(_KEYS))}")
    missing = [k for k in ("experiment", "objective", "space") if body.get(k) in (None, "")]
    if missing:
        raise ValidationError(f"{where} needs {', '.join(map(repr, missing))}")
    if "experiment" in body and not isinstance(body["experiment"], str):
        body["experiment"] = str(body["experiment"])
    checked: dict[str, Any] = body
    return checked
