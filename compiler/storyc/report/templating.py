"""The Jinja environment the storyboard documents render with.

Templates live in report/templates/ (package data). `*.html.j2` templates autoescape:
every value from the story is user input and reaches the page HTML-escaped unless a
template marks it otherwise. `*.md.j2` templates do not; they escape explicitly with
the Markdown filters below. StrictUndefined: a misspelt field fails the build's tests
instead of rendering as nothing. A plain Environment, not a sandbox: these are our
templates, not the user's.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any
from urllib.parse import quote

import jinja2

from storyc.report.view import fmt_score, fmt_span

# ─── HTML filters ───────────────────────────────────────────────────────────


def url_path(path: str) -> str:
    """A relative path for an href/src: percent-encoded, so no scheme such as
    `javascript:` or `file:` can appear (autoescape then HTML-escapes it)."""
    return quote(path, safe="/._-~")


def score_text(score: float, threshold: float) -> str:
    """Two decimals, more when rounding would hide the comparison (0.9453 vs 0.95)."""
    for places in (2, 3, 4):
        text = f"{score:.{places}f}"
        if (float(text) < threshold) == (score < threshold):
            return text
    return f"{score:.4f}"


# ─── Markdown filters (script.md: no autoescape) ────────────────────────────


def md_text(text: Any) -> str:
    """Plain text for Markdown: no raw HTML, one line."""
    return html.escape(" ".join(str(text).split()), quote=False)


def md_cell(text: Any) -> str:
    """Text for a Markdown table cell: md_text with `|` escaped."""
    return md_text(text).replace("|", "\\|")


def md_target(path: str) -> str:
    """A link destination: <...> allows spaces and parentheses (character names may have them)."""
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"


def md_alt(text: Any) -> str:
    """Image alt text: md_text without `]`, which would end it."""
    return md_text(text).replace("]", ")")


def md_fence(text: str) -> str:
    """A code fence longer than any backtick run inside, so any prompt shows verbatim."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


FILTERS = {
    "fmt_score": fmt_score,
    "fmt_span": fmt_span,
    "url_path": url_path,
    "score_text": score_text,
    "md_text": md_text,
    "md_cell": md_cell,
    "md_target": md_target,
    "md_alt": md_alt,
    "md_fence": md_fence,
}


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("storyc.report", "templates"),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=("md.j2",), default_for_string=True, default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
