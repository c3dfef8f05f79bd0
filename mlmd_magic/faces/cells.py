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
    # libyaml's safe loader when the wheel has it (10x faster), else the pure-Python one
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()  # the node graph: an alias is one more edge to a shared node
        if node is None:
            return None
        if "*" in text:
            _check_expansion(node, where)
        return loader.construct_document(node)
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
    finally:
        loader.dispose()


def _check_expansion(root: Any, where: str) -> None:
    """Refuse a document whose aliases expand it past :data:`_MAX_BODY` characters — before
    anything is expanded.

    Each node's expanded size (a scalar's length, plus one for each node) is computed once,
    children first, on the composed graph where an alias is a shared node: linear in the
    size of the text. Nine nested lists of nine aliases each fit in 522 characters and
    expand to 387 million strings.
    """
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being sized: met again, the alias is recursive
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children = _children(node)
        if not children_done:
            if key in open_:
                raise ValidationError(f"{where} holds a recursive YAML alias (a value that contains itself); "
                                      "write the value out instead")
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_.discard(key)
        total = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        total += sum(size[id(child)] for child in children)
        if total > _MAX_BODY:
            raise ValidationError(
                f"the YAML aliases (*name) in {where} expand it to more than {_MAX_BODY:,} characters; "
                "write the values out, or keep large values in files and record their paths"
            )
        size[key] = total


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def dump_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=None))


