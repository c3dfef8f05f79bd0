"""``where`` filters for listings: ``"model == 'mlp' and epochs >= 5"``.

Filters are evaluated in Python on plain record dicts, never spliced into MLMD's SQL-like
filter query, so a value cannot inject anything into the store's query.

Grammar (``and`` binds tighter than ``or``; parentheses group)::

    expr  := term ("or" term)*
    term  := factor ("and" factor)*
    factor:= "not" factor | "(" expr ")" | KEY OP VALUE
    OP    := == | = | != | < | <= | > | >= | ~        (~ is a glob: name ~ 't21-*')
    KEY   := name | version | model | params.hidden | any parameter (bare or dotted)
    VALUE := number | 'string' | "string" | bare-word | true | false | null
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ValidationError

_TOKEN = re.compile(
    r"\s*(?:(?P<op><=|>=|==|!=|=|<|>|~)|(?P<paren>[()])|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<word>[^\s()<>=!~'\"]+))"
)
Predicate = Callable[[dict[str, Any]], bool]
_MAX_DEPTH = 50
_HELP = "write filters like: name ~ 't21-*' and epochs >= 5 or model == 'cnn1d'"


@dataclass
class _Tok:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValidationError(f"cannot read the filter at {text[pos:pos + 20]!r}; {_HELP}")
        kind = m.lastgroup or ""
        tokens.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return tokens


def _value(tok: _Tok) -> Any:
    if tok.kind == "str":
        return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
    low = tok.text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(tok.text)
        except ValueError:
            pass
    return tok.text


def lookup(row: dict[str, Any], key: str) -> Any:
    """Find ``key`` in a record dict: top level, dotted path, or under ``params``."""
    for root in (row, row.get("params") if isinstance(row.get("params"), dict) else None):
        node: Any = root
        for part in key.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                node = _MISSING
                break
        if node is not _MISSING:
            return node
    return _MISSING


_MISSING = object()


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is _MISSING:
        return op == "!="
    if op == "~":
        return fnmatch.fnmatchcase(str(left), str(right))
    if isinstance(left, (int, float)) and not isinstance(left, bool) and isinstance(right, str):
        return False if op not in ("!=",) else True
    if op in ("==", "="):
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    try:
        return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])
    except TypeError:
        return False


def check_offset(offset: object) -> int:
    """A listing's ``offset``: a whole number >= 0 (None means 0).

    >>> check_offset(None), check_offset(20)
    (0, 20)
    """
    if offset is None:
        return 0
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValidationError(f"offset must be a whole number >= 0 (how many rows to skip), got {offset!r}")
    return offset


def compile_where(text: str | None) -> Predicate:
    """Compile a filter into a predicate over record dicts (see :class:`Where` for one that also
    says when a key the filter names is on no record).

    >>> p = compile_where("model == 'mlp' and epochs >= 5")
    >>> p({"model": "mlp", "params": {"epochs": 10}}), p({"model": "cnn1d", "params": {"epochs": 10}})
    (True, False)

    Raises
    ------
    ValidationError
        When the filter cannot be parsed; the message shows an example.
    """
    return _compile(text, [])


def _compile(text: str | None, keys: list[str]) -> Predicate:
    """Compile ``text``; the keys it names are appended to ``keys``."""
    if text is None or not str(text).strip():
        return lambda row: True
    if not isinstance(text, str) or len(text) > 10_000:
        raise ValidationError(f"a filter must be a string of at most 10000 characters; {_HELP}")
    tokens = _tokenize(text)
    pos = 0

    def peek() -> _Tok | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> _Tok:
        nonlocal pos
        if pos >= len(tokens):
            raise ValidationError(f"the filter {text!r} ends too early; {_HELP}")
        pos += 1
        return tokens[pos - 1]

    def is_word(tok: _Tok | None, word: str) -> bool:
        return tok is not None and tok.kind == "word" and tok.text.lower() == word

    def expr(depth: int) -> Predicate:
        parts = [term(depth)]
        while is_word(peek(), "or"):
            take()
            parts.append(term(depth))
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def term(depth: int) -> Predicate:
        parts = [factor(depth)]
        while is_word(peek(), "and"):
            take()
            parts.append(factor(depth))
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def factor(depth: int) -> Predicate:
        if depth > _MAX_DEPTH:
            raise ValidationError(f"the filter nests 'not' and parentheses more than {_MAX_DEPTH} deep; simplify it "
                                  "(not not x is x)")
        tok = take()
        if is_word(tok, "not"):
            inner = factor(depth + 1)
            return lambda row: not inner(row)
        if tok.kind == "paren" and tok.text == "(":
            inner = expr(depth + 1)
            close = take()
            if close.text != ")":
                raise ValidationError(f"missing ')' in the filter {text!r}")
            return inner
        if tok.kind != "word":
            raise ValidationError(f"expected a key at {tok.text!r} in the filter {text!r}; {_HELP}")
        key = tok.text
        keys.append(key)
        op = take()
        if op.kind != "op":
            raise ValidationError(f"expected an operator (==, !=, <, <=, >, >=, ~) after {key!r}; {_HELP}")
        value = _value(take())
        return lambda row: _compare(op.text, lookup(row, key), value)

    predicate = expr(0)
    if pos != len(tokens):
        raise ValidationError(f"unexpected {tokens[pos].text!r} in the filter {text!r}; {_HELP}")
    return predicate


class Where:
    """A compiled filter that also notices keys no record has: ``epochs >= 5`` on records
    whose parameter is ``epoch`` would otherwise give an empty table and no word why.

    >>> where = Where("epoch >= 5")
    >>> where({"name": "a", "params": {"epochs": 10}})
    False
    >>> where.check()
    Traceback (most recent call last):
    ...
    mlmd_magic.errors.ValidationError: no record has a key 'epoch' (the filter names it); did you mean 'epochs'? ...
    """

    _SAMPLE = 50  # rows whose keys are kept for "did you mean"

    def __init__(self, text: str | None) -> None:
        keys: list[str] = []
        self._predicate = _compile(text, keys)
        self.keys = frozenset(keys)
        self._missing = set(keys)
        self._known: set[str] = set()
        self._rows = 0

    @property
    def sampling(self) -> bool:
        """Whether the filter still wants whole rows: a key it names is on no row seen so far, and
        the keys of the first rows are kept to suggest one. Otherwise a row needs only the parts
        the filter's :attr:`keys` name (see :func:`needed_fields`)."""
        return bool(self._missing) and self._rows < self._SAMPLE

    def __call__(self, row: dict[str, Any]) -> bool:
        if self._missing:
            self._missing = {key for key in self._missing if lookup(row, key) is _MISSING}
            if self._rows < self._SAMPLE:
                self._known.update(_key_paths(row))
                self._rows += 1
        return self._predicate(row)

    def check(self) -> None:
        """Raise when a key the filter names was on none of the rows it saw (there were some).

        Raises
        ------
        ValidationError
            Naming the key, with the closest keys the records have.
        """
        if not self._missing or not self._rows:
            return
        key = sorted(self._missing)[0]
        close = difflib.get_close_matches(key, sorted(self._known), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        shown = ", ".join(sorted(k for k in self._known if not k.startswith("params."))[:25])
        raise ValidationError(f"no record has a key {key!r} (the filter names it); {hint}keys: {shown}")


def needed_fields(keys: frozenset[str] | set[str], fields: frozenset[str]) -> frozenset[str]:
    """Which of a row's top-level ``fields`` filters on ``keys`` look at: a key's first part when
    it is a field, and ``params`` for a key that is not (:func:`lookup` looks for it there).

    >>> sorted(needed_fields({"epochs", "name"}, frozenset({"name", "model", "params"})))
    ['name', 'params']
    """
    first = {key.split(".", 1)[0] for key in keys}
    return frozenset(first & fields) | (frozenset({"params"}) if first - fields else frozenset())


def _key_paths(row: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key a filter can name in ``row``: top level, dotted paths, and parameters bare."""
    out: set[str] = set()
    for key, value in row.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out.add(path)
        if isinstance(value, dict):
            out |= _key_paths(value, path)
            if not prefix and key == "params":
                out |= _key_paths(value)
    return out
