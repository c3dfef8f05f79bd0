"""Record names and references (``NAME`` or ``NAME@N``).

Names are restricted to letters, digits, ``.``, ``_`` and ``-`` and start with a letter or
digit. The restriction is deliberate: a name is used unquoted in MLMD filter queries, in
YAML cell bodies, in shell commands of the CLI and as part of MLMD artifact names, and
``@`` is reserved to separate a name from its version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidNameError

# Used with fullmatch only: "$" would also match before a final newline ("abc\n").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DIGITS_RE = re.compile(r"[0-9]+")
NAME_RULE = (
    "names are 1-128 characters of letters, digits, '.', '_' and '-', starting with a "
    "letter or digit ('@' separates a name from its version, and the other characters "
    "would need quoting in queries, YAML and shells)"
)


def check_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is a valid record name, else raise :class:`InvalidNameError`.

    >>> check_name("t21-baseline")
    't21-baseline'
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, got {type(name).__name__}")
    if not NAME_RE.fullmatch(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InvalidNameError(f"invalid {what} {shown!r}: {NAME_RULE}")
    return name


def is_number(text: object) -> bool:
    """Whether ``text`` is a whole number written with the ASCII digits 0-9 only.

    ``str.isdigit`` also accepts superscripts and other scripts' digits, which ``int``
    then refuses (``"²".isdigit()`` is true).

    >>> is_number("12"), is_number("²"), is_number("1\\n"), is_number("")
    (True, False, False, False)
    """
    return isinstance(text, str) and _DIGITS_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``name`` and ``version`` (``None`` means the latest)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


def parse_ref(ref: object, what: str = "reference") -> Ref:
    """Parse ``NAME`` or ``NAME@N`` (N a positive integer).

    >>> parse_ref("mlp-small@2")
    Ref(name='mlp-small', version=2)
    >>> parse_ref("mlp-small").version is None
    True
    """
    if not isinstance(ref, str):
        raise InvalidNameError(f"{what} must be a string like NAME or NAME@2")
    name, sep, version = ref.partition("@")
    check_name(name, what)
    if not sep:
        return Ref(name)
    if not is_number(version) or int(version) < 1:
        raise InvalidNameError(
            f"invalid {what} {ref!r}: the part after '@' must be a version number >= 1, "
            "e.g. NAME@2; leave it out for the latest version"
        )
    return Ref(name, int(version))
