"""Reading and writing MLMD node properties (artifacts, executions, contexts) as plain values,
and the *flat* custom properties that let MLMD's filter query find records by their values.

A record version keeps its parameters as one JSON property (``params``), which a filter query
cannot look into. Experiment and scenario versions therefore also carry each parameter as a
custom property of its own, ``param.NAME`` (nested ones dotted: ``param.optimizer.lr``), and
models each metric as ``metric.SPLIT.NAME``, typed: whole numbers that fit MLMD's 32-bit
``int_value`` (booleans as 0/1) there, other numbers as ``double_value``, strings and lists
(their canonical JSON) up to :data:`FLAT_TEXT` characters as ``string_value``. ``flat`` says
which version of this layout a node has (:data:`FLAT_VERSION`). They are an index: readers
never take values from them, only the records' own properties.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from typing import Any

from ..core.values import canonical_json

__all__ = ["FLAT", "FLAT_LEAVES", "FLAT_MARK", "FLAT_TEXT", "FLAT_TYPES", "FLAT_VERSION", "METRIC", "PARAM", "created",
           "drop_empty_properties", "flat_column", "flat_key", "flat_metrics", "flat_name", "flat_params",
           "flat_values", "has_flat", "name_of", "own_custom", "set_properties", "text"]

FLAT = "flat"  # the custom property saying which layout of flat properties a node has
FLAT_VERSION = 1
# a property declared on a type (never set on its nodes) once every node of it carries flat
# values: a type created with them has it; Store.index_filters adds it after giving older nodes theirs
FLAT_MARK = f"flat_values_v{FLAT_VERSION}"
FLAT_TYPES = ("Experiment", "Scenario", "Model")  # the types whose nodes carry flat values
PARAM = "param."  # a parameter's flat custom property: param.NAME
METRIC = "metric."  # a model's metric: metric.SPLIT.NAME
FLAT_TEXT = 1000  # the longest string (or list, as JSON) kept flat
FLAT_LEAVES = 500  # a node with more values than this keeps none flat (each is a row MLMD writes)
INT32 = 2 ** 31  # MLMD's int_value is a 32-bit INT on MySQL: whole numbers beyond it are doubles
DOUBLE_MAX = 1e300  # larger numbers are kept as +-1e300 (order kept); filters beyond it read every record
_FLAT_KEY = re.compile(r"[a-z0-9_][a-z0-9_.:/@-]{0,199}")


def set_properties(node: Any, **values: Any) -> None:
    """Set ``node.properties[key]`` from plain values; ``None`` and defaults are left out.

    Booleans and ints become ``int_value``, floats ``double_value``, anything else
    ``string_value``. An empty string is a default: it is not written (each property is a
    row in MLMD's tables, and a reader gets ``""`` for an absent string property anyway).
    """
    props = node.properties
    for key, value in values.items():
        kind = type(value)
        if kind is str:  # the plain types first, without a call each
            if value:
                props[key].string_value = value
        elif kind is int:
            props[key].int_value = value
        elif kind is float:
            props[key].double_value = value
        elif value is None or (isinstance(value, str) and value == ""):
            continue
        elif isinstance(value, bool) or isinstance(value, int):
            props[key].int_value = int(value)
        elif isinstance(value, float):
            props[key].double_value = value
        else:
            props[key].string_value = str(value)


def text(props: Any, key: str) -> str:
    """A string property, or ``""`` when absent, without inserting it (protobuf maps insert on read)."""
    return str(props[key].string_value) if key in props else ""


def drop_empty_properties(node: Any) -> None:
    """Remove map entries that reading an absent property created; MLMD rejects a property without a value."""
    for props in (node.properties, node.custom_properties):
        if props:
            for key in [k for k, v in props.items() if v.WhichOneof("value") is None]:
                del props[key]


def name_of(artifact: Any) -> str:
    """A record artifact is named ``NAME@VERSION`` (a sweep's trial ``NAME@N~SWEEP@V#K``): its record name."""
    return str(artifact.name).split("@", 1)[0]


def created(node: Any) -> _dt.datetime:
    """When MLMD created ``node``, as an aware UTC datetime."""
    return _dt.datetime.fromtimestamp(node.create_time_since_epoch / 1000, tz=_dt.timezone.utc)


def flat_key(path: str) -> bool:
    """Whether a value's dotted ``path`` (``optimizer.lr``) is its flat property's name as it
    is: lower-case ASCII letters, digits and ``_ . : / @ -``, at most 200 characters. MLMD's
    filter query reads a property's name as a case-insensitive identifier (it asks for
    ``param.lr`` when told ``param.LR``) and matches it with a regular expression built from it
    (``+``, ``(`` and the like break it), then writes it into its SQL in double quotes.

    >>> flat_key("optimizer.lr"), flat_key("learning rate"), flat_key('a"b'), flat_key("hiddenUnits")
    (True, False, False, False)
    """
    return _FLAT_KEY.fullmatch(path) is not None


def flat_name(prefix: str, path: str) -> str:
    """The flat property of the value at ``path``: ``prefix + path``, or for a path that is not
    a :func:`flat_key`, ``prefix + "=" +`` the first 32 hex digits of its SHA-256.

    >>> flat_name("param.", "optimizer.lr"), flat_name("param.", "learning rate")
    ('param.optimizer.lr', 'param.=8212edf3a3a76018cb51de4daf97fe0c')
    """
    if flat_key(path):
        return prefix + path
    return prefix + "=" + hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def flat_column(value: Any) -> tuple[str, Any] | None:
    """Where a value is kept flat: ``(column, value)``, or None for a value that is not
    (None, an empty mapping, a string or list longer than :data:`FLAT_TEXT` characters).

    >>> flat_column(True), flat_column(7), flat_column(2 ** 40)
    (('int_value', 1), ('int_value', 7), ('double_value', 1099511627776.0))
    >>> flat_column(0.5), flat_column([8, 4]), flat_column(None)
    (('double_value', 0.5), ('string_value', '[8,4]'), None)
    """
    if isinstance(value, bool):
        return "int_value", int(value)
    if isinstance(value, int):
        if -INT32 <= value < INT32:
            return "int_value", value
        return "double_value", _bounded(value)
    if isinstance(value, float):
        return ("double_value", _bounded(value)) if not math.isnan(value) else None
    if isinstance(value, str):
        return ("string_value", value) if len(value) <= FLAT_TEXT else None
    if isinstance(value, list):
        encoded = canonical_json(value)
        return ("string_value", encoded) if len(encoded) <= FLAT_TEXT else None
    return None


def _bounded(number: float) -> float:
    try:
        as_float = float(number)
    except OverflowError:
        as_float = math.inf if number > 0 else -math.inf
    return max(-DOUBLE_MAX, min(DOUBLE_MAX, as_float))


def flat_values(prefix: str, values: Any) -> dict[str, tuple[str, Any]]:
    """The flat properties of ``values`` (a mapping; nested keys dotted) under ``prefix``:
    ``{name: (column, value)}``. Every key is there, so that the store can say which keys any
    record has: one whose value is not kept (None, a mapping, a long string) as ``""``.

    >>> flat_values("param.", {"epochs": 5, "opt": {"name": "sgd"}})
    {'param.epochs': ('int_value', 5), 'param.opt': ('string_value', ''), 'param.opt.name': ('string_value', 'sgd')}
    """
    out: dict[str, tuple[str, Any]] = {}
    stack = [("", values)] if isinstance(values, dict) else []
    while stack:
        path, value = stack.pop(0)
        if isinstance(value, dict) and (value or not path):
            # a key holding a dot (or none) is one no filter can name: a dotted key walks into mappings
            stack[:0] = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()
                         if str(key) and "." not in str(key)]
        if path:
            out[flat_name(prefix, path)] = flat_column(value) or ("string_value", "")
    return out


def _set_flat(node: Any, values: dict[str, tuple[str, Any]]) -> None:
    """Write ``values`` and the mark; more than :data:`FLAT_LEAVES` of them are not written, and
    the mark says so (``-FLAT_VERSION``: every listing asked by flat values reads the node)."""
    custom = node.custom_properties
    if len(values) > FLAT_LEAVES:
        custom[FLAT].int_value = -FLAT_VERSION
        return
    for name, (column, value) in values.items():
        setattr(custom[name], column, value)
    custom[FLAT].int_value = FLAT_VERSION


def flat_params(node: Any) -> None:
    """Give an experiment or scenario version (an artifact with a ``params`` property) its
    ``param.*`` flat properties and the ``flat`` mark; its own properties stay as they are."""
    raw = text(node.properties, "params")
    try:
        params = json.loads(raw) if raw else {}
    except ValueError:
        params = {}
    _set_flat(node, flat_values(PARAM, params))


def flat_metrics(node: Any, metrics: Any) -> None:
    """Give a model artifact its ``metric.SPLIT.NAME`` flat properties and the ``flat`` mark."""
    _set_flat(node, flat_values(METRIC, metrics))


def has_flat(node: Any) -> bool:
    """Whether ``node`` carries the current layout of flat properties (or is marked as having
    too many values to keep flat, see :data:`FLAT_LEAVES`)."""
    custom = node.custom_properties
    return FLAT in custom and abs(custom[FLAT].int_value) >= FLAT_VERSION


def own_custom(node: Any) -> dict[str, Any]:
    """``node``'s custom properties less the flat copies of its values (on a node that has them;
    another tool's ``param.x`` stays): what a person reading the node wants to see."""
    custom = node.custom_properties
    if not has_flat(node):
        return dict(custom.items())
    return {k: v for k, v in custom.items() if not (k == FLAT or k.startswith((PARAM, METRIC)))}
