"""The build's human- and machine-readable records: script.md, storyboard.html,
state.json and report.json.

Pure functions of (story, build state): no Prefect, no media libraries. Both documents
are rendered from one view of the build (`_storyboard`), so the Markdown storyboard and
the HTML page always show the same facts. Asset paths are relative to the output folder,
where both documents live, so the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from storyc.model import BuildState, Story, StepRecord
from storyc.prompts import allocate_slots

SCRIPT_FILE = "script.md"
STORYBOARD_FILE = "storyboard.html"
STATE_FILE = "state.json"
REPORT_FILE = "report.json"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# ─── atomic JSON ────────────────────────────────────────────────────────────


def write_json_atomic(path: Path, data: dict | BaseModel) -> None:
    """Write JSON so readers only ever see the old or the new complete file: a temp
    file in the same folder, fsync, then os.replace (atomic on POSIX and Windows)."""
    path = Path(path)
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    _write_text_atomic(path, text + "\n")


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (best effort; not every platform allows it)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_state(out_dir: Path, state: BuildState) -> Path:
    path = Path(out_dir) / STATE_FILE
    write_json_atomic(path, state)
    return path


def write_report(out_dir: Path, report: dict) -> Path:
    path = Path(out_dir) / REPORT_FILE
    write_json_atomic(path, report)
    return path


# ─── one view of the build, shared by both documents ───────────────────────


@dataclass
class _Asset:
    label: str
    path: str  # relative to the output folder (posix)


@dataclass
class _CharacterView:
    name: str
    role: str
    description: str
    cues: list[str]
    sheet: str | None
    score: float | None
    attempts: int | None
    status: str
    error: str | None
    attempt_images: list[_Asset]
    reference_image: str | None
    prompts: dict[str, str]


@dataclass
class _SceneView:
    scene_id: int
    title: str
    description: str
    table: list[tuple[str, str]]
    references: str
    keyframe: str | None
    keyframe_pinned: bool
    keyframe_attempts: list[_Asset]
    first_frame: str | None
    last_frame: str | None
    video: str | None
    corrections: list[_Asset]
    keyframe_score: float | None
    video_score: float | None
    prompts: list[tuple[str, str]]  # ("keyframe · compose", prompt)
    problems: list[str] = field(default_factory=list)


@dataclass
class _Storyboard:
    title: str
    style: str
    palette: str
    aspect_ratio: str
    resolution: str
    threshold: float
    characters: list[_CharacterView]
    scenes: list[_SceneView]
    final_video: str | None
    stats: list[tuple[str, str]]


def _rel(out_dir: Path, path: str | None) -> str | None:
    """A path as seen from the output folder, with forward slashes."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = Path(os.path.relpath(candidate, out_dir))
        except ValueError:  # another drive on Windows
            return candidate.as_posix()
    return candidate.as_posix()


def _numbered(outputs: dict[str, str], prefix: str) -> list[tuple[int, str]]:
    found = []
    for role, path in outputs.items():
        match = re.fullmatch(rf"{prefix}_(\d+)", role)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _on_disk(out_dir: Path, pattern: str, count: int, suffixes: tuple[str, ...]) -> list[tuple[int, str]]:
    """Fallback when a step recorded only its chosen output: the design's file names
    (`Ember_v2.jpg`, `scene_1_c1.mp4`) for n = 1..count that exist."""
    found = []
    for n in range(1, count + 1):
        for suffix in suffixes:
            rel = pattern.format(n=n) + suffix
            if (out_dir / rel).is_file():
                found.append((n, rel))
                break
    return found


def _fmt_score(score: float | None) -> str:
    return "–" if score is None else f"{score:.2f}"


def _chain_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    parent = story.chain_parent(index)
    if parent is None:
        return "none (starts a branch)"
    source = "keyframe" if scene.chain_source == "keyframe" else "last frame"
    return f"scene {parent.scene_id} {source}"


def _references_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    if scene.keyframe_image:
        return f"pinned keyframe {scene.keyframe_image} (used as is)"
    plan = allocate_slots(story, index)
    parts = []
    for n, slot in enumerate(plan.slots, start=1):
        if slot.kind == "character":
            parts.append(f"{n}: {slot.name} sheet")
        else:
            parts.append(f"{n}: scene {slot.scene_id} {'keyframe' if slot.source == 'keyframe' else 'last frame'}")
    text = ", ".join(parts) if parts else "none (text → image)"
    if plan.text_only:
        text += f"; text-only (no reference image): {', '.join(plan.text_only)}"
    return text


def _storyboard(out_dir: Path, story: Story, state: BuildState) -> _Storyboard:
    out_dir = Path(out_dir)
    steps: dict[str, StepRecord] = state.steps
    assets_c = {a.name: a for a in state.characters}
    assets_k = {a.scene_id: a for a in state.keyframes}
    assets_v = {a.scene_id: a for a in state.videos}

    characters = []
    for c in story.characters:
        step = steps.get(f"character:{c.name}")
        asset = assets_c.get(c.name)
        outputs = step.outputs if step else {}
        sheet = outputs.get("sheet") or (asset.portrait_path if asset else None)
        attempts = (step.attempts or None) if step else None
        if attempts is None and asset is not None:
            attempts = asset.generation_attempts
        tries = _numbered(outputs, "attempt") or _on_disk(
            out_dir, f"character_sheets/{c.name}_v{{n}}", attempts or 0, IMAGE_SUFFIXES
        )
        score = step.score if step and step.score is not None else (asset.consistency_score if asset else None)
        characters.append(
            _CharacterView(
                name=c.name, role=c.role, description=c.visual_description, cues=list(c.personality_cues),
                sheet=_rel(out_dir, sheet), score=score, attempts=attempts,
                status=step.status if step else "pending", error=step.error if step else None,
                attempt_images=[_Asset(f"v{n}", _rel(out_dir, p)) for n, p in tries],
                reference_image=c.reference_image, prompts=dict(step.prompts) if step else {},
            )
        )

    scenes = []
    for index, s in enumerate(story.scenes):
        k_step = steps.get(f"keyframe:{s.scene_id}")
        v_step = steps.get(f"video:{s.scene_id}")
        k_asset, v_asset = assets_k.get(s.scene_id), assets_v.get(s.scene_id)
        k_out = k_step.outputs if k_step else {}
        v_out = v_step.outputs if v_step else {}

        keyframe = k_out.get("keyframe") or (k_asset.keyframe_path if k_asset else None)
        k_attempts = (k_step.attempts if k_step else 0) or (k_asset.generation_attempts if k_asset else 0)
        k_tries = _numbered(k_out, "attempt") or _on_disk(
            out_dir, f"keyframes/scene_{s.scene_id}_v{{n}}", k_attempts, IMAGE_SUFFIXES
        )
        edits = k_step.edit_passes if k_step else (k_asset.edit_passes if k_asset else 0)

        video = v_out.get("video") or (v_asset.video_path if v_asset else None)
        first = v_out.get("first_frame") or (v_asset.first_frame_path if v_asset else None)
        last = v_out.get("last_frame") or (v_asset.last_frame_path if v_asset else None)
        n_corr = (v_step.edit_passes if v_step else 0) or (v_asset.correction_passes if v_asset else 0)
        corrections = _numbered(v_out, "correction") or _on_disk(
            out_dir, f"videos/scene_{s.scene_id}_c{{n}}", n_corr, (".mp4",)
        )
        k_score = k_step.score if k_step and k_step.score is not None else (k_asset.consistency_score if k_asset else None)
        v_score = v_step.score if v_step and v_step.score is not None else (v_asset.consistency_score if v_asset else None)

        consistency = f"keyframe {_fmt_score(k_score)}, last frame {_fmt_score(v_score)}"
        table = [
            ("Setting", s.setting),
            ("Characters", ", ".join(s.characters_present) or "–"),
            ("Camera", s.camera),
            ("Mood", s.mood),
            ("Action", s.action),
            ("Duration", f"{s.duration_seconds} s"),
            ("Transition", s.transition),
            ("Chain source", _chain_text(story, index)),
            ("Consistency", consistency),
            ("Edits", str(edits)),
            ("Corrections", str(n_corr or len(corrections))),
        ]
        prompts = [(f"keyframe · {role}", text) for role, text in (k_step.prompts if k_step else {}).items()]
        prompts += [(f"video · {role}", text) for role, text in (v_step.prompts if v_step else {}).items()]
        if not prompts and k_asset is not None and k_asset.video_prompt:
            prompts.append(("video · video", k_asset.video_prompt))
        problems = [
            f"{step.id}: {step.status}" + (f" ({step.error})" if step.error else "")
            for step in (k_step, v_step)
            if step is not None and step.status == "failed"
        ]
        scenes.append(
            _SceneView(
                scene_id=s.scene_id, title=s.title, description=s.description, table=table,
                references=_references_text(story, index), keyframe=_rel(out_dir, keyframe),
                keyframe_pinned=bool(s.keyframe_image),
                keyframe_attempts=[_Asset(f"v{n}", _rel(out_dir, p)) for n, p in k_tries],
                first_frame=_rel(out_dir, first), last_frame=_rel(out_dir, last), video=_rel(out_dir, video),
                corrections=[_Asset(f"c{n}", _rel(out_dir, p)) for n, p in corrections],
                keyframe_score=k_score, video_score=v_score, prompts=prompts, problems=problems,
            )
        )

    assemble = steps.get("assemble")
    final = state.final_video_path or (
        (assemble.outputs.get("final_video") or assemble.outputs.get("video")) if assemble else None
    )
    records = list(steps.values())
    stats = [
        ("Backend", state.backend or "–"),
        ("Story", state.story_path or "–"),
        ("Steps", f"{sum(r.status == 'done' for r in records)} done of {len(records)}"
                  f", {sum(r.cached for r in records)} from cache, {sum(r.status == 'failed' for r in records)} failed"),
        ("API calls", str(sum(r.api_calls for r in records))),
        ("Cost", f"${sum(r.cost_usd for r in records):.2f}"),
        ("Step time", f"{sum(r.wall_s for r in records):.1f} s (summed over steps)"),
        ("storyc", state.storyc_version or "–"),
    ]
    return _Storyboard(
        title=story.title, style=story.style, palette=story.color_palette, aspect_ratio=story.aspect_ratio,
        resolution=story.resolution, threshold=story.quality.consistency_threshold,
        characters=characters, scenes=scenes, final_video=_rel(out_dir, final), stats=stats,
    )


# ─── script.md ──────────────────────────────────────────────────────────────


def _md_text(text: Any) -> str:
    """Plain text for Markdown: no raw HTML, one line."""
    return html.escape(" ".join(str(text).split()), quote=False)


def _md_cell(text: Any) -> str:
    return _md_text(text).replace("|", "\\|")


def _md_link_target(path: str) -> str:
    # <...> destinations allow spaces and parentheses (character names may have them)
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"


def _md_image(alt: str, path: str) -> str:
    return f"![{_md_text(alt).replace(']', ')')}]({_md_link_target(path)})"


def _md_fence(text: str) -> list[str]:
    """A code fence longer than any backtick run inside, so any prompt shows verbatim."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def write_script_md(out_dir: Path, story: Story, state: BuildState) -> Path:
    """The storyboard as Markdown: images embedded by relative path, a table per scene,
    the exact prompts sent, scores, the final video and build stats."""
    out_dir = Path(out_dir)
    board = _storyboard(out_dir, story, state)
    lines = [
        f"# {_md_text(board.title)}",
        "",
        f"**Style:** {_md_text(board.style)}  ",
        f"**Aspect ratio:** {board.aspect_ratio} · **Resolution:** {board.resolution}  ",
        f"**Color palette:** {_md_text(board.palette)}",
        "",
    ]
    if board.final_video:
        lines += [f"**Final video:** [{_md_text(board.final_video)}]({_md_link_target(board.final_video)})", ""]
    lines += ["---", "", "## Characters", ""]
    for c in board.characters:
        lines.append(f"### {_md_text(c.name)}")
        lines.append("")
        lines.append(
            f"**Role:** {_md_text(c.role)} | **Score:** {_fmt_score(c.score)} | "
            f"**Attempts:** {c.attempts if c.attempts is not None else '–'} | **Status:** {c.status}"
        )
        lines.append("")
        if c.error:
            lines += [f"**Error:** {_md_text(c.error)}", ""]
        lines += [f"> {_md_text(c.description)}", ""]
        if c.cues:
            lines += [f"*{_md_text(', '.join(c.cues))}*", ""]
        if c.reference_image:
            lines += [f"Based on the reference image `{_md_text(c.reference_image)}`.", ""]
        if c.sheet:
            lines += [_md_image(c.name, c.sheet), ""]
        others = [a for a in c.attempt_images if a.path != c.sheet]
        if others:
            lines += ["Other attempts: " + ", ".join(f"[{a.label}]({_md_link_target(a.path)})" for a in others), ""]
        for role, prompt in c.prompts.items():
            lines += [f"**Prompt ({_md_text(role)}):**", "", *_md_fence(prompt), ""]
    lines += ["---", "", "## Scenes", ""]
    for s in board.scenes:
        lines += [f"### Scene {s.scene_id}: {_md_text(s.title)}", "", _md_text(s.description), ""]
        lines += ["| Property | Value |", "|---|---|"]
        lines += [f"| {name} | {_md_cell(value)} |" for name, value in s.table]
        lines += [f"| References | {_md_cell(s.references)} |", ""]
        for problem in s.problems:
            lines += [f"**Failed:** {_md_text(problem)}", ""]
        if s.keyframe:
            lines += [_md_image(f"Scene {s.scene_id} keyframe", s.keyframe), ""]
        others = [a for a in s.keyframe_attempts if a.path != s.keyframe]
        if others:
            lines += ["Other keyframe attempts: " + ", ".join(f"[{a.label}]({_md_link_target(a.path)})" for a in others), ""]
        frames = [(label, p) for label, p in (("first frame", s.first_frame), ("last frame", s.last_frame)) if p]
        if frames:
            lines += [" ".join(_md_image(f"Scene {s.scene_id} {label}", p) for label, p in frames), ""]
        if s.video:
            lines += [f"**Video:** [{_md_text(s.video)}]({_md_link_target(s.video)})", ""]
        if s.corrections:
            lines += ["Corrections: " + ", ".join(f"[{a.label}]({_md_link_target(a.path)})" for a in s.corrections), ""]
        for label, prompt in s.prompts:
            lines += [f"**Prompt ({_md_text(label)}):**", "", *_md_fence(prompt), ""]
    lines += ["---", "", "## Build", ""]
    if board.final_video:
        lines += [f"Final video: [{_md_text(board.final_video)}]({_md_link_target(board.final_video)})", ""]
    lines += ["| Stat | Value |", "|---|---|"]
    lines += [f"| {name} | {_md_cell(value)} |" for name, value in board.stats]
    path = out_dir / SCRIPT_FILE
    _write_text_atomic(path, "\n".join(lines) + "\n")
    return path


# ─── storyboard.html ────────────────────────────────────────────────────────

_CSS = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #f6f5f2; --card: #fff; --muted: #6b6b70;
        --ok: #1f7a3a; --bad: #b3261e; --line: #e2e0da; }
@media (prefers-color-scheme: dark) { :root { --fg: #ececef; --bg: #151518; --card: #1f1f24; --muted: #a0a0a8;
        --ok: #5fd38a; --bad: #ff8a80; --line: #33333a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 2rem; font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header, section { max-width: 1200px; margin: 0 auto 2rem; }
h1 { margin: 0 0 .5rem; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
.meta { color: var(--muted); } .meta b { color: var(--fg); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; }
.card h3 { margin-top: 0; }
img, video { max-width: 100%; max-height: 420px; border-radius: 6px; display: block; background: #0002; }
.frames { display: flex; gap: .5rem; flex-wrap: wrap; align-items: flex-start; }
.frames figure { margin: 0; flex: 1 1 200px; } figcaption { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border-bottom: 1px solid var(--line); }
th { width: 9rem; color: var(--muted); font-weight: 600; }
.score { font-weight: 700; } .score.ok { color: var(--ok); } .score.bad { color: var(--bad); }
blockquote { margin: .5rem 0; padding-left: .8rem; border-left: 3px solid var(--line); color: var(--muted); }
details { margin-top: .5rem; } summary { cursor: pointer; color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: var(--bg); padding: .6rem; border-radius: 6px;
      font-size: 13px; }
.missing { color: var(--muted); font-style: italic; } .failed { color: var(--bad); font-weight: 600; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _src(path: str) -> str:
    """A relative path as an attribute value: percent-encoded, then HTML-escaped."""
    return _e(quote(path, safe="/._-~"))


def _score_html(score: float | None, threshold: float) -> str:
    if score is None:
        return '<span class="score">–</span>'
    cls = "ok" if score >= threshold else "bad"
    return f'<span class="score {cls}">{score:.2f}</span>'


def _figure(path: str | None, caption: str) -> str:
    if not path:
        return f'<figure><p class="missing">{_e(caption)}: not rendered yet</p></figure>'
    return f'<figure><img src="{_src(path)}" alt="{_e(caption)}" loading="lazy"><figcaption>{_e(caption)}</figcaption></figure>'


def _links(label: str, assets: list[_Asset]) -> str:
    if not assets:
        return ""
    items = ", ".join(f'<a href="{_src(a.path)}">{_e(a.label)}</a>' for a in assets)
    return f"<p>{_e(label)}: {items}</p>"


def _prompts_html(prompts: list[tuple[str, str]]) -> str:
    if not prompts:
        return ""
    body = "".join(f"<h4>{_e(label)}</h4><pre>{_e(text)}</pre>" for label, text in prompts)
    return f"<details><summary>Prompts sent ({len(prompts)})</summary>{body}</details>"


def write_storyboard_html(out_dir: Path, story: Story, state: BuildState) -> Path:
    """The same storyboard as one self-contained page (inline CSS, relative media)."""
    out_dir = Path(out_dir)
    board = _storyboard(out_dir, story, state)
    t = board.threshold
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(board.title)} · storyboard</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header>",
        f"<h1>{_e(board.title)}</h1>",
        f'<p class="meta"><b>Style:</b> {_e(board.style)}<br><b>Aspect ratio:</b> {_e(board.aspect_ratio)} · '
        f"<b>Resolution:</b> {_e(board.resolution)} · <b>Color palette:</b> {_e(board.palette)}</p>",
    ]
    if board.final_video:
        first = next((s.first_frame or s.keyframe for s in board.scenes if s.first_frame or s.keyframe), None)
        poster = f' poster="{_src(first)}"' if first else ""
        parts.append(
            f'<video controls preload="metadata"{poster} src="{_src(board.final_video)}"></video>'
            f'<p><a href="{_src(board.final_video)}">{_e(board.final_video)}</a></p>'
        )
    parts += ["</header>", "<section><h2>Characters</h2><div class=\"grid\">"]
    for c in board.characters:
        parts.append('<article class="card">')
        parts.append(f"<h3>{_e(c.name)} <small class=\"meta\">{_e(c.role)}</small></h3>")
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
        parts.append(_links("Other attempts", [a for a in c.attempt_images if a.path != c.sheet]))
        parts.append(_prompts_html(list(c.prompts.items())))
        parts.append("</article>")
    parts += ["</div></section>", "<section><h2>Scenes</h2>"]
    for s in board.scenes:
        parts.append(f'<article class="card" id="scene-{_e(s.scene_id)}">')
        parts.append(f"<h3>Scene {_e(s.scene_id)}: {_e(s.title)}</h3>")
        parts.append(f"<p>{_e(s.description)}</p>")
        for problem in s.problems:
            parts.append(f'<p class="failed">Failed: {_e(problem)}</p>')
        rows = ""
        for name, value in s.table:
            if name == "Consistency":  # the same scores, coloured against the threshold
                value_html = f"keyframe {_score_html(s.keyframe_score, t)} · last frame {_score_html(s.video_score, t)}"
            else:
                value_html = _e(value)
            rows += f"<tr><th>{_e(name)}</th><td>{value_html}</td></tr>"
        rows += f"<tr><th>References</th><td>{_e(s.references)}</td></tr>"
        parts.append(f"<table>{rows}</table>")
        parts.append('<div class="frames">')
        parts.append(_figure(s.keyframe, "pinned keyframe" if s.keyframe_pinned else "keyframe"))
        parts.append(_figure(s.first_frame, "first frame"))
        parts.append(_figure(s.last_frame, "last frame"))
        if s.video:
            poster = f' poster="{_src(s.first_frame)}"' if s.first_frame else ""
            parts.append(
                f'<figure><video controls preload="metadata"{poster} src="{_src(s.video)}"></video>'
                f'<figcaption>video: <a href="{_src(s.video)}">{_e(s.video)}</a></figcaption></figure>'
            )
        else:
            parts.append('<figure><p class="missing">video: not rendered yet</p></figure>')
        parts.append("</div>")
        parts.append(_links("Other keyframe attempts", [a for a in s.keyframe_attempts if a.path != s.keyframe]))
        parts.append(_links("Corrections", s.corrections))
        parts.append(_prompts_html(s.prompts))
        parts.append("</article>")
    parts.append("</section>")
    rows = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in board.stats)
    parts.append(f"<section><h2>Build</h2><table>{rows}</table></section>")
    parts.append("</body></html>")
    path = out_dir / STORYBOARD_FILE
    _write_text_atomic(path, "\n".join(p for p in parts if p) + "\n")
    return path
