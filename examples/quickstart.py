"""Quick start: the whole flow on the embedded SQLite store, then what MLMD recorded.

    python examples/quickstart.py [--workdir quickstart-data] [--uri sqlite:///quickstart-data/mlmd.sqlite]

Simulates cfDNA prenatal-screening data, registers it, adds a scenario, defines an
experiment, fetches it, changes one override (version 2), trains both versions, evaluates
the retrained model on fetal-fraction slices against the first, and prints every
execution in the store with its events. Run it twice: the second run finds every record
unchanged and every run cached, and adds only executions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import mlmd_magic as mm
from mlmd_magic import datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="quickstart-data")
    parser.add_argument("--uri", default=None, help="store URI (default: sqlite in the workdir)")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    store = mm.connect(args.uri or f"sqlite:///{os.path.join(args.workdir, 'mlmd.sqlite')}")
    os.environ.setdefault("MLMD_MAGIC_RUNS_DIR", os.path.join(args.workdir, "runs"))
    print(f"store: {store.uri}\n")

    data = datasets.simulate_nipt(os.path.join(args.workdir, "nipt-sim"), n_train=2000, n_eval=400, n_test=800)
    ds = store.add_datasource("nipt-sim", **data)
    sc = store.add_scenario("mlp-small", model="mlp",
                            params={"hidden": [64, 32], "learning_rate": 3e-3, "batch_size": 64, "epochs": 10})
    ex1 = store.add_experiment("t21-baseline", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 3})
    params = store.get_experiment("t21-baseline")
    ex2 = store.add_experiment("t21-baseline", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 12})
    for rec in (ds, sc, ex1, ex2):
        print(f"{rec.kind[:-1]:<10} {rec.ref:<18} {rec.status}")
    print("\nfetched t21-baseline@1 (the dict the trainer takes):")
    print(json.dumps(params["params"]))
    print("\nwhat changed from version 1 to 2:")
    print(store.diff("t21-baseline@1", "t21-baseline@2"))

    print("\ntraining both versions:")
    baseline = store.train("t21-baseline@1", progress=False)
    candidate = store.train("t21-baseline@2", progress=False)
    print(baseline, candidate, sep="\n")

    print("\nevaluating version 2 against version 1 on fetal-fraction slices:")
    evaluation = store.evaluate(
        candidate, baseline=baseline, data="test", class_names=["euploid", "T21", "T18", "T13"],
        slices=[{"feature": "fetal_fraction", "bins": [0.04, 0.08], "names": ["ff_low", "ff_mid", "ff_high"]}],
        thresholds=[{"metric": "recall_T21", "lower": 0.8, "slices": ["ff_mid", "ff_high"]},
                    {"metric": "abnormal_auc", "change": -0.01, "slices": ["overall"]}],
    )
    print(evaluation)

    from ml_metadata.proto import metadata_store_pb2 as pb

    mlmd = store.mlmd
    type_names = {t.id: t.name for t in mlmd.get_execution_types()}
    print("\nexecutions recorded in MLMD (one per action):")
    for e in mlmd.get_executions():
        events = mlmd.get_events_by_execution_ids([e.id])
        io = ", ".join(f"{pb.Event.Type.Name(ev.type)}:{ev.artifact_id}" for ev in events)
        state = pb.Execution.State.Name(e.last_known_state)
        outcome = e.properties["outcome"].string_value if "outcome" in e.properties else (
            "unchanged" if state == "CACHED" else "created")
        print(f"  #{e.id:<4} {type_names[e.type_id]:<32} {state:<9} {outcome:<17} {io}")
    print(f"\n{len(mlmd.get_artifacts())} artifacts, {len(mlmd.get_executions())} executions, "
          f"{len(mlmd.get_contexts())} contexts in {store.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
