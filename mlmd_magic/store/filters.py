"""Finding the rows a listing's filter may pass without reading every row: for each kind, which
MLMD queries hold every node whose row passes a comparison (see
:class:`~mlmd_magic.backend.listing.Scan` for when they are used, ``docs/listings.md`` for what
each costs).

A row's key is looked up as :func:`~mlmd_magic.core.query.lookup` does: at the row's top level
(a dotted key walks into mappings), else under its ``params``. Each key of each kind is mapped
to the places its value can come from:

* a field of the node: its name (``name LIKE 'NAME@%'``), id, creation time, state, URI, or a
  property (``properties.model.string_value = 'mlp'``);
* a parameter of a record version: its flat custom property ``param.NAME``
  (:func:`~mlmd_magic.backend.properties.flat_params`), for experiments and scenarios, on stores
  whose versions all carry them (new versions do; older ones get them from
  :func:`~mlmd_magic.store.maintenance.index_filters`);
* for a run: its experiment version's parameters (the experiment versions with
  ``param.NAME``, then the runs that read them, by their events), its metrics (the models with
  ``metric.SPLIT.NAME``, then the runs that wrote them), its experiment (by name) and model.

A comparison whose value a key's places cannot be asked for (``!=``, a glob on a parameter,
a column made from JSON such as a run's ``task``) has no cover; a filter without one is walked.
The filter itself always decides: what is found is only where to look.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import Any, Callable

from ..backend.listing import (
    IdStream,
    LinkStream,
    Plan,
    QueryStream,
    Unquotable,
    broad,
    compare_terms,
    like,
    newest_versions,
    quote,
)
from ..backend.properties import FLAT, FLAT_MARK, FLAT_VERSION, METRIC, PARAM, flat_name
from ..backend.types import full
from ..core.query import Atom, Where

__all__ = ["EVALUATION_FIELDS", "MODEL_FIELDS", "RECORD_FIELDS", "RUN_FIELDS", "evaluation_plan", "flat_ready",
           "model_plan", "record_plan", "run_plan"]

# the top-level keys of each kind's rows that a filter sees (records: Records._filter_view and
# Records.data; runs: Runs._run_rows; models: Runs._model_rows; evaluations: browse._evaluation_rows)
RECORD_FIELDS = {
    "experiments": frozenset({"experiment", "name", "version", "trial", "datasource", "scenario", "model",
                              "params"}),
    "scenarios": frozenset({"name", "version", "model", "params", "description"}),
    "datasources": frozenset({"name", "version", "uri", "format", "splits", "label", "features", "description",
                              "fingerprint", "examples", "label_distribution", "label_names"}),
    "policies": frozenset({"name", "version", "owner", "description", "slices", "thresholds"}),
}
RUN_FIELDS = frozenset({"name", "run", "experiment", "trial", "state", "model", "task", "device", "epoch",
                        "duration_s", "user", "created"})
MODEL_FIELDS = frozenset({"model", "name", "experiment", "task", "state", "verdicts", "uri", "created"})
EVALUATION_FIELDS = frozenset({"evaluation", "model", "policy", "baseline", "data", "verdict", "thresholds",
                               "failed_checks", "checks", "created"})

_STRING_PROPS = {  # string properties of records a row shows as they are ("" when absent)
    "experiments": {"datasource", "scenario", "model"},
    "scenarios": {"model", "description"},
    "datasources": {"format", "label", "description", "fingerprint"},
    "policies": {"owner", "description"},
}
_EXECUTION_STATES = ("UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED")
_ARTIFACT_STATES = ("UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE")
_UNNAMED_RUN = re.compile(r"run #([0-9]+)")
_COLUMNS = (("int_value", "int"), ("double_value", "double"), ("string_value", "string"))
_JSON_FIELDS = frozenset({"splits", "features", "examples", "label_distribution", "label_names", "slices",
                          "thresholds"})

# ------------------------------------------------------------------------------ terms of a query

def _terms(atom: Atom, columns: Iterable[tuple[str, str]], glob: bool = False, present: bool = False
           ) -> list[str] | None:
    return compare_terms(list(columns), atom, glob=glob, present=present)


def _streams(what: str, by_type: str, terms: list[str], indexed: bool = True) -> list[Any]:
    return [QueryStream(what, f"{by_type} AND {t}", indexed=indexed, broad=broad(t)) for t in terms]


def _flat(prefix: str, path: str) -> list[tuple[str, str]]:
    """The columns of the flat property of the value at ``path``."""
    name = f"custom_properties.`{flat_name(prefix, path)}`"
    return [(f"{name}.{column}", kind) for column, kind in _COLUMNS]


def _text_prop(atom: Atom, name: str, glob: bool = True) -> list[str] | None:
    """A string property read as ``""`` when absent: a comparison passed by ``""`` has no cover;
    others are passed by strings only, so any value of the property holds them."""
    if atom.test(""):
        return None
    return _terms(atom, [(f"properties.{name}.string_value", "string")], glob, present=True)


def _states(atom: Atom, names: tuple[str, ...], column: str, judged: bool = False,
            unasked: tuple[str, ...] = ()) -> list[str] | None:
    """An enum column (``last_known_state``, ``state``): the states whose name passes
    (``unasked``: states MLMD's filter query does not know, so a comparison they pass has no
    cover)."""
    passing = [name for name in names if atom.test(name)]
    if judged and "FAILED" in passing and "RUNNING" not in passing:
        passing.append("RUNNING")  # a dead RUNNING run reads FAILED (Runs.judged marks it so)
    if len(passing) == len(names) or set(passing) & set(unasked):
        return None
    return [f"{column} IN ({', '.join(passing)})"] if passing else []


def _record_name(atom: Atom) -> list[str] | None:
    """A record version's name ``NAME@N`` (a trial ``NAME@N~SWEEP@V#K``) by its ``NAME``."""
    if atom.op not in ("==", "~"):
        return None
    if not isinstance(atom.value, str):
        return [] if atom.op == "==" else None
    try:
        return [f"name LIKE {quote(like(atom.value) + '@%')}"]
    except Unquotable:
        return None


# -------------------------------------------------------------------- whether flat values are there

_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def flat_ready(mlmd: Any, type_name: str) -> bool:
    """Whether every node of the artifact type carries flat values: the type declares
    :data:`~mlmd_magic.backend.properties.FLAT_MARK` (types created since flat values exist do;
    :func:`~mlmd_magic.store.maintenance.index_filters` adds it once it gave every older node
    theirs). One read of the type, kept for the connection once true."""
    try:
        known = _READY.setdefault(mlmd, set())
    except TypeError:  # not weakly referable: ask every time
        known = set()
    if type_name in known:
        return True
    from ml_metadata import errors as mlmd_errors

    try:
        found = mlmd.get_artifact_type(type_name)
    except mlmd_errors.NotFoundError:
        return False
    ready = FLAT_MARK in found.properties
    if ready:
        known.add(type_name)
    return ready


def forget_flat(mlmd: Any) -> None:
    """Ask again whether the store's types carry flat values."""
    try:
        _READY.pop(mlmd, None)
    except TypeError:
        pass


_HAVING = 200  # nodes a probe for a key reads at most
# the nodes with more values than are kept flat (backend/properties.py): every stream of flat values holds them
_PARTIAL = f"custom_properties.{FLAT}.int_value = {quote(-FLAT_VERSION)}"


def _having(mlmd: Any, type_name: str, name: str) -> list[Any]:
    """The newest artifacts of the type with custom property ``name`` (at most :data:`_HAVING`)."""
    from ml_metadata.metadata_store import metadata_store as ms

    term = f"custom_properties.`{name}`"
    found = []
    for query in (f"({term}.int_value IS NOT NULL OR {term}.double_value IS NOT NULL "
                  f"OR {term}.string_value IS NOT NULL)", _PARTIAL):  # a node too large to keep flat may have it
        found += mlmd.get_artifacts(list_options=ms.ListOptions(
            limit=_HAVING, order_by=ms.OrderByField.ID, is_asc=False,
            filter_query=f"type = {quote(type_name)} AND {query}"))
    return found


# ------------------------------------------------------------------------------------------ records

def record_plan(mlmd: Any, kind: str, type_short: str, type_id: int, where: Where, latest: bool,
                trials: bool = False) -> Plan | None:
    """How to find the versions of ``kind`` (experiments, scenarios, data sources, policies) whose
    rows may pass ``where``; ``latest``: only each name's latest version is listed; ``trials``:
    a sweep's trials are listed too."""
    if where.tree is None or kind not in RECORD_FIELDS:
        return None
    type_name = full(type_short)
    fields = RECORD_FIELDS[kind]
    has_params = "params" in fields
    plan: Plan

    def ready() -> bool:
        return plan.flat and flat_ready(mlmd, type_name)

    def param(atom: Atom, paths: list[str]) -> list[Any] | None:
        streams: list[Any] = []
        for path in paths:
            if not path or not ready():
                return None
            terms = _terms(atom, _flat(PARAM, path), present=True)
            if terms is None:
                return None
            streams += _streams("artifacts", f"type = {quote(type_name)}", terms)
        return streams + _streams("artifacts", f"type = {quote(type_name)}", [_PARTIAL])

    def field(atom: Atom, head: str) -> list[Any] | None:
        if head in ("name", "experiment"):
            terms = _record_name(atom)
            return None if terms is None else [QueryStream("artifacts", f"type = {quote(type_name)} AND {t}",
                                                           indexed=False) for t in terms]
        if head == "version":
            terms = _terms(atom, [("properties.version.int_value", "int")])
        elif head == "uri":
            terms = None if atom.test("") else _terms(atom, [("uri", "string")], glob=True)
        elif head in _STRING_PROPS.get(kind, ()):
            terms = _text_prop(atom, head)
        else:  # made from JSON (a data source's splits, a policy's thresholds) or a trial's reference
            return None
        if terms is None:
            return None
        return _streams("artifacts", f"type = {quote(type_name)}", terms, indexed=atom.op != "~")

    def drive(atom: Atom) -> list[Any] | None:
        if atom.op == "!=" or atom.value is None:
            return None
        parts = atom.key.split(".")
        head, rest = parts[0], ".".join(parts[1:])
        if head in fields:
            if not rest:  # the parameters as a whole: only a glob (on their text) may pass
                return ([] if atom.op != "~" else None) if head == "params" else field(atom, head)
            if head == "params":  # row["params"][rest], else params["params"][rest]
                return param(atom, [rest, atom.key])
            if head in _JSON_FIELDS:
                return None  # mappings made from JSON: walked
        if not has_params:
            return []  # a key these rows do not have: no row passes
        return param(atom, [atom.key])

    def exists(key: str) -> bool | None:
        """Whether a row listed would have ``key``: a version (not a trial unless ``trials``;
        the latest of its name when ``latest``) with that parameter."""
        head, _, rest = key.partition(".")
        if head in _JSON_FIELDS and rest:
            return None  # inside a mapping made from JSON: not known
        if not has_params:
            return False
        paths = [rest, key] if head == "params" else [key]
        if (not rest and head in fields) or not all(paths) or not ready():
            return None
        found = [_having(mlmd, type_name, flat_name(PARAM, p)) for p in paths]
        nodes = [n for part in found for n in part if trials or "~" not in str(n.name)]
        if latest:
            nodes = newest_versions(mlmd, type_name, nodes)
        if nodes:
            return True
        return None if any(len(part) >= _HAVING for part in found) else False

    plan = Plan(where.tree, drive, exists, latest=latest, flat=has_params)
    return plan


# --------------------------------------------------------------------------------------------- runs

def run_plan(mlmd: Any, types: Any, where: Where) -> Plan | None:
    """How to find the runs (``Train`` executions) whose rows may pass ``where``. ``types``: the
    store's :class:`~mlmd_magic.backend.types.TypeIds`."""
    if where.tree is None:
        return None
    from ml_metadata.proto import metadata_store_pb2 as pb

    train, experiment, model = full("Train"), full("Experiment"), full("Model")
    plan: Plan

    def linked(find_artifacts: Callable[[Any], list[int]], event: int, label: str, calls: int = 3,
               broad: bool = False) -> IdStream:
        """The runs linked to the artifacts found by an event of type ``event`` (INPUT: the
        experiment version a run read; OUTPUT: the model it wrote)."""
        def find(store: Any) -> list[int]:
            ids = find_artifacts(store)
            out: list[int] = []
            for start in range(0, len(ids), 1000):
                out += [e.execution_id for e in store.get_events_by_artifact_ids(ids[start:start + 1000])
                        if e.type == event]
            return out

        return IdStream("executions", find, label, calls, broad)

    def flat_source(atom: Atom, prefix: str, path: str) -> list[Any] | None:
        type_name, event = (experiment, pb.Event.INPUT) if prefix == PARAM else (model, pb.Event.OUTPUT)
        if not path or not flat_ready(mlmd, type_name):
            return None
        terms = _terms(atom, _flat(prefix, path), present=True)
        if terms is None:
            return None
        return [LinkStream(f"type = {quote(type_name)}", (*terms, _PARTIAL), event, any(map(broad, terms)))]

    def sources(atom: Atom, places: list[tuple[str, str]]) -> list[Any] | None:
        streams: list[Any] = []
        for prefix, path in places:
            found = flat_source(atom, prefix, path)
            if found is None:
                return None
            streams += found
        return streams

    def field(atom: Atom, head: str) -> list[Any] | None:
        by_type = f"type = {quote(train)}"
        if head == "run":
            terms = _terms(atom, [("id", "int64")])
        elif head == "created":
            terms = _terms(atom, [("create_time_since_epoch", "int64")])
        elif head == "state":
            terms = _states(atom, _EXECUTION_STATES, "last_known_state", judged=True)
        elif head == "user":
            terms = _text_prop(atom, "user")
        elif head == "name":
            if atom.op != "==" or not isinstance(atom.value, str):
                return None if atom.op != "==" else []
            terms = _terms(atom, [("name", "string")])
            unnamed = _UNNAMED_RUN.fullmatch(atom.value)
            if terms is not None and unnamed:  # a run written without a name reads "run #ID"
                terms.append(f"id = {quote(int(unnamed.group(1)))}")
        elif head == "experiment":  # the experiment version read (its INPUT event), by its name
            if atom.test("") or atom.op not in ("==", "~"):
                return None  # runs without an experiment pass too, or an order of names
            if not isinstance(atom.value, str):
                return [] if atom.op == "==" else None
            names = _terms(atom, [("name", "string")], glob=True)
            if names is None:
                return None
            return [LinkStream(f"type = {quote(experiment)}", tuple(names), pb.Event.INPUT)] if names else []
        elif head == "model":  # the model written (its OUTPUT event), by id
            if isinstance(atom.value, str) and atom.op != "~":
                return []  # an id never equals nor orders with a string
            if atom.op != "==":
                return None
            if not isinstance(atom.value, (int, float)) or atom.value != int(atom.value):  # True is 1
                return []
            model_id = int(atom.value)
            if not 0 < model_id < 2 ** 63:  # no artifact has such an id (MLMD's ids are positive int64)
                return []
            return [linked(lambda store: [model_id], pb.Event.OUTPUT, "model", calls=1)]
        else:  # made from the run's details or progress: walked
            return None
        if terms is None:
            return None
        return _streams("executions", by_type, terms)

    def drive(atom: Atom) -> list[Any] | None:
        if atom.op == "!=" or atom.value is None:
            return None
        parts = atom.key.split(".")
        head, rest = parts[0], ".".join(parts[1:])
        if not rest:
            if head in RUN_FIELDS:
                return field(atom, head)
            if head == "epochs":  # a parameter, or else the epochs the trainer reported
                return None
            if head in ("params", "metrics"):
                return [] if atom.op != "~" else None  # mappings: only a glob (on their text) may pass
            return sources(atom, [(PARAM, head), (METRIC, head)])  # a parameter, or a split's metrics
        if head == "params":
            return sources(atom, [(PARAM, rest), (PARAM, atom.key)])
        if head == "metrics":
            return sources(atom, [(METRIC, rest), (PARAM, atom.key)])
        if head in RUN_FIELDS or head == "epochs":
            return sources(atom, [(PARAM, atom.key)])
        return sources(atom, [(PARAM, atom.key), (METRIC, atom.key)])

    def exists(key: str) -> bool | None:
        parts = key.split(".")
        head, rest = parts[0], ".".join(parts[1:])
        if head == "epochs" or (not rest and head in RUN_FIELDS | {"params", "metrics"}):
            return None  # on every row (epochs: also from the trainer's progress)
        places = ([(PARAM, rest), (PARAM, key)] if head == "params" else
                  [(METRIC, rest), (PARAM, key)] if head == "metrics" else [(PARAM, key), (METRIC, key)])
        unknown = False
        for prefix, path in places:
            type_name = experiment if prefix == PARAM else model
            if not path or not flat_ready(mlmd, type_name):
                return None
            having = _having(mlmd, type_name, flat_name(prefix, path))
            unknown = unknown or len(having) >= _HAVING
            event = pb.Event.INPUT if prefix == PARAM else pb.Event.OUTPUT
            runs = sorted({e.execution_id for e in (mlmd.get_events_by_artifact_ids([a.id for a in having])
                                                    if having else []) if e.type == event})
            train_id = types.executions["Train"]
            if any(e.type_id == train_id for e in (mlmd.get_executions_by_id(runs) if runs else [])):
                return True  # a run read that experiment version or wrote that model
        return None if unknown else False

    plan = Plan(where.tree, drive, exists)
    return plan


# ----------------------------------------------------------------------------- models, evaluations

def model_plan(where: Where) -> Plan | None:
    """How to find the models whose rows may pass ``where``."""
    if where.tree is None:
        return None
    by_type = f"type = {quote(full('Model'))}"

    def drive(atom: Atom) -> list[Any] | None:
        if atom.op == "!=" or atom.value is None:
            return None
        head, _, rest = atom.key.partition(".")
        if head not in MODEL_FIELDS:
            return []  # a key model rows do not have
        if rest:
            return []  # fields are plain values: nothing under them
        indexed = True
        if head == "model":
            terms = _terms(atom, [("id", "int64")])
        elif head == "created":
            terms = _terms(atom, [("create_time_since_epoch", "int64")])
        elif head == "state":
            terms = _states(atom, _ARTIFACT_STATES, "state", unasked=("ABANDONED", "REFERENCE"))
        elif head in ("experiment", "task"):
            terms = _text_prop(atom, head)
        elif head in ("name", "uri"):
            terms = None if atom.test("") else _terms(atom, [(head, "string")], glob=True)
            indexed = atom.op == "==" and head == "uri"
        else:
            return None
        if terms is None:
            return None
        return _streams("artifacts", by_type, terms, indexed)

    return Plan(where.tree, drive, lambda key: False)


def evaluation_plan(where: Where) -> Plan | None:
    """How to find the evaluations whose rows may pass ``where`` (by id, policy, data, verdict
    and time; every evaluation this package writes says ``blessed``, as TFX's do)."""
    if where.tree is None:
        return None
    by_type = f"type = {quote(full('Evaluation'))}"

    def drive(atom: Atom) -> list[Any] | None:
        if atom.op == "!=" or atom.value is None:
            return None
        head, _, rest = atom.key.partition(".")
        if head not in EVALUATION_FIELDS:
            return []
        if rest:
            return []
        if head == "evaluation":
            terms = _terms(atom, [("id", "int64")])
        elif head == "created":
            terms = _terms(atom, [("create_time_since_epoch", "int64")])
        elif head == "policy":
            terms = _text_prop(atom, "policy")
        elif head == "data":
            terms = _text_prop(atom, "split")
        elif head == "verdict":
            passing = [v for v in ("BLESSED", "NOT BLESSED") if atom.test(v)]
            if len(passing) != 1:
                return [] if not passing else None
            terms = [f"custom_properties.blessed.int_value {'=' if passing == ['BLESSED'] else '!='} 1"]
        else:
            return None
        if terms is None:
            return None
        return _streams("artifacts", by_type, terms)

    return Plan(where.tree, drive, lambda key: False)


