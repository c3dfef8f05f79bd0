"""The ``mlmd_magic.*`` MLMD types and their idempotent registration.

Type names are namespaced so they never collide with TFX's types in a shared store, and
each declares the MLMD base type it is (DATASET, MODEL, METRICS; TRAIN, EVALUATE,
PROCESS), so generic MLMD tools understand them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .properties import FLAT_MARK, FLAT_TYPES

PREFIX = "mlmd_magic."
_PROTOS: Any = None


def protos() -> Any:
    """``ml_metadata.proto.metadata_store_pb2``, imported on first use (``import mlmd_magic`` stays
    light) and then kept: an import statement in a function costs more than the write it serves."""
    global _PROTOS
    if _PROTOS is None:
        from ml_metadata.proto import metadata_store_pb2

        _PROTOS = metadata_store_pb2
    return _PROTOS

# Property kinds are names of metadata_store_pb2.PropertyType values.
# The record's name and version are also its artifact name (NAME@VERSION), and its content
# hash ends its external_id; properties hold what queries and readers need. A version whose
# content equals an older one's (a revert) says which: same_as = that version's number.
_RECORD = {"version": "INT", "description": "STRING", "same_as": "INT"}

ARTIFACT_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "DataSource": ("DATASET", {
        **_RECORD, "format": "STRING", "splits": "STRING", "label": "STRING", "features": "STRING",
        "fingerprint": "STRING", "example_counts": "STRING", "label_distribution": "STRING",
        # [[path, size, mtime_ns, sha256], ...] per split: checked before every run
        "files": "STRING",
        "label_names": "STRING",  # JSON list: the names of classes 0..K-1
    }),
    "Scenario": ("UNSET", {**_RECORD, "model": "STRING", "params": "STRING"}),
    "Experiment": ("UNSET", {
        **_RECORD, "datasource": "STRING", "scenario": "STRING", "overrides": "STRING",
        "params": "STRING", "model": "STRING", "resolved": "STRING",
        # a sweep's trial (named BASE@N~SWEEP@V#K): the sweep version SWEEP@V#K and the base version
        "trial": "STRING", "base": "STRING",
    }),
    # a release policy: the slices and thresholds a model must pass, owned by a person
    "Policy": ("UNSET", {**_RECORD, "slices": "STRING", "thresholds": "STRING", "owner": "STRING"}),
    # a model written for serving (TF Serving layout DIR/<version>/) by a Push
    "PushedModel": ("UNSET", {"version": "INT", "policy": "STRING", "pushed_model": "INT", "evaluation": "INT",
                              "override": "STRING"}),
    "Model": ("MODEL", {"framework": "STRING", "versions": "STRING", "signature": "STRING",
                        "experiment": "STRING", "task": "STRING", "metrics": "STRING"}),
    # The verdict lives in custom properties blessed / current_model_id / baseline_model_id,
    # exactly where TFX's ModelBlessing keeps it, so TFX-style queries find blessed models.
    "Evaluation": ("METRICS", {"metrics": "STRING", "thresholds": "STRING", "slices": "STRING",
                               "split": "STRING", "checks": "STRING",
                               "policy": "STRING"}),  # NAME@N of the policy evaluated under, if any
    # a sweep version: the base experiment version, search space, objective and sampler (JSON);
    # "study" is where its Optuna study lives, without credentials
    "Sweep": ("UNSET", {**_RECORD, "experiment": "STRING", "space": "STRING", "objective": "STRING",
                        "sampler": "STRING", "seed": "INT", "study": "STRING"}),
}

# Who ran it (user, host, package versions, process) is the same for every action of a
# kernel: it lives on the NotebookSession context every execution is associated with.
_ACTION_PROPS = {
    "source": "STRING", "duration_s": "DOUBLE", "error": "STRING", "execution_count": "INT",
    "notebook": "STRING", "outcome": "STRING", "arguments": "STRING",
    # training runs: cache key, live progress (each update is a heartbeat: MLMD stamps the
    # execution's last_update_time), owner process, results. heartbeat_ms is only read, from
    # runs recorded by 0.1 (epoch milliseconds overflow MLMD's INT column on MySQL).
    "cache_key": "STRING", "progress": "STRING", "heartbeat_ms": "INT", "run_dir": "STRING",
    "owner": "STRING",  # host:pid of the kernel that trains
    "details": "STRING",
    "history": "STRING",  # training runs: {metric: [one value per epoch]}, written each epoch
    "target_run": "INT",  # CancelRun: the run asked to stop; Reproduce: the run reproduced
    "trial": "INT",  # a sweep's trial number (Optuna's), on the Train run of that trial
    "user": "STRING",  # training runs: who trained it (the session's user), for listings
}

EXECUTION_TYPES: dict[str, str] = {
    "RegisterDataSource": "PROCESS",
    "AddScenario": "PROCESS",
    "DefineExperiment": "PROCESS",
    "FetchExperiment": "PROCESS",
    "FetchDataSource": "PROCESS",
    "FetchScenario": "PROCESS",
    "ListRecords": "PROCESS",
    "ShowHistory": "PROCESS",
    "DiffRecords": "PROCESS",
    "ShowLineage": "PROCESS",
    "ShowNode": "PROCESS",  # any tool's artifact or execution, by id
    "CompareRuns": "PROCESS",
    "Train": "TRAIN",
    "Evaluate": "EVALUATE",
    "AddPolicy": "PROCESS",
    "FetchPolicy": "PROCESS",
    "Push": "DEPLOY",
    "WriteModelCard": "PROCESS",
    "CancelRun": "PROCESS",
    "Reproduce": "TRAIN",
    "Sweep": "PROCESS",  # one invocation of a sweep (a cell, a worker), which runs its trials
    "IndexFilters": "PROCESS",  # maintenance: flat values for filter queries (Store.index_filters)
}

CONTEXT_TYPES: dict[str, dict[str, str]] = {
    "NotebookSession": {"user": "STRING", "host": "STRING", "pid": "INT", "notebook": "STRING",
                        "started": "STRING", "versions": "STRING"},
    "DataSource": {},
    "Scenario": {},
    "Experiment": {},
    "Policy": {},
    "Sweep": {},  # a sweep's name: its versions, and the runs (and experiment versions) of its trials
}


def full(name: str) -> str:
    """``"Scenario"`` -> ``"mlmd_magic.Scenario"``."""
    return PREFIX + name


@dataclass
class TypeIds:
    """Ids of the registered types, keyed by short name, for one store."""

    artifacts: dict[str, int]
    executions: dict[str, int]
    contexts: dict[str, int]


def register_types(store: Any) -> TypeIds:
    """Register every ``mlmd_magic.*`` type in ``store``; safe when others race to do it."""
    from ml_metadata import errors as mlmd_errors

    for attempt in range(20):
        try:
            return _register_once(store)
        except (mlmd_errors.AlreadyExistsError, mlmd_errors.AbortedError):
            # Another process registered the same type between our read and our write.
            time.sleep(0.02 * (attempt + 1))
    return _register_once(store)


def lookup_types(store: Any) -> TypeIds:
    """The ids of the ``mlmd_magic.*`` types a read-only store has, writing nothing; a type it
    lacks gets id -1, which no node has (so its records read as absent)."""
    return _register_once(store, write=False)


def _register_once(store: Any, write: bool = True) -> TypeIds:
    from ml_metadata.proto import metadata_store_pb2 as pb

    def ensure(kind: str, short: str, base: str, props: dict[str, str]) -> int:
        proto_cls = {"artifact": pb.ArtifactType, "execution": pb.ExecutionType, "context": pb.ContextType}[kind]
        current = existing[kind].get(full(short))
        if current is not None and (not write or all(k in current.properties for k in props)):
            return int(current.id)
        if not write:
            return -1
        new = proto_cls(name=full(short))
        if base != "UNSET":
            new.base_type = proto_cls.SystemDefinedBaseType.Value(base)
        for key, value_type in props.items():
            new.properties[key] = pb.PropertyType.Value(value_type)
        if current is None and kind == "artifact" and short in FLAT_TYPES:
            new.properties[FLAT_MARK] = pb.INT  # a new type: its nodes all carry flat values
        put = getattr(store, f"put_{kind}_type")
        return int(put(new, can_add_fields=True, can_omit_fields=True))

    existing = {
        "artifact": {t.name: t for t in store.get_artifact_types()},
        "execution": {t.name: t for t in store.get_execution_types()},
        "context": {t.name: t for t in store.get_context_types()},
    }
    return TypeIds(
        artifacts={s: ensure("artifact", s, base, props) for s, (base, props) in ARTIFACT_TYPES.items()},
        executions={s: ensure("execution", s, base, _ACTION_PROPS) for s, base in EXECUTION_TYPES.items()},
        contexts={s: ensure("context", s, "UNSET", props) for s, props in CONTEXT_TYPES.items()},
    )
