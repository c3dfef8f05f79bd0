"""Building large stores for the benchmarks with MLMD batch writes (records exactly as ours)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import mlmd_magic as mm
from mlmd_magic import datasets
from mlmd_magic._records import canonical_json, content_hash
from mlmd_magic._types import full


def build_store(n: int, folder: str | None = None, uri: str | None = None, batch: int = 2000) -> tuple[str, Any]:
    """A store with ``n`` experiments (one version each) over one data source and scenario."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    folder = folder or tempfile.mkdtemp(prefix="mlmd-bench-")
    uri = uri or f"sqlite:///{os.path.join(folder, f'exp-{n}.sqlite')}"
    store = mm.connect(uri)
    store.add_datasource("nipt-sim", **datasets.simulate_nipt(os.path.join(folder, "data"), n_train=8, n_eval=4,
                                                              n_test=4))
    store.add_scenario("mlp-small", model="mlp", params={"hidden": [64, 32], "learning_rate": 1e-3, "epochs": 10})
    ds = store._data("datasources", store._resolve("datasources", "nipt-sim"))
    sc = store._data("scenarios", store._resolve("scenarios", "mlp-small"))
    resolved = {"datasource": {k: ds[k] for k in ("name", "version", "uri", "format", "splits", "label", "features")},
                "scenario": {"name": "mlp-small", "version": 1, "model": "mlp"}}
    type_id = store._types.artifacts["Experiment"]
    ctx_type = store._types.contexts["Experiment"]
    mlmd = store.mlmd
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
