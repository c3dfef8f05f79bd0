"""Lineage: the chain from data files through records, runs, models and evaluations.

Walks MLMD's events from one artifact up- and downstream, through every execution type
(TFX's components as well as our actions; our own reads are left out, they made nothing),
a level at a time with batched reads, and returns a :class:`Lineage` that draws itself as an
inline SVG graph in notebooks and as text elsewhere.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from .records import Records
    from .runs import Runs

_PRODUCERS = {"RegisterDataSource", "AddScenario", "DefineExperiment", "Train", "Evaluate", "AddPolicy", "Push"}
_COLOURS = {"files": "#eeeeee", "DataSource": "#d8ecff", "Scenario": "#e7ddff", "Experiment": "#fff1c7",
            "Model": "#d9f5dc", "Evaluation": "#ffd9d9", "Policy": "#f5e6d9", "PushedModel": "#c9f0e8",
            "execution": "#ffffff"}


_UNFINISHED = {"FAILED": "failed", "RUNNING": "running", "CANCELED": "canceled", "NEW": "new"}
_DRAWINGS = itertools.count()  # lineage drawings made by this process (their HTML ids)


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
        depth = self._depths()
        layers: dict[int, list[str]] = {}
        for node in sorted(self.nodes, key=lambda n: n.key):
            layers.setdefault(depth[node.key], []).append(node.key)
        order: dict[str, float] = {}
        for level in sorted(layers):
            keys = layers[level]
            first = {k: float(i) for i, k in enumerate(keys)}

            def centre(key: str, first: dict[str, float] = first) -> float:
                parents = [order[a] for a, b in self.edges if b == key and a in order]
                return sum(parents) / len(parents) if parents else first[key]

            keys.sort(key=lambda k: (centre(k), k))
            for i, key in enumerate(keys):
                order[key] = float(i)
        widest = max((len(v) for v in layers.values()), default=1)
        width = 20 + widest * (_BOX_W + _GAP_X) - _GAP_X
        height = 20 + len(layers) * (_BOX_H + _GAP_Y) - _GAP_Y
        pos: dict[str, tuple[float, float]] = {}
        for level, keys in layers.items():
            offset = (widest - len(keys)) * (_BOX_W + _GAP_X) / 2  # each layer centred
            for i, key in enumerate(keys):
                pos[key] = (10 + offset + i * (_BOX_W + _GAP_X), 10 + level * (_BOX_H + _GAP_Y))
        return pos, float(width), float(height)

    def _svg(self, clickable: str = "") -> str:
        """The graph, top-down, scaled to the cell's width (``viewBox``, ``width=100%``) but never
        drawn larger than its natural size. With ``clickable`` (an id prefix), each node is a
        label that reveals its record below the graph (see :meth:`_repr_html_`)."""
        pos, width, height = self.layout()
        parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' width='100%' "
                 f"style='max-width:{width:.0f}px' font-family='sans-serif' font-size='11' class='mlmd-magic-graph'>",
                 "<defs><marker id='mlmd-arrow' markerWidth='8' markerHeight='8' refX='8' refY='4' orient='auto'>"
                 "<path d='M0,0 L8,4 L0,8 z' fill='#555'/></marker></defs>"]
        for a, b in self.edges:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            sx, sy, tx, ty = x1 + _BOX_W / 2, y1 + _BOX_H, x2 + _BOX_W / 2, y2
            if ty - sy > _GAP_Y + 1:  # an edge that skips layers bends around the boxes between
                side = -1 if sx <= tx else 1
                bend = tx + side * (_BOX_W / 2 + _GAP_X / 2)
                path = (f"M{sx:.1f},{sy:.1f} C{bend:.1f},{sy + _GAP_Y:.1f} {bend:.1f},{ty - _GAP_Y:.1f} "
                        f"{tx:.1f},{ty:.1f}")
            else:
                path = f"M{sx:.1f},{sy:.1f} L{tx:.1f},{ty:.1f}"
            parts.append(f"<path d='{path}' fill='none' stroke='#555' marker-end='url(#mlmd-arrow)'/>")
        for i, node in enumerate(self.nodes):
            x, y = pos[node.key]
            fill = _COLOURS.get(node.kind, "#f5f5f5")
            stroke = "#c00" if node.key == self.focus else "#888"
            dashes = ""
            if node.state:  # did not complete: dashed (red when it failed), greyed
                stroke = "#c00" if node.state == "failed" else stroke
                dashes, fill = " stroke-dasharray='4 3'", "#f3f3f3"
            radius = 14 if node.kind == "execution" else 3
            label = node.label if len(node.label) <= 26 else node.label[:25] + "…"
            parts.append(f"<g class='mlmd-magic-node' data-key='{html.escape(node.key)}'>"
                         f"<rect x='{x:.1f}' y='{y:.1f}' width='{_BOX_W}' height='{_BOX_H}' rx='{radius}' "
                         f"fill='{fill}' stroke='{stroke}'{dashes}><title>{html.escape(node.label)}</title></rect>")
            if clickable:
                # an HTML label inside the SVG: clicking it checks the node's radio button, which
                # CSS turns into "show this node's record" — no script, no server
                parts.append(f"<foreignObject x='{x:.1f}' y='{y:.1f}' width='{_BOX_W}' height='{_BOX_H}'>"
                             f"<label xmlns='http://www.w3.org/1999/xhtml' for='{clickable}-{i}' "
                             f"title='{html.escape(node.label)}' style='display:block;width:100%;height:100%;"
                             f"box-sizing:border-box;padding:9px 6px;cursor:pointer;overflow:hidden;"
                             f"white-space:nowrap;font:11px sans-serif'>{html.escape(label)}</label></foreignObject>")
            else:
                parts.append(f"<text x='{x + 6:.1f}' y='{y + 21:.1f}'>{html.escape(label)}</text>")
            parts.append("</g>")
        parts.append("</svg>")
        return "".join(parts)

    def _repr_svg_(self) -> str:
        return self._svg()

    def _repr_html_(self) -> str:
        """The graph with clickable nodes: clicking one shows its record (type, name, URI and
        properties) under the graph, in the same output and without a kernel."""
        # unique within a page (each drawing's radios and rules are its own), yet the same on every
        # run of a notebook: from what is drawn and how many drawings this process made before
        # (kinds, labels and edges by position: no absolute paths, so a checkout anywhere gives the same)
        index = {n.key: i for i, n in enumerate(self.nodes)}
        shape = ";".join(f"{n.kind}:{n.label}" for n in self.nodes) + "|" + ",".join(
            f"{index[a]}>{index[b]}" for a, b in sorted(self.edges) if a in index and b in index)
        drawn = f"{next(_DRAWINGS)}:{shape}".encode()
        uid = "mlmd-lineage-" + hashlib.sha256(drawn).hexdigest()[:10]
        radios = "".join(f"<input type='radio' name='{uid}' id='{uid}-{i}' class='mlmd-magic-pick'/>"
                         for i in range(len(self.nodes)))
        rules = "".join(f"#{uid}-{i}:checked ~ .mlmd-magic-records > .mlmd-magic-record-{i}{{display:block}}"
                        f"#{uid}-{i}:checked ~ svg .mlmd-magic-node:nth-of-type({i + 1}) rect"
                        "{stroke-width:3}" for i in range(len(self.nodes)))
        panels = "".join(
            f"<div class='mlmd-magic-record mlmd-magic-record-{i}' data-key='{html.escape(n.key)}'>"
            f"<b>{html.escape(n.label)}</b>{_fields_html(n.fields)}</div>"
            for i, n in enumerate(self.nodes))
        return (f"<div class='mlmd-magic-lineage' id='{uid}'><style>#{uid} .mlmd-magic-pick{{display:none}}"
                f"#{uid} .mlmd-magic-record{{display:none;margin-top:6px;padding:6px;border:1px solid #ccc}}"
                f"{rules}</style>{radios}{self._svg(uid)}<div class='mlmd-magic-records'>{panels}</div>"
                "<div style='font-size:11px;color:#666'>click a node to see its record</div></div>")


_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 170, 34, 24, 36


def _fields_html(fields: tuple[tuple[str, str], ...]) -> str:
    rows = []
    for key, value in fields:
        shown = value
        if value[:1] in "{[":
            try:
                shown = json.dumps(json.loads(value), indent=1, sort_keys=False)
            except ValueError:
                pass
        body = f"<pre style='margin:0'>{html.escape(shown)}</pre>" if "\n" in shown else html.escape(shown)
        rows.append(f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(key)}</th><td>{body}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


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
    """A node's properties and custom properties as text, in name order."""
    out = []
    for props in (node.properties, node.custom_properties):
        for name in sorted(props):
            which = props[name].WhichOneof("value")
            if which:
                out.append((name, str(getattr(props[name], which))))
    return tuple(out)
