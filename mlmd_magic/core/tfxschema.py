"""TFX's feature schema (``schema.pbtxt``, a text-format ``tensorflow_metadata`` ``Schema``) as
the feature dict of a data source: ``{name: {"dtype": "float" | "int64" | "bytes", "shape": [...]}}``.

Parsed with ``tensorflow_metadata``'s own proto and protobuf's ``text_format``, never by hand.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any

from ..errors import DataSourceError

__all__ = ["SCHEMA_FILE", "read_schema"]

SCHEMA_FILE = "schema.pbtxt"  # what TFX's SchemaGen writes under its artifact's uri
_DTYPES = MappingProxyType({"FLOAT": "float", "INT": "int64", "BYTES": "bytes"})


def read_schema(folder: str) -> dict[str, dict[str, Any]]:
    """The features of ``folder/schema.pbtxt``; a feature without a fixed shape gets ``shape: None``
    (the caller takes it from the files).

    Raises
    ------
    DataSourceError
        When the file is missing or is not a text-format Schema (the message names the path).
    """
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = os.path.join(folder, SCHEMA_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise DataSourceError(f"cannot read the schema {path!r}: {exc.strerror}; was the pipeline root moved?") \
            from None
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise DataSourceError(f"{path!r} is not a TFX schema (text-format tensorflow_metadata Schema): {exc}") \
            from None
    features: dict[str, dict[str, Any]] = {}
    for feature in schema.feature:
        dtype = _DTYPES.get(schema_pb2.FeatureType.Name(feature.type))
        if dtype is None:  # STRUCT and unset types hold no values a model reads
            continue
        shape = [int(d.size) for d in feature.shape.dim] if feature.HasField("shape") else None
        features[str(feature.name)] = {"dtype": dtype, "shape": shape or None}
    return features
