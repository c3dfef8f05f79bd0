"""Lineage: the chain from data files through records, runs, models and evaluations.

Walks MLMD's events from one artifact up- and downstream, through every execution type
(TFX's components as well as our actions; our own reads are left out, they made nothing),
a level at a time with batched reads, and returns a :class:`Lineage` that draws itself as an
inline SVG graph in notebooks and as text elsewhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend.properties import own_custom
from ..display.lineage import layout, lineage_html, lineage_svg
from ..errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from .records import Records
    from .runs import Runs

_PRODUCERS = {"RegisterDataSource", "AddScenario", "DefineExperiment", "Train", "Evaluate", "AddPolicy", "Push"}

_UNFINISHED = {"FAILED": "failed", "RUNNING": "running", "CANCELED": "canceled", "NEW": "new"}


@dataclass(frozen=True)
class Node:
    key: str
    kind: str  # files, DataSource, Scenario, Experiment, Model, Evaluation, execution, or a foreign type
    label: str
    fields: tuple[tuple[str, str], ...] = ()  # what clicking the node shows: URI, properties
    state: str = ""  # executions that did not complete: "failed", "canceled", "running", "new"


@dataclass(frozen=True)
class Lineage:
    """Nodes and edges (``(from, to)`` keys) around ``focus``."""

    focus: str
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """Nodes (key, kind, label) and edges as plain values."""
        return {"focus": self.focus, "nodes": [n.__dict__ for n in self.nodes], "edges": [list(e) for e in self.edges]}

    def _depths(self) -> dict[str, int]:
        depth = {n.key: 0 for n in self.nodes}
        for _ in range(len(self.nodes)):
            changed = False
            for a, b in self.edges:
                if depth[b] < depth[a] + 1:
                    depth[b] = depth[a] + 1
                    changed = True
            if not changed:
                break
        return depth

    def __repr__(self) -> str:
        by_key = {n.key: n for n in self.nodes}
        depth = self._depths()
        lines = [f"lineage of {by_key[self.focus].label}"]
        for node in sorted(self.nodes, key=lambda n: (depth[n.key], n.key)):
            inputs = [by_key[a].label for a, b in self.edges if b == node.key]
            mark = " *" if node.key == self.focus else ""
            arrow = f"  <- {', '.join(inputs)}" if inputs else ""
            lines.append(f"{'  ' * depth[node.key]}{node.label}{mark}{arrow}")
        return "\n".join(lines)

    def layout(self) -> tuple[dict[str, tuple[float, float]], float, float]:
        """Top-down layered positions: a node's layer is its longest path from a source; within
        a layer, nodes are ordered by the mean position of their inputs (the barycentre rule
        of Sugiyama layouts), which keeps edges from crossing in these mostly tree-like graphs.

        Returns ``({key: (x, y) of the box's top-left}, width, height)``.
        """
        return layout([n.key for n in self.nodes], self.edges, self._depths())

    def _repr_svg_(self) -> str:
        return lineage_svg(self)

    def _repr_html_(self) -> str:
        """The graph with clickable nodes: clicking one shows its record (type, name, URI and
        properties) under the graph, in the same output and without a kernel."""
        return lineage_html(self)


def short_type(name: str) -> str:
    """How a type is labelled: ours without ``mlmd_magic.``, another tool's by its last dotted part
    (``tfx.components.trainer.component.Trainer`` -> ``Trainer``)."""
    return name.split(".", 1)[1] if name.startswith("mlmd_magic.") else name.rsplit(".", 1)[-1]


def lineage(mlmd: Any, start: Any, max_nodes: int = 150) -> Lineage:
    """The lineage graph around the artifact ``start`` (see :func:`start_artifact`).

    Follows every execution type, ours and other tools' (TFX's components), except our own
    read actions (fetching, listing, showing), which made nothing. The walk goes level by
    level, reading each level's events, executions and artifacts in one call each, and stops
    at ``max_nodes`` nodes.
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    artifact_types = {t.id: t.name for t in mlmd.get_artifact_types()}
    execution_types = {t.id: t.name for t in mlmd.get_execution_types()}
    skipped = {tid for tid, name in execution_types.items()
               if name.startswith("mlmd_magic.") and short_type(name) not in _PRODUCERS}
    nodes: dict[str, Node] = {}
    edges: set[tuple[str, str]] = set()
    _add_artifact(nodes, edges, start, artifact_types)
    # Ancestors (what it was made from) and descendants (what was made from it), not siblings.
    for upstream in (True, False):
        towards, away = (pb.Event.OUTPUT, pb.Event.INPUT) if upstream else (pb.Event.INPUT, pb.Event.OUTPUT)
        seen_artifacts: set[int] = {start.id}
        seen_executions: set[int] = set()
        shown: set[int] = set()
        frontier = [start.id]
        while frontier and len(nodes) < max_nodes:
            events = mlmd.get_events_by_artifact_ids(frontier)
            exec_ids = sorted({e.execution_id for e in events if e.type == towards} - seen_executions)
            fetched = mlmd.get_executions_by_id(exec_ids) if exec_ids else []
            executions = [e for e in fetched if e.type_id not in skipped]
            seen_executions.update(exec_ids)
            kept = {e.id for e in executions}
            shown |= kept
            linked = {(e.execution_id, e.artifact_id) for e in events if e.type == towards}
            for execution in executions:
                ekey = f"e:{execution.id}"
                label = f"{short_type(execution_types.get(execution.type_id, 'execution'))} #{execution.id}"
                state_name = pb.Execution.State.Name(execution.last_known_state)
                state = _UNFINISHED.get(state_name, "")
                if state:  # a refused push, a failed or cancelled run: not drawn like one that completed
                    label += f" ({state})"
                nodes.setdefault(ekey, Node(ekey, "execution", label, (("state", state_name), *_fields(execution)),
                                            state))
            for eid, aid in linked:
                if eid in shown:  # an execution met at an earlier level made (or read) this one too
                    edges.add((f"e:{eid}", f"a:{aid}") if upstream else (f"a:{aid}", f"e:{eid}"))
            follow = [e for e in mlmd.get_events_by_execution_ids(sorted(kept)) if e.type == away] if kept else []
            new_ids = sorted({e.artifact_id for e in follow} - seen_artifacts)[: max(max_nodes - len(nodes), 0)]
            for art in mlmd.get_artifacts_by_id(new_ids) if new_ids else []:
                _add_artifact(nodes, edges, art, artifact_types)
            for ev in follow:
                akey, ekey = f"a:{ev.artifact_id}", f"e:{ev.execution_id}"
                edges.add((akey, ekey) if upstream else (ekey, akey))
            seen_artifacts.update(new_ids)
            frontier = new_ids if kept else []
    keys = set(nodes)
    # keep edges whose both ends made it into the graph (the walk stops at max_nodes)
    kept_edges = tuple(sorted((a, b) for a, b in edges if a in keys and b in keys))
    return Lineage(f"a:{start.id}", tuple(nodes.values()), kept_edges)


def start_artifact(records: Records, runs: Runs, target: Any, kind: str | None = None) -> Any:
    """The artifact a lineage walk starts from: ``NAME[@N]`` (of ``kind``), ``model:ID``,
    ``run:ID`` (its model) or an artifact id (int or digits).

    Raises
    ------
    NotFoundError
        When nothing in the store answers to ``target``; the message names it.
    ValidationError
        When ``target`` is none of these forms.
    """
    from ..core.values import normalise_kind

    if isinstance(target, str) and target.startswith(("model:", "run:")):
        return runs.resolve_model(target)
    if isinstance(target, str) and re.fullmatch(r"[0-9]+", target):
        target = int(target)
    if isinstance(target, int) and not isinstance(target, bool):
        found = records.mlmd.get_artifacts_by_id([target]) if target > 0 else []
        if not found:
            raise NotFoundError(f"no artifact with id {target} in {records.recorder.label}; give a record (NAME or "
                                "NAME@N), model:ID or run:ID (see %mlmd ls runs / ls models)")
        return found[0]
    if not isinstance(target, str):
        raise ValidationError(f"lineage needs a record (NAME or NAME@N), model:ID, run:ID or an artifact id, "
                              f"got {type(target).__name__}")
    k = records.kind_of(target) if kind is None else kind
    return records.resolve(normalise_kind(k), target)


def _add_artifact(nodes: dict[str, Node], edges: set[tuple[str, str]], art: Any, types: dict[int, str]) -> None:
    type_name = types.get(art.type_id, "artifact")
    ours = type_name.startswith("mlmd_magic.")
    short = short_type(type_name)
    key = f"a:{art.id}"
    # another tool's artifact names are long paths (pipeline:run:component:key:index): its id says it
    label = f"{short} {art.name}" if art.name and ours else f"{short} #{art.id}"
    if short in ("Evaluation", "ModelBlessing") and "blessed" in art.custom_properties:
        label += " ✓" if art.custom_properties["blessed"].int_value else " ✗"
    nodes[key] = Node(key, short, label, (("id", str(art.id)), ("uri", art.uri), *_fields(art)))
    if short == "DataSource" and "splits" in art.properties:
        for split, pattern in sorted(json.loads(art.properties["splits"].string_value).items()):
            fkey = f"f:{art.uri}/{pattern}"
            nodes.setdefault(fkey, Node(fkey, "files", f"{split}: {os.path.join(os.path.basename(art.uri), pattern)}",
                                        (("files", os.path.join(art.uri, pattern)),)))
            edges.add((fkey, key))


def _fields(node: Any) -> tuple[tuple[str, str], ...]:
    """A node's properties and custom properties as text, in name order; the flat copies of its
    parameters and metrics kept for filter queries (``param.*``, ``metric.*``, ``flat``) are left
    out: they repeat what the node's own fields say."""
    out = []
    for props in (dict(node.properties.items()), own_custom(node)):
        for name in sorted(props):
            which = props[name].WhichOneof("value")
            if which:
                out.append((name, str(getattr(props[name], which))))
    return tuple(out)
