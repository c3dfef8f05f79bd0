"""Helpers for tests, benchmarks and tutorials: stores made to try mlmd-magic against.

:func:`tfx_pipeline_store` writes a store shaped like the one a TFX 1.x pipeline writes,
through plain ``ml_metadata`` (TFX does not install beside ml-metadata 1.17.1 on Python 3.11).
Nothing here is used by mlmd-magic itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tfx_store import TfxStore

__all__ = ["tfx_pipeline_store"]


def tfx_pipeline_store(folder: str, *, runs: int = 2, examples: dict[str, int] | None = None) -> TfxStore:
    """Write a store shaped like the one a TFX 1.x pipeline writes; return what it wrote.

    TFX does not install beside ml-metadata 1.17.1 on Python 3.11, so this writes, through
    plain ``ml_metadata``, what TFX's orchestrator would write for ``runs`` runs of the chain
    CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer ->
    Resolver -> Evaluator -> Pusher of a taxi-tips pipeline (``taxi_pipeline``): TFX's type
    names and properties, ``pipeline`` / ``run`` / ``component_run`` contexts, events with
    TFX's keys, and real files in TFX's layout (gzip TFRecords of ``tf.train.Example`` under
    ``Split-train`` / ``Split-eval``, a ``schema.pbtxt``). Every third run's model is not
    blessed. See :mod:`mlmd_magic.testing.tfx_store` for the TFX source files it follows.

    Parameters
    ----------
    folder : the store goes to ``<folder>/metadata.sqlite`` and the pipeline's files under
        ``<folder>/pipeline``; a folder that already holds a store is refused (ValueError).
    runs : pipeline runs; run ``k > 1`` takes run ``k - 1``'s blessed model as its baseline.
    examples : examples per split of each ExampleGen output (default train 240, eval 80);
        the features are ``trip_miles``, ``fare``, ``hour`` and the 0/1 label ``tips``.

    Returns the pipeline root, the store's ``uri`` and, per run, the ids of its artifacts by
    output key (``examples``, ``schema``, ``model``, ``blessing``, ``pushed_model``, ...),
    executions by component id and contexts.

    >>> import tempfile
    >>> built = tfx_pipeline_store(tempfile.mkdtemp(), runs=1, examples={"train": 8, "eval": 4})
    >>> built.uri.startswith("sqlite:///"), sorted(built.last.executions)[:3]
    (True, ['CsvExampleGen', 'Evaluator', 'ExampleValidator'])
    """
    from .tfx_store import build_sqlite

    return build_sqlite(folder, runs, examples=examples)
