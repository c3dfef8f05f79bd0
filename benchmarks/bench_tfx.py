"""Lineage through TFX's components in a large store.

A store shaped like a TFX 1.x pipeline's (``mlmd_magic/testing/tfx_store.py``: CsvExampleGen ... Pusher,
every run resolving the previous run's model as the Evaluator's baseline) holding 100,000
artifacts: 20 pipeline runs, plus TFX-typed artifacts each written by a Trainer execution
(batch writes through ml_metadata). The figure: ``store.lineage(ID)`` of the newest
``PushedModel`` (every component upstream, both runs' artifacts), median of fresh
connections. Baseline in the same run: the same lineage in a store holding the 20 runs only.

Target: <= 200 ms with 100,000 artifacts.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

import mlmd_magic as mm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mlmd_magic.testing import tfx_store  # the TFX-shaped store of the tests: one definition

LINEAGE_MS = 200.0
ARTIFACTS = 100_000
RUNS = 20


def _fill(mlmd: Any, artifacts: int, batch: int = 5000, per_execution: int = 10) -> None:
    """``artifacts`` TFX-typed artifacts, each an OUTPUT of a Trainer execution (``per_execution`` each)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    ids = tfx_store.register_types(mlmd)
    kinds = [ids["artifact"][name] for name in ("Examples", "ExampleStatistics", "Schema", "Model", "ModelBlessing")]
    trainer = ids["execution"]["Trainer"]
    for start in range(0, artifacts, batch):
        count = min(batch, artifacts - start)
        arts = [pb.Artifact(type_id=kinds[i % len(kinds)], uri=f"/pipeline/filler/{start + i}",
                            state=pb.Artifact.LIVE) for i in range(count)]
        art_ids = mlmd.put_artifacts(arts)
        exec_ids = mlmd.put_executions([pb.Execution(type_id=trainer, last_known_state=pb.Execution.COMPLETE)
                                        for _ in range(0, count, per_execution)])
        mlmd.put_events([pb.Event(artifact_id=aid, execution_id=exec_ids[i // per_execution], type=pb.Event.OUTPUT)
                         for i, aid in enumerate(art_ids)])


def _median_ms(uri: str, target: int, repeats: int = 7) -> tuple[float, int]:
    times, nodes = [], 0
    for _ in range(repeats):
        store = mm.connect(uri)
        started = time.perf_counter()
        graph = store.lineage(target)
        times.append(time.perf_counter() - started)
        nodes = len(graph.nodes)
        store.close()
    return statistics.median(times) * 1000, nodes


def _build(folder: str, name: str, filler: int) -> tuple[str, int]:
    uri = f"sqlite:///{os.path.join(folder, name)}"
    store = mm.connect(uri)
    mlmd = store.mlmd
    _fill(mlmd, filler)
    built = tfx_store.build(mlmd, os.path.join(folder, "pipeline"), runs=RUNS, files=False)
    store.close()
    last_pushed = next(r.artifacts["pushed_model"] for r in reversed(built.runs) if "pushed_model" in r.artifacts)
    return uri, last_pushed


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        small_uri, small_target = _build(folder, "runs-only.sqlite", 0)
        base_ms, base_nodes = _median_ms(small_uri, small_target)
        per_run = 11  # artifacts a blessed run writes
        big_uri, big_target = _build(folder, "large.sqlite", ARTIFACTS - RUNS * per_run)
        ms, nodes = _median_ms(big_uri, big_target)
    return [
        {"benchmark": f"tfx: lineage of a PushedModel, {RUNS} runs only ({base_nodes} nodes)", "value": base_ms,
         "unit": "ms", "target": None, "passed": None},
        {"benchmark": f"tfx: lineage of a PushedModel among {ARTIFACTS:,} artifacts ({nodes} nodes)", "value": ms,
         "unit": "ms", "target": f"<= {LINEAGE_MS:g}", "passed": ms <= LINEAGE_MS and nodes == base_nodes},
        {"benchmark": "tfx: lineage, large store / runs only", "value": ms / base_ms, "unit": "ratio",
         "target": None, "passed": None},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
