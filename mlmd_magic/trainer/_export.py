"""A trained model as a TensorFlow SavedModel for TF Serving, with a serving signature that
takes the data source's features by name (one tensor each) — no MLMD here."""

from __future__ import annotations

import os
from typing import Any

from ._data import input_spec
from ._quiet import import_keras

__all__ = ["export_saved_model", "serving_inputs"]


def serving_inputs(params: dict[str, Any]) -> list[tuple[str, str, int]]:
    """``(feature, dtype, width)`` of each input the model reads, in the order it reads them."""
    spec = input_spec(params["datasource"], params.get("params") or {})
    schema = params["datasource"].get("features") or {}
    return [(name, "int64" if (schema.get(name) or {}).get("dtype") == "int64" else "float32", width)
            for name, width in zip(spec.features, spec.widths)]


def export_saved_model(params: dict[str, Any], model_path: str, export_dir: str) -> dict[str, Any]:
    """Write the Keras model at ``model_path`` as a SavedModel in ``export_dir`` (which must not
    exist) with a ``serving_default`` signature: one input per feature (shape ``[batch]``, or
    ``[batch, width]`` for a wider one), output ``scores`` (the model's output).

    Returns the signature as plain values (``inputs``: ``{feature: {dtype, shape}}``).
    """
    keras = import_keras()
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)
    inputs = serving_inputs(params)
    specs = [tf.TensorSpec([None] if width == 1 else [None, width], getattr(tf, dtype), name=name)
             for name, dtype, width in inputs]

    def serve(*features: Any) -> dict[str, Any]:
        parts = [tf.reshape(tf.cast(value, tf.float32), [-1, width])
                 for value, (_, _, width) in zip(features, inputs)]
        return {"scores": model(tf.concat(parts, axis=1), training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=specs)
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    archive.write_out(export_dir, verbose=False)
    return {"inputs": {name: {"dtype": dtype, "shape": [None] if width == 1 else [None, width]}
                       for name, dtype, width in inputs}, "outputs": {"scores": "the model's output"},
            "signature": "serving_default"}
