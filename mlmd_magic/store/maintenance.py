"""Keeping a store truthful: trainings left RUNNING by a kernel that died are marked FAILED."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..backend.listing import quote
from ..backend.properties import text
from ..backend.types import full

__all__ = ["process_alive", "reap_stale_runs"]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still exists (one we may not signal does)."""
    try:
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


def reap_stale_runs(mlmd: Any, stale_after_s: float) -> list[int]:
    """Mark RUNNING trainings whose kernel died as FAILED, with the reason; returns their ids.

    A run is stale when its owner process on this host is gone (a kernel killed mid-training
    leaves its execution RUNNING), or when its heartbeat — written every epoch — is older
    than ``stale_after_s`` seconds, wherever it ran.
    """
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    running = mlmd.get_executions(list_options=ms.ListOptions(
        filter_query=f"type = {quote(full('Train'))} AND last_known_state = RUNNING"))
    if not running:
        return []
    stale_after_ms = stale_after_s * 1000
    now_ms = time.time() * 1000
    here = socket.gethostname()
    reaped = []
    for execution in running:
        props = execution.properties
        owner = text(props, "owner")
        host, _, pid = owner.rpartition(":")
        # every per-epoch update stamps last_update_time; runs recorded by 0.1 kept heartbeat_ms
        heartbeat = (props["heartbeat_ms"].int_value if "heartbeat_ms" in props
                     else execution.last_update_time_since_epoch)
        reason = ""
        if host == here and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            reason = f"its kernel (process {pid} on {host}) ended while training"
        elif now_ms - heartbeat > stale_after_ms:
            reason = f"no heartbeat for {_duration((now_ms - heartbeat) / 1000)} (owner {owner or 'unknown'})"
        if not reason:
            continue
        # read it again just before writing: a run that moved on since (an epoch, its end) is
        # alive or finished, and is left as it is. MLMD has no compare-and-set, so a window of one
        # read remains; it shrinks from the whole scan to this one call.
        (fresh,) = mlmd.get_executions_by_id([execution.id]) or (None,)
        if (fresh is None or fresh.last_known_state != pb.Execution.RUNNING
                or fresh.last_update_time_since_epoch != execution.last_update_time_since_epoch):
            continue
        execution = fresh
        execution.last_known_state = pb.Execution.FAILED
        execution.properties["error"].string_value = f"stale run: {reason}; marked FAILED when the store was opened"
        mlmd.put_executions([execution])
        reaped.append(execution.id)
    return reaped
