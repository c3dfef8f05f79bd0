"""Keeping a store truthful: trainings and sweeps left RUNNING by a process that died are marked FAILED.

Who trains a run or drives a sweep is written on its execution as an *owner*:
``HOST:PID:BOOT:PIDNS:START`` (this machine's name, the process id, the kernel's boot id,
the PID namespace and the process's start time in clock ticks). The owner is only a hint, taken
where the host, boot id and PID namespace are this process's own: then a process that is gone,
a zombie, or another process now holding that pid (another start time) is dead at once. Anywhere
else — another machine, another container on a shared hostname, an owner written by an older
version (``HOST:PID``) — the *heartbeat* decides: a live run's execution is rewritten every
:data:`HEARTBEAT_S` seconds (MLMD stamps its ``last_update_time``), and one silent for longer
than the store's ``stale_run_after_s`` is dead.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..backend.listing import newest_first, quote
from ..backend.properties import FLAT_MARK, FLAT_TYPES, flat_metrics, flat_params, has_flat, text
from ..backend.types import full

__all__ = ["FLAT_KINDS", "HEARTBEAT_S", "LIVE_TYPES", "Owner", "index_filters", "owner_token", "process_alive",
           "reap_stale_runs", "stale_reason"]

HEARTBEAT_S = 10.0  # a live run or sweep rewrites its execution this often
LIVE_TYPES = ("Train", "Sweep")  # the executions that stay RUNNING while a process works on them


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def _pid_namespace() -> str:
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    return "".join(ch for ch in link if ch.isdigit())


def _stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks)`` of process ``pid`` here, from ``/proc``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()  # the name in parentheses may hold spaces
    except OSError:
        return None
    return (fields[0], fields[19]) if len(fields) > 19 else None


@dataclass(frozen=True)
class Owner:
    """The process an execution's owner string names (see the module's docstring)."""

    host: str
    pid: int
    boot: str = ""
    pidns: str = ""
    start: str = ""

    @classmethod
    def parse(cls, owner: str) -> Owner | None:
        """``HOST:PID[:BOOT:PIDNS:START]`` -> an :class:`Owner`; None for anything else.

        >>> Owner.parse("lab-7:4242").label
        'lab-7:4242'
        >>> Owner.parse("nonsense") is None
        True
        """
        parts = owner.split(":")
        if len(parts) not in (2, 5) or not parts[1].isascii() or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), *parts[2:])

    @property
    def label(self) -> str:
        """``HOST:PID``, as people read it."""
        return f"{self.host}:{self.pid}"

    def here(self) -> bool:
        """Whether the owner's process would be one of this machine's, in this PID namespace."""
        return (self.host == socket.gethostname() and bool(self.boot) and self.boot == _boot_id()
                and bool(self.pidns) and self.pidns == _pid_namespace())

    def gone(self) -> str:
        """Why the owner process is known to have ended (a reason), or ``""`` (alive, or not knowable here)."""
        if not self.here():
            return ""
        stat = _stat(self.pid)
        if stat is None:
            try:  # /proc may hide other users' processes (hidepid): ask the kernel
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return f"its process {self.pid} on {self.host} ended"
            except PermissionError:
                return ""
            return ""
        state, start = stat
        if state in ("Z", "X"):
            return f"its process {self.pid} on {self.host} was killed or exited (a zombie)"
        if self.start and start != self.start:
            return f"its process {self.pid} on {self.host} ended (the pid now belongs to another process)"
        return ""


def owner_token(pid: int | None = None) -> str:
    """The owner string of process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    stat = _stat(pid)
    return f"{socket.gethostname()}:{pid}:{_boot_id()}:{_pid_namespace()}:{stat[1] if stat else ''}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs: not gone, not a zombie (one we may not
    signal counts as running)."""
    stat = _stat(pid)
    if stat is not None:
        return stat[0] not in ("Z", "X")
    try:  # no /proc here
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def stale_reason(execution: Any, stale_after_s: float, now_ms: float | None = None) -> str:
    """Why a RUNNING training or sweep execution is dead (its owner process ended here, or no
    heartbeat for longer than ``stale_after_s``), or ``""`` when it may be alive."""
    props = execution.properties
    owner_text = text(props, "owner")
    owner = Owner.parse(owner_text)
    if owner is not None:
        gone = owner.gone()
        if gone:
            return gone
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    # every write stamps last_update_time; runs recorded by 0.1 kept heartbeat_ms
    heartbeat = (props["heartbeat_ms"].int_value if "heartbeat_ms" in props
                 else execution.last_update_time_since_epoch)
    if now_ms - heartbeat > stale_after_s * 1000:
        who = owner.label if owner is not None else owner_text or "unknown"
        return f"no heartbeat for {_duration((now_ms - heartbeat) / 1000)} (owner {who})"
    return ""


def reap_stale_runs(mlmd: Any, stale_after_s: float, executions: Any = None) -> list[int]:
    """Mark RUNNING trainings and sweeps whose process died as FAILED, with the reason; returns their ids.

    ``executions``: those to judge (RUNNING ones read already); default: every RUNNING one of
    :data:`LIVE_TYPES` in the store.
    """
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    if executions is None:
        types = " OR ".join(f"type = {quote(full(t))}" for t in LIVE_TYPES)
        executions = mlmd.get_executions(list_options=ms.ListOptions(
            filter_query=f"({types}) AND last_known_state = RUNNING"))
    reaped = []
    now_ms = time.time() * 1000
    for execution in executions:
        if execution.last_known_state != pb.Execution.RUNNING:
            continue
        reason = stale_reason(execution, stale_after_s, now_ms)
        if not reason:
            continue
        # read it again just before writing: a run that moved on since (a heartbeat, its end) is
        # alive or finished, and is left as it is. MLMD has no compare-and-set, so a window of one
        # read remains; it shrinks from the whole scan to this one call.
        (fresh,) = mlmd.get_executions_by_id([execution.id]) or (None,)
        if (fresh is None or fresh.last_known_state != pb.Execution.RUNNING
                or fresh.last_update_time_since_epoch != execution.last_update_time_since_epoch):
            continue
        fresh.last_known_state = pb.Execution.FAILED
        fresh.properties["error"].string_value = f"stale run: {reason}; marked FAILED"
        mlmd.put_executions([fresh])
        reaped.append(fresh.id)
    return reaped


# the listing each type whose nodes carry flat values for filter queries serves (backend/properties.py)
FLAT_KINDS = {"Experiment": "experiments", "Scenario": "scenarios", "Model": "models"}


def index_filters(mlmd: Any, types: Any, batch: int = 500,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Give the experiment and scenario versions and the models written before flat values
    existed their flat values (``param.NAME``, ``metric.SPLIT.NAME`` and ``flat``), so that
    listings find the rows a rare filter passes by MLMD's filter query; returns how many nodes
    of each kind got them, and how many had them (``already``).

    Only custom properties are added, in place (``put_artifacts`` with the field mask
    ``custom_properties``): a version's name, properties, external id and so its content hash
    stay as they are; other tools' nodes (TFX's) are not read. Nodes are done newest first in
    batches of ``batch``, each batch one write: stopped at any point, what was written stays,
    and running it again goes on where it stopped (it skips nodes that have them). Once every
    node of a type has them, the type says so (it declares
    :data:`~mlmd_magic.backend.properties.FLAT_MARK`): from then on listings use them (see
    :func:`mlmd_magic.store.filters.flat_ready`). ``progress(kind, done)`` hears of each batch.
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    from .filters import forget_flat

    counts = {kind: 0 for kind in FLAT_KINDS.values()}
    counts["already"] = 0
    for short in FLAT_TYPES:
        kind = FLAT_KINDS[short]
        type_id = types.artifacts[short]
        if type_id < 0:  # a read-only store without the type: nothing to do
            continue
        pending: list[Any] = []
        for node in newest_first(mlmd, "artifacts", full(short), type_id, page=batch):
            if has_flat(node):
                counts["already"] += 1
                continue
            if short == "Model":
                try:
                    metrics = json.loads(text(node.properties, "metrics") or "{}")
                except ValueError:
                    metrics = {}
                flat_metrics(node, metrics if isinstance(metrics, dict) else {})
            else:
                flat_params(node)
            pending.append(node)
            if len(pending) >= batch:
                counts[kind] += _write_flat(mlmd, pending)
                pending = []
                if progress is not None:
                    progress(kind, counts[kind])
        if pending:
            counts[kind] += _write_flat(mlmd, pending)
            if progress is not None:
                progress(kind, counts[kind])
        marked = pb.ArtifactType(name=full(short))
        marked.properties[FLAT_MARK] = pb.INT
        mlmd.put_artifact_type(marked, can_add_fields=True, can_omit_fields=True)
    forget_flat(mlmd)
    return counts


def _write_flat(mlmd: Any, nodes: list[Any]) -> int:
    """Write the custom properties of ``nodes`` (read from the store, flat values added), and
    nothing else of them."""
    mlmd.put_artifacts(nodes, field_mask_paths=["custom_properties"])
    return len(nodes)
