"""Reading a data source for training: ``tf.data`` for TFRecords, NumPy arrays otherwise.

The model sees one float32 vector per example: the selected numeric features, flattened
and concatenated in name order (``InputSpec``). TFRecords go through ``tf.data``
(parallel reads, cache when the files fit in memory, shuffle, batch, parse after
batching, prefetch) on the TensorFlow backend; on other backends, and for CSV and NPZ,
the split is loaded into memory once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.datafiles import iter_tfrecord, parse_example, resolve_split

CACHE_LIMIT_BYTES = 1 << 30  # cache a split's serialized records when its files total less


@dataclass(frozen=True)
class InputSpec:
    """Which features feed the model, their widths, and the label."""

    features: tuple[str, ...]
    widths: tuple[int, ...]
    label: str

    @property
    def dim(self) -> int:
        return sum(self.widths)


def input_spec(datasource: dict[str, Any], params: dict[str, Any]) -> InputSpec:
    """Numeric features (all, or ``params["features"]``) with their flattened widths."""
    schema: dict[str, Any] = datasource.get("features") or {}
    label = datasource["label"]
    wanted = params.get("features")
    if wanted is not None:
        missing = [f for f in wanted if f not in schema]
        if missing:
            raise ValueError(f"params.features names {missing}, which the data source lacks; it has {sorted(schema)}")
        names = list(wanted)
    else:
        names = sorted(n for n, s in schema.items() if n != label and s.get("dtype") in ("float", "int64"))
    if not names:
        raise ValueError("the data source has no numeric features to train on")
    widths = tuple(int(np.prod(schema[n].get("shape") or [1])) for n in names)
    return InputSpec(tuple(names), widths, label)


def split_files(datasource: dict[str, Any], split: str) -> list[str]:
    splits = datasource["splits"]
    if split not in splits:
        raise ValueError(f"the data source has no split {split!r}; its splits are {sorted(splits)}")
    files = resolve_split(datasource["uri"], splits[split], datasource["format"])
    if not files:
        raise FileNotFoundError(f"split {split!r} matches no files under {datasource['uri']}")
    return files


def load_arrays(datasource: dict[str, Any], split: str, spec: InputSpec,
                extra: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(x [n, dim] float32, y [n], columns)`` of a split in memory; ``columns`` holds ``extra`` features."""
    files = split_files(datasource, split)
    fmt = datasource["format"]
    wanted = list(dict.fromkeys([*spec.features, spec.label, *extra]))
    columns: dict[str, list[Any]] = {name: [] for name in wanted}
    if fmt == "tfrecord":
        for path in files:
            for record in iter_tfrecord(path):
                example = parse_example(record)
                for name in wanted:
                    _, values = example.get(name, ("float", []))
                    columns[name].append([v.decode() if isinstance(v, bytes) else v for v in values])
        arrays = {name: np.asarray(vals) for name, vals in columns.items()}
    elif fmt == "csv":
        import pandas as pd

        frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        arrays = {name: frame[name].to_numpy() for name in wanted}
    else:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for path in files:
            with np.load(path, allow_pickle=False) as data:
                for name in wanted:
                    parts[name].append(data[name])
        arrays = {name: np.concatenate(vals) for name, vals in parts.items()}
    n = len(arrays[spec.label])
    x = np.concatenate([arrays[f].reshape(n, -1).astype("float32") for f in spec.features], axis=1)
    y = arrays[spec.label].reshape(n, -1)[:, 0]
    extras = {name: arrays[name].reshape(n, -1)[:, 0] if arrays[name].reshape(n, -1).shape[1] == 1
              else arrays[name].reshape(n, -1) for name in extra}
    return x, y, extras


def sample_labels(datasource: dict[str, Any], split: str, spec: InputSpec, limit: int = 10_000) -> np.ndarray:
    """Up to ``limit`` labels of a split, read without TensorFlow (for inferring the task)."""
    if datasource["format"] != "tfrecord":
        return load_arrays(datasource, split, spec)[1][:limit]
    labels: list[Any] = []
    for path in split_files(datasource, split):
        for record in iter_tfrecord(path):
            _, values = parse_example(record).get(spec.label, ("float", []))
            if values:
                labels.append(values[0])
            if len(labels) >= limit:
                return np.asarray(labels)
    return np.asarray(labels)


def count_examples(datasource: dict[str, Any], split: str) -> int:
    """Examples in a TFRecord split (record headers only are parsed)."""
    return sum(1 for f in split_files(datasource, split) for _ in iter_tfrecord(f))


def tf_dataset(datasource: dict[str, Any], split: str, spec: InputSpec, *, batch_size: int, task: str,
               shuffle: bool, seed: int, count: int) -> Any:
    """A batched ``tf.data`` pipeline of ``(x, y)`` over a TFRecord split of ``count`` examples."""
    import tensorflow as tf

    files = split_files(datasource, split)
    with open(files[0], "rb") as fh:
        compression = "GZIP" if fh.read(2) == b"\x1f\x8b" else ""
    schema = datasource["features"]
    first = next(iter_tfrecord(files[0]), None)
    stored = parse_example(first).get(spec.label, ("float", []))[0] if first is not None else "float"
    label_dtype = tf.int64 if stored == "int64" else tf.float32
    feature_spec = {
        name: tf.io.FixedLenFeature([width], tf.int64 if schema[name]["dtype"] == "int64" else tf.float32)
        for name, width in zip(spec.features, spec.widths)
    }
    feature_spec[spec.label] = tf.io.FixedLenFeature([1], label_dtype)

    def parse(serialized: Any) -> Any:
        parsed = tf.io.parse_example(serialized, feature_spec)
        x = tf.concat([tf.cast(parsed[name], tf.float32) for name in spec.features], axis=1)
        y = tf.reshape(parsed[spec.label], [-1])
        return x, tf.cast(y, tf.float32) if task == "regression" else tf.cast(y, tf.int64)

    ds = tf.data.TFRecordDataset(files, compression_type=compression,
                                 num_parallel_reads=tf.data.AUTOTUNE if len(files) > 1 else None)
    if sum(os.path.getsize(f) for f in files) < CACHE_LIMIT_BYTES:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    # Known cardinality lets Keras size its epochs without running off the end of the data.
    ds = ds.apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
