"""Any artifact or execution in the store, ours or another tool's (TFX's), read as plain rows.

Foreign types are shown, never changed: this module only reads.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend.listing import Unquotable, newest_first, page_rows, quote
from ..backend.properties import own_custom
from ..backend.types import PREFIX
from ..display.lineage import node_html
from ..errors import NotFoundError, ValidationError
from .lineage import short_type

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ARTIFACT_COLUMNS", "COUNT_CAP", "EXECUTION_COLUMNS", "NodeDetails", "contexts_of", "list_nodes",
           "producers_of", "show_node", "types"]

ARTIFACT_COLUMNS = ["id", "type", "name", "uri", "state", "created", "producer", "properties"]
EXECUTION_COLUMNS = ["id", "type", "name", "state", "created", "component", "properties"]
COUNT_CAP = 10_000  # types(counts=True) stops counting a type here: counting reads the nodes


def types(mlmd: Any, counts: bool = False) -> list[dict[str, Any]]:
    """Every artifact, execution and context type of the store: ``kind``, ``name``, ``ours``, and
    with ``counts`` how many nodes it has (``count``, at most :data:`COUNT_CAP`; ``capped``
    says when there are more)."""
    from ml_metadata.metadata_store import metadata_store as ms

    out = []
    for kind, getter in (("artifact", mlmd.get_artifact_types), ("execution", mlmd.get_execution_types),
                         ("context", mlmd.get_context_types)):
        for t in getter():
            row: dict[str, Any] = {"kind": kind, "name": str(t.name), "ours": str(t.name).startswith(PREFIX)}
            if counts:
                # the type name comes from the store: quoted, never pasted into the filter
                try:
                    options = ms.ListOptions(limit=COUNT_CAP + 1, filter_query=f"type = {quote(str(t.name))}")
                    n = len(getattr(mlmd, f"get_{kind}s")(list_options=options))
                except Unquotable:  # a name no filter query holds (a column's, such as Version): walked by id
                    n = len(list(itertools.islice(newest_first(mlmd, f"{kind}s", str(t.name), t.id), COUNT_CAP + 1)))
                row.update(count=min(n, COUNT_CAP), capped=n > COUNT_CAP)
            out.append(row)
    return out


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "proto_value" or which == "struct_value":
        return str(getattr(value, which))
    return getattr(value, which) if which else None


def list_nodes(mlmd: Any, what: str, type_name: str, predicate: Any, limit: int | None, offset: int
               ) -> pd.DataFrame:
    """``what`` (``artifacts`` or ``executions``) of ``type_name``, newest first, a page at a time.

    ``type_name`` is the type's name, or its short name when one type has it (``Trainer`` for
    ``tfx.components.trainer.component.Trainer``). Artifacts come with the component that
    wrote them (``producer``), read for the whole page at once.

    Raises
    ------
    NotFoundError
        When the store has no such type (the message lists the types it has).
    """
    import pandas as pd
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not isinstance(type_name, str) or not type_name:
        raise ValidationError(f"list({what!r}) needs type=..., e.g. type='Examples'; "
                              "%mlmd types lists the store's types")
    kind = what[:-1]
    found = {t["name"]: t for t in types(mlmd) if t["kind"] == kind}
    by_short = [name for name in found if short_type(name) == type_name]
    if type_name not in found and len(by_short) == 1:  # "Trainer" for tfx.components.trainer.component.Trainer
        type_name = by_short[0]
    if type_name not in found:
        raise NotFoundError(f"this store has no {kind} type {type_name!r}; its {kind} types: "
                            f"{', '.join(sorted(found)) or 'none'} (%mlmd types lists them)")
    getter = mlmd.get_artifact_type if kind == "artifact" else mlmd.get_execution_type
    type_id = getter(type_name).id
    page = 100 if limit is None else min(max(limit + offset, 20), 500)
    states = pb.Artifact.State if kind == "artifact" else pb.Execution.State
    props_of: dict[int, dict[str, Any]] = {}  # the properties of the rows of the batch read

    def rows_of(batch: Sequence[Any]) -> list[dict[str, Any]]:
        props_of.clear()
        rows = []
        for node in batch:
            props = {k: _value(v) for k, v in node.properties.items()}
            props.update({k: _value(v) for k, v in own_custom(node).items()})
            props_of[node.id] = props
            state = node.state if kind == "artifact" else node.last_known_state
            row = {"id": node.id, "type": type_name, "name": node.name, "state": states.Name(state),
                   "created": node.create_time_since_epoch,
                   "properties": json.dumps(props, sort_keys=True, default=str)}
            if kind == "artifact":
                row["uri"] = node.uri
            else:
                row["component"] = _component(node, type_name)
            rows.append(row)
        return rows

    # a filter sees a node's properties beside its fields (a property named as a field hides it)
    rows = page_rows(newest_first(mlmd, what, type_name, type_id, page), rows_of, predicate, limit, offset, page,
                     view=lambda row: {**row, **props_of[row["id"]]})
    if kind == "artifact":
        producers = producers_of(mlmd, [r["id"] for r in rows])
        for r in rows:
            r["producer"] = producers.get(r["id"], "")
    frame = pd.DataFrame(rows, columns=ARTIFACT_COLUMNS if kind == "artifact" else EXECUTION_COLUMNS)
    if not frame.empty:
        frame["created"] = pd.to_datetime(frame["created"], unit="ms", utc=True)
    return frame


def _component(execution: Any, type_name: str) -> str:
    """TFX names a component run by its ``component_id`` property; else the type's short name."""
    if "component_id" in execution.properties and execution.properties["component_id"].string_value:
        return str(execution.properties["component_id"].string_value)
    return short_type(type_name)


def producers_of(mlmd: Any, artifact_ids: list[int]) -> dict[int, str]:
    """The component (or action) that wrote each artifact, read in three calls for all of them."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not artifact_ids:
        return {}
    made = {e.artifact_id: e.execution_id for e in mlmd.get_events_by_artifact_ids(artifact_ids)
            if e.type == pb.Event.OUTPUT}
    if not made:
        return {}
    type_names = {t.id: str(t.name) for t in mlmd.get_execution_types()}
    executions = {e.id: e for e in mlmd.get_executions_by_id(sorted(set(made.values())))}
    return {aid: f"{_component(executions[eid], type_names.get(executions[eid].type_id, ''))} #{eid}"
            for aid, eid in made.items() if eid in executions}


@dataclass(frozen=True)
class NodeDetails:
    """One artifact or execution, any tool's, as plain values: what :meth:`Store.show` returns.

    ``links`` are the executions that wrote or read an artifact (or the artifacts an execution
    read and wrote): ``{"direction", "key", "id", "type", "label"}``; ``contexts`` the
    pipeline, run and component-run contexts (``{"id", "type", "name"}``) it belongs to.
    """

    kind: str  # "artifact" or "execution"
    id: int
    type: str
    name: str
    uri: str
    state: str
    created_ms: int
    updated_ms: int
    properties: dict[str, Any]
    custom_properties: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``Examples #12`` or ``Trainer #7``."""
        return f"{short_type(self.type)} #{self.id}"

    @property
    def producer(self) -> dict[str, Any] | None:
        """The execution that wrote this artifact (None for an execution, or an artifact nobody wrote)."""
        return next((link for link in self.links if link["direction"] == "output"), None) \
            if self.kind == "artifact" else None

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain values (JSON-serialisable)."""
        return {"kind": self.kind, "id": self.id, "type": self.type, "label": self.label, "name": self.name,
                "uri": self.uri, "state": self.state, "created_ms": self.created_ms, "updated_ms": self.updated_ms,
                "properties": dict(self.properties), "custom_properties": dict(self.custom_properties),
                "links": list(self.links), "contexts": list(self.contexts)}

    def __repr__(self) -> str:
        lines = [f"{self.kind} {self.label}  ({self.type})"]
        for key in ("name", "uri", "state"):
            if getattr(self, key):
                lines.append(f"  {key}: {getattr(self, key)}")
        for title, values in (("properties", self.properties), ("custom properties", self.custom_properties)):
            if values:
                lines.append(f"  {title}:")
                lines += [f"    {k}: {v}" for k, v in sorted(values.items())]
        for link in self.links:
            verb = {"output": "written by" if self.kind == "artifact" else "wrote",
                    "input": "read by" if self.kind == "artifact" else "read"}[link["direction"]]
            lines.append(f"  {verb} {link['label']}" + (f" as {link['key']}" if link["key"] else ""))
        for ctx in self.contexts:
            lines.append(f"  in {ctx['type']} {ctx['name']}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return node_html(self.to_dict())


def show_node(mlmd: Any, target: Any) -> NodeDetails:
    """The artifact (``ID``, ``"ID"``, ``"artifact:ID"``) or execution (``"execution:ID"``) ``target``.

    Raises
    ------
    NotFoundError
        When the store has no such artifact or execution (the message names it).
    ValidationError
        When ``target`` is none of these forms.
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    kind, node_id = _parse_target(target)
    if kind == "artifact":
        found = mlmd.get_artifacts_by_id([node_id]) if node_id > 0 else []
    else:
        found = mlmd.get_executions_by_id([node_id]) if node_id > 0 else []
    if not found:
        raise NotFoundError(f"no {kind} with id {node_id} in this store; %mlmd ls TYPE lists them "
                            "(%mlmd types names the types)")
    node = found[0]
    if kind == "artifact":
        type_names = {t.id: str(t.name) for t in mlmd.get_artifact_types()}
        events = mlmd.get_events_by_artifact_ids([node.id])
        other_types = {t.id: str(t.name) for t in mlmd.get_execution_types()}
        others = {e.id: e for e in mlmd.get_executions_by_id(sorted({ev.execution_id for ev in events}))} \
            if events else {}
        state = pb.Artifact.State.Name(node.state)
        contexts = contexts_of(mlmd, "artifact", node.id)
    else:
        type_names = {t.id: str(t.name) for t in mlmd.get_execution_types()}
        events = mlmd.get_events_by_execution_ids([node.id])
        other_types = {t.id: str(t.name) for t in mlmd.get_artifact_types()}
        others = {a.id: a for a in mlmd.get_artifacts_by_id(sorted({ev.artifact_id for ev in events}))} \
            if events else {}
        state = pb.Execution.State.Name(node.last_known_state)
        contexts = contexts_of(mlmd, "execution", node.id)
    links = []
    for ev in sorted(events, key=lambda e: (e.type, e.execution_id, e.artifact_id)):
        other_id = ev.execution_id if kind == "artifact" else ev.artifact_id
        other = others.get(other_id)
        if other is None or ev.type not in (pb.Event.INPUT, pb.Event.OUTPUT, pb.Event.DECLARED_INPUT,
                                            pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_INPUT,
                                            pb.Event.INTERNAL_OUTPUT):
            continue
        other_type = other_types.get(other.type_id, "")
        label = (_component(other, other_type) if kind == "artifact" else short_type(other_type)) + f" #{other_id}"
        links.append({"direction": "input" if "INPUT" in pb.Event.Type.Name(ev.type) else "output",
                      "key": next((s.key for s in ev.path.steps if s.HasField("key")), ""),
                      "id": other_id, "type": other_type, "label": label})
    context_types = {t.id: str(t.name) for t in mlmd.get_context_types()}
    return NodeDetails(
        kind=kind, id=node.id, type=type_names.get(node.type_id, ""), name=node.name,
        uri=getattr(node, "uri", "") if kind == "artifact" else "", state=state,
        created_ms=node.create_time_since_epoch, updated_ms=node.last_update_time_since_epoch,
        properties={k: _value(v) for k, v in node.properties.items()},
        custom_properties={k: _value(v) for k, v in own_custom(node).items()},
        links=links,
        contexts=[{"id": c.id, "type": context_types.get(c.type_id, ""), "name": c.name}
                  for c in sorted(contexts, key=lambda c: c.id)])


def contexts_of(mlmd: Any, kind: str, node_id: int) -> list[Any]:
    """The contexts an artifact or execution belongs to (none: an empty list, where MLMD raises)."""
    from ml_metadata import errors as mlmd_errors

    try:
        return list(getattr(mlmd, f"get_contexts_by_{kind}")(node_id))
    except mlmd_errors.NotFoundError:
        return []


def _parse_target(target: Any) -> tuple[str, int]:
    import re

    if isinstance(target, int) and not isinstance(target, bool):
        return "artifact", target
    if isinstance(target, str):
        match = re.fullmatch(r"(?:(artifact|execution|a|e):)?([0-9]+)", target.strip())
        if match:
            kind = {"a": "artifact", "e": "execution", None: "artifact"}.get(match.group(1), match.group(1))
            return str(kind), int(match.group(2))
    raise ValidationError(f"show takes an artifact id (42 or artifact:42) or execution:ID, got {target!r}")
