"""The HTML of a release (:mod:`mlmd_magic.store.release`): a model card — shown in notebooks
and written as ``model_card.html`` — and a push."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .html import Html, esc, table

__all__ = ["card_html", "card_page"]


def card_html(card: Mapping[str, Any]) -> str:
    """The card (Model Card Toolkit field names) as HTML: details, data per split, each policy's
    verdict, metrics per slice."""
    details, parameters = card["model_details"], card["model_parameters"]
    analysis = card["quantitative_analysis"]
    data = [[d["name"], d["examples"], json.dumps(d["label_distribution"]),
             Html(f"<code>{esc(d['fingerprint'][:16])}</code>")] for d in parameters["data"]]
    parts = [f"<div class='mlmd-magic-model-card'><h3>Model card: {esc(details['name'])}</h3>",
             f"<p>{esc(details['overview'])}</p>",
             f"<p><small>version {esc(details['version']['name'])}, {esc(details['version']['date'])}; "
             f"owners: {esc(', '.join(o['name'] for o in details['owners']) or '—')}; path "
             f"<code>{esc(details['path'])}</code></small></p>",
             f"<h4>Model parameters</h4><p>{esc(parameters['model_architecture'])}</p>",
             f"<p>input: {esc(parameters['input_format'])}<br>output: {esc(parameters['output_format'])}</p>",
             table(data, head=["data", "examples", "label distribution", "fingerprint"]),
             "<h4>Quantitative analysis</h4>"]
    for p in analysis["policies"]:
        colour = "green" if p["verdict"] == "BLESSED" else "crimson"
        parts.append(f"<p><b>{esc(p['policy'])}</b> on {esc(p['split'])}: "
                     f"<b style='color:{colour}'>{esc(p['verdict'])}</b> (evaluation #{p['evaluation']})</p>")
        if p["failed_checks"]:
            parts.append("<ul>" + "".join(f"<li>✗ {esc(c)}</li>" for c in p["failed_checks"]) + "</ul>")
        rows = [m for m in analysis["performance_metrics"] if m["evaluation"] == p["evaluation"]]
        slices = list(dict.fromkeys(m["slice"] for m in rows))
        metrics = list(dict.fromkeys(m["type"] for m in rows))
        cell = {(m["type"], m["slice"]): m["value"] + (f" {m['threshold'][0]}" if m["threshold"] else "") for m in rows}
        parts.append(table([[m, *(cell.get((m, s), "") for s in slices)] for m in metrics],
                           head=["metric", *slices], cls="mlmd-magic-card-metrics"))
    if not analysis["policies"]:
        parts.append("<p>no evaluation on record</p>")
    limitations = card["considerations"]["limitations"]
    if limitations:
        parts.append("<h4>Considerations: limitations</h4><ul>"
                     + "".join(f"<li>{esc(x['description'])}</li>" for x in limitations) + "</ul>")
    parts.append(f"<h4>Lineage</h4><p><small>{esc(details['documentation'])}</small></p></div>")
    return "".join(parts)


def card_page(card: Mapping[str, Any], body: str | None = None) -> str:
    """``model_card.html``: a page of its own around :func:`card_html` (or ``body``, the card's
    HTML already made)."""
    shown = card_html(card) if body is None else body
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model card "
            f"{esc(card['model_details']['name'])}</title></head><body>{shown}</body></html>")

