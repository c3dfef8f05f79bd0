"""Record values: canonical JSON, content hashes, overrides, flattening and key-by-key diffs.

Plain Python only: no MLMD, IPython or TensorFlow.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import ValidationError

KINDS = ("datasources", "scenarios", "experiments", "policies")
KIND_TYPES = MappingProxyType({"datasources": "DataSource", "scenarios": "Scenario", "experiments": "Experiment",
                               "policies": "Policy"})
KIND_ALIASES = MappingProxyType({
    "policy": "policies", "policies": "policies",
    "datasource": "datasources", "datasources": "datasources", "data": "datasources", "ds": "datasources",
    "scenario": "scenarios", "scenarios": "scenarios",
    "experiment": "experiments", "experiments": "experiments", "exp": "experiments",
})
_MAX_DEPTH = 32


def singular(kind: str) -> str:
    """``"policies"`` -> ``"policy"``, ``"experiments"`` -> ``"experiment"``."""
    return "policy" if kind == "policies" else kind[:-1]


def normalise_kind(kind: str) -> str:
    """``"experiment"`` -> ``"experiments"``; raise with the accepted kinds otherwise."""
    key = kind.lower() if isinstance(kind, str) else ""
    if key not in KIND_ALIASES:
        raise ValidationError(f"unknown record kind {kind!r}: use one of {', '.join(KINDS)}")
    return KIND_ALIASES[key]


def split_kind(ref: Any, kind: str | None = None) -> tuple[str | None, Any]:
    """A reference's kind prefix, if any, apart from the reference: ``"policy:release@2"`` ->
    ``("policies", "release@2")``; without a prefix, ``kind`` (normalised) and ``ref`` as given.

    Names cannot hold ``:``, so the prefix is never part of a name. A prefix that contradicts
    ``kind`` is an error.

    >>> split_kind("policy:release-nipt@2")
    ('policies', 'release-nipt@2')
    >>> split_kind("mlp-small", "scenario")
    ('scenarios', 'mlp-small')
    """
    given = normalise_kind(kind) if kind is not None else None
    if not isinstance(ref, str) or ":" not in ref:
        return given, ref
    prefix, _, rest = ref.partition(":")
    if prefix.lower() not in KIND_ALIASES:
        return given, ref  # not a kind: let the name check explain what is wrong
    named = KIND_ALIASES[prefix.lower()]
    if given is not None and given != named:
        raise ValidationError(f"{ref!r} names {with_article(singular(named))} but kind={kind!r} was given; "
                              "drop one of them")
    if rest.partition(":")[0].lower() in KIND_ALIASES:
        raise ValidationError(f"{ref!r} names its kind twice; write {prefix}:NAME or {prefix}:NAME@N")
    return named, rest


def with_article(noun: str) -> str:
    """``"experiment"`` -> ``"an experiment"``, ``"policy"`` -> ``"a policy"``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def check_value(value: Any, where: str, depth: int = 0) -> Any:
    """Check ``value`` is JSON-like (dicts with string keys, lists, str, finite numbers, bool, None)."""
    if depth > _MAX_DEPTH:
        raise ValidationError(f"{where} is nested more than {_MAX_DEPTH} levels deep; flatten it")
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{where} is {value}; only finite numbers can be recorded")
        return value
    inner = depth < _MAX_DEPTH  # items one level down are not too deep
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ValidationError(f"{where} has key {key!r}; parameter keys must be non-empty strings")
            if inner and (item is None or isinstance(item, (bool, str, int))):  # most values: no call
                continue
            check_value(item, f"{where}.{key}", depth + 1)
        return value
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if inner and (item is None or isinstance(item, (bool, str, int))):
                continue
            check_value(item, f"{where}[{i}]", depth + 1)
        return value
    try:  # numpy scalars and similar: accept if they turn into a plain number
        plain = value.item()
    except AttributeError:
        raise ValidationError(
            f"{where} is a {type(value).__name__}; use numbers, strings, booleans, lists and mappings"
        ) from None
    return check_value(plain, where, depth)


def check_param_keys(value: Any, where: str = "params") -> None:
    """Refuse mapping keys holding ``.``: a dot addresses a nested key (``optimizer.lr``).

    In overrides, ``--set``, filters and diffs ``a.b`` means key ``b`` inside ``a``, so a
    literal key ``a.b`` could be neither overridden nor told apart from it.

    >>> check_param_keys({"optimizer": {"lr": 0.1}, "layers": [{"a.b": 1}]})
    >>> check_param_keys({"a.b": 1})
    Traceback (most recent call last):
    ...
    mlmd_magic.errors.ValidationError: parameter key 'a.b' in params holds '.', ...
    """
    stack = [(value, where)]
    while stack:
        node, at = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, item in node.items():
            if isinstance(key, str) and "." in key:
                shown = key if len(key) <= 60 else key[:57] + "..."
                head, _, tail = shown.partition(".")
                raise ValidationError(
                    f"parameter key {shown!r} in {at} holds '.', which addresses a nested key in overrides, "
                    f"--set, filters and diffs ({shown!r} means {tail!r} inside {head!r}), so it could be "
                    f"neither overridden nor told apart; nest it ({head}: {{{tail}: ...}}) or use '_' "
                    f"({shown.replace('.', '_')!r})"
                )
            if isinstance(item, dict):  # only mappings are looked into
                stack.append((item, f"{at}.{key}"))


def check_unambiguous_keys(value: Any, where: str) -> None:
    """Refuse a mapping where two keys read the same once nested keys are dotted (``{"a.b": 1,
    "a": {"b": 2}}``): diffs and filters could not tell them apart.

    >>> check_unambiguous_keys({"x.y": {"dtype": "float"}, "x": {"dtype": "int64"}}, "features")
    >>> check_unambiguous_keys({"a.b": 1, "a": {"b": 2}}, "features")
    Traceback (most recent call last):
    ...
    mlmd_magic.errors.ValidationError: features has two keys that both read 'a.b' ...
    """
    seen: set[str] = set()
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, dict) and node:
            stack.extend((item, f"{prefix}.{key}" if prefix else str(key)) for key, item in node.items())
            continue
        if prefix in seen:
            raise ValidationError(
                f"{where} has two keys that both read {prefix!r} once nested keys are written with dots, so "
                "diffs and filters could not tell them apart; rename one (use '_' instead of '.')"
            )
        seen.add(prefix)


def to_plain(value: Any) -> Any:
    """A deep copy of ``value`` with tuples as lists and numpy scalars as Python numbers."""
    return json.loads(canonical_json(value))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """``json.loads(canonical_json(value))`` without the text between: a deep copy with keys
    sorted, tuples as lists and anything else (numpy scalars, subclasses) as JSON gives it back.

    >>> plain({"b": (1, 2.5), "a": {"y": None, "x": True}})
    {'a': {'x': True, 'y': None}, 'b': [1, 2.5]}
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        if all(type(key) is str for key in value):
            return {key: item if type(item) in _SCALARS else plain(item) for key, item in sorted(value.items())}
    elif kind is list or kind is tuple:
        return [item if type(item) in _SCALARS else plain(item) for item in value]
    return json.loads(canonical_json(value))


class _NotSimple(Exception):
    """Raised inside :func:`checked_params` for anything but the plain values a body holds."""


def checked_params(value: Any, where: str = "params") -> Any:
    """``plain(value)`` after :func:`check_value` and :func:`check_param_keys`, in one walk over
    the plain values most parameters are (dicts of non-empty, undotted string keys; lists;
    strings, ints, booleans, None and finite floats). Anything else goes through the three in
    turn, which raise the same errors as always.

    >>> checked_params({"b": [1, 2.5], "a": {"y": None, "x": True}})
    {'a': {'x': True, 'y': None}, 'b': [1, 2.5]}
    """
    try:
        return _simple_copy(value, 0)
    except _NotSimple:
        check_value(value, where)
        check_param_keys(value, where)
        return plain(value)


def _simple_copy(value: Any, depth: int) -> Any:
    """A copy of a dict (keys sorted) or list of plain values; :class:`_NotSimple` otherwise."""
    if depth >= _MAX_DEPTH:
        raise _NotSimple
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str or not key or "." in key:
                raise _NotSimple
        return {key: _simple_item(item, depth) for key, item in sorted(value.items())}
    if kind is list:
        return [_simple_item(item, depth) for item in value]
    raise _NotSimple


def _simple_item(item: Any, depth: int) -> Any:
    kind = type(item)
    if kind is str or kind is int or kind is bool or item is None:
        return item
    if kind is float:
        if math.isfinite(item):
            return item
        raise _NotSimple
    return _simple_copy(item, depth + 1)


def canonical_json(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Sorted, compact JSON: equal values always give equal text (and equal hashes).

    The one canonical serializer: content hashes, stored properties and recorded arguments are
    all its text. ``default`` is what to write for a value JSON cannot hold (as for
    :func:`json.dumps`; ``str`` writes its text); without it a numpy scalar is written as its
    number and anything else raises :class:`TypeError`.

    >>> canonical_json({"b": (1, 2.5), "a": "é"})
    '{"a":"é","b":[1,2.5]}'
    """
    if default is None:
        return _CANONICAL.encode(value)
    return json.JSONEncoder(**_SETTINGS, default=default).encode(value)


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot record a {type(value).__name__}")


_SETTINGS: Mapping[str, Any] = MappingProxyType({"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False})
# json.dumps(value, sort_keys=True, ...) builds this encoder on every call; it holds only its settings
_CANONICAL = json.JSONEncoder(**_SETTINGS, default=_default)


def content_hash(value: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``value``'s :func:`canonical_json`: what a record version's external id
    and a run's cache key are made of, so equal content is found in one indexed lookup.

    >>> content_hash({"a": 1, "b": [2, 3]}) == content_hash({"b": [2, 3], "a": 1})
    True
    """
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole (they are values).

    >>> flatten({"optimizer": {"name": "adam", "lr": 0.1}, "hidden": [64, 32]})
    {'optimizer.name': 'adam', 'optimizer.lr': 0.1, 'hidden': [64, 32]}
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    else:
        out[prefix] = value
    return out


def _paths(params: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in params.items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        if isinstance(value, dict):
            yield from _paths(value, path)


def _kind_of(value: Any) -> str:
    """The kind a parameter's value gives it: what may replace it (see :func:`kept_kind`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "whole number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "mapping"


_ITEM_KINDS = frozenset({"boolean", "whole number", "number", "string"})


def _item_kind(items: list[Any]) -> str | None:
    """The one kind every item of a list has, when it is a scalar kind; None otherwise."""
    kinds = {_kind_of(item) for item in items}
    return kinds.pop() if len(kinds) == 1 and kinds <= _ITEM_KINDS else None


def kept_kind(old: Any, value: Any, what: str, owner: str = "the scenario") -> Any:
    """``value`` as it is recorded in place of ``old``, which it must match in kind.

    The rules, the same on every face (API overrides, ``%%experiment`` cells, ``--set``, the
    experiment editor, sweep spaces, imported specs):

    * A **whole number** (an ``int``) stays whole: a float is refused, even ``3.0`` (YAML and
      JSON read ``3.0`` as a fraction; the message says "write 3"), and so is a boolean.
    * A **number** (a ``float``) takes floats and ints; an int is recorded as a float
      (``1`` -> ``1.0``), so the parameter stays real-valued. Booleans are refused.
    * **Booleans** take only ``True``/``False`` (never ``0``/``1``); **strings** only strings.
    * A **list** takes a list. When every item of ``old`` has one of the kinds above (all
      whole numbers, all numbers, all strings, all booleans), every new item must be of it
      too (and is recorded as above); the items of other lists (empty, mixed, lists of lists
      or of mappings) may be anything.
    * A **mapping** takes a mapping. ``None`` replaces anything, and anything replaces ``None``.

    ``what`` names the value in the error (``"override 'epochs'"``); ``owner`` is whose value
    ``old`` is (``"the scenario"``).

    >>> kept_kind(10, 3, "override 'epochs'")
    3
    >>> kept_kind(0.001, 1, "override 'learning_rate'")
    1.0
    >>> kept_kind(10, 3.0, "override 'epochs'")
    Traceback (most recent call last):
    ...
    mlmd_magic.errors.ValidationError: override 'epochs' must be a whole number like ..., got 3.0; write 3

    Raises
    ------
    ValidationError
        Naming ``what``, the kind, ``old`` and ``value``.
    """
    if value is None or old is None:
        return value
    need = _kind_of(old)
    kept, hint = _kept(need, value)
    if hint is not None:
        if hint == "fraction":
            shown = f" as {old}.0" if abs(old) < 10**16 else " with a decimal point"
            hint = (f"a parameter given as a whole number takes only whole numbers (to allow fractions, "
                    f"give it{shown} in {owner})")
        raise ValidationError(f"{what} must be {with_article(need)} like {owner}'s value {_brief(old)}, "
                              f"got {_brief(value)}{'; ' + hint if hint else ''}")
    if need == "list" and old and value:
        item = _item_kind(old)
        if item is not None:
            kept = []
            for i, new in enumerate(value):
                converted, hint = _kept(item, new)
                if hint is not None:
                    hint = "" if hint == "fraction" else hint
                    raise ValidationError(f"{what} must be a list of {item}s like {owner}'s value {_brief(old)}, "
                                          f"got {_brief(value)}: item {i} is {_brief(new)}"
                                          f"{'; ' + hint if hint else ''}")
                kept.append(converted)
    return kept


def _kept(need: str, value: Any) -> tuple[Any, str | None]:
    """``value`` recorded in place of a value of kind ``need``, and None; or what is wrong
    (``""`` for no more to say, ``"fraction"`` for a fraction given for a whole number)."""
    got = _kind_of(value)
    if need == got:
        return value, None
    if need == "number" and got == "whole number":
        try:
            return float(value), None
        except OverflowError:
            return value, "it is too large to be one"
    if need == "whole number" and got == "number":
        if value.is_integer():
            return value, f"write {int(value)}" if abs(value) < 1e16 else ""
        return value, "fraction"
    if got == "string" and need in ("whole number", "number") and len(value) <= 100:
        try:
            number = float(value)
        except ValueError:
            return value, ""
        if need == "whole number":
            return value, f"that is text: write {int(number)}" if number.is_integer() and abs(number) < 1e16 else ""
        if math.isfinite(number):  # '0.1' quoted, or 1e-3, which YAML 1.1 (PyYAML: cells, --set) reads as text
            exponent = re.fullmatch(r"\s*[-+]?[0-9]+[eE][-+]?[0-9]+\s*", value)
            return value, ("that is text: YAML reads a number with an exponent as one only with a decimal "
                           f"point, write {value.strip().replace('e', '.0e').replace('E', '.0E')}" if exponent
                           else "that is text: write the number without quotes")
    return value, ""


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``params`` with ``overrides`` applied.

    Keys may be nested mappings or dotted paths (``optimizer.lr``). Every key must exist
    in ``params``; a value must be of the kind of the one it replaces, by the rules of
    :func:`kept_kind` (a whole number stays whole, ``3.0`` included; an int given for a
    float parameter is recorded as a float; booleans are never numbers), or null.

    >>> apply_overrides({"epochs": 10, "opt": {"lr": 0.1}}, {"opt.lr": 0.01})
    {'epochs': 10, 'opt': {'lr': 0.01}}
    >>> apply_overrides({"epochs": 10, "lr": 0.1}, {"lr": 1})
    {'epochs': 10, 'lr': 1.0}

    Raises
    ------
    ValidationError
        For an unknown key (naming the closest existing key) or a value of another kind.
    """
    result = copy.deepcopy(params)
    for path, value in _kept_leaves(params, overrides):
        keys = path.split(".")
        target: Any = result
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return result


def kept_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` as :func:`apply_overrides` records them: checked against ``params``, each
    value in the kind of the one it replaces (an int for a float parameter as a float), in the
    shape given (nested or dotted), keys sorted. What an experiment keeps as its overrides, so
    that ``{"lr": 1}`` and ``{"lr": 1.0}`` are one version.

    >>> kept_overrides({"opt": {"lr": 0.1, "beta": 0.9}, "epochs": 10}, {"opt": {"lr": 1}, "epochs": 3})
    {'epochs': 3, 'opt': {'lr': 1.0}}

    Raises
    ------
    ValidationError
        As :func:`apply_overrides` does.
    """
    kept = {path: value for path, value in _kept_leaves(params, overrides)}

    def rebuild(given: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in given.items():
            path = f"{prefix}.{key}" if prefix else key
            out[key] = kept[path] if path in kept else rebuild(value, path)
        return out

    return rebuild(plain_overrides(overrides), "")


def plain_overrides(overrides: Any) -> dict[str, Any]:
    """``overrides`` checked to be a mapping of JSON-like values, as plain Python (numpy scalars
    as numbers, tuples as lists)."""
    if not isinstance(overrides, dict):
        raise ValidationError("overrides must be a mapping of parameter names to values, e.g. {'epochs': 5}")
    check_value(overrides, "overrides")
    plain_copy: dict[str, Any] = plain(overrides)
    return plain_copy


def _kept_leaves(params: dict[str, Any], overrides: Any) -> Iterator[tuple[str, Any]]:
    """Each overridden dotted path of ``params`` and the value it takes (:func:`kept_kind`)."""
    for path, value in _override_leaves(params, plain_overrides(overrides), ""):
        keys = path.split(".")
        target: Any = params
        for i, key in enumerate(keys):
            if not isinstance(target, dict) or key not in target:
                known = list(_paths(params))
                close = difflib.get_close_matches(path, known, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known) or 'none'}"
                raise ValidationError(f"override {path!r} is not a parameter of the scenario{hint}")
            if i < len(keys) - 1:
                target = target[key]
        yield path, kept_kind(target[keys[-1]], value, f"override {path!r}")


def merge_overrides(overrides: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """An ``overrides`` mapping and overrides given as keyword arguments, as one mapping.

    >>> merge_overrides({"force": True}, {"epochs": 3})
    {'force': True, 'epochs': 3}
    """
    if overrides is not None and not isinstance(overrides, dict):
        raise ValidationError("overrides must be a mapping of parameter names to values, e.g. {'epochs': 5}")
    both = sorted(set(overrides or {}) & set(more))
    if both:
        raise ValidationError(f"{', '.join(map(repr, both))} given both in overrides and as a keyword argument; "
                              "give each override once")
    return {**(overrides or {}), **more}


def _brief(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages.

    >>> _brief("a" * 500, 20)
    "'aaaaaaaaaaaaaaaaaa... (502 characters)"
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}... ({len(text)} characters)"


def _override_leaves(params: Any, overrides: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in overrides.items():
        path = f"{prefix}.{key}" if prefix else key
        node: Any = params
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(value, dict) and value and isinstance(node, dict):
            yield from _override_leaves(params, value, path)
        else:
            yield path, value


MISSING = object()


@dataclass(frozen=True)
class Change:
    """One key that differs between two records."""

    key: str
    a: Any
    b: Any

    @property
    def kind(self) -> str:
        return "added" if self.a is MISSING else "removed" if self.b is MISSING else "changed"


def show_value(value: Any) -> str:
    """A value as it is shown in diffs and record tables (``—`` for a missing one)."""
    return "—" if value is MISSING else json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Diff:
    """What differs, key by key, between two records (``a`` and ``b`` are their refs)."""

    a: str
    b: str
    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{key: {"a": value_or_None, "b": value_or_None}}``."""
        return {
            c.key: {"a": None if c.a is MISSING else c.a, "b": None if c.b is MISSING else c.b}
            for c in self.changes
        }

    def __repr__(self) -> str:
        if not self.changes:
            return f"{self.a} and {self.b} are identical"
        width = max(len(c.key) for c in self.changes)
        lines = [f"--- {self.a}", f"+++ {self.b}"]
        for c in self.changes:
            items = item_changes(c)
            if items is None:
                lines.append(f"{c.key:<{width}}  {show_value(c.a)} -> {show_value(c.b)}")
                continue
            for i, item in enumerate(items):
                lines.append(f"{c.key if i == 0 else '':<{width}}  {item}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..display.records import diff_html

        return diff_html(self)


def item_changes(change: Change) -> list[str] | None:
    """A list of mappings (a policy's thresholds or slices) that changed, item by item: ``- item``
    for each one dropped, ``+ item`` for each one added, then how many were kept. None for other
    values, which read best whole (``[64, 32] -> [64]``)."""
    a, b = change.a, change.b
    if not (isinstance(a, list) and isinstance(b, list) and a and b
            and all(isinstance(x, dict) for x in (*a, *b))):
        return None
    keys_a, keys_b = [canonical_json(x) for x in a], [canonical_json(x) for x in b]
    out = [f"- {show_value(x)}" for x, k in zip(a, keys_a) if k not in keys_b]
    out += [f"+ {show_value(x)}" for x, k in zip(b, keys_b) if k not in keys_a]
    kept = sum(1 for k in keys_b if k in keys_a)
    if kept:
        out.append(f"({kept} unchanged)")
    return out


def diff_values(a_label: str, a: dict[str, Any], b_label: str, b: dict[str, Any]) -> Diff:
    """Compare two plain record dicts key by key (nested keys dotted)."""
    fa, fb = flatten(a), flatten(b)
    changes = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if va is MISSING or vb is MISSING or canonical_json(va) != canonical_json(vb):
            changes.append(Change(key, va, vb))
    return Diff(a_label, b_label, tuple(changes))
