"""Trainings on a Ray cluster (``pip install 'mlmd-magic[ray]'``): the run is a Ray task asking for
the GPUs its params ask for (``gpus: 1``), and the worker records into the shared MySQL store.

Only the core ``ray`` package is needed (``ray[default]`` pulls protobuf 5, which ml-metadata
cannot use). Before the run is submitted, a small probe task on the cluster opens the store
and looks at the data folder and the runs folder, so a store, data or folder the workers cannot
reach is an error here, saying what is needed — not a failure in a worker's log.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError

if TYPE_CHECKING:
    from .background import BackgroundRun
    from .store import Store

__all__ = ["probe", "submit"]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValidationError("training on a Ray cluster needs Ray: pip install 'mlmd-magic[ray]' "
                              "(the core ray package; not ray[default], which needs protobuf 5)") from None
    return ray


_CONNECTED: dict[str, str] = {}  # the cluster this process's driver is connected to


def _connect(ray: Any, address: str) -> None:
    if ray.is_initialized():
        if _CONNECTED.get("address") == address:
            return  # one driver connection per process: kept for the next run on the same cluster
        ray.shutdown()  # a driver connects to one cluster at a time: the one asked for now
    for attempt in range(3):
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            _CONNECTED["address"] = address
            return
        except Exception as exc:
            # the head's client proxy starts one server process per client; on a busy head that
            # process can die while starting ("Starting Ray client server failed"): the next try
            # gets a fresh one on another port. Anything else is not worth a retry.
            if "Starting Ray client server failed" in str(exc) and attempt < 2:
                if ray.is_initialized():
                    ray.shutdown()
                time.sleep(1.0 + attempt)
                continue
            raise ValidationError(f"cannot reach the Ray cluster at {address}: {type(exc).__name__}: {exc}; start one "
                                  "(ray start --head) or check the address (ray://HOST:10001 or HOST:6379)") from None


def probe(spec: dict[str, Any], data_uri: str) -> list[str]:
    """Runs on a Ray worker: what it cannot reach (the store, the data folder, the runs folder)."""
    from ..errors import MlmdMagicError
    from .store import connect

    problems = []
    try:
        connect(spec["uri"]).close()
    except MlmdMagicError as exc:
        problems.append(f"the store {spec['uri']}: {exc} (a worker takes the password from "
                        "$MLMD_MAGIC_MYSQL_PASSWORD or ~/.my.cnf on its machine)")
    if not os.path.isdir(data_uri):
        problems.append(f"the data folder {data_uri} does not exist on the worker (put the data on storage "
                        "every worker mounts at the same path)")
    runs_dir = spec["workdir"] or spec["runs_dir"]
    existing = os.path.abspath(runs_dir)
    while not os.path.exists(existing):  # the folder is created by the run: its nearest existing parent
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        problems.append(f"the runs folder {runs_dir} is not writable on the worker (set runs_dir to a folder "
                        "every worker can write, e.g. %config MlmdMagics.runs_dir = '/shared/runs')")
    return problems


def submit(store: Store, address: str, spec: dict[str, Any], experiment: dict[str, Any]) -> BackgroundRun:
    """Submit the run ``spec`` describes to the Ray cluster at ``address``.

    Raises
    ------
    ValidationError
        For a store that is not MySQL, Ray not installed, a cluster not reachable, or a store,
        data folder or runs folder its workers cannot reach.
    """
    from .background import BackgroundRun
    from .worker import run_job

    if store.scheme != "mysql":
        raise ValidationError(f"a Ray worker records into the store from another machine: it needs a MySQL store "
                              f"every worker can reach, not {store.uri} (%mlmd connect mysql://user@host/db)")
    ray = _ray()
    _connect(ray, address)
    params = experiment.get("params") or {}
    try:
        gpus = float(params.get("gpus", 0) or 0)
    except (TypeError, ValueError):
        raise ValidationError(f"params.gpus must be a number of GPUs, got {params.get('gpus')!r}") from None
    available = float(ray.cluster_resources().get("GPU", 0))
    if gpus > available:
        raise ValidationError(f"{spec['ref']} asks for {gpus:g} GPU(s) (params.gpus) but the Ray cluster at {address} "
                              f"has {available:g}; add GPU workers or set gpus lower")
    problems = ray.get(ray.remote(num_cpus=0)(probe).remote(spec, experiment["datasource"]["uri"]))
    if problems:
        raise ValidationError(f"the workers of the Ray cluster at {address} cannot run {spec['ref']}: "
                              + "; ".join(problems))
    ref = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_job).remote(spec)
    return BackgroundRun(store, spec["external_id"], where=address, ray_ref=ref)
