"""storyboard.html: the build's storyboard as one self-contained page.

Opens from the output folder with no network at all: inline CSS, no script, no web
fonts, media by relative path only, and a Content-Security-Policy that lets the page
load nothing but its own folder's files (so even a mistake here cannot fetch anything
or run anything). Rendered from templates/storyboard.html.j2 with autoescape: every
piece of story text is user input and reaches the page HTML-escaped.

Renders the same view of the build as script.md (storyc.report.view).
"""

from __future__ import annotations

import re
from pathlib import Path

from storyc.model.colours import colour_words
from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.report.review import Review
from storyc.report.templating import render
from storyc.report.view import Storyboard, storyboard_view
from storyc.store.fsutil import atomic_write_bytes

STORYBOARD_FILE = "storyboard.html"

# Nothing from the network, no script; images and media from the page's own folder
# ('self' when served, file: when opened from disk: browsers differ on 'self' for file:).
CSP = (
    "default-src 'none'; img-src 'self' file:; media-src 'self' file:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

_HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def palette_swatches(palette: str) -> list[tuple[str, str]]:
    """(label, "#rrggbb") for each colour of the palette text that maps to one: hex codes,
    and colour words by the same vocabulary the offline renderer paints with."""
    found = [(code, code.lower()) for code in _HEX.findall(palette)]
    words = colour_words(_HEX.sub(" ", palette))
    return found + [(word, "#{:02x}{:02x}{:02x}".format(*rgb)) for word, rgb in words]


def render_storyboard_html(board: Storyboard) -> str:
    # the final video's poster: the first scene picture there is
    poster = next((s.first_frame or s.keyframe for s in board.scenes if s.first_frame or s.keyframe), None)
    return render(
        "storyboard.html.j2", board=board, csp=CSP, swatches=palette_swatches(board.palette), final_poster=poster
    )


def write_storyboard_html(
    out_dir: Path, story: Story, state: BuildState, notice: str | None = None, review: Review | None = None
) -> Path:
    """storyboard.html in the output folder (written atomically); `notice` says why the
    build stopped early, shown at the top; `review`, the approvals and approve commands."""
    out_dir = Path(out_dir)
    page = render_storyboard_html(storyboard_view(out_dir, story, state, notice, review))
    path = out_dir / STORYBOARD_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
