"""Keeping credentials out of everything mlmd-magic shows, logs or records.

Two layers: every secret the process used to connect is remembered here — with the forms
it takes once escaped (protobuf text format, JSON, Python reprs, URL encoding) — and
replaced by ``***`` wherever text leaves the library (recorded cell sources, error
messages, reprs, log records); and generic patterns catch credentials the library never
saw (a password typed into a URI in a cell that failed before connecting, ``password=...``
in a YAML body, the ``password: "..."`` field of a ``ConnectionConfig`` printed as text,
whatever its escaping).

Every step is linear in the length of the text: :func:`redact` runs on megabytes of
parameters and cell sources, so no pattern here may backtrack over what it has read.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"

_lock = threading.Lock()
_known: set[str] = set()
_forms: list[str] = []  # every remembered secret in every escaped form, longest first

# password=..., passwd: ..., MLMD_MAGIC_MYSQL_PASSWORD=..., "password": "...", password: "a\"b"
# The key is found from the start of its word only ((?<![\w-])), and the atomic group commits
# to the first keyword in the word: each word is read once, whatever the text holds.
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![\w-])(?>[\w-]*?(?:password|passwd|pwd|secret|token))[\w-]*+['\"]?\s*+[:=]\s*+)"
    r"(?:\"(?P<dq>(?:[^\"\\\n]++|\\.)*+)\"?"  # "...", backslash escapes honoured (protobuf text, JSON)
    r"|'(?P<sq>(?:[^'\\\n]++|\\.|'')*+)'?"  # '...', with \' or YAML's '' inside
    r"|(?P<pw>(?:[^\s'\",;&\\]++|\\.)++))",  # a bare value
    re.IGNORECASE,
)
_FLAG = re.compile(r"(?P<head>--(?:password|passwd)[ =])(?P<pw>\S+)", re.IGNORECASE)
# user:password@ inside scheme://... (or the typo scheme:/...). The password runs to the last
# "@" of the word (a password may hold "@"): the whole word is taken at once, which is both
# linear and exact, since a later "scheme:/" inside the same word has no "@" after that one.
_URI_PASSWORD = re.compile(r"(?P<head>(?<=[A-Za-z0-9+.\-]):/{1,3}[^:/@\s'\"]*+:)(?P<pw>[^\s'\"]*+)")


def remember(secret: str | None) -> None:
    """Remember a secret so that :func:`redact` masks it, escaped or not, from now on."""
    if not secret:
        return
    with _lock:
        if secret in _known:
            return
        _known.add(secret)
        forms = set(_forms) | _escaped_forms(secret)
        _forms[:] = sorted((f for f in forms if f), key=len, reverse=True)


def _escaped_forms(secret: str) -> set[str]:
    """``secret`` as it appears in the texts that may carry it.

    protobuf text format (``str(ConnectionConfig)``, ``text_format``; with UTF-8 kept or
    octal-escaped), JSON, Python ``repr``, URL encoding.
    """
    forms = {secret, _c_escape(secret, "text"), _c_escape(secret, "control"), _c_escape(secret, "bytes"),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             repr(secret)[1:-1], ascii(secret)[1:-1], quote(secret, safe=""), quote_plus(secret, safe="")}
    # repr picks the other quote when the text holds one: both spellings of the quote it escapes
    forms.add(secret.encode("unicode_escape").decode("ascii").replace("'", "\\'"))
    return forms


_C_SPECIAL = {9: r"\t", 10: r"\n", 13: r"\r", 34: r"\"", 39: r"\'", 92: r"\\"}


def _c_escape(text: str, how: str) -> str:
    """C-style escaping as protobuf's text format writes strings.

    ``text``: only the six special characters (Python's ``text_format`` with ``as_utf8``);
    ``control``: also control characters as octal (upb's ``str(message)``); ``bytes``: the
    UTF-8 bytes, every one outside printable ASCII as octal (``text_format`` by default).
    """
    if how == "bytes":
        return "".join(_C_SPECIAL.get(b) or (chr(b) if 32 <= b < 127 else f"\\{b:03o}")
                       for b in text.encode("utf-8", "surrogatepass"))
    out = []
    for ch in text:
        code = ord(ch)
        if code in _C_SPECIAL:
            out.append(_C_SPECIAL[code])
        elif how == "control" and (code < 32 or code == 127):
            out.append(f"\\{code:03o}")
        else:
            out.append(ch)
    return "".join(out)


def redact(text: str) -> str:
    r"""Return ``text`` with every known secret and credential-looking value masked.

    Linear in the length of ``text``.

    >>> redact("mysql://alice:s3cret@db:3306/x")
    'mysql://alice:***@db:3306/x'
    >>> redact("password: hunter2")
    'password: ***'
    >>> redact(r'mysql { password: "Ab\'cd\"QuoteLeak\\tail" }')
    'mysql { password: "***" }'
    """
    if not text:
        return text
    with _lock:
        forms = list(_forms)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    if text.isascii() and ":/" not in text:
        # each pattern below needs ":/" or one of its key words (password, passwd, pwd, secret,
        # token; in ASCII text IGNORECASE matches no other letters): most texts — a cell's
        # source — have none, and are left as they are
        lower = text.lower()
        if not ("passw" in lower or "pwd" in lower or "secret" in lower or "token" in lower):
            return text
    text = _URI_PASSWORD.sub(_mask_uri_password, text)
    text = _KEY_VALUE.sub(_mask_value, text)
    text = _FLAG.sub(lambda m: m.group("head") + MASK, text)
    return text


def _mask_value(m: re.Match[str]) -> str:
    head = m.group("head")
    if m.group("dq") is not None:
        return f'{head}"{MASK}"'
    if m.group("sq") is not None:
        return f"{head}'{MASK}'"
    return head + MASK


def _mask_uri_password(m: re.Match[str]) -> str:
    """``scheme://user:password@host``: the password runs to the last ``@`` of the word."""
    word = m.group("pw")
    at = word.rfind("@")
    return m.group(0) if at < 0 else m.group("head") + MASK + word[at:]


class _RedactingFilter(logging.Filter):
    """Masks secrets in log records before any handler sees them.

    ``ml_metadata`` logs its whole ``ConnectionConfig`` (password included, escaped as
    protobuf text) at DEBUG through absl's logger; this filter sits on that logger and on ours.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = _RedactingFilter()


def install_log_filter() -> None:
    """Attach the redacting filter to the loggers MLMD and mlmd-magic write to."""
    for name in ("absl", "mlmd_magic"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
