"""Importing Keras and TensorFlow without the noise of their C++ start-up.

TensorFlow's native libraries log at import (cuDNN/cuBLAS factories registered twice, the XLA
computation placer, absl's "before InitializeLog" notice) straight to the process's standard
error, before Python's logging or ``TF_CPP_MIN_LOG_LEVEL`` can help; a notebook shows every
line in the cell. They say nothing a data scientist can act on, so the first import runs with
file descriptor 2 pointed at ``/dev/null``; Python errors still propagate as exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["import_keras", "silenced_stderr"]


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Point file descriptor 2 at ``/dev/null`` for the block (what native code writes there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedded interpreter): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras() -> Any:
    """``keras``, imported (with TensorFlow when it is the backend) without native log lines.

    Later TensorFlow warnings (retracing, deprecations) go through Python logging at ERROR
    level; set ``TF_CPP_MIN_LOG_LEVEL=0`` before importing to see everything.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    quiet = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") != "0"
    with silenced_stderr() if quiet else contextlib.nullcontext():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel(logging.ERROR)
    if quiet:
        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
    return keras
