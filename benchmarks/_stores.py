"""Building large stores for the benchmarks with MLMD batch writes (records exactly as ours)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.backend.types import full
from mlmd_magic.core.values import canonical_json, content_hash


def build_store(n: int, folder: str | None = None, uri: str | None = None, batch: int = 2000) -> tuple[str, Any]:
    """A store with ``n`` experiments (one version each) over one data source and scenario."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    folder = folder or tempfile.mkdtemp(prefix="mlmd-bench-")
    uri = uri or f"sqlite:///{os.path.join(folder, f'exp-{n}.sqlite')}"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(os.path.join(folder, "data"), n_train=8, n_eval=4,
                                                              n_test=4))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [64, 32], "learning_rate": 1e-3, "epochs": 10})
    ds = store.get_datasource("nipt-sim")
    sc = store.get_scenario("mlp-small")
    resolved = {"datasource": {k: ds[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")},
                "scenario": {"name": "mlp-small", "version": 1, "model": "mlp"}}
    mlmd = store.mlmd
    type_id = mlmd.get_artifact_type(full("Experiment")).id
    ctx_type = mlmd.get_context_type(full("Experiment")).id
    for start in range(0, n, batch):
        arts, ctxs = [], []
        for i in range(start, min(start + batch, n)):
            name = f"exp-{i:06d}"
            overrides = {"epochs": i % 50 + 1}
            params = {**sc["params"], **overrides}
            content = {"datasource": "nipt-sim@1", "scenario": "mlp-small@1", "overrides": overrides,
                       "description": ""}
            digest = content_hash({"kind": "experiments", **content})
            art = pb.Artifact(type_id=type_id, name=f"{name}@1", state=pb.Artifact.LIVE,
                              external_id=f"{full('Experiment')}:{name}:{digest}")
            for key, value in (("datasource", "nipt-sim@1"), ("scenario", "mlp-small@1"),
                               ("overrides", canonical_json(overrides)), ("params", canonical_json(params)),
                               ("model", "mlp"), ("resolved", canonical_json({**resolved, "params": params}))):
                art.properties[key].string_value = value
            art.properties["version"].int_value = 1
            arts.append(art)
            ctxs.append(pb.Context(type_id=ctx_type, name=name))
        art_ids = mlmd.put_artifacts(arts)
        ctx_ids = mlmd.put_contexts(ctxs)
        mlmd.put_attributions_and_associations(
            [pb.Attribution(artifact_id=a, context_id=c) for a, c in zip(art_ids, ctx_ids)], [])
    store.close()
    return uri, folder


def _type_ids(mlmd: Any) -> dict[str, int]:
    ids = {}
    for kind in ("artifact", "execution", "context"):
        for t in getattr(mlmd, f"get_{kind}_types")():
            ids[f"{kind}:{t.name}"] = t.id
    return ids


def build_versions(uri: str, folder: str, *, scenarios: int, experiments: int, datasources: int,
                   versions_per_name: int = 10, batch: int = 5000) -> None:
    """Many scenario versions (``scenarios`` in all, ``versions_per_name`` per name) beside a few
    experiments and data sources written through the API."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = mm.connect(uri)
    data = datasets.simulate_nipt(os.path.join(folder, "mix-data"), n_train=8, n_eval=4, n_test=4)
    for d in range(datasources):
        store.add_datasource(f"data-{d}", **{**data, "description": f"copy {d}"})
    store.add_scenario("base", model="mlp", params={"hidden": [8], "epochs": 10})
    for e in range(experiments):
        store.add_experiment(f"exp-{e}", datasource="data-0", scenario="base", overrides={"epochs": e + 1})
    mlmd = store.mlmd
    ids = _type_ids(mlmd)
    art_type, ctx_type = ids[f"artifact:{full('Scenario')}"], ids[f"context:{full('Scenario')}"]
    names = scenarios // versions_per_name
    ctx_ids = []
    for start in range(0, names, batch):
        ctx_ids += mlmd.put_contexts([pb.Context(type_id=ctx_type, name=f"scn-{i:06d}")
                                      for i in range(start, min(start + batch, names))])
    for version in range(1, versions_per_name + 1):
        for start in range(0, names, batch):
            arts = []
            for i in range(start, min(start + batch, names)):
                params = {"hidden": [8], "epochs": version, "lr": i / names}
                art = pb.Artifact(type_id=art_type, name=f"scn-{i:06d}@{version}", state=pb.Artifact.LIVE,
                                  external_id=f"{full('Scenario')}:scn-{i:06d}:" + content_hash(
                                      {"kind": "scenarios", "model": "mlp", "params": params, "description": ""}))
                art.properties["version"].int_value = version
                art.properties["model"].string_value = "mlp"
                art.properties["params"].string_value = canonical_json(params)
                arts.append(art)
            art_ids = mlmd.put_artifacts(arts)
            mlmd.put_attributions_and_associations(
                [pb.Attribution(artifact_id=a, context_id=ctx_ids[start + k]) for k, a in enumerate(art_ids)], [])
    store.close()


def build_training_runs(uri: str, folder: str, *, runs: int, other_executions: int, batch: int = 2000) -> None:
    """``runs`` Train executions (each with its INPUT events and an OUTPUT Model), mixed in
    among ``other_executions`` recorded reads, as MLMD batch writes."""
    import json
    import random

    from ml_metadata.proto import metadata_store_pb2 as pb

    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(os.path.join(folder, "runs-data"), n_train=8,
                                                              n_eval=4, n_test=4))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [8], "epochs": 10})
    exp = store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    mlmd = store.mlmd
    ids = _type_ids(mlmd)
    train, listing = ids[f"execution:{full('Train')}"], ids[f"execution:{full('ListRecords')}"]
    model_type = ids[f"artifact:{full('Model')}"]
    kinds = [True] * runs + [False] * other_executions
    random.Random(0).shuffle(kinds)  # trainings scattered among the other actions
    details = json.dumps({"task": "multiclass", "device": "cpu", "epochs": 10,
                          "metrics": {"test": {"accuracy": 0.9, "loss": 0.3}}})
    for start in range(0, len(kinds), batch):
        chunk = kinds[start:start + batch]
        executions = []
        for is_run in chunk:
            e = pb.Execution(type_id=train if is_run else listing, last_known_state=pb.Execution.COMPLETE)
            e.properties["duration_s"].double_value = 1.5
            if is_run:
                e.properties["details"].string_value = details
            executions.append(e)
        exec_ids = mlmd.put_executions(executions)
        run_ids = [eid for eid, is_run in zip(exec_ids, chunk) if is_run]
        if not run_ids:
            continue
        models = []
        for eid in run_ids:
            model = pb.Artifact(type_id=model_type, name=f"t21@1#run-{eid}", uri=f"/runs/{eid}/model.keras",
                                state=pb.Artifact.LIVE)
            model.properties["experiment"].string_value = "t21@1"
            model.properties["task"].string_value = "multiclass"
            models.append(model)
        model_ids = mlmd.put_artifacts(models)
        events = [pb.Event(execution_id=eid, artifact_id=exp.id, type=pb.Event.INPUT) for eid in run_ids]
        events += [pb.Event(execution_id=eid, artifact_id=mid, type=pb.Event.OUTPUT)
                   for eid, mid in zip(run_ids, model_ids)]
        mlmd.put_events(events)
    store.close()
