"""Record specs: what defines a data source, scenario or experiment, as a plain mapping.

The bodies of ``%%datasource`` / ``%%scenario`` / ``%%experiment`` cells, the files of
``mlmd-magic export`` / ``import`` and :meth:`mlmd_magic.Store.export` all use these specs;
this module checks them and turns them into the library's keyword arguments (no YAML here:
the faces parse it)::

    datasource                 scenario                     experiment
    uri: data/nipt-sim         model: mlp                   datasource: nipt-sim
    format: tfrecord           params:                      scenario: mlp-small@2
    label: label                 hidden: [64, 32]           overrides:
    splits:                      epochs: 10                   epochs: 5
      train: train/*.tfrecord  description: small MLP       description: first try
      eval: eval.tfrecord

A scenario spec without ``params:`` takes every key but ``model`` and ``description`` as a
parameter.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ..errors import ValidationError
from .record import Record
from .values import normalise_kind, singular

__all__ = ["evaluation_arguments", "export_spec", "spec_arguments"]

_KEYS = MappingProxyType({
    "datasources": frozenset({"uri", "format", "splits", "label", "description", "features", "label_names",
                              "from_artifact"}),
    "scenarios": frozenset({"model", "params", "description"}),
    "experiments": frozenset({"datasource", "scenario", "overrides", "description"}),
    "policies": frozenset({"slices", "thresholds", "description", "owner"}),
})
_REQUIRED = MappingProxyType({
    "datasources": ("uri", "format", "splits", "label"),
    "scenarios": ("model",),
    "experiments": ("datasource", "scenario"),
    "policies": ("thresholds",),
})

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
            f"a {singular(kind)} takes {', '.join(sorted(_KEYS[kind]))}"
        )
    required = _REQUIRED[kind]
    if kind == "datasources" and body.get("from_artifact") not in (None, ""):
        required = ("label",)  # the artifact gives uri, format and splits
    missing = [k for k in required if k not in body or body[k] in (None, "")]
    if missing:
        raise ValidationError(f"{where} needs {', '.join(map(repr, missing))} for a {singular(kind)}")
    if kind == "scenarios" and body.get("params") is None:
        body["params"] = {}
    for key in ("description", "uri", "format", "label", "model", "datasource", "scenario", "owner"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            body[key] = str(body[key])
    checked: dict[str, Any] = body
    return checked


def export_spec(record: Record) -> dict[str, Any]:
    """The YAML-ready spec of a record, which :func:`register` turns back into it."""
    data = record.data
    if record.kind == "datasources":
        spec = {k: data[k] for k in ("uri", "format", "splits", "label", "features")}
        spec["description"] = data["description"]
        if data.get("label_names"):
            spec["label_names"] = data["label_names"]
    elif record.kind == "scenarios":
        spec = {"model": data["model"], "params": data["params"], "description": data["description"]}
    elif record.kind == "policies":
        spec = {k: data[k] for k in ("slices", "thresholds", "description", "owner")}
    else:
        spec = {
            "datasource": f"{data['datasource']['name']}@{data['datasource']['version']}",
            "scenario": f"{data['scenario']['name']}@{data['scenario']['version']}",
            "overrides": record.extra.get("overrides", {}),
            "description": record.extra.get("description", ""),
        }
    return {"kind": singular(record.kind), "name": record.name, **spec}


_EVALUATION_KEYS = frozenset({"data", "slices", "thresholds", "baseline", "class_names", "policy"})


def evaluation_arguments(body: Any, where: str = "the cell body") -> dict[str, Any]:
    """Keyword arguments of :meth:`Store.evaluate` from a YAML body (``%%evaluate``, ``--spec``)::

        data: test                      # or nipt-sim@2:test
        baseline: t21-baseline@1        # an experiment ref, model:ID or run:ID
        policy: release-nipt            # or a release policy's slices and thresholds (NAME or NAME@N)
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
