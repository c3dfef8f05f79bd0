"""From lab to service: model cards and pushes, filled from the records alone.

* :meth:`Release.model_card` gathers what the store knows of a model — the experiment, data
  source (per split: examples, label distribution, fingerprint), scenario, the run, its
  evaluations under each policy with their verdicts, its pushes — into the field names of
  Google's Model Card Toolkit schema (``model_details``, ``model_parameters``,
  ``quantitative_analysis``, ``considerations``) and writes ``model_card.json`` and
  ``model_card.html``.
* :meth:`Release.push` writes a model blessed under a policy as a TensorFlow SavedModel in TF
  Serving's layout ``DIR/<version>/`` (versions 1, 2, ... like TFX's Pusher), with the card
  beside it, recorded as a ``Push`` execution with an output ``mlmd_magic.PushedModel``.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..backend import session as _session
from ..backend.properties import set_properties, text
from ..backend.recorder import Action, Recorder
from ..core.evaluation import parse_slices, slice_names
from ..core.names import experiment_ref, parse_ref
from ..core.values import canonical_json, split_kind
from ..display.html import pre
from ..display.release import card_html, card_page
from ..errors import MlmdMagicError, NotBlessedError, ValidationError
from .records import Records
from .runs import Runs

__all__ = ["ModelCard", "Pushed", "Release"]

_VERSION_DIR = re.compile(r"[0-9]+")  # plain ASCII digits: TF Serving's version folders
MAX_VERSION = 2**63 - 1  # an int64: MLMD's int property and TF Serving's version number


@dataclass(frozen=True)
class ModelCard:
    """A model card (Model Card Toolkit field names) and where it was written."""

    data: dict[str, Any]
    html: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = json.loads(json.dumps(self.data))
        return plain

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        details = self.data["model_details"]
        lines = [f"Model card: {details['name']} ({details['version']['name']})", f"  {details['overview']}"]
        for metric in self.data["quantitative_analysis"]["performance_metrics"]:
            if metric["type"] in ("accuracy", "example_count") or metric.get("threshold"):
                mark = f"  [{metric['threshold']}]" if metric.get("threshold") else ""
                lines.append(f"  {metric['slice']:<14} {metric['type']:<16} {metric['value']}{mark}")
        lines += [f"  written: {p}" for p in self.paths]
        return "\n".join(lines)


@dataclass(frozen=True)
class Pushed:
    """A push: where the SavedModel went, its version, the policy and verdict behind it."""

    uri: str
    version: int
    model_id: int
    model_name: str
    policy: str
    blessed: bool
    overridden: list[str] = field(default_factory=list)  # failed checks pushed anyway (force=True)
    by: str = ""
    id: int = 0  # the PushedModel artifact

    def to_dict(self) -> dict[str, Any]:
        return {"pushed_model": self.id, "uri": self.uri, "version": self.version, "model": self.model_id,
                "model_name": self.model_name, "policy": self.policy, "blessed": self.blessed,
                "overridden": self.overridden, "by": self.by}

    def __repr__(self) -> str:
        how = "blessed" if self.blessed else f"NOT blessed, forced by {self.by} over {len(self.overridden)} " \
                                             "failed check(s)"
        lines = [f"pushed {self.model_name} as version {self.version} to {self.uri} (policy {self.policy}: {how})"]
        lines += [f"  overridden: {c}" for c in self.overridden]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return pre(repr(self), cls="mlmd-magic-push")


def next_version(folder: str, after: int = 0) -> tuple[int, str]:
    """The next TF Serving version number under ``folder`` and the entry that decided it.

    One more than the largest version folder (and than ``after``): an entry named by plain
    ASCII digits that is a folder (or a link to one). Dangling links, files and other names
    do not count, but a number whose name is taken by one is skipped. 1 for a new or empty
    folder (the entry is then ``""``).

    Raises
    ------
    ValidationError
        When ``folder`` is not a folder or cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     for name in ("7", "٣", "v9"):
    ...         os.mkdir(os.path.join(root, name))
    ...     os.symlink("gone", os.path.join(root, "8"))  # dangling: 8 is skipped, not counted
    ...     next_version(root)
    (9, '8')
    """
    if not os.path.lexists(folder):
        return max(after, 0) + 1, ""
    if not os.path.isdir(folder):
        raise ValidationError(f"cannot push to {folder}: it is not a folder; push to a folder (TF Serving's model "
                              "base path), new or holding version folders 1, 2, ...")
    try:
        entries = os.listdir(folder)
    except OSError as exc:
        raise ValidationError(f"cannot read {folder}: {exc.strerror}; push to a folder you can read and "
                              "write") from None
    numbered = {int(n): n for n in entries if _VERSION_DIR.fullmatch(n) and os.path.isdir(os.path.join(folder, n))}
    largest = max(numbered, default=0)
    version, entry = max(largest, after) + 1, numbered.get(largest, "") if largest >= after else ""
    taken = set(entries)
    while str(version) in taken:  # a dangling link or a file where this version would go
        entry = str(version)
        version += 1
    return version, entry


def _check_version(folder: str, version: int, entry: str) -> None:
    """Refuse a version that MLMD's int64 property and TF Serving's version numbers cannot hold."""
    if version > MAX_VERSION:
        cause = f"its entry {entry!r} makes" if entry else "its entries make"
        raise ValidationError(
            f"cannot push to {folder}: {cause} the next version {version}, beyond the largest TF Serving and "
            f"MLMD can hold (2**63 - 1 = {MAX_VERSION}); rename or remove "
            f"{os.path.join(folder, entry) if entry else 'its largest version folder'}, or push to another folder")


def _missing_folders(folder: str) -> list[str]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


class Release:
    """Model cards and pushes for one store."""

    def __init__(self, records: Records, runs: Runs, recorder: Recorder) -> None:
        self.records = records
        self.runs = runs
        self.recorder = recorder

    @property
    def mlmd(self) -> Any:
        return self.recorder.mlmd

    # ------------------------------------------------------------------ evaluations

    def newest_evaluation(self, model: Any, policy: str | None, *, any_policy: bool = False) -> Any | None:
        """The model's newest Evaluation artifact under ``policy`` (NAME, NAME@N or policy:NAME[@N]);
        without one, the newest under any policy, or (``any_policy``) the newest of all."""
        evaluations = [e for e in self.runs.evaluations_of([model.id])[model.id]
                       if text(e.properties, "policy") or (any_policy and not policy)]
        if policy:
            _, policy = split_kind(policy, "policies")  # policy:NAME[@N] as well as NAME[@N]
            name = policy.split("@", 1)[0]
            self.records.resolve("policies", policy)  # an unknown policy is a NotFoundError
            evaluations = [e for e in evaluations if text(e.properties, "policy") == policy
                           or ("@" not in policy and text(e.properties, "policy").rsplit("@", 1)[0] == name)]
        return evaluations[-1] if evaluations else None

    @staticmethod
    def _failed(evaluation: Any) -> list[str]:
        checks = json.loads(text(evaluation.properties, "checks") or "[]")
        return [f"{c['slice']}: {c['threshold']}" + (f" ({c['reason']})" if c.get("reason") else "")
                for c in checks if not c.get("passed")]

    @staticmethod
    def _blessed(evaluation: Any) -> bool:
        return bool(evaluation.custom_properties["blessed"].int_value) if "blessed" in evaluation.custom_properties \
            else False

    # ------------------------------------------------------------------ model card

    def card_data(self, model: Any) -> dict[str, Any]:
        """The model card's fields, from the records alone."""
        from ml_metadata.proto import metadata_store_pb2 as pb

        params = self._experiment(model)
        ds_ref = f"{params['datasource']['name']}@{params['datasource']['version']}"
        ds_art = self.records.resolve("datasources", ds_ref)
        datasource = self.records.data("datasources", ds_art)
        experiment = self.records.resolve("experiments", experiment_ref(params))
        scenario = self.records.data("scenarios", self.records.resolve(
            "scenarios", f"{params['scenario']['name']}@{params['scenario']['version']}"))
        files = json.loads(text(ds_art.properties, "files") or "{}")
        signature = json.loads(text(model.properties, "signature") or "{}")
        metrics = json.loads(text(model.properties, "metrics") or "{}")
        created = _dt.datetime.fromtimestamp(model.create_time_since_epoch / 1000, tz=_dt.timezone.utc)
        data = []
        for split in datasource["splits"]:
            digest = hashlib.sha256(canonical_json(sorted(f[3] for f in files.get(split, []) if len(f) > 3))
                                    .encode()).hexdigest() if files.get(split) else datasource["fingerprint"]
            labels = datasource["label_distribution"].get(split, {})
            names = datasource.get("label_names") or []
            shown = {names[int(k)] if k.isdecimal() and int(k) < len(names) else k: v for k, v in labels.items()}
            data.append({"name": f"{ds_ref}:{split}",
                         "link": os.path.join(datasource["uri"], datasource["splits"][split]),
                         "description": f"{datasource['examples'].get(split, 0)} examples; label distribution "
                                        f"{json.dumps(shown)}; SHA-256 fingerprint {digest}",
                         "sensitive": {"sensitive_data": []},
                         "graphics": {"description": "", "collection": []},
                         # beyond the schema's fields, kept machine-readable
                         "split": split, "examples": datasource["examples"].get(split, 0),
                         "label_distribution": shown, "fingerprint": digest})
        evaluations = self.runs.evaluations_of([model.id])[model.id]
        latest: dict[str, Any] = {}
        for e in evaluations:
            latest[text(e.properties, "policy").rsplit("@", 1)[0] or "(no policy)"] = e
        performance, policies = [], []
        # release policies first, the most recently evaluated first; evaluations under no policy last
        for key, e in sorted(latest.items(), key=lambda item: (item[0] == "(no policy)", -item[1].id)):
            stored = json.loads(text(e.properties, "metrics") or "{}")
            checks = json.loads(text(e.properties, "checks") or "[]")
            marks: dict[tuple[str, str], str] = {}
            for c in checks:
                metric = c["threshold"].split(" ", 1)[0]
                marks[(metric, c["slice"])] = ("✓ " if c["passed"] else "✗ ") + c["threshold"]
            policy_ref = text(e.properties, "policy")
            per_slice = stored.get("metrics") or {}
            named = slice_names(parse_slices([_spec(s) for s in json.loads(text(e.properties, "slices") or "[]")]))
            order = [s for s in (named or []) if s in per_slice] + [s for s in per_slice if s not in (named or [])]
            for slice_name, values in ((s, per_slice[s]) for s in order):
                for metric, value in values.items():
                    performance.append({
                        "type": metric, "value": "—" if value is None else f"{value:.4g}", "slice": slice_name,
                        "threshold": marks.get((metric, slice_name), ""),
                        "policy": policy_ref, "evaluation": e.id})
            policies.append({"policy": policy_ref or key, "evaluation": e.id, "split": text(e.properties, "split"),
                             "verdict": "BLESSED" if self._blessed(e) else "NOT BLESSED",
                             "failed_checks": self._failed(e),
                             "slices": order})
        owners = []
        for p in policies:
            if p["policy"] and "@" in p["policy"]:
                owner = self.records.data("policies", self.records.resolve("policies", p["policy"]))["owner"]
                if owner and {"name": owner, "contact": ""} not in owners:
                    owners.append({"name": owner, "contact": ""})
        pushes = self._pushes(model)
        run = self._train_execution(model)
        run_name = run.name if run is not None else ""
        lineage = [f"data source {ds_ref} (fingerprint {datasource['fingerprint'][:12]})",
                   f"scenario {scenario['name']}@{scenario['version']} (builder {scenario['model']})",
                   f"experiment {experiment.name}",
                   f"run {run_name or '?'} ({pb.Execution.State.Name(run.last_known_state) if run else '?'})",
                   f"model #{model.id} {model.name}"]
        lineage += [f"evaluation #{p['evaluation']} under {p['policy']}: {p['verdict']}" for p in policies]
        lineage += [f"pushed as version {a.properties['version'].int_value} to {a.uri}" for a in pushes]
        limitations = [{"description": f"fails {c} under {p['policy']}"} for p in policies for c in p["failed_checks"]]
        return {
            "schema_version": "0.0.2",
            "model_details": {
                "name": str(model.name) or f"model #{model.id}",
                "overview": f"{signature.get('task', '')} model ({scenario['model']}) trained by experiment "
                            f"{experiment.name} on {ds_ref}" + (f": {datasource['description']}"
                                                               if datasource.get("description") else ""),
                "documentation": "Lineage: " + " -> ".join(lineage),
                "owners": owners,
                "version": {"name": str(model.name), "date": created.isoformat(timespec="seconds"),
                            "diff": ""},
                "licenses": [], "references": [], "citations": [],
                "path": model.uri,
            },
            "model_parameters": {
                "model_architecture": f"{scenario['model']} (Keras), hyperparameters "
                                      f"{canonical_json(params['params'])}",
                "data": data,
                "input_format": "one tensor per feature: " + ", ".join(signature.get("input_features") or []),
                "input_format_map": [{"key": k, "value": json.dumps(v)} for k, v in datasource["features"].items()
                                     if k != datasource["label"]],
                "output_format": f"{signature.get('task', '')} scores"
                                 + (f" over {signature.get('num_classes')} classes "
                                    f"{datasource.get('label_names') or ''}" if signature.get("task") == "multiclass"
                                    else ""),
                "output_format_map": [],
            },
            "quantitative_analysis": {
                "performance_metrics": performance,
                "graphics": {"description": "", "collection": []},
                # beyond the schema's fields: each policy's verdict
                "policies": policies,
                "training_metrics": metrics,
            },
            "considerations": {
                "users": [], "use_cases": [],
                "limitations": limitations,
                "tradeoffs": [], "ethical_considerations": [],
            },
        }

    def _experiment(self, model: Any) -> dict[str, Any]:
        experiment = self.records.resolve("experiments", text(model.properties, "experiment"))
        return self.records.data("experiments", experiment)

    def _train_execution(self, model: Any) -> Any | None:
        from ml_metadata.proto import metadata_store_pb2 as pb

        ids = [e.execution_id for e in self.mlmd.get_events_by_artifact_ids([model.id]) if e.type == pb.Event.OUTPUT]
        found = self.mlmd.get_executions_by_id(ids) if ids else []
        return found[0] if found else None

    def _pushes(self, model: Any) -> list[Any]:
        from ml_metadata.proto import metadata_store_pb2 as pb

        ids = [e.execution_id for e in self.mlmd.get_events_by_artifact_ids([model.id]) if e.type == pb.Event.INPUT]
        if not ids:
            return []
        outputs = [e.artifact_id for e in self.mlmd.get_events_by_execution_ids(ids) if e.type == pb.Event.OUTPUT]
        pushed_type = self.recorder.types.artifacts["PushedModel"]
        return sorted((a for a in (self.mlmd.get_artifacts_by_id(outputs) if outputs else [])
                       if a.type_id == pushed_type), key=lambda a: a.id)

    def model_card(self, target: Any, to: str | None) -> ModelCard:
        """See :meth:`mlmd_magic.Store.model_card`."""
        act = Action("WriteModelCard", {"target": str(getattr(target, "model_id", target)), "to": to})
        with self.recorder.guard(act):
            model = self.runs.resolve_model(target)
            act.inputs.append(model)
            folder = to or os.path.dirname(model.uri) or "."
            card = self.write_card(model, folder)
            act.outcome = f"wrote {', '.join(card.paths)}"
            self.recorder.commit(act)
            return card

    def write_card(self, model: Any, folder: str) -> ModelCard:
        data = self.card_data(model)
        page = card_html(data)
        os.makedirs(folder, exist_ok=True)
        paths = [os.path.join(folder, "model_card.json"), os.path.join(folder, "model_card.html")]
        with open(paths[0], "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
        with open(paths[1], "w", encoding="utf-8") as fh:
            fh.write(card_page(data, page))
        return ModelCard(data, page, paths)

    # ------------------------------------------------------------------ push

    def gate_evaluation(self, model: Any, policy: str | None) -> Any:
        """The evaluation whose verdict lets ``model`` be pushed under ``policy``.

        A blessing counts under a policy's current version only. ``policy`` ``NAME`` (or
        ``policy:NAME``) is its latest version: the model's newest evaluation under that version.
        ``NAME@N`` pins version N: the newest evaluation under it. Without ``policy``: the model's
        newest evaluation under any policy, which must be under that policy's latest version.

        Raises
        ------
        NotBlessedError
            When there is no such evaluation, or the one there is was made under a version of its
            policy that a newer one has replaced (the message says what to run).
        NotFoundError
            When ``policy`` names no policy (or no version of it).
        """
        evaluations = [e for e in self.runs.evaluations_of([model.id])[model.id] if text(e.properties, "policy")]
        label = str(model.name) or f"model #{model.id}"
        if policy:
            _, ref = split_kind(policy, "policies")  # policy:NAME[@N] as well as NAME[@N]
            parsed = parse_ref(ref, "policy reference")
            art = self.records.resolve("policies", ref)  # an unknown policy or version is a NotFoundError
            wanted = f"{parsed.name}@{art.properties['version'].int_value}"
            under = [e for e in evaluations if text(e.properties, "policy") == wanted]
            if under:
                return under[-1]
            if parsed.version is None:
                older = [e for e in evaluations if text(e.properties, "policy").rsplit("@", 1)[0] == parsed.name]
                if older:
                    self._refuse_outdated(model, label, older[-1], art.properties["version"].int_value)
        elif evaluations:
            newest = evaluations[-1]
            name, _, version = text(newest.properties, "policy").rpartition("@")
            latest = self.records.latest("policies", name)
            current = latest.properties["version"].int_value if latest is not None else 0
            if version.isdecimal() and current > int(version):
                self._refuse_outdated(model, label, newest, current)
            return newest
        under_what = f"policy {policy}" if policy else "a policy"
        raise NotBlessedError(
            f"{label} has no evaluation under {under_what}; evaluate it first: %mlmd evaluate model:{model.id} "
            f"--policy {policy or 'NAME'} (store.evaluate(model, policy={policy or 'NAME'!r}))")

    @staticmethod
    def _refuse_outdated(model: Any, label: str, evaluation: Any, current: int) -> None:
        policy_ref = text(evaluation.properties, "policy")
        name = policy_ref.rsplit("@", 1)[0]
        raise NotBlessedError(
            f"{label} was evaluated under {policy_ref}, but {name} is now at version {current}: a push counts a "
            f"verdict under a policy's current version only (evaluation #{evaluation.id} is not); not pushed. "
            f"Evaluate it under {name}@{current}: %mlmd evaluate model:{model.id} --policy {name} "
            f"(store.evaluate(model, policy={name!r}))")

    def push(self, target: Any, to: str, *, force: bool, policy: str | None) -> Pushed:
        """See :meth:`mlmd_magic.Store.push`.

        The verdict is :meth:`gate_evaluation`'s: a blessing under a version of a policy that a
        newer version has replaced does not count, with or without ``force`` (which overrides
        failed checks, not an outdated or missing evaluation).

        The version folder is :func:`next_version`'s; one that MLMD's int64 property or TF
        Serving's version numbers cannot hold is refused before anything is written. The
        SavedModel is exported aside and renamed into place; if anything fails before the push
        is recorded, what this push wrote is removed (the folders it made too), so no folder
        is left on disk that the store does not know.

        Raises
        ------
        NotBlessedError
            When the evaluation is not blessed (and not ``force``), outdated, or missing.
        ValidationError
            When ``to`` is not a folder, leaves no version that fits, or cannot be written, or
            the model cannot be exported.
        """
        from ml_metadata.proto import metadata_store_pb2 as pb

        if not isinstance(to, str) or not to:
            raise ValidationError("push needs a folder: store.push('model:ID', to='serving/nipt')")
        act = Action("Push", {"target": str(getattr(target, "model_id", target)), "to": to, "force": force,
                              "policy": policy})
        with self.recorder.guard(act):
            model = self.runs.resolve_model(target)
            act.inputs.append(model)
            evaluation = self.gate_evaluation(model, policy)
            act.inputs.append(evaluation)
            policy_ref = text(evaluation.properties, "policy")
            blessed = self._blessed(evaluation)
            failed = self._failed(evaluation)
            label = str(model.name) or f"model #{model.id}"
            if not blessed and not force:
                listed = "\n".join(f"  ✗ {c}" for c in failed)
                raise NotBlessedError(
                    f"{label} is NOT BLESSED under {policy_ref} (evaluation #{evaluation.id}); not pushed. "
                    f"Failed checks:\n{listed}\nFix the model, or push anyway with force=True (--force), which "
                    "records who overrode which checks")
            user = _session.current_session().user
            override = {"by": user, "checks": failed} if not blessed else None
            folder = os.path.abspath(to)
            params = self._experiment(model)
            version, entry = next_version(folder)
            _check_version(folder, version, entry)  # before anything is written
            made = _missing_folders(folder)
            staging = os.path.join(folder, f".staging-{os.getpid()}-{secrets.token_hex(4)}")
            target_dir = ""
            try:
                self._export(label, params, model.uri, staging)
                target_dir, version = self._move_into_place(staging, folder, version)
                pushed = pb.Artifact(type_id=self.recorder.types.artifacts["PushedModel"], uri=target_dir,
                                     name=f"{label}->{target_dir}", state=pb.Artifact.LIVE)
                set_properties(pushed, version=version, policy=policy_ref, pushed_model=model.id,
                               evaluation=evaluation.id, override=canonical_json(override) if override else None)
                pushed.custom_properties["pushed"].int_value = 1  # as TFX's PushedModel
                pushed.custom_properties["pushed_destination"].string_value = target_dir
                pushed.custom_properties["pushed_version"].string_value = str(version)
                act.outputs = [pushed]
                act.outcome = f"pushed version {version}" + (
                    f" (forced by {user} over {len(failed)} failed checks)" if override else "")
                if override:
                    act.properties["details"] = canonical_json({"override": override})
                self.recorder.commit(act)
            except BaseException:
                if not act.committed:  # nothing on disk that the store does not know
                    shutil.rmtree(staging, ignore_errors=True)
                    if target_dir:
                        shutil.rmtree(target_dir, ignore_errors=True)
                    for made_folder in made:
                        try:
                            os.rmdir(made_folder)
                        except OSError:
                            break  # not empty (another push wrote there) or not ours to remove
                raise
            pushed.id = act.output_ids[0]
            try:
                self.write_card(model, target_dir)  # the card beside the SavedModel, this push included
            except (OSError, MlmdMagicError) as exc:  # the push is recorded and on disk: say so, don't fail it
                warnings.warn(f"pushed {label} as version {version}, but its model card could not be written "
                              f"beside it ({exc}); write it with %mlmd card {label} --to {target_dir}",
                              stacklevel=2)
            return Pushed(uri=target_dir, version=version, model_id=model.id, model_name=label, policy=policy_ref,
                          blessed=blessed, overridden=failed if override else [], by=user if override else "",
                          id=pushed.id)

    @staticmethod
    def _export(label: str, params: dict[str, Any], model_uri: str, staging: str) -> None:
        """The SavedModel and its ``serving_signature.json`` in ``staging``."""
        from ..trainer import export_saved_model

        try:
            signature = export_saved_model(params, model_uri, staging)
            with open(os.path.join(staging, "serving_signature.json"), "w", encoding="utf-8") as fh:
                json.dump(signature, fh, indent=2)
        except (OSError, ValueError, KeyError) as exc:
            raise ValidationError(f"cannot export {label} as a SavedModel: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _move_into_place(staging: str, folder: str, version: int) -> tuple[str, int]:
        """Rename ``staging`` to ``folder/<version>``, or the next free version when another push
        took that one meanwhile; the folder and its version."""
        for _ in range(100):
            target_dir = os.path.join(folder, str(version))
            try:
                os.rename(staging, target_dir)
                return target_dir, version
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise ValidationError(f"cannot write {target_dir}: {exc.strerror}; push to a folder you can "
                                          "write") from None
            version, entry = next_version(folder, after=version)  # another pusher took it: the next one
            _check_version(folder, version, entry)
        raise ValidationError(f"could not find a free version folder under {folder}; try again")


def _spec(stored: dict[str, Any]) -> dict[str, Any]:
    """A slice as an evaluation stores it (every field, empty ones included) as a slice spec."""
    return {k: v for k, v in stored.items() if v not in ((), [], None)}

