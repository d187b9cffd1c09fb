"""An HTML page and its Markdown summary, written side by side.

Every text handed to :class:`Document` is escaped on the way in (``html.escape`` for the page, pipes and
line breaks for Markdown tables), so a sample holding ``<script>`` is shown, never run. The page is self-
contained: inline CSS, images only as ``data:`` URIs, links only to anchors within the page.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1, h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
h2 { margin-top: 2.5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 90%; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
table.samples td { width: 33%; }
.prompt { color: #555; font-style: italic; white-space: pre-wrap; margin-bottom: .4em; }
.reply { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 90%; }
.note { color: #666; font-size: 85%; }
img { max-width: 100%; display: block; margin: .8em 0; }
nav a { margin-right: 1em; }
"""

SampleCell = tuple[str | None, str, str]
"""One cell of a samples table: the prompt (None to leave it out), the reply, and a short note under it."""


def fmt(value) -> str:
    """A value for a table cell: floats to 4 significant digits, None and non-finite floats as "–"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[:limit] + "…"


class Document:
    """Headings, paragraphs, tables, images and sample tables, collected as HTML and (where asked) as
    Markdown; :meth:`page` and :meth:`summary` give the two texts."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self.markdown: list[str] = [f"# {title}", ""]
        self.heading(1, title, markdown=False)

    def heading(self, level: int, text: str, *, anchor: str | None = None, markdown: bool = True) -> None:
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")
        if markdown:
            self.markdown += [f"{'#' * level} {_markdown_cell(text)}", ""]

    def paragraph(self, text: str, *, note: bool = False, markdown: bool = True) -> None:
        self.parts.append(f'<p{" class=note" if note else ""}>{html.escape(text)}</p>')
        if markdown:
            self.markdown += [_markdown_cell(text), ""]

    def links(self, targets: Sequence[tuple[str, str]]) -> None:
        """A row of links to anchors of this page, ``(anchor, text)`` each (HTML only)."""
        items = "".join(f'<a href="#{html.escape(anchor)}">{html.escape(text)}</a>' for anchor, text in targets)
        self.parts.append(f"<nav>{items}</nav>")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence], *, markdown: bool = True) -> None:
        """A table of ``rows`` (values formatted with :func:`fmt`; numbers right-aligned)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if markdown:
            self.markdown.append("| " + " | ".join(_markdown_cell(h) for h in headers) + " |")
            self.markdown.append("|" + "---|" * len(headers))
            self.markdown += ["| " + " | ".join(_markdown_cell(fmt(v)) for v in row) + " |" for row in rows]
            self.markdown.append("")

    def image(self, png_base64: str, alt: str) -> None:
        """A PNG image embedded as a data URI (HTML only)."""
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png_base64}">')

    def samples(self, headers: Sequence[str], rows: Sequence[Sequence[SampleCell]]) -> None:
        """Replies side by side, one row per prompt or pair (HTML only)."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(_sample_cell(cell) for cell in row) + "</tr>" for row in rows)
        self.parts.append(f'<table class="samples"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')

    def page(self) -> str:
        """The whole HTML page."""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")

    def summary(self) -> str:
        """The Markdown summary."""
        return "\n".join(self.markdown).rstrip() + "\n"


def _html_cell(value) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td{" class=number" if number else ""}>{html.escape(fmt(value))}</td>'


def _sample_cell(cell: SampleCell) -> str:
    prompt, reply, note = cell
    shown = f'<div class="prompt">{html.escape(prompt)}</div>' if prompt is not None else ""
    return (f'<td>{shown}<div class="reply">{html.escape(reply)}</div>'
            f'<div class="note">{html.escape(note)}</div></td>')


def _markdown_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
