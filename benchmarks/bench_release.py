"""Releasing: what verdicts add to listings, and what a push costs beside Keras's own export.

* 10,000 models, each evaluated three times under a policy (30,000 evaluations): ``ls models
  --limit 20`` (which reads each model's latest verdict per policy) and ``ls evaluations
  --limit 20``; target <= 20 ms, as every first page. Built with MLMD batch writes of rows
  shaped as ours; each figure is the median of fresh connections.
* ``store.push`` of a small trained model (export with a serving signature over the features,
  model card, the Push execution) ÷ Keras's ``model.export(format="tf_saved_model")`` of the
  same model (median of 3 each); target <= 2.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from typing import Any

from _stores import _type_ids, build_training_runs
from bench_listing import PAGE_MS, _median_ms

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic.backend.types import full

PUSH_RATIO = 2.0


def _add_evaluations(uri: str, per_model: int = 3, batch: int = 3000) -> int:
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = mm.connect(uri)
    mlmd = store.mlmd
    ids = _type_ids(mlmd)
    evaluate, evaluation = ids[f"execution:{full('Evaluate')}"], ids[f"artifact:{full('Evaluation')}"]
    models = [a.id for a in mlmd.get_artifacts_by_type(full("Model"))]
    checks = json.dumps([{"slice": "ff_high", "threshold": "recall_T21 >= 0.95", "passed": False,
                          "reason": "recall_T21 = 0.9", "value": 0.9, "baseline": None}])
    jobs = [(m, k) for m in models for k in range(per_model)]
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        executions = [pb.Execution(type_id=evaluate, last_known_state=pb.Execution.COMPLETE) for _ in chunk]
        exec_ids = mlmd.put_executions(executions)
        arts = []
        for model_id, k in chunk:
            art = pb.Artifact(type_id=evaluation, uri=f"/runs/{model_id}#evaluation", state=pb.Artifact.LIVE)
            art.properties["policy"].string_value = f"release-nipt@{k + 1}"
            art.properties["checks"].string_value = checks
            art.properties["split"].string_value = "nipt-sim@1:test"
            art.custom_properties["blessed"].int_value = int(k % 2 == 0)
            art.custom_properties["current_model_id"].int_value = model_id
            arts.append(art)
        art_ids = mlmd.put_artifacts(arts)
        events = [pb.Event(execution_id=e, artifact_id=m, type=pb.Event.INPUT) for e, (m, _) in zip(exec_ids, chunk)]
        events += [pb.Event(execution_id=e, artifact_id=a, type=pb.Event.OUTPUT) for e, a in zip(exec_ids, art_ids)]
        mlmd.put_events(events)
    store.close()
    return len(jobs)


def _push_ratio(folder: str) -> tuple[float, float, float]:
    store = mm.connect(f"sqlite:///{os.path.join(folder, 'push.sqlite')}", runs_dir=os.path.join(folder, "runs"))
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(os.path.join(folder, "nipt"), n_train=300, n_eval=60,
                                                              n_test=100))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [64, 32], "epochs": 1, "seed": 1})
    store.add_experiment("t21", datasource="nipt-sim", scenario="mlp-small")
    run = store.train("t21", progress=False)
    store.add_policy("release-nipt", thresholds=[{"metric": "accuracy", "lower": 0.0}])
    store.evaluate(run, policy="release-nipt")
    from mlmd_magic.trainer._quiet import import_keras

    keras = import_keras()
    ours, theirs = [], []
    for i in range(3):
        started = time.perf_counter()
        model = keras.saving.load_model(run.model_uri, compile=False)
        model.export(os.path.join(folder, "keras-export", str(i)), format="tf_saved_model", verbose=False)
        theirs.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.push(run, to=os.path.join(folder, "serving"))
        ours.append(time.perf_counter() - started)
    store.close()
    mine, base = statistics.median(ours), statistics.median(theirs)
    return mine / base, mine, base


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{os.path.join(folder, 'verdicts.sqlite')}"
        build_training_runs(uri, folder, runs=10_000, other_executions=0)
        count = _add_evaluations(uri)
        for kind in ("models", "evaluations"):
            ms = _median_ms(uri, lambda s, k=kind: s.ls(k, limit=20))  # type: ignore[misc]
            rows.append({"benchmark": f"release: ls {kind} --limit 20, 10,000 models with {count:,} evaluations",
                         "value": ms, "unit": "ms", "target": f"<= {PAGE_MS:g}", "passed": ms <= PAGE_MS})
        ratio, mine, base = _push_ratio(folder)
        rows.append({"benchmark": f"release: push ÷ Keras model.export ({mine:.2f} s vs {base:.2f} s)",
                     "value": ratio, "unit": "ratio", "target": f"<= {PUSH_RATIO:g}", "passed": ratio <= PUSH_RATIO})
    return rows
