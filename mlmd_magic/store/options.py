"""Settings of a store that a person may change: where runs go, when a silent run is stale.

Each is a field of :class:`StoreOptions`; left ``None``, it falls back to its environment
variable, read when it is used (so a variable set later still counts), then to a default.
In IPython the same settings are traitlets of the magics
(``%config MlmdMagics.runs_dir = "/data/runs"``), shared by every store the magics open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DEFAULT_STALE_AFTER_S", "RUNS_ENV", "STALE_ENV", "StoreOptions"]

RUNS_ENV = "MLMD_MAGIC_RUNS_DIR"
STALE_ENV = "MLMD_MAGIC_STALE_RUN_AFTER_S"
DEFAULT_STALE_AFTER_S = 600.0  # 60 heartbeats missed (a live run writes one every 10 s)


@dataclass
class StoreOptions:
    """``runs_dir``: where run folders go (``$MLMD_MAGIC_RUNS_DIR``, else beside a SQLite store,
    else ``./mlmd-magic-runs``); ``stale_run_after_s``: a RUNNING training or sweep without a
    heartbeat for this long is marked FAILED (``$MLMD_MAGIC_STALE_RUN_AFTER_S``, else 10 minutes:
    a live one's own thread writes a heartbeat every 10 seconds; one whose process on this
    machine ended is FAILED at once).

    >>> StoreOptions(stale_run_after_s=60).stale_after_s()
    60.0
    """

    runs_dir: str | None = None
    stale_run_after_s: float | None = None

    def runs_dir_or_env(self) -> str | None:
        """The runs folder asked for here or in the environment, else ``None`` (the backend's default)."""
        chosen = self.runs_dir or os.environ.get(RUNS_ENV)
        return os.path.abspath(os.path.expanduser(chosen)) if chosen else None

    def stale_after_s(self) -> float:
        """Seconds without a heartbeat after which a RUNNING training is stale."""
        if self.stale_run_after_s is not None:
            return float(self.stale_run_after_s)
        return float(os.environ.get(STALE_ENV, DEFAULT_STALE_AFTER_S))
