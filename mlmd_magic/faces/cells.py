"""YAML for people: the bodies of ``%%datasource`` / ``%%scenario`` / ``%%experiment`` /
``%%evaluate`` cells, ``--set`` values and the files of ``mlmd-magic export`` / ``import``.

Parsed bodies are record specs (:mod:`mlmd_magic.core.specs`)::

    %%datasource NAME          %%scenario NAME              %%experiment NAME
    uri: data/nipt-sim         model: mlp                   datasource: nipt-sim
    format: tfrecord           params:                      scenario: mlp-small@2
    label: label                 hidden: [64, 32]           overrides:
    splits:                      epochs: 10                   epochs: 5
      train: train/*.tfrecord  description: small MLP       description: first try
      eval: eval.tfrecord

A scenario body without ``params:`` takes every key but ``model`` and ``description``
as a parameter.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import ValidationError

_MAX_BODY = 1_000_000


def load_yaml(text: str, where: str = "the cell body", line_offset: int = 0) -> Any:
    """Parse YAML safely (no tags that build objects); errors name the line and column.

    ``line_offset`` is added to line numbers (1 for a cell body below its ``%%magic`` line).

    >>> load_yaml("a: 1\\nb: [2, 3]")
    {'a': 1, 'b': [2, 3]}
    """
    if len(text) > _MAX_BODY:
        raise ValidationError(f"{where} is larger than {_MAX_BODY} characters")
    simple = _load_simple(text)
    if simple is not None:
        return simple
    # libyaml's safe loader when the wheel has it (10x faster), else the pure-Python one
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()  # the node graph: an alias is one more edge to a shared node
        if node is None:
            return None
        if "*" in text:
            _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1 + line_offset}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        started = ""
        if exc.context and exc.context_mark and exc.problem and exc.context_mark is not mark:
            cm = exc.context_mark
            started = f" ({exc.context} at line {cm.line + 1 + line_offset}, column {cm.column + 1})"
        raise ValidationError(f"YAML error in {where}{at}: {problem}{started}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValidationError(f"YAML error in {where}: {str(exc).splitlines()[0][:200]}") from None
    finally:
        loader.dispose()


# The plain bodies most cells hold, read without PyYAML (whose Python half — resolving and
# constructing each scalar — is most of a cell's parsing time): block mappings of identifier
# keys whose values are decimal numbers, words, booleans, nulls or flow lists of those, with
# comments and blank lines. Anything else, however small (quotes, tabs, non-ASCII, anchors,
# sequences, a duplicate key, an odd indentation), goes to PyYAML, so errors and every other
# case read exactly as before; tests/test_hostile_input_2.py checks both agree.
_INT = r"-?(?:0|[1-9][0-9]*)"
_ITEM = r"(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?|[A-Za-z_][A-Za-z0-9_.\-/@]*)"  # a number or a word
_SIMPLE_LINE = re.compile(
    r"( *)([A-Za-z_][A-Za-z0-9_.\-]{0,127}):"  # indentation and key
    rf"(?: +(?:({_INT})|({_INT}\.[0-9]+)"  # an integer or a decimal fraction
    r"|([A-Za-z_](?:[A-Za-z0-9_.\-/@ ]*[A-Za-z0-9_.\-/@])?)"  # words
    rf"|\[( *(?:{_ITEM}(?: *, *{_ITEM})*)? *)\]))?"  # a flow list of numbers and words
    r" *(?: #[ -~]*)?"  # a comment
)
# printable ASCII only, in comments too: YAML reads a carriage return as a line break, and
# refuses control characters
_BLANK_OR_COMMENT = re.compile(r" *(?:#[ -~]*)?")
# YAML 1.1's words for booleans and null (PyYAML's resolver: exactly these spellings)
_WORDS: dict[str, Any] = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("null", "Null", "NULL"), None),
}


def _load_simple(text: str) -> dict[str, Any] | None:
    """``text`` read as PyYAML's safe loader reads it, when it is a simple block mapping (see
    above); None when it is anything else (PyYAML then reads it).

    >>> _load_simple("model: mlp  # a comment\\nparams:\\n  hidden: [64, 32]\\n  lr: 0.001\\n  on: yes\\n")
    >>> _load_simple("model: mlp  # a comment\\nparams:\\n  hidden: [64, 32]\\n  lr: 0.001\\n  bn: yes\\n")
    {'model': 'mlp', 'params': {'hidden': [64, 32], 'lr': 0.001, 'bn': True}}
    """
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(0, root)]  # the open mappings and their keys' indentation
    level, mapping = 0, root
    pending: str | None = None  # a "key:" of ``mapping`` whose value may be a nested mapping
    match = _SIMPLE_LINE.fullmatch
    for line in text.split("\n"):
        m = match(line)
        if m is None:
            if _BLANK_OR_COMMENT.fullmatch(line):
                continue
            return None
        spaces, key, integer, fraction, words, items = m.groups()
        indent = len(spaces)
        if key in _WORDS:  # a boolean or null key
            return None
        if pending is not None and indent > level:  # the first key of a nested mapping
            child: dict[str, Any] = {}
            mapping[pending] = child
            level, mapping = indent, child
            stack.append((level, mapping))
        pending = None
        if indent != level:
            while stack[-1][0] > indent:
                stack.pop()
            level, mapping = stack[-1]
            if level != indent:
                return None
        if key in mapping:
            return None
        if integer is not None:
            mapping[key] = int(integer)
        elif fraction is not None:
            mapping[key] = float(fraction)
        elif words is not None:
            mapping[key] = _WORDS.get(words, words)
        elif items is not None:
            mapping[key] = [_item(item.strip(" ")) for item in items.split(",")] if items.strip(" ") else []
        else:
            mapping[key] = None  # null unless more indented keys follow
            pending = key
    return root or None


def _item(token: str) -> Any:
    """A number or a word of a flow list that :data:`_SIMPLE_LINE` matched."""
    if token[0].isalpha() or token[0] == "_":
        return _WORDS.get(token, token)
    return float(token) if "." in token else int(token)


def _check_expansion(root: Any, where: str) -> None:
    """Refuse a document whose aliases expand it past :data:`_MAX_BODY` characters — before
    anything is expanded.

    Each node's expanded size (a scalar's length, plus one for each node) is computed once,
    children first, on the composed graph where an alias is a shared node: linear in the
    size of the text. Nine nested lists of nine aliases each fit in 522 characters and
    expand to 387 million strings.
    """
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being sized: met again, the alias is recursive
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children = _children(node)
        if not children_done:
            if key in open_:
                raise ValidationError(f"{where} holds a recursive YAML alias (a value that contains itself); "
                                      "write the value out instead")
            open_.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_.discard(key)
        total = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        total += sum(size[id(child)] for child in children)
        if total > _MAX_BODY:
            raise ValidationError(
                f"the YAML aliases (*name) in {where} expand it to more than {_MAX_BODY:,} characters; "
                "write the values out, or keep large values in files and record their paths"
            )
        size[key] = total


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def dump_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=None))


