"""storyboard.html: the build's storyboard as one self-contained page.

Opens from the output folder with no network at all: inline CSS, no script, no web
fonts, media by relative path only, and a Content-Security-Policy that lets the page
load nothing but its own folder's files (so even a mistake here cannot fetch anything
or run anything). Every piece of story text is HTML-escaped: it is user input.

Renders the same view of the build as script.md (storyc.report.view).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.report.view import Attempt, Storyboard, storyboard_view
from storyc.store.fsutil import atomic_write_bytes

STORYBOARD_FILE = "storyboard.html"

# Nothing from the network, no script; images and media from the page's own folder
# ('self' when served, file: when opened from disk: browsers differ on 'self' for file:).
CSP = (
    "default-src 'none'; img-src 'self' file:; media-src 'self' file:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)

_CSS = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #f6f5f2; --card: #fff; --muted: #6b6b70;
        --ok: #1f7a3a; --bad: #b3261e; --bad-bg: #fde7e5; --line: #e2e0da; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececef; --bg: #151518; --card: #1f1f24; --muted: #a0a0a8;
        --ok: #5fd38a; --bad: #ff8a80; --bad-bg: #3a1d1b; --line: #33333a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header, section { max-width: 1280px; margin: 0 auto 2rem; }
h1 { margin: 0 0 .5rem; overflow-wrap: anywhere; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
h3, h4 { overflow-wrap: anywhere; }
.meta { color: var(--muted); } .meta b { color: var(--fg); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; margin-bottom: 1rem; }
.card h3 { margin-top: 0; }
.scene { display: grid; grid-template-columns: minmax(280px, 5fr) minmax(300px, 6fr); gap: 1rem; }
.scene > header { grid-column: 1 / -1; margin: 0; max-width: none; }
@media (max-width: 800px) { .scene { grid-template-columns: 1fr; } }
img, video { width: 100%; height: auto; max-height: 480px; object-fit: contain; border-radius: 6px; display: block;
             background: #0002; }
.final video { max-width: 960px; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 12px; }
.frames { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: .6rem; align-content: start; }
.attempts { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: .5rem; margin: .3rem 0 .8rem; }
.attempt { border: 2px solid transparent; border-radius: 8px; padding: 2px; }
.attempt.kept { border-color: var(--ok); }
.attempt.below { background: var(--bad-bg); }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid var(--line); }
th { width: 9rem; color: var(--muted); font-weight: 600; }
table.steps th { width: auto; } table.steps td.num { text-align: right; font-variant-numeric: tabular-nums; }
.score { font-weight: 700; white-space: nowrap; } .score.ok { color: var(--ok); }
.score.below { color: var(--bad); background: var(--bad-bg); border-radius: 4px; padding: 0 .25rem; }
.totals { font-size: 1.05rem; }
blockquote { margin: .5rem 0; padding-left: .8rem; border-left: 3px solid var(--line); color: var(--muted); }
details { margin-top: .5rem; } summary { cursor: pointer; color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: var(--bg); padding: .6rem; border-radius: 6px;
      font-size: 13px; }
.swatches { display: flex; flex-wrap: wrap; gap: .4rem .9rem; margin: .3rem 0; }
.swatch { display: inline-block; width: 1.1em; height: 1.1em; border-radius: 3px; vertical-align: -.2em;
          border: 1px solid #0004; margin-right: .3em; }
.missing { color: var(--muted); font-style: italic; } .failed { color: var(--bad); font-weight: 600; }
.notice { background: var(--bad-bg); border-radius: 6px; padding: .5rem .8rem; }
"""

# A long story's page holds hundreds of full-size frames: load them as they scroll into view.
_LAZY = ' loading="lazy" decoding="async"'
_HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _src(path: str) -> str:
    """A relative path as an attribute value: percent-encoded (so no scheme such as
    `javascript:` or `file:` can appear), then HTML-escaped."""
    return _e(quote(path, safe="/._-~"))


def palette_swatches(palette: str) -> list[tuple[str, str]]:
    """(label, "#rrggbb") for each colour of the palette text that maps to one: hex codes,
    and colour words by the same vocabulary the offline renderer paints with."""
    found = [(code, code.lower()) for code in _HEX.findall(palette)]
    try:  # the vocabulary lives with the offline painter (Pillow); only imported when writing the page
        from storyc.backends.offline.draw import colour_words
    except ImportError:
        return found
    words = colour_words(_HEX.sub(" ", palette))
    return found + [(word, "#%02x%02x%02x" % rgb) for word, rgb in words]


def _score_text(score: float, threshold: float) -> str:
    """Two decimals, more when rounding would hide the comparison (0.9453 vs 0.95)."""
    for places in (2, 3, 4):
        text = f"{score:.{places}f}"
        if (float(text) < threshold) == (score < threshold):
            return text
    return f"{score:.4f}"


def _score_html(score: float | None, threshold: float) -> str:
    """A score, marked against the threshold by class and colour *and* by text."""
    if score is None:
        return '<span class="score">–</span>'
    text = _score_text(score, threshold)
    if score < threshold:
        return (
            f'<span class="score below" title="below the consistency threshold {threshold:.2f}">'
            f"{text} ▼ below {threshold:.2f}</span>"
        )
    return f'<span class="score ok" title="meets the consistency threshold {threshold:.2f}">{text} ✓</span>'


def _figure(path: str | None, caption: str) -> str:
    if not path:
        return f'<figure><p class="missing">{_e(caption)}: not rendered yet</p></figure>'
    return (
        f'<figure><a href="{_src(path)}"><img src="{_src(path)}" alt="{_e(caption)}"{_LAZY}></a>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _video(path: str, poster: str | None, caption: str) -> str:
    poster_attr = f' poster="{_src(poster)}"' if poster else ""
    return (
        f'<figure><video controls preload="metadata"{poster_attr} src="{_src(path)}"></video>'
        f'<figcaption>{_e(caption)}: <a href="{_src(path)}">{_e(path)}</a></figcaption></figure>'
    )


def _attempts_html(title: str, tries: list[Attempt], threshold: float) -> str:
    """Every attempt of a loop as a thumbnail with its kind and score; the kept one framed."""
    if not tries:
        return ""
    items = []
    for t in tries:
        classes = (
            "attempt" + (" kept" if t.kept else "") + (" below" if t.score is not None and t.score < threshold else "")
        )
        image = (
            f'<img src="{_src(t.thumb)}" alt="{_e(t.label)}"{_LAZY}>'
            if t.thumb
            else f'<span class="missing">{_e(t.path)}</span>'
        )
        items.append(
            f'<figure class="{classes}"><a href="{_src(t.path)}">{image}</a>'
            f"<figcaption>{_e(t.label)} · {_e(t.kind)} · {_score_html(t.score, threshold)}"
            f"{' · <b>kept</b>' if t.kept else ''}</figcaption></figure>"
        )
    return f'<h4>{_e(title)}: {len(tries)}</h4><div class="attempts">{"".join(items)}</div>'


def _prompts_html(prompts: list[tuple[str, str]]) -> str:
    if not prompts:
        return ""
    body = "".join(f"<h4>{_e(label)}</h4><pre>{_e(text)}</pre>" for label, text in prompts)
    return f"<details><summary>Prompts sent ({len(prompts)})</summary>{body}</details>"


def _header(board: Storyboard) -> list[str]:
    t = board.threshold
    swatches = "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{_e(label)}</span>'
        for label, colour in palette_swatches(board.palette)
    )
    parts = [
        f'<header id="top"><h1>{_e(board.title)}</h1>',
        f'<p class="failed notice" role="alert">⚠ {_e(board.notice)}</p>' if board.notice else "",
        f'<p class="meta"><b>Style:</b> {_e(board.style)}<br><b>Aspect ratio:</b> {_e(board.aspect_ratio)} · '
        f"<b>Resolution:</b> {_e(board.resolution)}<br><b>Color palette:</b> {_e(board.palette)}</p>",
    ]
    if swatches:
        parts.append(f'<div class="swatches" aria-label="palette swatches">{swatches}</div>')
    parts.append(
        f'<p class="meta totals"><b>API calls:</b> {board.api_calls} · <b>Cost:</b> ${board.cost_usd:.2f} '
        f"(this build; details below) · <b>Consistency threshold:</b> {t:.2f}: scores below it are marked "
        f'<span class="score below">▼ below {t:.2f}</span>, the others <span class="score ok">✓</span></p>'
    )
    if board.final_video:
        poster = next((s.first_frame or s.keyframe for s in board.scenes if s.first_frame or s.keyframe), None)
        parts.append(f'<div class="final">{_video(board.final_video, poster, "final video")}</div>')
    else:
        parts.append('<p class="missing">final video: not assembled yet</p>')
    parts.append("</header>")
    return parts


def _characters(board: Storyboard) -> list[str]:
    t = board.threshold
    parts = ['<section id="characters"><h2>Characters</h2><div class="grid">']
    for c in board.characters:
        parts.append(f'<article class="card character" id="character-{_e(quote(c.name))}">')
        parts.append(f'<h3>{_e(c.name)} <small class="meta">{_e(c.role)}</small></h3>')
        parts.append(_figure(c.sheet, f"{c.name} character sheet"))
        parts.append(
            f"<p>Score {_score_html(c.score, t)} · attempts {_e(c.attempts if c.attempts is not None else '–')}"
            f" · {_e(c.status)}</p>"
        )
        if c.error:
            parts.append(f'<p class="failed">{_e(c.error)}</p>')
        parts.append(f"<blockquote>{_e(c.description)}</blockquote>")
        if c.cues:
            parts.append(f"<p><em>{_e(', '.join(c.cues))}</em></p>")
        if c.reference_image:
            parts.append(f"<p>Based on the reference image <code>{_e(c.reference_image)}</code>.</p>")
        parts.append(_attempts_html("Sheet attempts", c.tries, t))
        parts.append(_prompts_html(list(c.prompts.items())))
        parts.append("</article>")
    parts.append("</div></section>")
    return parts


def _scenes(board: Storyboard) -> list[str]:
    t = board.threshold
    parts = ['<section id="scenes"><h2>Scenes</h2>']
    for s in board.scenes:
        parts.append(f'<article class="card scene" id="scene-{_e(s.scene_id)}">')
        parts.append(f"<header><h3>Scene {_e(s.scene_id)}: {_e(s.title)}</h3><p>{_e(s.description)}</p>")
        for problem in s.problems:
            parts.append(f'<p class="failed">Failed: {_e(problem)}</p>')
        parts.append("</header>")
        # left: the pictures and the clip
        parts.append('<div class="media frames">')
        parts.append(_figure(s.keyframe, "pinned keyframe" if s.keyframe_pinned else "keyframe"))
        if s.video:
            parts.append(_video(s.video, s.first_frame, "clip"))
        else:
            parts.append('<figure><p class="missing">clip: not rendered yet</p></figure>')
        parts.append(_figure(s.first_frame, "first frame"))
        parts.append(_figure(s.last_frame, "last frame"))
        parts.append("</div>")
        # right: the facts, every attempt, the prompts
        rows = ""
        for name, value in s.table:
            if name == "Consistency":  # the same scores, marked against the threshold
                value_html = f"keyframe {_score_html(s.keyframe_score, t)} · last frame {_score_html(s.video_score, t)}"
            else:
                value_html = _e(value)
            rows += f"<tr><th>{_e(name)}</th><td>{value_html}</td></tr>"
        rows += f"<tr><th>References</th><td>{_e(s.references)}</td></tr>"
        parts.append(f'<div class="facts"><table>{rows}</table>')
        parts.append(_attempts_html("Keyframe attempts", s.keyframe_tries, t))
        parts.append(_attempts_html("Clips (by last frame)", s.clip_tries, t))
        parts.append(_prompts_html(s.prompts))
        parts.append("</div></article>")
    parts.append("</section>")
    return parts


def _build(board: Storyboard) -> list[str]:
    stats = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in board.stats)
    rows = "".join(
        f"<tr><td>{_e(r.id)}</td><td>{_e(r.status)}{' (cache)' if r.cached else ''}</td>"
        f'<td class="num">{r.api_calls}</td><td class="num">${r.cost_usd:.4f}</td><td class="num">{r.wall_s:.1f} s</td></tr>'
        for r in board.steps
    )
    totals = (
        f'<tr><th>total</th><th></th><td class="num"><b>{board.api_calls}</b></td>'
        f'<td class="num"><b>${board.cost_usd:.4f}</b></td><td></td></tr>'
    )
    return [
        f'<section id="build"><h2>Build</h2><table>{stats}</table>',
        '<table class="steps"><thead><tr><th>step</th><th>status</th><th>API calls</th><th>cost</th>'
        f"<th>time</th></tr></thead><tbody>{rows}{totals}</tbody></table></section>",
    ]


def render_storyboard_html(board: Storyboard) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(board.title)} · storyboard</title>",
        f"<style>{_CSS}</style></head><body>",
        *_header(board),
        *_characters(board),
        *_scenes(board),
        *_build(board),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write_storyboard_html(out_dir: Path, story: Story, state: BuildState, notice: str | None = None) -> Path:
    """storyboard.html in the output folder (written atomically); `notice` says why the
    build stopped early, shown at the top."""
    out_dir = Path(out_dir)
    page = render_storyboard_html(storyboard_view(out_dir, story, state, notice))
    path = out_dir / STORYBOARD_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
