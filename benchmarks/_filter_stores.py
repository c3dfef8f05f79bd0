"""Stores for the filtered-listing benchmark (bench_listing.py), built with MLMD batch writes of
rows shaped exactly as ours, and the same runs in MLflow 3's SQLite store; both cached under
``$MLMD_MAGIC_BENCH_CACHE`` (default ``/tmp/mlmd-bench-listing``) between runs.

Record ``i`` (of ``n``) is experiment ``exp-{i:06d}@1`` with parameters ``epochs = i % 50 + 1``
(``epochs >= 3``: 96 % pass), ``tag = i % 100`` (``tag == 7``: 1 %) and ``rare = i % 10000``
(``rare == 7``: 0.01 % at 10,000 records and more), and one run of it, ``exp-{i:06d}@1#1``,
with its model; the run's ``eval.accuracy`` is ``(i % 10000) / 10000`` (``< 0.01``: 1 %). MLflow gets one run per
record with the same parameters (strings, as MLflow keeps them) and ``epochs`` also as a metric
(MLflow compares numbers on metrics only).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from typing import Any

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.backend.properties import FLAT_VERSION, flat_metrics, flat_params
from mlmd_magic.backend.types import full
from mlmd_magic.core.values import canonical_json, content_hash

CACHE = os.environ.get("MLMD_MAGIC_BENCH_CACHE", os.path.join(tempfile.gettempdir(), "mlmd-bench-listing"))
LAYOUT = f"v{FLAT_VERSION}.3"  # bump when what is built changes: cached stores are built again


def params_of(i: int) -> dict[str, Any]:
    return {"hidden": [64, 32], "learning_rate": 1e-3, "epochs": i % 50 + 1, "tag": i % 100, "rare": i % 10_000}


def metrics_of(i: int) -> dict[str, dict[str, float]]:
    return {"eval": {"accuracy": (i % 10_000) / 10_000, "loss": 0.25}, "test": {"accuracy": 0.9, "loss": 0.3}}


def build_ours(uri: str, folder: str, n: int, workers: int = 1, flat: bool = True) -> None:
    """``n`` experiments (one version each), each with one COMPLETE run and its model; on a
    server, ``workers`` processes write parts of them at once (MLMD on MySQL sends a statement
    per property: about 20 ms a record from one process). ``flat=False``: as a version before
    flat values wrote them (its types without the mark, its nodes without the values)."""
    if not flat:
        _old_types(uri)
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(os.path.join(folder, "data"), n_train=8, n_eval=4,
                                                              n_test=4))
    store.add_scenario("mlp", model="mlp", params=params_of(0))
    store.close()
    if workers <= 1:
        write_range(uri, 0, n, flat=flat)
        return
    import multiprocessing

    step = -(-n // workers)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.starmap(write_range, [(uri, start, min(start + step, n), 2000, flat) for start in range(0, n, step)])


def _old_types(uri: str) -> None:
    """Create the types with flat values as a version before them did (a SQLite file only)."""
    from ml_metadata.metadata_store import metadata_store as ms
    from ml_metadata.proto import metadata_store_pb2 as pb

    from mlmd_magic.backend.properties import FLAT_TYPES

    config = pb.ConnectionConfig()
    config.sqlite.filename_uri, config.sqlite.connection_mode = uri[len("sqlite:///"):], 3
    raw = ms.MetadataStore(config)
    for short in FLAT_TYPES:
        raw.put_artifact_type(pb.ArtifactType(name=full(short)))


def write_range(uri: str, first: int, stop: int, batch: int = 2000, flat: bool = True) -> None:
    """Records ``first`` to ``stop - 1`` (see the module's docstring), in MLMD batch writes."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = mm.connect(uri)
    ds = store.record("nipt-sim", kind="datasources").data
    resolved = {"datasource": {k: ds[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")},
                "scenario": {"name": "mlp", "version": 1, "model": "mlp"}}
    mlmd = store.mlmd
    exp_type = mlmd.get_artifact_type(full("Experiment")).id
    ctx_type = mlmd.get_context_type(full("Experiment")).id
    model_type = mlmd.get_artifact_type(full("Model")).id
    train_type = mlmd.get_execution_type(full("Train")).id
    base = params_of(0)
    for start in range(first, stop, batch):
        arts, ctxs, runs, models = [], [], [], []
        for i in range(start, min(start + batch, stop)):
            name, params = f"exp-{i:06d}", params_of(i)
            overrides = {k: v for k, v in params.items() if base[k] != v}
            content = {"datasource": "nipt-sim@1", "scenario": "mlp@1", "overrides": overrides, "description": ""}
            digest = content_hash({"kind": "experiments", **content})
            art = pb.Artifact(type_id=exp_type, name=f"{name}@1", state=pb.Artifact.LIVE,
                              external_id=f"{full('Experiment')}:{name}:{digest}")
            for key, value in (("datasource", "nipt-sim@1"), ("scenario", "mlp@1"),
                               ("overrides", canonical_json(overrides)), ("params", canonical_json(params)),
                               ("model", "mlp"), ("resolved", canonical_json({**resolved, "params": params}))):
                art.properties[key].string_value = value
            art.properties["version"].int_value = 1
            if flat:
                flat_params(art)
            arts.append(art)
            ctxs.append(pb.Context(type_id=ctx_type, name=name))
            run = pb.Execution(type_id=train_type, name=f"{name}@1#1", last_known_state=pb.Execution.COMPLETE)
            run.properties["user"].string_value = "bench"
            run.properties["duration_s"].double_value = 12.5
            run.properties["details"].string_value = json.dumps(
                {"task": "multiclass", "device": "cpu", "epochs": params["epochs"], "metrics": metrics_of(i)})
            runs.append(run)
            model = pb.Artifact(type_id=model_type, name=f"{name}@1#1", uri=f"/runs/{name}/model.keras",
                                state=pb.Artifact.LIVE)
            for key, value in (("experiment", f"{name}@1"), ("task", "multiclass"), ("framework", "keras"),
                               ("metrics", canonical_json(metrics_of(i)))):
                model.properties[key].string_value = value
            if flat:
                flat_metrics(model, metrics_of(i))
            models.append(model)
        # each experiment, then its run's model: the newest artifacts hold both kinds, as a store's do
        ids = mlmd.put_artifacts([a for pair in zip(arts, models) for a in pair])
        art_ids, model_ids = ids[0::2], ids[1::2]
        ctx_ids = mlmd.put_contexts(ctxs)
        mlmd.put_attributions_and_associations(
            [pb.Attribution(artifact_id=a, context_id=c) for a, c in zip(art_ids, ctx_ids)], [])
        run_ids = mlmd.put_executions(runs)
        mlmd.put_events([pb.Event(execution_id=r, artifact_id=a, type=pb.Event.INPUT) for r, a in zip(run_ids, art_ids)]
                        + [pb.Event(execution_id=r, artifact_id=m, type=pb.Event.OUTPUT)
                           for r, m in zip(run_ids, model_ids)])
    store.close()




def sqlite_store(n: int) -> tuple[str, float | None]:
    """A fresh copy of the cached SQLite store of ``n`` records (built first if need be):
    ``(uri, seconds it took to build, or None when it was cached)``. Listings are recorded
    (a ListRecords execution each): each benchmark run reads a copy, as the first did."""
    folder = os.path.join(CACHE, f"ours-{n}-{LAYOUT}")
    path = os.path.join(folder, "store.sqlite")
    took = None
    if not os.path.exists(os.path.join(folder, "built")):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        started = time.perf_counter()
        build_ours(f"sqlite:///{path}", folder, n)
        took = time.perf_counter() - started
        open(os.path.join(folder, "built"), "w").close()
    copy = os.path.join(tempfile.mkdtemp(prefix="mlmd-bench-filters-"), "store.sqlite")
    shutil.copyfile(path, copy)
    return f"sqlite:///{copy}", took


def mysql_store(server: str, n: int) -> tuple[str, float | None]:
    """The MariaDB database of ``n`` records on ``server`` (``mysql://USER@HOST:PORT``), built
    once and kept (``mlmd_bench_filters_N_LAYOUT``): ``(uri, seconds it took to build or None)``."""
    import pymysql

    from mlmd_magic.backend.uri import parse_uri

    name = f"mlmd_bench_filters_{n}_{LAYOUT.replace('.', '_')}"
    uri = f"{server}/{name}"
    parsed = parse_uri(f"{server}/x")
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (name,))
            exists = cur.fetchone() is not None
            done = False
            if exists:
                cur.execute(f"SELECT COUNT(*) FROM `{name}`.`Artifact`")
                done = cur.fetchone()[0] >= 2 * n + 1  # experiments, models and the data source
            if exists and not done:
                cur.execute(f"DROP DATABASE `{name}`")
    finally:
        conn.close()
    if done:
        return uri, None
    folder = os.path.join(CACHE, f"mysql-data-{n}")
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    build_ours(uri, folder, n, workers=min(12, max(1, n // 1000)))
    return uri, time.perf_counter() - started


def mlflow_store(n: int) -> tuple[str, str, float | None]:
    """MLflow 3's SQLite tracking store with ``n`` finished runs of one experiment, written in
    MLflow's own schema (created by MLflow) with batch inserts: ``(tracking uri, experiment id,
    seconds it took to build or None)``."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    folder = os.path.join(CACHE, f"mlflow-{n}-{LAYOUT}")
    path = os.path.join(folder, "mlflow.db")
    uri = f"sqlite:///{path}"
    if os.path.exists(os.path.join(folder, "built")):
        with open(os.path.join(folder, "built")) as fh:
            return uri, fh.read().strip(), None
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    started = time.perf_counter()
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("bench", artifact_location=os.path.join(folder, "artifacts"))
    db = sqlite3.connect(path)
    now = int(time.time() * 1000) - n
    for start in range(0, n, 10_000):
        runs, params, metrics, tags = [], [], [], []
        for i in range(start, min(start + 10_000, n)):
            run_id = uuid.UUID(int=i + 1).hex
            name = f"exp-{i:06d}@1#1"
            runs.append((run_id, name, "UNKNOWN", "", "", "bench", "FINISHED", now + i, now + i + 1, "", "active",
                         f"{folder}/artifacts/{run_id}/artifacts", int(experiment_id), None))
            params += [(key, str(value), run_id) for key, value in params_of(i).items()]
            metric = [("epochs", float(params_of(i)["epochs"])), ("eval_accuracy", metrics_of(i)["eval"]["accuracy"])]
            metrics += [(key, value, now + i, run_id, 0, 0) for key, value in metric]
            tags.append(("mlflow.runName", name, run_id))
        db.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                       "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, "
                       "deleted_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?,?,?,?,?,?)",
                       metrics)
        db.executemany("INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) "
                       "VALUES (?,?,?,?,?,?)", metrics)
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
        db.commit()
    db.close()
    with open(os.path.join(folder, "built"), "w") as fh:
        fh.write(str(experiment_id))
    return uri, str(experiment_id), time.perf_counter() - started


def unindexed_store(n: int) -> str:
    """A fresh SQLite store of ``n`` records written as before flat values (not cached: the
    maintenance action changes it)."""
    folder = tempfile.mkdtemp(prefix="mlmd-bench-unindexed-")
    uri = f"sqlite:///{os.path.join(folder, 'store.sqlite')}"
    build_ours(uri, folder, n, flat=False)
    return uri
