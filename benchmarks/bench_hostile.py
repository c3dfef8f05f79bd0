"""Hostile input: redaction of a megabyte, refusing a YAML alias bomb, checking TFRecord CRCs.

Each figure is the best of a few runs (the least disturbed by other load on the machine).
Targets: redacting 1 MB (the worst of the shapes that used to be quadratic) under 1 s;
refusing a 9-level alias bomb (413 characters, 387 million strings once expanded) under
1 s; verifying the checksums of 30 MB of TFRecords under 1 s.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from typing import Any, Callable

MEGABYTE = 1_000_000
SHAPES = {  # texts of one megabyte that the old patterns read in quadratic time
    "letters": "a" * MEGABYTE,
    "hyphenated words": "a-" * (MEGABYTE // 2),
    "URI heads": "x://u:" * (MEGABYTE // 6),
    "password keys": "password" * (MEGABYTE // 8),
    "quoted values": 'password: "' * (MEGABYTE // 11),
}


def _best(call: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ",".join(['"x"'] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines)


def _refuse(text: str) -> None:
    from mlmd_magic.errors import ValidationError
    from mlmd_magic.faces.cells import load_yaml

    try:
        load_yaml(text)
    except ValidationError:
        return
    raise AssertionError("the alias bomb was not refused")


def _tfrecords(path: str, megabytes: int = 30) -> None:
    from mlmd_magic.core.datafiles import _masked_crc

    record = os.urandom(64 * 1024)
    header = struct.pack("<Q", len(record))
    frame = header + struct.pack("<I", _masked_crc(header)) + record + struct.pack("<I", _masked_crc(record))
    with open(path, "wb") as fh:
        fh.write(frame * (megabytes * 16))


def run() -> list[dict[str, Any]]:
    from mlmd_magic.core.datafiles import iter_tfrecord
    from mlmd_magic.core.secrets import redact

    redact_s = max(_best(lambda text=text: redact(text)) for text in SHAPES.values())
    bomb = _alias_bomb()
    bomb_s = _best(lambda: _refuse(bomb))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.tfrecord")
        _tfrecords(path)
        crc_s = _best(lambda: sum(1 for _ in iter_tfrecord(path, verify=True)))
    return [
        {"benchmark": "hostile: redact 1 MB (slowest of 5 shapes)", "value": redact_s, "unit": "s",
         "target": "< 1", "passed": redact_s < 1.0},
        {"benchmark": f"hostile: YAML alias bomb refused (9 levels, {len(bomb)} chars)", "value": bomb_s * 1000,
         "unit": "ms", "target": "< 1000", "passed": bomb_s < 1.0},
        {"benchmark": "hostile: TFRecord CRC32C verified, 30 MB", "value": crc_s, "unit": "s", "target": "< 1",
         "passed": crc_s < 1.0},
    ]
