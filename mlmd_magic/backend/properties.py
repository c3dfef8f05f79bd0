"""Reading and writing MLMD node properties (artifacts, executions, contexts) as plain values."""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["created", "drop_empty_properties", "name_of", "set_properties", "text"]


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
