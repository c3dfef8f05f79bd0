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


def run_job(spec: dict[str, Any]) -> str:
    """Train ``spec["ref"]`` into the store at ``spec["uri"]``; returns the run's final state.

    ``spec``: ``uri`` (:meth:`~mlmd_magic.backend.uri.StoreURI.quoted`: no password, a SQLite
    file's absolute path), ``ref``, ``external_id``, ``force``, ``workdir``, ``runs_dir``,
    and for a local worker ``password`` (a Ray worker reads ``$MLMD_MAGIC_MYSQL_PASSWORD``).
    """
    from ..backend.uri import PASSWORD_ENV, parse_uri
    from ..errors import MlmdMagicError, RunCancelled
    from ..trainer import ProgressReporter
    from .store import connect

    if spec.get("password"):
        os.environ[PASSWORD_ENV] = spec["password"]
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
        store = connect(spec["uri"])
    except MlmdMagicError as exc:
        print(f"failed: {exc}", flush=True)
        return "FAILED"
    try:
        run = store.train_job(spec["ref"], external_id=spec["external_id"], force=bool(spec.get("force")),
                              workdir=spec.get("workdir"),
                              progress=ProgressReporter(stream=sys.stdout, notebook=False))
        print(f"run {run.label}: {run.state}", flush=True)
        return run.state
    except RunCancelled as exc:
        print(exc, flush=True)
        return "CANCELED"
    except MlmdMagicError as exc:
        print(f"failed: {exc}", flush=True)
        return "FAILED"
    finally:
        store.close()


def main() -> int:
    """Read the spec from stdin and run it."""
    spec = json.loads(sys.stdin.read())
    return 0 if run_job(spec) in ("COMPLETE", "CACHED", "CANCELED") else 1


if __name__ == "__main__":
    sys.exit(main())
