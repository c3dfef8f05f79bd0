"""Any artifact or execution in the store, ours or another tool's (TFX's), read as plain rows.

Foreign types are shown, never changed: this module only reads.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..backend.listing import newest_first
from ..backend.types import PREFIX
from ..errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ARTIFACT_COLUMNS", "list_nodes", "types"]

ARTIFACT_COLUMNS = ["id", "type", "name", "uri", "state", "created", "properties"]


def types(mlmd: Any) -> list[dict[str, Any]]:
    """Every artifact, execution and context type of the store: ``kind``, ``name``, ``ours``."""
    out = []
    for kind, getter in (("artifact", mlmd.get_artifact_types), ("execution", mlmd.get_execution_types),
                         ("context", mlmd.get_context_types)):
        for t in getter():
            out.append({"kind": kind, "name": str(t.name), "ours": str(t.name).startswith(PREFIX)})
    return out


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "proto_value" or which == "struct_value":
        return str(getattr(value, which))
    return getattr(value, which) if which else None


def list_nodes(mlmd: Any, what: str, type_name: str, predicate: Any, limit: int | None, offset: int
               ) -> pd.DataFrame:
    """``what`` (``artifacts`` or ``executions``) of ``type_name``, newest first, a page at a time.

    Raises
    ------
    NotFoundError
        When the store has no such type (the message lists the types it has).
    """
    import pandas as pd
    from ml_metadata.proto import metadata_store_pb2 as pb

    kind = what[:-1]
    found = {t["name"]: t for t in types(mlmd) if t["kind"] == kind}
    if type_name not in found:
        raise NotFoundError(f"this store has no {kind} type {type_name!r}; its {kind} types: "
                            f"{', '.join(sorted(found)) or 'none'} (%mlmd types lists them)")
    getter = mlmd.get_artifact_type if kind == "artifact" else mlmd.get_execution_type
    type_id = getter(type_name).id
    page = 100 if limit is None else min(max(limit + offset, 20), 500)
    rows: list[dict[str, Any]] = []
    skip = offset
    states = pb.Artifact.State if kind == "artifact" else pb.Execution.State
    for node in newest_first(mlmd, what, type_name, type_id, page):
        props = {k: _value(v) for k, v in node.properties.items()}
        props.update({k: _value(v) for k, v in node.custom_properties.items()})
        state = node.state if kind == "artifact" else node.last_known_state
        row = {"id": node.id, "type": type_name, "name": node.name, "uri": getattr(node, "uri", ""),
               "state": states.Name(state), "created": node.create_time_since_epoch,
               "properties": json.dumps(props, sort_keys=True, default=str)}
        if not predicate({**row, **props}):
            continue
        if skip:
            skip -= 1
            continue
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    frame = pd.DataFrame(rows, columns=ARTIFACT_COLUMNS)
    if not frame.empty:
        frame["created"] = pd.to_datetime(frame["created"], unit="ms", utc=True)
    return frame
