"""Reading what a data source's files hold, without TensorFlow.

Resolves each split (a file, a glob or a folder under the data source's ``uri``), checks
the files exist, and computes what the record keeps: a content fingerprint, the example
count and label distribution of each split, and the feature schema. TFRecord files are
read with a small protobuf wire-format reader for ``tf.train.Example`` so that registering
data never imports TensorFlow; the length and data checksums (CRC32C) of every record are
verified on the way. The trainer uses :func:`resolve_split` too.

The record also keeps each file's size, modification time and SHA-256, so that
:func:`verify_files` can tell, before a run, whether the files still hold what was
registered (sizes and times first; a file is hashed again only when they differ).
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import gzip
import hashlib
import io
import itertools
import numbers
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, BinaryIO

from google_crc32c import value as crc32c  # CRC32C in C (hardware-accelerated): TFRecord checksums

from ..errors import DataSourceError

FORMATS = ("tfrecord", "csv", "npz")
_EXTENSIONS = MappingProxyType({"tfrecord": (".tfrecord", ".tfrecords", ".tfrecord.gz", ".gz"), "csv": (".csv",),
                                "npz": (".npz",)})
_MAX_DISTINCT_LABELS = 50
MAX_FILES = 10_000  # files in one split
MAX_FOLDERS = 10_000  # folders walked for one ** glob


@dataclass
class SplitSummary:
    """What one split holds."""

    files: list[str]
    examples: int
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSummary:
    """What :func:`inspect_datasource` found."""

    fingerprint: str
    splits: dict[str, SplitSummary]
    features: dict[str, dict[str, Any]]
    # split -> [[path relative to the uri, size, mtime_ns, sha256], ...], for verify_files
    files: dict[str, list[list[Any]]] = field(default_factory=dict)


def normalise_uri(uri: str) -> str:
    """An absolute local path for ``uri`` (``file://`` prefixes accepted)."""
    if not isinstance(uri, str) or not uri:
        raise DataSourceError("uri must be a non-empty path to the folder that holds the data files")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    elif "://" in uri:
        raise DataSourceError(
            f"only local paths are supported for data sources for now, got {uri!r}; "
            "copy or mount the data locally"
        )
    return os.path.abspath(os.path.expanduser(uri))


def resolve_split(uri: str, pattern: str, fmt: str) -> list[str]:
    """The sorted files of one split: ``pattern`` is a file, a glob or a folder under ``uri``.

    Symbolic links are followed, but each folder is entered once (by its real path) and
    each file counted once, so a link back up the tree cannot repeat the data or make the
    walk endless; a split holds at most :data:`MAX_FILES` files and a ``**`` walk enters at
    most :data:`MAX_FOLDERS` folders.
    """
    if not isinstance(pattern, str) or not pattern:
        raise DataSourceError("each split must map to a file, a glob or a folder (a non-empty string)")
    path = os.path.join(uri, pattern)
    if os.path.isdir(path):
        found: Iterator[str] = (
            os.path.join(path, f) for f in os.listdir(path)
            if not f.startswith(".") and f.lower().endswith(_EXTENSIONS[fmt])
        )
    elif "**" in pattern:
        found = _walk_glob(path, pattern)
    elif any(ch in pattern for ch in "*?["):
        found = glob.iglob(path)
    else:
        found = iter([path])
    files = [f for f in itertools.islice(found, MAX_FILES * 4 + 1) if os.path.isfile(f)]
    files = _once_each(sorted(files))
    if len(files) > MAX_FILES:
        raise DataSourceError(
            f"{pattern!r} under {uri!r} matches more than {MAX_FILES:,} files; a split may hold at most "
            f"{MAX_FILES:,}: narrow the glob, or merge small files into larger shards"
        )
    return files


def _once_each(paths: list[str]) -> list[str]:
    """``paths`` without the ones that are the same file as an earlier one (through a link)."""
    seen: set[str] = set()
    out = []
    for path in paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def _walk_glob(path: str, pattern: str) -> Iterator[str]:
    """The paths matching a ``**`` glob, as ``glob.glob(path, recursive=True)`` finds them, but
    entering each folder once: ``glob`` follows a link back up the tree until the path is too long."""
    parts = path.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = os.sep.join(parts[:fixed]) or os.sep
    wanted = parts[fixed:]
    if not os.path.isdir(base):
        return
    seen = {os.path.realpath(base)}
    folders = 0
    for folder, subfolders, names in os.walk(base, followlinks=True):
        folders += 1
        if folders > MAX_FOLDERS:
            raise DataSourceError(
                f"{pattern!r} walks more than {MAX_FOLDERS:,} folders; narrow the glob (e.g. train/**/*.tfrecord "
                "in a smaller folder)"
            )
        kept = []
        for name in sorted(subfolders):
            real = os.path.realpath(os.path.join(folder, name))
            if real not in seen:  # a folder met before (a link to it, or back up the tree): not again
                seen.add(real)
                kept.append(name)
        subfolders[:] = kept
        relative = os.path.relpath(folder, base)
        prefix = [] if relative == os.curdir else relative.split(os.sep)
        for name in names:
            if _glob_match([*prefix, name], wanted):
                yield os.path.join(folder, name)


def _glob_match(parts: list[str], wanted: list[str]) -> bool:
    """Whether path ``parts`` match glob ``wanted`` (``**`` for any number of folders), with
    ``glob``'s rule that wildcards do not match names starting with ``.``.

    >>> _glob_match(["a", "b", "x.tfrecord"], ["**", "*.tfrecord"]), _glob_match([".git", "x"], ["**", "x"])
    (True, False)
    """

    def close(states: set[int]) -> set[int]:  # ** may match no folder at all
        todo = list(states)
        while todo:
            j = todo.pop()
            if j < len(wanted) and wanted[j] == "**" and j + 1 not in states:
                states.add(j + 1)
                todo.append(j + 1)
        return states

    states = close({0})
    for part in parts:
        hidden = part.startswith(".")
        following: set[int] = set()
        for j in states:
            if j == len(wanted):
                continue
            if wanted[j] == "**":
                if not hidden:
                    following.add(j)
            elif (not hidden or wanted[j].startswith(".")) and fnmatch.fnmatchcase(part, wanted[j]):
                following.add(j + 1)
        states = close(following)
        if not states:
            return False
    return len(wanted) in states


def inspect_datasource(uri: str, fmt: str, splits: dict[str, str], label: str) -> DataSummary:
    """Resolve, check and summarise every split.

    Raises
    ------
    DataSourceError
        When a split has no files, a file is not of the format, or the label is missing.
    """
    if fmt not in FORMATS:
        raise DataSourceError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not isinstance(splits, dict) or not splits:
        raise DataSourceError(
            "splits must map split names to files, globs or folders, e.g. "
            "{'train': 'train-*.tfrecord', 'eval': 'eval.tfrecord'}"
        )
    if not os.path.isdir(uri):
        raise DataSourceError(f"data folder {uri!r} does not exist; check the uri")
    digest = hashlib.sha256()
    summaries: dict[str, SplitSummary] = {}
    features: dict[str, dict[str, Any]] = {}
    rows: dict[str, list[list[Any]]] = {}
    for split in sorted(splits):
        files = resolve_split(uri, splits[split], fmt)
        if not files:
            raise DataSourceError(
                f"split {split!r}: no {fmt} files match {splits[split]!r} under {uri!r}; "
                "check the file name, glob or folder"
            )
        counts: Counter[Any] = Counter()
        examples = 0
        rows[split] = []
        for path in files:
            relative = os.path.relpath(path, uri)
            stat = os.stat(path)
            sha = _file_digest(path)
            digest.update(f"{split}\0{relative}\0".encode())
            digest.update(sha.encode())
            rows[split].append([relative, stat.st_size, stat.st_mtime_ns, sha])
            labelled = sum(counts.values())
            n, file_features = _read_file(path, fmt, label, counts)
            _check_labelled(split, relative, label, n, sum(counts.values()) - labelled, file_features)
            examples += n
            for key, spec in file_features.items():
                features.setdefault(key, spec)
        if label not in features and examples:
            raise DataSourceError(
                f"split {split!r} has no label {label!r}; features found: {', '.join(sorted(features)) or 'none'}"
            )
        summaries[split] = SplitSummary(
            files=[os.path.relpath(f, uri) for f in files], examples=examples, labels=_label_summary(counts)
        )
    features.pop(label, None)
    return DataSummary(fingerprint=digest.hexdigest(), splits=summaries, features=features, files=rows)


def _check_labelled(split: str, relative: str, label: str, examples: int, labelled: int,
                    features: dict[str, Any]) -> None:
    """Every file of a split must give every example its label (not merely one file of the split)."""
    if labelled >= examples:
        return
    if label not in features:
        raise DataSourceError(
            f"split {split!r}: {relative} has no label {label!r} (it has {', '.join(sorted(features)) or 'nothing'}); "
            "every file of a split must hold the label"
        )
    raise DataSourceError(
        f"split {split!r}: {examples - labelled} of the {examples} examples in {relative} have no value for the "
        f"label {label!r}; every example must have one"
    )


def verify_files(uri: str, fmt: str, splits: dict[str, str], recorded: dict[str, list[list[Any]]] | None,
                 fingerprint: str, ref: str) -> None:
    """Check that a data source's files still hold what its record says, before a run reads them.

    With the per-file ``recorded`` rows (``[path, size, mtime_ns, sha256]``), a file whose
    size and modification time are unchanged is taken as it is and any other is hashed
    again; a record written before those rows were kept (``recorded`` None) has its whole
    fingerprint computed again.

    Raises
    ------
    DataSourceError
        Naming each split and file that was changed, added or removed, and saying how to
        register the new data.
    """
    problems = file_problems(uri, fmt, splits, recorded, fingerprint)
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        name = ref.rsplit("@", 1)[0]
        raise DataSourceError(
            f"the files of data source {ref} under {uri} changed since it was registered ({shown}), so a run "
            "would not read the data its record describes. Register the data as it is now as a new version "
            f"(run the %%datasource {name} cell again, or store.add_datasource({name!r}, ...)), define the "
            "experiment again so that it uses that version, and train it"
        )


def file_problems(uri: str, fmt: str, splits: dict[str, str], recorded: dict[str, list[list[Any]]] | None,
                  fingerprint: str) -> list[str]:
    """What differs between a data source's files now and its record, one line per split and file
    (``"split 'train': train.csv was changed"``); empty when nothing does. See :func:`verify_files`."""
    problems: list[str] = []
    digest = hashlib.sha256()
    for split in sorted(splits):
        try:
            files = resolve_split(uri, splits[split], fmt)
        except DataSourceError as exc:
            problems.append(f"split {split!r}: {exc}")
            continue
        current = {os.path.relpath(path, uri): path for path in files}
        if recorded is None:
            for relative, path in current.items():
                digest.update(f"{split}\0{relative}\0".encode())
                digest.update(_file_digest(path).encode())
            continue
        known = {str(row[0]): row for row in recorded.get(split, [])}
        problems += [f"split {split!r}: {rel} was removed" for rel in sorted(set(known) - set(current))]
        problems += [f"split {split!r}: {rel} was added" for rel in sorted(set(current) - set(known))]
        for relative in sorted(set(known) & set(current)):
            _, size, mtime_ns, sha = known[relative]
            try:
                stat = os.stat(current[relative])
                if stat.st_size == size and stat.st_mtime_ns == mtime_ns:
                    continue
                changed = stat.st_size != size or _file_digest(current[relative]) != sha
            except OSError:
                changed = True
            if changed:
                problems.append(f"split {split!r}: {relative} was changed")
    if recorded is None and not problems and digest.hexdigest() != fingerprint:
        problems.append("the files no longer match its fingerprint (a file was changed, added or removed)")
    return problems


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _label_summary(counts: Counter[Any]) -> dict[str, Any]:
    if not counts:
        return {}
    if len(counts) <= _MAX_DISTINCT_LABELS:
        return {str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}
    values = [float(k) for k in counts.elements()]
    return {"min": min(values), "max": max(values), "mean": sum(values) / len(values), "distinct": len(counts)}


def _read_file(path: str, fmt: str, label: str, counts: Counter[Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    try:
        if fmt == "tfrecord":
            return _read_tfrecord(path, label, counts)
        if fmt == "csv":
            return _read_csv(path, label, counts)
        return _read_npz(path, label, counts)
    except DataSourceError:
        raise
    except Exception as exc:
        raise DataSourceError(f"cannot read {path!r} as {fmt}: {exc}") from None


# --- TFRecord ------------------------------------------------------------------------

def _open_maybe_gzip(path: str) -> BinaryIO:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def iter_tfrecord(path: str, verify: bool = False) -> Iterator[bytes]:
    """Yield the raw records of a (possibly gzip-compressed) TFRecord file.

    With ``verify``, each record's length and data checksums (masked CRC32C, as TensorFlow
    writes them) are checked: a damaged file is refused here, not halfway through training.
    """
    crc = crc32c if verify else None
    with _open_maybe_gzip(path) as fh:
        for number in itertools.count(1):
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataSourceError(f"{path!r} is truncated or not a TFRecord file")
            (length,) = struct.unpack("<Q", header[:8])
            if crc is not None and _mask(crc(header[:8])) != struct.unpack("<I", header[8:])[0]:
                raise DataSourceError(_damaged(path, number, "length"))
            data = fh.read(length)
            footer = fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataSourceError(f"{path!r} is truncated or not a TFRecord file")
            if crc is not None and _mask(crc(data)) != struct.unpack("<I", footer)[0]:
                raise DataSourceError(_damaged(path, number, "data"))
            yield data


def _damaged(path: str, number: int, part: str) -> str:
    return (f"{path!r} is damaged: the {part} checksum (CRC32C) of record {number} does not match, so the file "
            "was altered, cut or not written as TFRecord; TensorFlow would stop on it with a DataLossError. "
            "Write or copy the file again")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_example(record: bytes) -> dict[str, tuple[str, list[Any]]]:
    """Decode a serialized ``tf.train.Example`` into ``{feature: (kind, values)}``.

    ``kind`` is ``"bytes"``, ``"float"`` or ``"int64"``.
    """
    out: dict[str, tuple[str, list[Any]]] = {}
    for number, _, features in _fields(record):
        if number != 1:
            continue
        for fnum, _, entry in _fields(features):
            if fnum != 1:
                continue
            key, feature = "", b""
            for enum_, _, v in _fields(entry):
                if enum_ == 1:
                    key = bytes(v).decode("utf-8", "replace")
                elif enum_ == 2:
                    feature = v
            out[key] = _decode_feature(feature)
    return out


def _decode_feature(feature: bytes) -> tuple[str, list[Any]]:
    for kind_num, _, lst in _fields(feature):
        values: list[Any] = []
        if kind_num == 1:
            values = [bytes(v) for n, _, v in _fields(lst) if n == 1]
            return "bytes", values
        if kind_num == 2:
            for n, wire, v in _fields(lst):
                if n != 1:
                    continue
                values.extend(struct.unpack(f"<{len(v) // 4}f", v) if wire == 2 else struct.unpack("<f", v))
            return "float", values
        if kind_num == 3:
            for n, wire, v in _fields(lst):
                if n != 1:
                    continue
                if wire == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(x - (1 << 64) if x >= 1 << 63 else x)
                else:
                    values.append(v - (1 << 64) if v >= 1 << 63 else v)
            return "int64", values
    return "float", []


def _read_tfrecord(path: str, label: str, counts: Counter[Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    n = 0
    features: dict[str, dict[str, Any]] = {}
    for record in iter_tfrecord(path, verify=True):
        example = parse_example(record)
        if n == 0:
            features = {k: {"dtype": kind, "shape": [len(vals)]} for k, (kind, vals) in example.items()}
        if label in example:
            kind, vals = example[label]
            if vals:
                value = vals[0].decode("utf-8", "replace") if kind == "bytes" else vals[0]
                counts[value] += 1
        n += 1
    return n, features


# --- CSV and NPZ ---------------------------------------------------------------------

def _scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _read_csv(path: str, label: str, counts: Counter[Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise DataSourceError(f"{path!r} is empty; a CSV data file needs a header row")
        index = header.index(label) if label in header else None
        dtypes: dict[str, str] = {}
        n = 0
        for row in reader:
            if not row:
                continue
            if n < 100:
                for name, cell in zip(header, row):
                    kind = {int: "int64", float: "float"}.get(type(_scalar(cell)), "bytes")
                    old = dtypes.get(name)
                    dtypes[name] = kind if old in (None, kind) or (old, kind) == ("int64", "float") else (
                        old if (old, kind) == ("float", "int64") else "bytes")
            if index is not None and index < len(row):
                counts[_scalar(row[index])] += 1
            n += 1
    return n, {name: {"dtype": dtypes.get(name, "bytes"), "shape": [1]} for name in header}


def _read_npz(path: str, label: str, counts: Counter[Any]) -> tuple[int, dict[str, dict[str, Any]]]:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        if label not in data.files:
            raise DataSourceError(
                f"{path!r} has no array {label!r} for the label; arrays: {', '.join(data.files)}"
            )
        labels = data[label]
        n = int(labels.shape[0]) if labels.ndim else 1
        for value in labels.reshape(n, -1)[:, 0].tolist():
            counts[value] += 1
        features = {}
        for name in data.files:
            arr = data[name]
            if arr.ndim == 0 or arr.shape[0] != n:
                raise DataSourceError(
                    f"{path!r}: array {name!r} has {arr.shape[0] if arr.ndim else 0} rows but the label has {n}"
                )
            kind = "float" if arr.dtype.kind == "f" else "int64" if arr.dtype.kind in "iub" else "bytes"
            features[name] = {"dtype": kind, "shape": list(arr.shape[1:]) or [1]}
    return n, features


def write_tfrecord(path: str, examples: list[dict[str, Any]]) -> None:
    """Write dicts of numbers/strings/lists as ``tf.train.Example`` records (no TensorFlow).

    Used by tests and data generators; ints become int64 lists, floats float lists and
    strings/bytes bytes lists.
    """
    with open(path, "wb") as fh:
        for ex in examples:
            data = encode_example(ex)
            header = struct.pack("<Q", len(data))
            fh.write(header + struct.pack("<I", _masked_crc(header)) + data + struct.pack("<I", _masked_crc(data)))


def encode_example(example: dict[str, Any]) -> bytes:
    """Serialize a dict as a ``tf.train.Example``."""
    entries = io.BytesIO()
    for key in sorted(example):
        value = example[key]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if all(isinstance(v, (bytes, str)) for v in values):
            body = b"".join(_ld(1, v.encode() if isinstance(v, str) else v) for v in values)
            feature = _ld(1, body)
        elif all(isinstance(v, numbers.Integral) for v in values):
            packed = b"".join(_enc_varint(int(v) & ((1 << 64) - 1)) for v in values)
            feature = _ld(3, _ld(1, packed))
        else:
            packed = struct.pack(f"<{len(values)}f", *[float(v) for v in values])
            feature = _ld(2, _ld(1, packed))
        entries.write(_ld(1, _ld(1, key.encode()) + _ld(2, feature)))
    return _ld(1, entries.getvalue())


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    return _enc_varint((number << 3) | 2) + _enc_varint(len(payload)) + payload


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    return _mask(crc32c(data))
