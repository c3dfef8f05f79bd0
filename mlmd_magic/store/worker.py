"""The worker of a background run: ``python -m mlmd_magic.store.worker`` with its spec (JSON) on stdin,
and :func:`run_job`, which a Ray task calls with the same spec.

It opens the store, trains the experiment version it was given under the external id the
starting process chose, and prints Keras-style progress lines to its output. A cancel request
(``%mlmd cancel``) is noticed within about a second and recorded CANCELED.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["main", "run_job"]


def open_store(spec: dict[str, Any]) -> Any:
    """The store ``spec["uri"]`` names, opened with ``spec["password"]`` when given (MySQL; it is
    handed to the store, never put in this process's environment, which a child would inherit)."""
    import dataclasses

    from ..backend import secrets
    from ..backend.uri import parse_uri
    from .store import open_uri

    uri = parse_uri(spec["uri"])
    if spec.get("password"):
        secrets.remember(spec["password"])  # masked in whatever this process prints or records
        uri = dataclasses.replace(uri, password=spec["password"])
    return open_uri(uri)


def run_job(spec: dict[str, Any]) -> str:
    """Run ``spec`` in the store at ``spec["uri"]``: train ``spec["ref"]`` (the default job), or
    with ``"job": "sweep"`` join sweep ``spec["ref"]``; returns the run's (or the sweep's) final
    state.

    ``spec``: ``uri`` (:meth:`~mlmd_magic.backend.uri.StoreURI.quoted`: no password, a SQLite
    file's absolute path), ``ref``, and for a local worker ``password`` (a Ray worker reads
    ``$MLMD_MAGIC_MYSQL_PASSWORD``); a training: ``external_id``, ``force``, ``workdir``,
    ``runs_dir``; a sweep: ``trials``, ``seed_offset``.
    """
    from ..backend.secrets import redact
    from ..backend.uri import parse_uri
    from ..errors import MlmdMagicError, RunCancelled
    from ..trainer import ProgressReporter

    if spec.get("runs_dir"):
        os.environ["MLMD_MAGIC_RUNS_DIR"] = spec["runs_dir"]
    try:
        uri = parse_uri(spec["uri"])
        # The starting process had the store open, so its file exists: one that does not is
        # another store (a path read wrongly, or the file moved), and opening it would create
        # an empty store to train into, apart from the run the starting process waits for.
        if uri.scheme == "sqlite" and not os.path.isfile(uri.path):
            print(f"failed: there is no store at {os.path.abspath(uri.path)}; a background run records into the "
                  "store that started it and never creates one: start the run again from a store that exists",
                  flush=True)
            return "FAILED"
        store = open_store(spec)
    except MlmdMagicError as exc:
        print(redact(f"failed: {exc}"), flush=True)
        return "FAILED"
    try:
        if spec.get("job") == "sweep":
            result = store.sweep_worker(spec["ref"], trials=spec.get("trials"), workers=1,
                                        seed_offset=spec.get("seed_offset"))
            print(repr(result), flush=True)
            return "COMPLETE"
        run = store.train_job(spec["ref"], external_id=spec["external_id"], force=bool(spec.get("force")),
                              workdir=spec.get("workdir"),
                              progress=ProgressReporter(stream=sys.stdout, notebook=False))
        print(f"run {run.label}: {run.state}", flush=True)
        return str(run.state)
    except RunCancelled as exc:
        print(redact(str(exc)), flush=True)
        return "CANCELED"
    except MlmdMagicError as exc:
        print(redact(f"failed: {exc}"), flush=True)
        return "FAILED"
    finally:
        store.close()


def main() -> int:
    """Read the spec from stdin and run it."""
    spec = json.loads(sys.stdin.read())
    return 0 if run_job(spec) in ("COMPLETE", "CACHED", "CANCELED") else 1


if __name__ == "__main__":
    sys.exit(main())
