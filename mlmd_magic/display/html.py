"""HTML for notebooks: one table helper, used by every record, run, evaluation, diff, model card
and panel that shows a table.

>>> print(table([["a<b", Html("<b>1</b>")]], head=["k"]))
<table><thead><tr><th>k</th></tr></thead><tbody><tr><td>a&lt;b</td><td><b>1</b></td></tr></tbody></table>
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Html", "esc", "pre", "table"]


class Html(str):
    """Markup already made (escaped where it needed to be): :func:`table` puts it in as it is.
    A cell that is a whole ``<td …>`` or ``<th …>`` element replaces the cell's own tag."""


def esc(value: Any) -> str:
    """``value`` as HTML text: :class:`Html` as it is, anything else escaped (``str()`` of it)."""
    return value if isinstance(value, Html) else html.escape(str(value))


def _cell(value: Any, tag: str) -> str:
    if isinstance(value, Html) and value.startswith(("<td", "<th")):
        return value
    return f"<{tag}>{esc(value)}</{tag}>"


def table(rows: Iterable[Sequence[Any]], head: Sequence[Any] | None = None, *, cls: str | None = None,
          caption: Any = None, row_styles: Sequence[str] | None = None) -> Html:
    """A ``<table>`` of ``rows`` (each a sequence of cells: text is escaped, :class:`Html` kept),
    with a ``<thead>`` row of ``head`` and the rows in a ``<tbody>`` when ``head`` is given;
    ``row_styles`` gives each row an inline style ("" for none)."""
    styles = list(row_styles or [])

    def opening(i: int) -> str:
        return f"<tr style='{styles[i]}'>" if i < len(styles) and styles[i] else "<tr>"

    body = "".join(opening(i) + "".join(_cell(c, "td") for c in row) + "</tr>" for i, row in enumerate(rows))
    if head is not None:
        body = "<thead><tr>" + "".join(_cell(c, "th") for c in head) + f"</tr></thead><tbody>{body}</tbody>"
    opened = f"<table class='{cls}'>" if cls else "<table>"
    title = f"<caption>{esc(caption)}</caption>" if caption is not None else ""
    return Html(f"{opened}{title}{body}</table>")


def pre(text: Any, cls: str | None = None) -> Html:
    """``text`` escaped, laid out as it is (a ``<pre>``, of class ``cls`` when given)."""
    opened = f"<pre class='{cls}'>" if cls else "<pre>"
    return Html(f"{opened}{esc(text)}</pre>")
