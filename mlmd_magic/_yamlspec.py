"""Record specs as YAML: the bodies of ``%%datasource`` / ``%%scenario`` / ``%%experiment``
cells and the files of ``mlmd-magic export`` / ``import``. One module serves all of them.

Bodies::

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

from ._records import Record, normalise_kind
from .errors import ValidationError
from .store import Store

_KEYS = {
    "datasources": {"uri", "format", "splits", "label", "description", "features"},
    "scenarios": {"model", "params", "description"},
    "experiments": {"datasource", "scenario", "overrides", "description"},
}
_REQUIRED = {
    "datasources": ("uri", "format", "splits", "label"),
    "scenarios": ("model",),
    "experiments": ("datasource", "scenario"),
}
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


def spec_arguments(kind: str, body: Any, where: str = "the cell body") -> dict[str, Any]:
    """Check a parsed body and turn it into keyword arguments of the library call."""
    kind = normalise_kind(kind)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationError(f"{where} must be a YAML mapping (key: value lines), got {type(body).__name__}")
    body = {str(k): v for k, v in body.items()}
    if kind == "scenarios" and "params" not in body:
        params = {k: v for k, v in body.items() if k not in ("model", "description", "kind", "name")}
        body = {k: v for k, v in body.items() if k in ("model", "description")} | {"params": params}
    body.pop("kind", None)
    body.pop("name", None)
    unknown = sorted(set(body) - _KEYS[kind])
    if unknown:
        raise ValidationError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {where}; "
            f"a {kind[:-1]} takes {', '.join(sorted(_KEYS[kind]))}"
        )
    missing = [k for k in _REQUIRED[kind] if k not in body or body[k] in (None, "")]
    if missing:
        raise ValidationError(f"{where} needs {', '.join(map(repr, missing))} for a {kind[:-1]}")
    if kind == "scenarios" and body.get("params") is None:
        body["params"] = {}
    for key in ("description", "uri", "format", "label", "model", "datasource", "scenario"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            body[key] = str(body[key])
    checked: dict[str, Any] = body
    return checked


def register(store: Store, kind: str, name: str, body: Any, where: str = "the cell body") -> Record:
    """Register (or version) the record described by a parsed YAML body."""
    kind = normalise_kind(kind)
    args = spec_arguments(kind, body, where)
    if kind == "datasources":
        return store.add_datasource(name, **args)
    if kind == "scenarios":
        return store.add_scenario(name, **args)
    return store.experiment(name, **args)


def export_spec(record: Record) -> dict[str, Any]:
    """The YAML-ready spec of a record, which :func:`register` turns back into it."""
    data = record.data
    if record.kind == "datasources":
        spec = {k: data[k] for k in ("uri", "format", "splits", "label", "features")}
        spec["description"] = data["description"]
    elif record.kind == "scenarios":
        spec = {"model": data["model"], "params": data["params"], "description": data["description"]}
    else:
        spec = {
            "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
            "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}",
            "overrides": record.extra.get("overrides", {}),
            "description": record.extra.get("description", ""),
        }
    return {"kind": record.kind[:-1], "name": record.name, **spec}


def dump_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=None))


_EVALUATION_KEYS = {"data", "slices", "thresholds", "baseline", "class_names"}


def evaluation_arguments(body: Any, where: str = "the cell body") -> dict[str, Any]:
    """Keyword arguments of :meth:`Store.evaluate` from a YAML body (``%%evaluate``, ``--spec``)::

        data: test                      # or nipt-sim@2:test
        baseline: t21-baseline@1        # an experiment ref, model:ID or run:ID
        class_names: [euploid, T21, T18, T13]
        slices:
          - {feature: fetal_fraction, bins: [0.04, 0.08], names: [ff_low, ff_mid, ff_high]}
        thresholds:
          - {metric: accuracy, lower: 0.95, slices: [ff_mid, ff_high]}
    """
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationError(f"{where} must be a YAML mapping with keys {', '.join(sorted(_EVALUATION_KEYS))}")
    unknown = sorted(set(map(str, body)) - _EVALUATION_KEYS)
    if unknown:
        raise ValidationError(f"unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                              f"an evaluation takes {', '.join(sorted(_EVALUATION_KEYS))}")
    return {str(k): v for k, v in body.items()}
