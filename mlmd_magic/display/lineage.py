"""The drawing of a lineage graph (:class:`~mlmd_magic.store.lineage.Lineage`): its layout, an
inline SVG, and HTML whose nodes reveal their records when clicked; and the HTML of one
artifact or execution (:class:`~mlmd_magic.store.artifacts.NodeDetails`).

The graph is read through the public attributes a :class:`Graph` names (the display layer
reads no store).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .html import Html, esc, table

__all__ = ["BOX_H", "BOX_W", "COLOURS", "GAP_X", "GAP_Y", "Graph", "GraphNode", "fields_html", "layout",
           "lineage_html", "lineage_svg", "node_html"]

COLOURS = {"files": "#eeeeee", "DataSource": "#d8ecff", "Scenario": "#e7ddff", "Experiment": "#fff1c7",
           "Model": "#d9f5dc", "Evaluation": "#ffd9d9", "Policy": "#f5e6d9", "PushedModel": "#c9f0e8",
           "execution": "#ffffff"}  # a node's fill by its kind; another tool's types: #f5f5f5
BOX_W, BOX_H, GAP_X, GAP_Y = 170, 34, 24, 36  # a node's box and the gaps between boxes and layers
_DRAWINGS = itertools.count()  # lineage drawings made by this process (their HTML ids)

Position = tuple[float, float]


class GraphNode(Protocol):
    """A node of a :class:`Graph` (a :class:`~mlmd_magic.store.lineage.Node`)."""

    @property
    def key(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def fields(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def state(self) -> str: ...


class Graph(Protocol):
    """What the drawing reads of a lineage graph: nodes, edges (``(from, to)`` keys), the node
    in focus and the positions of :func:`layout`."""

    @property
    def focus(self) -> str: ...

    @property
    def nodes(self) -> Sequence[GraphNode]: ...

    @property
    def edges(self) -> Sequence[tuple[str, str]]: ...

    def layout(self) -> tuple[dict[str, Position], float, float]: ...


def layout(keys: Sequence[str], edges: Sequence[tuple[str, str]],
           depth: Mapping[str, int]) -> tuple[dict[str, Position], float, float]:
    """Top-down layered positions: a node's layer is its ``depth`` (its longest path from a
    source); within a layer, nodes are ordered by the mean position of their inputs (the
    barycentre rule of Sugiyama layouts), which keeps edges from crossing in these mostly
    tree-like graphs.

    Returns ``({key: (x, y) of the box's top-left}, width, height)``.
    """
    layers: dict[int, list[str]] = {}
    for key in sorted(keys):
        layers.setdefault(depth[key], []).append(key)
    order: dict[str, float] = {}
    for level in sorted(layers):
        keys_of = layers[level]
        first = {k: float(i) for i, k in enumerate(keys_of)}

        def centre(key: str, first: dict[str, float] = first) -> float:
            parents = [order[a] for a, b in edges if b == key and a in order]
            return sum(parents) / len(parents) if parents else first[key]

        keys_of.sort(key=lambda k: (centre(k), k))
        for i, key in enumerate(keys_of):
            order[key] = float(i)
    widest = max((len(v) for v in layers.values()), default=1)
    width = 20 + widest * (BOX_W + GAP_X) - GAP_X
    height = 20 + len(layers) * (BOX_H + GAP_Y) - GAP_Y
    pos: dict[str, Position] = {}
    for level, keys_of in layers.items():
        offset = (widest - len(keys_of)) * (BOX_W + GAP_X) / 2  # each layer centred
        for i, key in enumerate(keys_of):
            pos[key] = (10 + offset + i * (BOX_W + GAP_X), 10 + level * (BOX_H + GAP_Y))
    return pos, float(width), float(height)


def lineage_svg(graph: Graph, clickable: str = "") -> str:
    """The graph, top-down, scaled to the cell's width (``viewBox``, ``width=100%``) but never
    drawn larger than its natural size. With ``clickable`` (an id prefix), each node is a
    label that reveals its record below the graph (see :func:`lineage_html`)."""
    pos, width, height = graph.layout()
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' width='100%' "
             f"style='max-width:{width:.0f}px' font-family='sans-serif' font-size='11' class='mlmd-magic-graph'>",
             "<defs><marker id='mlmd-arrow' markerWidth='8' markerHeight='8' refX='8' refY='4' orient='auto'>"
             "<path d='M0,0 L8,4 L0,8 z' fill='#555'/></marker></defs>"]
    for a, b in graph.edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        sx, sy, tx, ty = x1 + BOX_W / 2, y1 + BOX_H, x2 + BOX_W / 2, y2
        if ty - sy > GAP_Y + 1:  # an edge that skips layers bends around the boxes between
            side = -1 if sx <= tx else 1
            bend = tx + side * (BOX_W / 2 + GAP_X / 2)
            path = (f"M{sx:.1f},{sy:.1f} C{bend:.1f},{sy + GAP_Y:.1f} {bend:.1f},{ty - GAP_Y:.1f} "
                    f"{tx:.1f},{ty:.1f}")
        else:
            path = f"M{sx:.1f},{sy:.1f} L{tx:.1f},{ty:.1f}"
        parts.append(f"<path d='{path}' fill='none' stroke='#555' marker-end='url(#mlmd-arrow)'/>")
    for i, node in enumerate(graph.nodes):
        x, y = pos[node.key]
        fill = COLOURS.get(node.kind, "#f5f5f5")
        stroke = "#c00" if node.key == graph.focus else "#888"
        dashes = ""
        if node.state:  # did not complete: dashed (red when it failed), greyed
            stroke = "#c00" if node.state == "failed" else stroke
            dashes, fill = " stroke-dasharray='4 3'", "#f3f3f3"
        radius = 14 if node.kind == "execution" else 3
        label = node.label if len(node.label) <= 26 else node.label[:25] + "…"
        parts.append(f"<g class='mlmd-magic-node' data-key='{esc(node.key)}'>"
                     f"<rect x='{x:.1f}' y='{y:.1f}' width='{BOX_W}' height='{BOX_H}' rx='{radius}' "
                     f"fill='{fill}' stroke='{stroke}'{dashes}><title>{esc(node.label)}</title></rect>")
        if clickable:
            # an HTML label inside the SVG: clicking it checks the node's radio button, which
            # CSS turns into "show this node's record" — no script, no server
            parts.append(f"<foreignObject x='{x:.1f}' y='{y:.1f}' width='{BOX_W}' height='{BOX_H}'>"
                         f"<label xmlns='http://www.w3.org/1999/xhtml' for='{clickable}-{i}' "
                         f"title='{esc(node.label)}' style='display:block;width:100%;height:100%;"
                         f"box-sizing:border-box;padding:9px 6px;cursor:pointer;overflow:hidden;"
                         f"white-space:nowrap;font:11px sans-serif'>{esc(label)}</label></foreignObject>")
        else:
            parts.append(f"<text x='{x + 6:.1f}' y='{y + 21:.1f}'>{esc(label)}</text>")
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def lineage_html(graph: Graph) -> str:
    """The graph with clickable nodes: clicking one shows its record (type, name, URI and
    properties) under the graph, in the same output and without a kernel."""
    # unique within a page (each drawing's radios and rules are its own), yet the same on every
    # run of a notebook: from what is drawn and how many drawings this process made before
    # (kinds, labels and edges by position: no absolute paths, so a checkout anywhere gives the same)
    index = {n.key: i for i, n in enumerate(graph.nodes)}
    shape = ";".join(f"{n.kind}:{n.label}" for n in graph.nodes) + "|" + ",".join(
        f"{index[a]}>{index[b]}" for a, b in sorted(graph.edges) if a in index and b in index)
    drawn = f"{next(_DRAWINGS)}:{shape}".encode()
    uid = "mlmd-lineage-" + hashlib.sha256(drawn).hexdigest()[:10]
    radios = "".join(f"<input type='radio' name='{uid}' id='{uid}-{i}' class='mlmd-magic-pick'/>"
                     for i in range(len(graph.nodes)))
    rules = "".join(f"#{uid}-{i}:checked ~ .mlmd-magic-records > .mlmd-magic-record-{i}{{display:block}}"
                    f"#{uid}-{i}:checked ~ svg .mlmd-magic-node:nth-of-type({i + 1}) rect"
                    "{stroke-width:3}" for i in range(len(graph.nodes)))
    panels = "".join(
        f"<div class='mlmd-magic-record mlmd-magic-record-{i}' data-key='{esc(n.key)}'>"
        f"<b>{esc(n.label)}</b>{fields_html(n.fields)}</div>"
        for i, n in enumerate(graph.nodes))
    return (f"<div class='mlmd-magic-lineage' id='{uid}'><style>#{uid} .mlmd-magic-pick{{display:none}}"
            f"#{uid} .mlmd-magic-record{{display:none;margin-top:6px;padding:6px;border:1px solid #ccc}}"
            f"{rules}</style>{radios}{lineage_svg(graph, uid)}<div class='mlmd-magic-records'>{panels}</div>"
            "<div style='font-size:11px;color:#666'>click a node to see its record</div></div>")


def fields_html(fields: Sequence[tuple[str, str]]) -> str:
    """A node's record, key by key: JSON values indented, a value of several lines kept as laid out."""
    rows = []
    for key, value in fields:
        shown = value
        if value[:1] in "{[":
            try:
                shown = json.dumps(json.loads(value), indent=1, sort_keys=False)
            except ValueError:
                pass
        body = Html(f"<pre style='margin:0'>{esc(shown)}</pre>") if "\n" in shown else shown
        rows.append([Html(f"<th style='text-align:left;vertical-align:top'>{esc(key)}</th>"), body])
    return table(rows)


def node_html(node: Mapping[str, Any]) -> str:
    """One artifact or execution (the fields of
    :meth:`NodeDetails.to_dict <mlmd_magic.store.artifacts.NodeDetails.to_dict>`): name, URI,
    state and properties, then the events that link it and the contexts it belongs to."""
    rows: list[list[Any]] = [[Html(f"<th>{esc(k)}</th>"), str(node[k])] for k in ("name", "uri", "state")
                             if node[k]]
    for title, values in (("property", node["properties"]), ("custom property", node["custom_properties"])):
        rows += [[Html(f"<th>{esc(k)}</th>"), Html(f"{esc(str(v))} <small>({title})</small>")]
                 for k, v in sorted(values.items())]
    links = "".join(f"<li>{esc(link['direction'])}: {esc(link['label'])}"
                    f"{' as ' + esc(link['key']) if link['key'] else ''}</li>" for link in node["links"])
    contexts = "".join(f"<li>{esc(c['type'])}: {esc(c['name'])}</li>" for c in node["contexts"])
    return (f"<div class='mlmd-magic-node'><b>{esc(node['kind'])} {esc(node['label'])}</b> "
            f"<code>{esc(node['type'])}</code>{table(rows)}"
            + (f"<details open><summary>events</summary><ul>{links}</ul></details>" if links else "")
            + (f"<details open><summary>contexts</summary><ul>{contexts}</ul></details>" if contexts else "")
            + "</div>")
