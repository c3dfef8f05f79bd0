"""A store shaped like the one a TFX 1.x pipeline writes, built through plain ``ml_metadata``.

TFX does not install on Python 3.11 beside ml-metadata 1.17.1, so this module writes what
TFX's orchestrator would write for the chain
CsvExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer ->
Resolver -> Evaluator -> Pusher, with real files in TFX's directory layout.

What it follows, by source file of the tensorflow/tfx repository:

* ``tfx/types/standard_artifacts.py``: the artifact type names ``Examples``,
  ``ExampleStatistics``, ``Schema``, ``ExampleAnomalies``, ``TransformGraph``, ``Model``,
  ``ModelRun``, ``ModelEvaluation``, ``ModelBlessing``, ``PushedModel``; ``Examples``,
  ``ExampleStatistics`` and ``ExampleAnomalies`` have the properties ``span`` (INT),
  ``split_names`` (STRING, a JSON list) and, for ``Examples``, ``version`` (INT).
* ``tfx/orchestration/metadata.py``: context types ``pipeline``, ``run`` and
  ``component_run`` (properties ``pipeline_name``, ``run_id``, ``component_id``), execution
  type properties ``state``, ``pipeline_name``, ``pipeline_root``, ``run_id``,
  ``component_id`` and ``checksum_md5`` (execution properties are all registered as
  STRING), the artifact custom property ``state`` (``published``), the execution type named
  by the component's class path, and events whose path is the output/input key and index.
* ``tfx/types/artifact_utils.py`` (``get_split_uri``): split folders ``Split-<name>``;
  ``tfx/components/example_gen/write_split.py`` / ``utils.py``: files
  ``data_tfrecord-00000-of-00001.gz`` and the file format ``'tfrecords_gzip'`` (the default
  of ``example_gen_pb2.FORMAT_TFRECORDS_GZIP``); ``tfx/components/util/examples_utils.py``:
  the custom properties ``file_format`` and ``payload_format = 'FORMAT_TF_EXAMPLE'``.
* ``tfx/components/schema_gen/executor.py`` (``DEFAULT_FILE_NAME``): the schema at
  ``<uri>/schema.pbtxt``, a text-format ``tensorflow_metadata.proto.v0.schema_pb2.Schema``
  (as TFX's own tutorials read it with ``tfdv.load_schema_text``); ExampleValidator writes
  ``Split-<name>/SchemaDiff.pb``.
* ``tfx/components/evaluator`` / ``tfx/components/pusher``: ``ModelBlessing`` custom
  properties ``blessed`` (1/0), ``current_model``, ``current_model_id``,
  ``baseline_model_id``; ``PushedModel`` custom properties ``pushed``,
  ``pushed_destination``, ``pushed_version``; the model under ``Format-Serving``.
* ``tfx/dsl/components/common/resolver.py``: the Resolver node
  ``latest_blessed_model_resolver`` whose OUTPUT events point at an *existing* Model
  (the previous run's blessed model), which the Evaluator takes as ``baseline_model``.

:func:`build` writes ``runs`` pipeline runs; run ``k > 1`` resolves run ``k - 1``'s model.
Every third run's model is not blessed and not pushed. The tests, the benchmarks and the TFX
tutorial use it; :func:`mlmd_magic.testing.tfx_pipeline_store` is its public entry.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

from ..core.datafiles import write_tfrecord

PIPELINE = "taxi_pipeline"
TFX_VERSION = "1.15.0"

# TFX type name -> (MLMD base type, properties)
_SPAN_SPLITS = {"span": "INT", "split_names": "STRING"}
ARTIFACT_TYPES: dict[str, tuple[str | None, dict[str, str]]] = {
    "Examples": ("DATASET", {**_SPAN_SPLITS, "version": "INT"}),
    "ExampleStatistics": ("STATISTICS", dict(_SPAN_SPLITS)),
    "Schema": (None, {}),
    "ExampleAnomalies": (None, dict(_SPAN_SPLITS)),
    "TransformGraph": (None, {}),
    "Model": ("MODEL", {}),
    "ModelRun": (None, {}),
    "ModelEvaluation": ("METRICS", {}),
    "ModelBlessing": (None, {}),
    "PushedModel": ("MODEL", {}),
}

# component id -> (execution type name: the component's class path, execution properties)
COMPONENTS: dict[str, tuple[str, list[str]]] = {
    "CsvExampleGen": ("tfx.components.example_gen.csv_example_gen.component.CsvExampleGen",
                      ["input_base", "input_config", "output_config", "output_data_format"]),
    "StatisticsGen": ("tfx.components.statistics_gen.component.StatisticsGen", ["exclude_splits"]),
    "SchemaGen": ("tfx.components.schema_gen.component.SchemaGen", ["infer_feature_shape", "exclude_splits"]),
    "ExampleValidator": ("tfx.components.example_validator.component.ExampleValidator", ["exclude_splits"]),
    "Transform": ("tfx.components.transform.component.Transform", ["module_file", "splits_config"]),
    "Trainer": ("tfx.components.trainer.component.Trainer", ["module_file", "train_args", "eval_args"]),
    "latest_blessed_model_resolver": ("tfx.dsl.components.common.resolver.Resolver", ["strategy_class"]),
    "Evaluator": ("tfx.components.evaluator.component.Evaluator", ["eval_config", "fairness_indicator_thresholds"]),
    "Pusher": ("tfx.components.pusher.component.Pusher", ["push_destination"]),
}
_RESERVED_EXEC_PROPS = ["state", "pipeline_name", "pipeline_root", "run_id", "component_id", "checksum_md5"]

FEATURES = ("trip_miles", "fare", "hour")
LABEL = "tips"


@dataclass
class TfxRun:
    """Ids of what one pipeline run wrote, by output (``examples``, ``model``, ...) and component."""

    run_id: str
    artifacts: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    contexts: dict[str, int] = field(default_factory=dict)


@dataclass
class TfxStore:
    """What :func:`build` wrote: the pipeline root and each run's ids, oldest first; ``uri`` is
    the store's URI for :func:`mlmd_magic.connect` when :func:`build_sqlite` wrote it."""

    root: str
    runs: list[TfxRun]
    uri: str = ""

    @property
    def last(self) -> TfxRun:
        return self.runs[-1]


def register_types(mlmd: Any) -> dict[str, dict[str, int]]:
    """Register TFX's artifact, execution and context types (as TFX does: add/omit fields allowed)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    ids: dict[str, dict[str, int]] = {"artifact": {}, "execution": {}, "context": {}}
    for name, (base, props) in ARTIFACT_TYPES.items():
        t = pb.ArtifactType(name=name)
        if base:
            t.base_type = pb.ArtifactType.SystemDefinedBaseType.Value(base)
        for key, kind in props.items():
            t.properties[key] = pb.PropertyType.Value(kind)
        ids["artifact"][name] = mlmd.put_artifact_type(t, can_add_fields=True, can_omit_fields=True)
    for component, (type_name, exec_props) in COMPONENTS.items():
        t = pb.ExecutionType(name=type_name)
        for key in _RESERVED_EXEC_PROPS + exec_props:
            t.properties[key] = pb.STRING
        ids["execution"][component] = mlmd.put_execution_type(t, can_add_fields=True, can_omit_fields=True)
    context_props = {"pipeline": ["pipeline_name"], "run": ["pipeline_name", "run_id"],
                     "component_run": ["pipeline_name", "run_id", "component_id"]}
    for name, keys in context_props.items():
        t = pb.ContextType(name=name)
        for key in keys:
            t.properties[key] = pb.STRING
        ids["context"][name] = mlmd.put_context_type(t, can_add_fields=True, can_omit_fields=True)
    return ids


def _examples(n: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for _ in range(n):
        miles, hour = rng.uniform(0.5, 20.0), rng.randrange(24)
        fare = 3.0 + 2.5 * miles + rng.gauss(0, 1)
        tips = int(miles > 6.0) if rng.random() > 0.1 else int(miles <= 6.0)
        rows.append({"trip_miles": miles, "fare": fare, "hour": hour, LABEL: tips})
    return rows


def write_examples(uri: str, splits: dict[str, int], seed: int = 0) -> None:
    """Gzip-compressed TFRecords of ``tf.train.Example`` in TFX's layout under ``uri``; the same
    ``seed`` writes byte-identical files."""
    rng = random.Random(seed)
    for split, n in splits.items():
        folder = os.path.join(uri, f"Split-{split}")
        os.makedirs(folder, exist_ok=True)
        plain = os.path.join(folder, "data_tfrecord-00000-of-00001")
        write_tfrecord(plain, _examples(n, rng))
        # mtime=0: the same seed writes the same bytes (gzip otherwise stamps the time in its header)
        with open(plain, "rb") as src, open(plain + ".gz", "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as dst:
            dst.write(src.read())
        os.remove(plain)


def write_schema(uri: str) -> None:
    """``schema.pbtxt`` as SchemaGen writes it (text-format tensorflow_metadata Schema)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name, kind in (("fare", schema_pb2.FLOAT), ("hour", schema_pb2.INT), ("trip_miles", schema_pb2.FLOAT),
                       (LABEL, schema_pb2.INT)):
        feature = schema.feature.add(name=name, type=kind)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add(size=1)
    os.makedirs(uri, exist_ok=True)
    with open(os.path.join(uri, "schema.pbtxt"), "w", encoding="utf-8") as fh:
        fh.write(text_format.MessageToString(schema))


def _touch(path: str, data: bytes = b"") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def build(mlmd: Any, root: str, runs: int = 2, *, files: bool = True, examples: dict[str, int] | None = None
          ) -> TfxStore:
    """Write ``runs`` runs of the pipeline into ``mlmd`` (a plain ``ml_metadata`` store), with
    their files under ``root`` (``files=False`` writes the records only, for benchmarks)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    ids = register_types(mlmd)
    splits = examples or {"train": 240, "eval": 80}
    [pipeline_ctx] = mlmd.put_contexts([_context(ids["context"]["pipeline"], PIPELINE, pipeline_name=PIPELINE)])
    out = TfxStore(root, [])
    previous_model: int | None = None
    for k in range(1, runs + 1):
        run_id = f"2024-05-{k:02d}T10:00:00.{k:06d}"
        run = TfxRun(run_id)
        [run_ctx] = mlmd.put_contexts([_context(ids["context"]["run"], f"{PIPELINE}.{run_id}",
                                                pipeline_name=PIPELINE, run_id=run_id)])
        run.contexts = {"pipeline": pipeline_ctx, "run": run_ctx}

        def component(cid: str, inputs: dict[str, int], outputs: dict[str, tuple[str, str, dict[str, Any]]],
                      exec_props: dict[str, str], resolved: dict[str, int] | None = None,
                      k: int = k, run: TfxRun = run, run_ctx: int = run_ctx, run_id: str = run_id) -> None:
            [ctx] = mlmd.put_contexts([_context(ids["context"]["component_run"], f"{PIPELINE}.{run_id}.{cid}",
                                                pipeline_name=PIPELINE, run_id=run_id, component_id=cid)])
            execution = pb.Execution(type_id=ids["execution"][cid], last_known_state=pb.Execution.COMPLETE)
            props = {"state": "complete", "pipeline_name": PIPELINE, "pipeline_root": root, "run_id": run_id,
                     "component_id": cid, **exec_props}
            for key, value in props.items():
                execution.properties[key].string_value = value
            arts, events = [], []
            for key, (type_name, uri, custom) in outputs.items():
                art = pb.Artifact(type_id=ids["artifact"][type_name], uri=uri, state=pb.Artifact.LIVE)
                for pkey, value in custom.items():
                    target = art.properties if pkey in ARTIFACT_TYPES[type_name][1] else art.custom_properties
                    if isinstance(value, int):
                        target[pkey].int_value = value
                    else:
                        target[pkey].string_value = value
                for pkey, value in (("state", "published"), ("tfx_version", TFX_VERSION), ("name", key),
                                    ("producer_component", cid), ("pipeline_name", PIPELINE)):
                    art.custom_properties[pkey].string_value = value
                arts.append((key, art))
            new_ids = mlmd.put_artifacts([a for _, a in arts]) if arts else []
            for (key, _), aid in zip(arts, new_ids):
                run.artifacts[key] = aid
            for key, aid in list(inputs.items()) + list((resolved or {}).items()):
                kind = pb.Event.INPUT if key in inputs else pb.Event.OUTPUT
                ev = pb.Event(artifact_id=aid, type=kind)
                ev.path.steps.add().key = key
                ev.path.steps.add().index = 0
                events.append(ev)
            for (key, _), aid in zip(arts, new_ids):
                ev = pb.Event(artifact_id=aid, type=pb.Event.OUTPUT)
                ev.path.steps.add().key = key
                ev.path.steps.add().index = 0
                events.append(ev)
            [eid] = mlmd.put_executions([execution])
            for ev in events:
                ev.execution_id = eid
            mlmd.put_events(events)
            mlmd.put_attributions_and_associations(
                [pb.Attribution(context_id=c, artifact_id=a) for c in (pipeline_ctx, run_ctx, ctx)
                 for a in new_ids],
                [pb.Association(context_id=c, execution_id=eid) for c in (pipeline_ctx, run_ctx, ctx)])
            run.executions[cid] = eid

        def uri(cid: str, key: str, k: int = k) -> str:
            # TFX: <pipeline_root>/<component_id>/<output_key>/<execution_id>; the run number stands in
            return os.path.join(root, cid, key, str(k))

        ex_uri = uri("CsvExampleGen", "examples")
        if files:
            write_examples(ex_uri, splits, seed=k)
        split_names = json.dumps(sorted(splits))
        component("CsvExampleGen", {}, {"examples": ("Examples", ex_uri, {
            "span": 0, "version": 0, "split_names": split_names, "file_format": "tfrecords_gzip",
            "payload_format": "FORMAT_TF_EXAMPLE", "input_fingerprint": f"split:single_split,num_files:1,k:{k}"})},
            {"input_base": os.path.join(root, "data"), "output_data_format": "6"})
        st_uri = uri("StatisticsGen", "statistics")
        if files:
            for split in splits:
                _touch(os.path.join(st_uri, f"Split-{split}", "FeatureStats.pb"), b"\x0a\x00")
        component("StatisticsGen", {"examples": run.artifacts["examples"]},
                  {"statistics": ("ExampleStatistics", st_uri, {"span": 0, "split_names": split_names})},
                  {"exclude_splits": "[]"})
        sc_uri = uri("SchemaGen", "schema")
        if files:
            write_schema(sc_uri)
        component("SchemaGen", {"statistics": run.artifacts["statistics"]}, {"schema": ("Schema", sc_uri, {})},
                  {"infer_feature_shape": "1", "exclude_splits": "[]"})
        an_uri = uri("ExampleValidator", "anomalies")
        if files:
            for split in splits:
                _touch(os.path.join(an_uri, f"Split-{split}", "SchemaDiff.pb"))
        component("ExampleValidator", {"statistics": run.artifacts["statistics"], "schema": run.artifacts["schema"]},
                  {"anomalies": ("ExampleAnomalies", an_uri, {"span": 0, "split_names": split_names})},
                  {"exclude_splits": "[]"})
        tg_uri, te_uri = uri("Transform", "transform_graph"), uri("Transform", "transformed_examples")
        if files:
            _touch(os.path.join(tg_uri, "transform_fn", "saved_model.pb"), b"\x08\x01")
            write_examples(te_uri, splits, seed=100 + k)
        component("Transform", {"examples": run.artifacts["examples"], "schema": run.artifacts["schema"]},
                  {"transform_graph": ("TransformGraph", tg_uri, {}),
                   "transformed_examples": ("Examples", te_uri, {"split_names": split_names,
                                                                 "file_format": "tfrecords_gzip"})},
                  {"module_file": "taxi_utils.py", "splits_config": "null"})
        mo_uri, mr_uri = uri("Trainer", "model"), uri("Trainer", "model_run")
        if files:
            _touch(os.path.join(mo_uri, "Format-Serving", "saved_model.pb"), b"\x08\x01")
            _touch(os.path.join(mr_uri, "events.out.tfevents"))
        component("Trainer", {"examples": run.artifacts["transformed_examples"],
                              "transform_graph": run.artifacts["transform_graph"], "schema": run.artifacts["schema"]},
                  {"model": ("Model", mo_uri, {}), "model_run": ("ModelRun", mr_uri, {})},
                  {"module_file": "taxi_utils.py", "train_args": '{"num_steps": 100}', "eval_args": '{"num_steps": 5}'})
        resolved = {"model": previous_model} if previous_model else {}
        component("latest_blessed_model_resolver", {}, {},
                  {"strategy_class": "tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy."
                                     "LatestBlessedModelStrategy"}, resolved=resolved)
        ev_uri, bl_uri = uri("Evaluator", "evaluation"), uri("Evaluator", "blessing")
        blessed = int(k % 3 != 0)  # every third run's model is not blessed
        if files:
            _touch(os.path.join(ev_uri, "metrics"), b"")
            _touch(os.path.join(bl_uri, "BLESSED" if blessed else "NOT_BLESSED"))
        eval_inputs = {"examples": run.artifacts["examples"], "model": run.artifacts["model"]}
        if previous_model:
            eval_inputs["baseline_model"] = previous_model
        blessing = {"blessed": blessed, "current_model": mo_uri, "current_model_id": run.artifacts["model"]}
        if previous_model:
            blessing["baseline_model_id"] = previous_model
        component("Evaluator", eval_inputs,
                  {"evaluation": ("ModelEvaluation", ev_uri, {}), "blessing": ("ModelBlessing", bl_uri, blessing)},
                  {"eval_config": '{"metrics_specs": [{"metrics": [{"class_name": "BinaryAccuracy"}]}]}',
                   "fairness_indicator_thresholds": "null"})
        if blessed:
            pu_uri = uri("Pusher", "pushed_model")
            dest = os.path.join(root, "serving_model", PIPELINE, str(1700000000 + k))
            if files:
                _touch(os.path.join(pu_uri, "saved_model.pb"), b"\x08\x01")
            component("Pusher", {"model": run.artifacts["model"], "model_blessing": run.artifacts["blessing"]},
                      {"pushed_model": ("PushedModel", pu_uri, {"pushed": 1, "pushed_destination": dest,
                                                                 "pushed_version": str(1700000000 + k)})},
                      {"push_destination": json.dumps({"filesystem": {"base_directory": dest}})})
            previous_model = run.artifacts["model"]
        out.runs.append(run)
    return out


def build_sqlite(folder: str, runs: int = 2, *, examples: dict[str, int] | None = None) -> TfxStore:
    """Write ``<folder>/metadata.sqlite`` (as TFX's ``Metadata`` does) through plain ``ml_metadata``
    and the pipeline's files under ``<folder>/pipeline``; refuses a folder that already has a store."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    path = os.path.abspath(os.path.join(folder, "metadata.sqlite"))
    if os.path.exists(path):
        raise ValueError(f"{path} already exists: remove {folder} first to build a new TFX pipeline store")
    os.makedirs(folder, exist_ok=True)
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    mlmd = metadata_store.MetadataStore(config)
    built = build(mlmd, os.path.abspath(os.path.join(folder, "pipeline")), runs, examples=examples)
    built.uri = "sqlite:///" + os.path.join(folder, "metadata.sqlite")
    del mlmd  # ml_metadata closes the SQLite file when its store is collected
    return built


def _context(type_id: int, name: str, **props: str) -> Any:
    from ml_metadata.proto import metadata_store_pb2 as pb

    ctx = pb.Context(type_id=type_id, name=name)
    for key, value in props.items():
        ctx.properties[key].string_value = value
    return ctx


def snapshot(mlmd: Any, tfx: TfxStore) -> str:
    """A hash of every row TFX wrote, read through ml_metadata's API: its types (with their
    properties), artifacts, executions, contexts, events, attributions and associations."""
    digest = hashlib.sha256()
    tfx_artifact_types = set(ARTIFACT_TYPES)
    tfx_execution_types = {name for name, _ in COMPONENTS.values()}
    for getter, names in ((mlmd.get_artifact_types, tfx_artifact_types),
                          (mlmd.get_execution_types, tfx_execution_types),
                          (mlmd.get_context_types, {"pipeline", "run", "component_run"})):
        for t in sorted((t for t in getter() if t.name in names), key=lambda t: t.id):
            digest.update(t.SerializeToString(deterministic=True))
    artifact_ids = sorted({a for r in tfx.runs for a in r.artifacts.values()})
    execution_ids = sorted({e for r in tfx.runs for e in r.executions.values()})
    for art in mlmd.get_artifacts_by_id(artifact_ids):
        digest.update(art.SerializeToString(deterministic=True))
    for ex in mlmd.get_executions_by_id(execution_ids):
        digest.update(ex.SerializeToString(deterministic=True))
    for ev in sorted(mlmd.get_events_by_execution_ids(execution_ids),
                     key=lambda e: (e.execution_id, e.artifact_id, e.type)):
        digest.update(ev.SerializeToString(deterministic=True))
    context_ids = sorted({c.id for t in ("pipeline", "run", "component_run") for c in mlmd.get_contexts_by_type(t)})
    for ctx in mlmd.get_contexts_by_id(context_ids):
        digest.update(ctx.SerializeToString(deterministic=True))
        digest.update(str(sorted(a.id for a in mlmd.get_artifacts_by_context(ctx.id))).encode())
        digest.update(str(sorted(e.id for e in mlmd.get_executions_by_context(ctx.id))).encode())
    return digest.hexdigest()


__all__ = ["ARTIFACT_TYPES", "COMPONENTS", "FEATURES", "LABEL", "TfxRun", "TfxStore", "build", "build_sqlite",
           "register_types", "snapshot", "write_examples", "write_schema"]
