"""A data source made from another tool's ``Examples`` artifact (TFX's ExampleGen or Transform).

TFX writes each split under ``<uri>/Split-<name>/`` as gzip-compressed TFRecords of
``tf.train.Example`` (custom properties ``file_format = tfrecords_gzip`` and ``payload_format
= FORMAT_TF_EXAMPLE``), names the splits in the ``split_names`` property (a JSON list), and
the SchemaGen of the same pipeline run writes the feature schema as ``schema.pbtxt``. This
module reads those, and nothing of TFX's is written.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from ..core.tfxschema import read_schema
from ..errors import DataSourceError, NotFoundError, ValidationError
from .artifacts import contexts_of

__all__ = ["ExamplesSource", "examples_source", "merge_features"]

_GZIP_FORMATS = {"tfrecords_gzip", "FORMAT_TFRECORDS_GZIP"}
_PLAIN_FORMATS = {"tfrecord", "tfrecords", "FORMAT_TFRECORD"}
_RUN_CONTEXTS = ("run", "pipeline_run")  # TFX's legacy orchestrator / its IR-based one
_MAX_ID = 2**63 - 1  # MLMD's ids are signed 64-bit integers


@dataclass(frozen=True)
class ExamplesSource:
    """Where an ``Examples`` artifact's files are and what the pipeline says of them."""

    artifact: Any  # the MLMD artifact (read only)
    uri: str
    splits: dict[str, str]  # split name -> its folder under uri
    schema: dict[str, dict[str, Any]] | None  # from the run's Schema artifact, when there is one
    schema_artifact: int | None


def examples_source(mlmd: Any, target: Any) -> ExamplesSource:
    """Read the ``Examples`` artifact ``target`` (an id) and the Schema of its pipeline run.

    Raises
    ------
    NotFoundError
        When no artifact has that id.
    ValidationError
        When the artifact is not TFRecords of ``tf.train.Example`` or has no splits.
    DataSourceError
        When its ``uri`` (or a split folder) is missing: the message names the path.
    """
    aid = _artifact_id(target)
    found = mlmd.get_artifacts_by_id([aid])
    if not found:
        raise NotFoundError(f"no artifact with id {aid}: from_artifact needs the id of an Examples artifact "
                            "(%mlmd ls Examples lists them)")
    art = found[0]
    type_name = next((str(t.name) for t in mlmd.get_artifact_types() if t.id == art.type_id), "")
    label = f"{type_name or 'artifact'} #{aid}"
    if "split_names" not in art.properties and "split_names" not in art.custom_properties:
        raise ValidationError(f"{label} has no split_names: from_artifact takes an Examples artifact "
                              "(TFX's ExampleGen or Transform output; %mlmd ls Examples lists them)")
    fmt = _custom(art, "file_format") or "tfrecords_gzip"  # TFX's default when unset
    if fmt not in _GZIP_FORMATS | _PLAIN_FORMATS:
        raise ValidationError(f"{label} holds {fmt!r} files; a data source reads TFRecords (tfrecords_gzip)")
    payload = _custom(art, "payload_format") or "FORMAT_TF_EXAMPLE"
    if payload != "FORMAT_TF_EXAMPLE":
        raise ValidationError(f"{label} holds {payload}; a data source reads tf.train.Example (FORMAT_TF_EXAMPLE)")
    raw = (art.properties.get("split_names") or art.custom_properties["split_names"]).string_value
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValidationError(f"{label} has split_names {raw!r}; expected a JSON list such as [\"train\", \"eval\"]")
    uri = str(art.uri)
    if not uri or "://" in uri:
        raise DataSourceError(f"{label} has uri {uri!r}, which is not a local folder; copy the files here and "
                              "register them with uri=... instead")
    if not os.path.isdir(uri):
        raise DataSourceError(f"{label}'s files are missing: {uri!r} does not exist (moved or deleted?); "
                              "restore the pipeline root or register the files where they are now with uri=...")
    splits = {}
    for name in names:
        folder = f"Split-{name}"
        if not os.path.isdir(os.path.join(uri, folder)):
            raise DataSourceError(f"{label}'s split {name!r} is missing: {os.path.join(uri, folder)!r} does not "
                                  "exist (moved or deleted?)")
        splits[name] = folder
    schema_art = _run_schema(mlmd, art)
    schema = read_schema(schema_art.uri) if schema_art is not None else None
    return ExamplesSource(art, uri, splits, schema, schema_art.id if schema_art is not None else None)


def merge_features(schema: dict[str, dict[str, Any]] | None, inferred: dict[str, dict[str, Any]], label: str
                   ) -> dict[str, dict[str, Any]]:
    """The schema's features (their shapes from the files where the schema has none), or the
    inferred ones without a schema; never the label."""
    if schema is None:
        return {k: v for k, v in inferred.items() if k != label}
    out = {}
    for name, spec in sorted(schema.items()):
        if name == label:
            continue
        shape = spec["shape"] or (inferred.get(name) or {}).get("shape") or [1]
        out[name] = {"dtype": spec["dtype"], "shape": shape}
    return out


def _artifact_id(target: Any) -> int:
    """``target`` (``12``, ``"12"``, ``"artifact:12"``) as an MLMD artifact id: checked here, since
    MLMD fails on an id beyond its 64 bits with an error that says nothing of the argument."""
    aid: int | None = None
    if isinstance(target, int) and not isinstance(target, bool):
        aid = target
    elif isinstance(target, str):
        digits = target.strip().removeprefix("artifact:")
        if re.fullmatch(r"[0-9]+", digits):
            digits = digits.lstrip("0") or "0"
            # int() of over 4,300 digits raises; anything past 19 digits is out of range anyway
            aid = int(digits) if len(digits) <= 20 else _MAX_ID + 1
    if aid is None or not 1 <= aid <= _MAX_ID:
        if isinstance(target, int) and target.bit_length() > 128:  # repr() of over 4,300 digits raises
            shown = "a whole number of more than 38 digits"
        else:
            shown = repr(target) if len(repr(target)) <= 40 else f"{repr(target)[:37]}..."
        raise ValidationError(f"from_artifact takes an artifact id, a whole number from 1 to 2**63 - 1 (e.g. 12; "
                              f"%mlmd ls Examples lists them), got {shown}")
    return aid


def _custom(art: Any, key: str) -> str:
    for props in (art.custom_properties, art.properties):
        if key in props:
            value = props[key]
            return str(getattr(value, value.WhichOneof("value") or "string_value"))
    return ""


def _run_schema(mlmd: Any, art: Any) -> Any:
    """The newest Schema artifact of the pipeline run ``art`` belongs to, or None."""
    run_types = {t.id for t in mlmd.get_context_types() if t.name in _RUN_CONTEXTS}
    schema_type = next((t.id for t in mlmd.get_artifact_types() if t.name == "Schema"), None)
    if not run_types or schema_type is None:
        return None
    for ctx in contexts_of(mlmd, "artifact", art.id):
        if ctx.type_id in run_types:
            schemas = [a for a in mlmd.get_artifacts_by_context(ctx.id) if a.type_id == schema_type]
            if schemas:
                return max(schemas, key=lambda a: a.id)
    return None
