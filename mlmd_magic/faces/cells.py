"""YAML for people: the bodies of ``%%datasource`` / ``%%scenario`` / ``%%experiment`` /
``%%evaluate`` cells, ``--set`` values and the files of ``mlmd-magic export`` / ``import``.

Parsed bodies are record specs (:mod:`mlmd_magic.core.specs`)::

    %%datasource NAME          %%scenario NAME              %%experiment NAME
    uri: data/nipt-sim         model: mlp                   datasource: nipt-sim
    format: tfrecord           params:                      scenario: mlp-small@2
    label: label                 hidden: [64, 32]           overrides:
    splits:                      epochs: 10                   epochs: 5
      train: train/*.tfrecord  description: small MLP       description: first try
      eval: eval.tfrecord

A scenario body without ``params:`` takes every key but ``model`` and ``description``
as a parameter.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ValidationError

_MAX_BODY = 1_000_000


def load_yaml(text: str, where: str = "the cell body", line_offset: int = 0) -> Any:
    """Parse YAML safely (no tags that build objects); errors name the line and column.

    ``line_offset`` is added to line numbers (1 for a cell body below its ``%%magic`` line).

    >>> load_yaml("a: 1\\nb: [2, 3]")
    {'a': 1, 'b': [2, 3]}
    """
    if len(text) > _MAX_BODY:
        raise ValidationError(f"{where} is larger than {_MAX_BODY} characters")
    try:
        # libyaml's safe loader when the wheel has it (10x faster), else the pure-Python one
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1 + line_offset}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        started = ""
        if exc.context and exc.context_mark and exc.problem and exc.context_mark is not mark:
            cm = exc.context_mark
            started = f" ({exc.context} at line {cm.line + 1 + line_offset}, column {cm.column + 1})"
        raise ValidationError(f"YAML error in {where}{at}: {problem}{started}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValidationError(f"YAML error in {where}: {str(exc).splitlines()[0][:200]}") from None


def dump_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=None))


