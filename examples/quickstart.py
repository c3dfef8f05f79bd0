"""Quick start: the whole API flow on the embedded SQLite store, then what MLMD recorded.

    python examples/quickstart.py [--workdir quickstart-data] [--uri sqlite:///quickstart-data/mlmd.sqlite]

Writes a small TFRecord data set, registers it, adds a scenario, defines an experiment,
fetches it, changes one override (version 2), and prints every execution in the store.
Run it twice: the second run finds every record unchanged and adds only executions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import mlmd_magic as mm
from mlmd_magic._datafiles import write_tfrecord


def make_data(folder: str) -> None:
    """A tiny deterministic binary-classification set in three TFRecord splits."""
    rng = random.Random(21)
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", 200), ("eval", 50), ("test", 50)):
        rows = []
        for _ in range(n):
            fetal_fraction = rng.uniform(0.02, 0.2)
            trisomy = rng.random() < 0.3
            chr21 = 0.013 * (1 + (fetal_fraction / 2 if trisomy else 0)) + rng.gauss(0, 0.0002)
            rows.append({"chr21": chr21, "fetal_fraction": fetal_fraction, "label": int(trisomy)})
        write_tfrecord(os.path.join(folder, f"{split}.tfrecord"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="quickstart-data")
    parser.add_argument("--uri", default=None, help="store URI (default: sqlite in the workdir)")
    args = parser.parse_args(argv)
    data = os.path.join(args.workdir, "nipt-sim")
    make_data(data)
    store = mm.connect(args.uri or f"sqlite:///{os.path.join(args.workdir, 'mlmd.sqlite')}")
    print(f"store: {store.uri}\n")

    ds = store.add_datasource("nipt-sim", uri=data, format="tfrecord",
                              splits={"train": "train.tfrecord", "eval": "eval.tfrecord", "test": "test.tfrecord"},
                              label="label", description="simulated cfDNA chr21 fractions")
    sc = store.add_scenario("mlp-small", model="mlp",
                            params={"hidden": [64, 32], "learning_rate": 1e-3, "batch_size": 64, "epochs": 10})
    ex1 = store.experiment("t21-baseline", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 5})
    params = store.get_experiment("t21-baseline")
    ex2 = store.experiment("t21-baseline", datasource="nipt-sim", scenario="mlp-small", overrides={"epochs": 8})
    for rec in (ds, sc, ex1, ex2):
        print(f"{rec.kind[:-1]:<10} {rec.ref:<18} {rec.status}")
    print("\nfetched t21-baseline@1:")
    print(json.dumps(params, indent=2))
    print("\nwhat changed from version 1 to 2:")
    print(store.diff("t21-baseline@1", "t21-baseline@2"))

    print("\nexperiments:")
    print(store.list("experiments").drop(columns=["params"]).to_string(index=False))

    mlmd = store.mlmd
    type_names = {t.id: t.name for t in mlmd.get_execution_types()}
    from ml_metadata.proto import metadata_store_pb2 as pb

    print("\nexecutions recorded in MLMD (one per action):")
    for e in mlmd.get_executions():
        events = mlmd.get_events_by_execution_ids([e.id])
        io = ", ".join(f"{pb.Event.Type.Name(ev.type)}:{ev.artifact_id}" for ev in events)
        print(f"  #{e.id:<4} {type_names[e.type_id]:<32} {pb.Execution.State.Name(e.last_known_state):<9} "
              f"{e.properties['outcome'].string_value:<10} {io}")
    print(f"\n{len(mlmd.get_artifacts())} artifacts, {len(mlmd.get_executions())} executions, "
          f"{len(mlmd.get_contexts())} contexts in {store.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
