"""``where`` filters for listings: ``"model == 'mlp' and epochs >= 5"``.

A filter is parsed into a tree of comparisons (:func:`parse_where`) and evaluated in Python on
plain record dicts: that alone decides which rows a listing shows. A listing may first ask the
store for the rows a filter can pass (:func:`cover` picks comparisons that narrow them down;
``mlmd_magic.store.filters`` turns them into MLMD filter queries, every value quoted by
``mlmd_magic.backend.listing.quote``): that changes what is read, never which rows pass.

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
from typing import Any, Callable, TypeVar

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
    """Find ``key`` in a record dict: top level, dotted path, or under ``params`` (:data:`MISSING`
    when it is in neither)."""
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
MISSING = _MISSING  # what lookup gives for a key a row does not have


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
    return _predicate(parse_where(text))


@dataclass(frozen=True)
class Atom:
    """One comparison of a filter: ``key op value`` (``op`` is one of ``== != < <= > >= ~``; a
    filter's ``=`` is ``==``). Called on a row, it says whether the row passes.

    >>> Atom("epochs", ">=", 5)({"params": {"epochs": 10}}), Atom("epochs", "!=", 5)({})
    (True, True)
    """

    key: str
    op: str
    value: Any

    def __call__(self, row: dict[str, Any]) -> bool:
        return _compare(self.op, lookup(row, self.key), self.value)

    def test(self, value: Any) -> bool:
        """Whether a row whose key holds ``value`` passes (:data:`MISSING`: a row without it)."""
        return _compare(self.op, value, self.value)


@dataclass(frozen=True)
class Node:
    """``and``, ``or`` (of two parts or more) or ``not`` (of one part) in a parsed filter."""

    op: str
    parts: tuple[Atom | Node, ...]


def parse_where(text: str | None) -> Atom | Node | None:
    """A filter as a tree of :class:`Node` and :class:`Atom` (None: no filter, every row passes).

    >>> parse_where("a = 1 and not b ~ 'x*'")  # doctest: +NORMALIZE_WHITESPACE
    Node(op='and', parts=(Atom(key='a', op='==', value=1),
                          Node(op='not', parts=(Atom(key='b', op='~', value='x*'),))))

    Raises
    ------
    ValidationError
        When the filter cannot be parsed; the message shows an example.
    """
    if text is None or not str(text).strip():
        return None
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

    def expr(depth: int) -> Atom | Node:
        parts = [term(depth)]
        while is_word(peek(), "or"):
            take()
            parts.append(term(depth))
        return parts[0] if len(parts) == 1 else Node("or", tuple(parts))

    def term(depth: int) -> Atom | Node:
        parts = [factor(depth)]
        while is_word(peek(), "and"):
            take()
            parts.append(factor(depth))
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def factor(depth: int) -> Atom | Node:
        if depth > _MAX_DEPTH:
            raise ValidationError(f"the filter nests 'not' and parentheses more than {_MAX_DEPTH} deep; simplify it "
                                  "(not not x is x)")
        tok = take()
        if is_word(tok, "not"):
            return Node("not", (factor(depth + 1),))
        if tok.kind == "paren" and tok.text == "(":
            inner = expr(depth + 1)
            close = take()
            if close.text != ")":
                raise ValidationError(f"missing ')' in the filter {text!r}")
            return inner
        if tok.kind != "word":
            raise ValidationError(f"expected a key at {tok.text!r} in the filter {text!r}; {_HELP}")
        key = tok.text
        op = take()
        if op.kind != "op":
            raise ValidationError(f"expected an operator (==, !=, <, <=, >, >=, ~) after {key!r}; {_HELP}")
        return Atom(key, "==" if op.text == "=" else op.text, _value(take()))

    tree = expr(0)
    if pos != len(tokens):
        raise ValidationError(f"unexpected {tokens[pos].text!r} in the filter {text!r}; {_HELP}")
    return tree


def atoms(tree: Atom | Node | None) -> list[Atom]:
    """The comparisons of a parsed filter, in the order it names them.

    >>> [a.key for a in atoms(parse_where("a == 1 or (b < 2 and not c ~ 'x')"))]
    ['a', 'b', 'c']
    """
    if tree is None:
        return []
    if isinstance(tree, Atom):
        return [tree]
    return [atom for part in tree.parts for atom in atoms(part)]


def _predicate(tree: Atom | Node | None) -> Predicate:
    if tree is None:
        return lambda row: True
    if isinstance(tree, Atom):
        return tree
    parts = [_predicate(part) for part in tree.parts]
    if tree.op == "not":
        inner = parts[0]
        return lambda row: not inner(row)
    if tree.op == "and":
        return lambda row: all(p(row) for p in parts)
    return lambda row: any(p(row) for p in parts)


C = TypeVar("C")


def cover(tree: Atom | Node | None, drive: Callable[[Atom], C | None], cost: Callable[[Atom, C], float]
          ) -> list[tuple[Atom, C]] | None:
    """Comparisons of ``tree`` whose rows together hold every row ``tree`` passes: for ``a and b``
    the cheaper of ``a``'s and ``b``'s (by ``cost``), for ``a or b`` both. ``drive(atom)`` is how
    the rows passing ``atom`` are found (None: they cannot be). A negated comparison has no cover
    (``not x < 5`` also passes rows without ``x``); ``not`` over ``and``/``or`` is pushed down.

    Gives each comparison chosen with what ``drive`` gave for it; an empty list when no row can
    pass; None when some rows could pass unseen (``!=``, ``not``, a comparison ``drive`` refuses
    under an ``or``, no filter at all).

    >>> def drive(atom):  # how rows passing a comparison are found (none for !=)
    ...     return None if atom.op == "!=" else atom.key.upper()
    >>> [(atom.key, found) for atom, found in cover(parse_where("(a == 1 or b == 2) and c != 3"), drive,
    ...                                                lambda atom, found: 1.0)]
    [('a', 'A'), ('b', 'B')]
    >>> cover(parse_where("not (a == 1 and b == 2)"), lambda atom: atom.key, lambda atom, c: 1.0) is None
    True
    """
    def total(found: list[tuple[Atom, C]]) -> float:
        return sum(cost(atom, c) for atom, c in found)

    def visit(node: Atom | Node, negated: bool) -> list[tuple[Atom, C]] | None:
        if isinstance(node, Atom):
            if negated:
                return None
            found = drive(node)
            return None if found is None else [(node, found)]
        if node.op == "not":
            return visit(node.parts[0], not negated)
        options = [visit(part, negated) for part in node.parts]
        if (node.op == "and") != negated:  # every part holds: one part's rows are enough
            usable = [option for option in options if option is not None]
            return min(usable, key=total) if usable else None
        if any(option is None for option in options):  # any part may hold: each part's rows
            return None
        return [pair for option in options if option is not None for pair in option]

    return None if tree is None else visit(tree, False)


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
        #: the parsed filter (None: none), for finding the rows it may pass (see :func:`cover`)
        self.tree = parse_where(text)
        self._predicate = _predicate(self.tree)
        keys = [atom.key for atom in atoms(self.tree)]
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

    @property
    def missing(self) -> frozenset[str]:
        """The keys the filter names that no row seen so far has."""
        return frozenset(self._missing)

    def known(self, key: str) -> None:
        """Say that some record has ``key`` though no row seen had it (a listing that read only
        the rows the filter may pass asked the store): :meth:`check` does not name it."""
        self._missing.discard(key)

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
