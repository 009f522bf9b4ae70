"""Every prompt storyc sends, rendered from Jinja templates, and the 3-image slot plan.

One template per prompt lives in `prompts/<name>.j2`. A story can override any of them:
the lookup order per template is `--prompts DIR` > `<story dir>/prompts/` > the packaged
default. Templates run in Jinja's immutable sandbox with StrictUndefined, so a broken or
hostile override becomes one positioned diagnostic (E501), never a traceback and never
access to Python internals.

Rendered text is whitespace-collapsed: lines of a template paragraph join with single
spaces, and a blank line in a template starts a new output line. That lets templates be
written readably while every image/video prompt comes out as one clean paragraph.

jinja2 is imported lazily: `allocate_slots` (used by lint) costs nothing to import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from storyc.diagnostics import StorycError, error
from storyc.model.story import (
    ASPECT_RATIOS,
    MAX_DURATION_S,
    MAX_REFERENCE_IMAGES,
    MIN_DURATION_S,
    TRANSITIONS,
    VIDEO_EDIT_MAX_S,
    Character,
    Scene,
    Story,
)
from storyc.resources import prompts_dir

TEMPLATE_SUFFIX = ".j2"
E_TEMPLATE = "E501"

# Every template a build or `storyc plan` renders. Overrides may add partials
# (e.g. `_lines.j2`) and `{% include %}` them.
TEMPLATE_NAMES = (
    "character_sheet",
    "character_from_reference",
    "keyframe",
    "video",
    "fix_edit",
    "check_sheet",
    "check_keyframe",
    "check_last_frame",
    "video_fix",
    "reword",
    "plan_system",
    "plan_user",
)

# How many words of a character's description the keyframe prompt repeats next to its
# reference image: whole leading sentences only (never cut mid-sentence), at least one.
BRIEF_MAX_WORDS = 45


# ─── the 3-image budget (design section 6) ──────────────────────────────────


@dataclass(frozen=True)
class Slot:
    """One reference image of a keyframe edit, in the order sent as image_urls."""

    kind: Literal["character", "chain"]
    name: str | None = None  # character name (kind=character)
    scene_id: int | None = None  # chain source scene (kind=chain)
    source: Literal["last_frame", "keyframe"] | None = None  # kind=chain

    def to_json(self, image: int) -> dict[str, Any]:
        data: dict[str, Any] = {"image": image, "kind": self.kind}
        if self.kind == "character":
            data["name"] = self.name
        else:
            data["scene_id"] = self.scene_id
            data["source"] = self.source
        return data


@dataclass(frozen=True)
class SlotPlan:
    slots: tuple[Slot, ...]  # at most 3, in the order sent as image_urls
    text_only: tuple[str, ...]  # characters present but without a slot (will drift)

    @property
    def chain(self) -> Slot | None:
        return next((s for s in self.slots if s.kind == "chain"), None)


def present_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """The known characters of a scene in characters_present order, each once."""
    known = {c.name for c in story.characters}
    seen: dict[str, None] = {}
    for name in story.scenes[scene_index].characters_present:
        if name in known:
            seen.setdefault(name, None)
    return tuple(seen)


def allocate_slots(story: Story, scene_index: int) -> SlotPlan:
    """The design's 3-image budget table as one pure function.

    Characters take slots first, in the order `characters_present` lists them (unknown
    names are lint errors and are skipped here); the chain frame takes the last slot.
    With a chain source at most 2 characters get a sheet, without one up to 3; the rest
    are described in text only and will drift. A pinned keyframe_image needs no slots.

    | scene                 | slot 1 | slot 2 | slot 3     | text-only |
    | 1 character, chained  | char   | chain  | -          |           |
    | 2 characters, chained | char1  | char2  | chain      |           |
    | 2 characters, fresh   | char1  | char2  | -          |           |
    | 3+ chained            | char1  | char2  | chain      | char3+    |
    | 3+ fresh              | char1  | char2  | char3      | char4+    |
    """
    scene = story.scenes[scene_index]
    if scene.keyframe_image:
        return SlotPlan(slots=(), text_only=())
    names = present_characters(story, scene_index)
    parent = story.chain_parent(scene_index)
    budget = MAX_REFERENCE_IMAGES - (1 if parent is not None else 0)
    slots = [Slot(kind="character", name=name) for name in names[:budget]]
    if parent is not None:
        slots.append(Slot(kind="chain", scene_id=parent.scene_id, source=scene.chain_source))
    return SlotPlan(slots=tuple(slots), text_only=names[budget:])


def judge_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """Characters whose sheets a keyframe / last-frame check sends, in image order 2, 3, ...

    Vision calls have no 3-image limit, so the judge sees every present character's
    sheet, text-only ones included: that is how their drift is caught.
    """
    return present_characters(story, scene_index)


# ─── text helpers (also exposed to templates as filters) ────────────────────

# A possible sentence end: terminal punctuation, any closing quotes or brackets, a space.
_SENTENCE_BREAK = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
# A period after one of these words (or after a single letter, an initial) is not a sentence
# end: "a St. Bernard-sized dog", "approx. 40 years", "J. R. Smith". Erring towards not
# splitting only makes a brief longer, never cuts it inside a sentence.
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "mx", "dr", "prof", "st", "mt", "ft", "jr", "sr", "capt", "col", "gen", "lt", "sgt", "rev", "hon", "vs", "etc", "approx", "ca", "cf", "e.g", "i.e", "no", "nos", "vol", "fig", "inc", "ltd", "co", "ave", "rd", "blvd", "dept", "est", "min", "max", "incl", "excl"]
)
_SENTENCE_STARTS = "\"'\u201c\u2018(["


def normalize_space(text: str) -> str:
    """Runs of whitespace (newlines included) become one space; ends stripped."""
    return " ".join(text.split())  # str.split is several times faster than a regex here


def collapse(text: str) -> str:
    """Template output → prompt: lines of a paragraph joined by one space, blank lines
    separate output lines, runs of spaces collapsed."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


def sentence(text: Any) -> str:
    """End the text with terminal punctuation (adds a period only if it has none).
    Context strings are already normalized; collapse() cleans the final output."""
    text = str(text).strip()
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


def clause(text: Any) -> str:
    """Strip trailing sentence punctuation so the text can continue a sentence."""
    return normalize_space(str(text)).rstrip(" .;,:")


def capfirst(text: Any) -> str:
    text = str(text)
    return text[:1].upper() + text[1:]


def split_sentences(text: str) -> list[str]:
    """Sentences of a whitespace-normalised text, verbatim: " ".join(result) == text.
    A break needs terminal punctuation, then a word starting like a sentence (capital,
    digit, opening quote), and no abbreviation or initial before the period."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        following = text[match.end() : match.end() + 1]
        if not (following.isupper() or following.isdigit() or (following and following in _SENTENCE_STARTS)):
            continue
        if text[match.start()] == ".":
            word = text[start : match.start()].rsplit(" ", 1)[-1].lstrip(_SENTENCE_STARTS).lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        sentences.append(text[start : match.end()].rstrip())
        start = match.end()
    if start < len(text) or not sentences:
        sentences.append(text[start:])
    return sentences


def brief(description: str, max_words: int = BRIEF_MAX_WORDS) -> str:
    """The leading whole sentences of a description, up to max_words (at least one
    sentence): verbatim, never cut inside a sentence, let alone a word."""
    sentences = split_sentences(normalize_space(description))
    kept: list[str] = []
    words = 0
    for part in sentences:
        count = len(part.split())
        if kept and words + count > max_words:
            break
        kept.append(part)
        words += count
    return " ".join(kept)


# Words that commonly trip moderation, with gentler stand-ins for the one re-attempt.
_SOFTER = {
    "blood": "red paint",
    "bloody": "red-stained",
    "gore": "mess",
    "kill": "defeat",
    "kills": "defeats",
    "killed": "defeated",
    "killing": "defeating",
    "dead": "motionless",
    "corpse": "sleeping figure",
    "murder": "mystery",
    "gun": "prop",
    "guns": "props",
    "pistol": "prop",
    "rifle": "prop",
    "knife": "tool",
    "knives": "tools",
    "weapon": "tool",
    "weapons": "tools",
    "stab": "tap",
    "shoot": "point",
    "shoots": "points",
    "violent": "dramatic",
    "violence": "drama",
    "naked": "dressed",
    "nude": "dressed",
    "sexy": "stylish",
}
_SOFTER_RE = re.compile(r"\b(" + "|".join(map(re.escape, _SOFTER)) + r")\b", re.IGNORECASE)


def soften(text: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        word = _SOFTER[match.group(0).lower()]
        return capfirst(word) if match.group(0)[0].isupper() else word

    return _SOFTER_RE.sub(replace, str(text))


def _positions(count: int) -> list[str]:
    """Where each of `count` characters stands in the frame (left to right)."""
    table = {
        1: ["in the center"],
        2: ["on the left side", "on the right side"],
        3: ["on the left", "in the center", "on the right"],
    }
    if count in table:
        return table[count]
    four = ["on the far left", "left of center", "right of center", "on the far right"]
    return four + ["in the background"] * max(0, count - 4)


# ─── template environment ───────────────────────────────────────────────────


class _TemplateSource:
    """Finds `<name>.j2` in the search folders, first hit wins."""

    def __init__(self, search: Iterable[Path]):
        self.search = [Path(p) for p in search]
        self._resolved: dict[str, Path | None] = {}

    def resolve(self, filename: str) -> Path | None:
        if filename not in self._resolved:
            found = None
            parts = Path(filename).parts
            if parts and ".." not in parts and not Path(filename).is_absolute():
                for folder in self.search:
                    candidate = folder / filename
                    if candidate.is_file():
                        found = candidate
                        break
            self._resolved[filename] = found
        return self._resolved[filename]


# Prompts are a few hundred characters. A template override may come with a shared
# story, so its size is bounded too: `'x' * 10**10` or nested loops must not exhaust
# the machine's memory (they did: an OOM kill), they are an E501 like any other attack.
MAX_TEMPLATE_OUTPUT = 1_000_000  # characters one render may produce
MAX_TEMPLATE_INT = 1_000_000  # largest repeat count, width or exponent result a template may use
_WIDE_FORMAT = re.compile(r"%[#0\- +]*(?:\*|\d{7,})|\{[^{}]*:[^{}]*\d{7,}")  # a width >= 10^6, or '*'


def _bounded_sandbox():
    """ImmutableSandboxedEnvironment plus size limits on the operations that can allocate
    without bound (repetition, powers, format widths, huge call/filter arguments)."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def check_args(what: str, args: Iterable[Any]) -> None:
        for arg in args:
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEMPLATE_INT:
                raise SecurityError(f"{what}: the number {arg} is too large for a template (limit {MAX_TEMPLATE_INT})")

    def check_format(what: str, fmt: Any) -> None:
        if isinstance(fmt, str) and _WIDE_FORMAT.search(fmt):
            raise SecurityError(f"{what}: a format width that large is not allowed in a template")

    def size(value: Any) -> int | None:
        return len(value) if isinstance(value, (str, bytes, list, tuple)) else None

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "%"])

        def call_binop(self, context, operator, left, right):
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if size(seq) is not None and isinstance(n, int) and size(seq) * n > MAX_TEMPLATE_OUTPUT:
                        raise SecurityError(f"repetition to {size(seq) * n} items is too large for a template")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * abs(left).bit_length() > MAX_TEMPLATE_INT.bit_length() * 64:
                    raise SecurityError("a power that large is not allowed in a template")
            elif operator == "%" and isinstance(left, str):
                check_format("%", left)
                check_args("%", right if isinstance(right, tuple) else (right,))
            return super().call_binop(context, operator, left, right)

        def call(__self, __context, __obj, *args, **kwargs):
            check_args(getattr(__obj, "__name__", "call"), [*args, *kwargs.values()])
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value):  # `'...'.format` / `format_map`, checked when accessed
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                check_format("format", value.__self__)
            return wrapped

    return BoundedSandbox


def _guard_filter(name: str, func: Callable) -> Callable:
    from functools import wraps

    from jinja2.exceptions import SecurityError

    @wraps(func)
    def guarded(*args, **kwargs):
        for arg in [*args[1:], *kwargs.values()]:
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_TEMPLATE_INT:
                raise SecurityError(f"filter {name}: the number {arg} is too large for a template")
        if name == "format" and args and isinstance(args[0], str) and _WIDE_FORMAT.search(args[0]):
            raise SecurityError("filter format: a format width that large is not allowed in a template")
        return func(*args, **kwargs)

    return guarded


def render_bounded(template: Any, context: dict[str, Any]) -> str:
    """template.render, streamed, stopping once the output passes MAX_TEMPLATE_OUTPUT."""
    from jinja2.exceptions import SecurityError

    parts, total = [], 0
    for chunk in template.generate(context):
        total += len(chunk)
        if total > MAX_TEMPLATE_OUTPUT:
            raise SecurityError(f"the template produced more than {MAX_TEMPLATE_OUTPUT} characters")
        parts.append(chunk)
    return "".join(parts)


class _Templates:
    """A sandboxed Jinja environment over one search path, compiled templates cached."""

    def __init__(self, search: Iterable[Path]):
        import jinja2

        self.source = _TemplateSource(search)
        self._texts: dict[str, str] = {}
        self._compiled: dict[str, Any] = {}
        self._digests: dict[str, str] = {}

        def load(filename: str):
            path = self.source.resolve(filename)
            if path is None:
                return None
            return self._text(filename, path), str(path), lambda: True

        # Immutable sandbox: no attribute tricks, and templates cannot mutate the
        # (cached, shared) context objects. StrictUndefined: a typo is an error.
        self.env = _bounded_sandbox()(
            loader=jinja2.FunctionLoader(load),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters.update(
            sentence=sentence, clause=clause, capfirst=capfirst, brief=brief, soften=soften, squash=normalize_space
        )
        self.env.filters = {name: _guard_filter(name, f) for name, f in self.env.filters.items()}

    def _text(self, filename: str, path: Path) -> str:
        if filename not in self._texts:
            try:
                self._texts[filename] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise StorycError(error(str(path), 1, 1, E_TEMPLATE, f"template error: cannot read template: {exc}"))
        return self._texts[filename]

    def path(self, name: str) -> Path:
        path = self.source.resolve(name + TEMPLATE_SUFFIX)
        if path is None:
            where = ", ".join(str(p) for p in self.source.search)
            raise StorycError(
                error(
                    str(self.source.search[-1] / (name + TEMPLATE_SUFFIX)),
                    1,
                    1,
                    E_TEMPLATE,
                    f"template error: template '{name}{TEMPLATE_SUFFIX}' not found in {where}",
                )
            )
        return path

    def render(self, name: str, context: dict[str, Any]) -> str:
        template = self._compiled.get(name)
        try:
            if template is None:
                self.path(name)  # a clear "not found" diagnostic before Jinja's
                template = self._compiled[name] = self.env.get_template(name + TEMPLATE_SUFFIX)
            return collapse(render_bounded(template, context))
        except StorycError:
            raise
        except Exception as exc:  # any template failure, Jinja's or Python's, is E501
            raise self._diagnose(name, exc) from None

    def digest(self, name: str) -> str:
        """sha256 of the template source, extended by the sources of the templates it
        includes/extends/imports (so editing a partial changes the digest too)."""
        if name not in self._digests:
            from jinja2 import meta

            filename = name + TEMPLATE_SUFFIX
            hasher = hashlib.sha256(self._text(filename, self.path(name)).encode("utf-8"))
            seen = {filename}
            pending = [filename]
            while pending:
                current = pending.pop()
                try:
                    ast = self.env.parse(self._texts[current])
                except Exception as exc:
                    raise self._diagnose(name, exc) from None
                for ref in sorted(r for r in meta.find_referenced_templates(ast) if r):
                    path = self.source.resolve(ref)
                    if ref in seen or path is None:
                        continue
                    seen.add(ref)
                    pending.append(ref)
                    hasher.update(b"\0" + ref.encode() + b"\0" + self._text(ref, path).encode("utf-8"))
            self._digests[name] = hasher.hexdigest()
        return self._digests[name]

    def _diagnose(self, name: str, exc: BaseException) -> StorycError:
        """Point at the template line that failed: a syntax error's own position, else
        the deepest traceback frame that runs inside one of our template files."""
        from jinja2 import TemplateNotFound, TemplateSyntaxError

        path = str(self.source.resolve(name + TEMPLATE_SUFFIX) or name + TEMPLATE_SUFFIX)
        line = 1
        if isinstance(exc, TemplateSyntaxError):
            if exc.filename:
                path = exc.filename
            line = exc.lineno or 1
            message = exc.message or str(exc)
        else:
            if isinstance(exc, TemplateNotFound):
                message = f"template '{exc.name}' not found"
            else:
                message = str(exc) or type(exc).__name__
            files = {str(self.source.resolve(f)) for f in self._texts}
            tb = exc.__traceback__
            while tb is not None:
                filename = tb.tb_frame.f_code.co_filename
                if filename in files:
                    path, line = filename, tb.tb_lineno
                tb = tb.tb_next
        message = normalize_space(message)
        return StorycError(error(path, max(1, line), 1, E_TEMPLATE, f"template error: {message}"))


def _search_path(story_path: Path | None, override_dir: Path | None) -> list[Path]:
    search: list[Path] = []
    if override_dir is not None:
        search.append(Path(override_dir))
    if story_path is not None:
        # Beside the story as given (like its image paths): diagnostics keep the path the user typed.
        search.append(Path(story_path).parent / "prompts")
    search.append(prompts_dir())
    # The same folder twice (a story at the repo root) is harmless but pointless.
    unique: list[Path] = []
    for folder in search:
        if folder not in unique:
            unique.append(folder)
    return unique


# ─── the prompt set of one story ────────────────────────────────────────────


class PromptSet:
    """Renders every prompt of one story; results are cached per instance."""

    def __init__(self, story: Story, *, story_path: Path | None = None, override_dir: Path | None = None):
        self.story = story
        self.story_path = Path(story_path) if story_path is not None else None
        self.override_dir = Path(override_dir) if override_dir is not None else None
        self._templates = _Templates(_search_path(self.story_path, self.override_dir))
        self._cache: dict[tuple, str] = {}
        self._characters: dict[str, dict[str, Any]] = {}
        self._style = normalize_space(story.style)
        self._palette = normalize_space(story.color_palette)

    # ── context builders (plain dicts of normalized strings) ──

    def _character_view(self, character: Character) -> dict[str, Any]:
        view = self._characters.get(character.name)
        if view is None:
            description = normalize_space(character.visual_description)
            view = self._characters[character.name] = {
                "name": character.name,
                "role": normalize_space(character.role),
                "visual_description": description,
                "brief": brief(description),
                "personality_cues": [normalize_space(c) for c in character.personality_cues if c.strip()],
                "reference_image": character.reference_image,
            }
        return view

    def _scene_view(self, scene: Scene) -> dict[str, Any]:
        return {
            "scene_id": scene.scene_id,
            "title": normalize_space(scene.title),
            "description": normalize_space(scene.description),
            "setting": normalize_space(scene.setting),
            "camera": normalize_space(scene.camera),
            "mood": normalize_space(scene.mood),
            "action": normalize_space(scene.action),
            "duration_seconds": scene.duration_seconds,
            "transition": scene.transition,
            "chain_source": scene.chain_source,
            "characters_present": list(scene.characters_present),
        }

    def _base(self) -> dict[str, Any]:
        return {
            "title": normalize_space(self.story.title),
            "style": self._style,
            "palette": self._palette,
            "aspect_ratio": self.story.aspect_ratio,
            "resolution": self.story.resolution,
        }

    def _judge_views(self, scene_index: int) -> list[dict[str, Any]]:
        views = []
        for image, name in enumerate(judge_characters(self.story, scene_index), start=2):
            view = dict(self._character_view(self.story.character(name)))
            view["image"] = image
            views.append(view)
        return views

    def _render(self, key: tuple, name: str, build: Callable[[], dict[str, Any]]) -> str:
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._templates.render(name, build())
        return cached

    # ── image prompts ──

    def character_sheet(self, character: Character) -> str:
        """Text → image: the style lock, then the frozen description, on a neutral sheet."""
        return self._render(
            ("character_sheet", character.name),
            "character_sheet",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def character_from_reference(self, character: Character) -> str:
        """Single-image edit that restyles the user's reference_image into a sheet."""
        return self._render(
            ("character_from_reference", character.name),
            "character_from_reference",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def keyframe(self, scene_index: int) -> str:
        """Multi-image edit composing the scene; binds each slot as 'reference image N'."""
        return self._render(("keyframe", scene_index), "keyframe", lambda: self._keyframe_context(scene_index))

    def _keyframe_context(self, scene_index: int) -> dict[str, Any]:
        scene = self.story.scenes[scene_index]
        plan = allocate_slots(self.story, scene_index)
        names = present_characters(self.story, scene_index)
        slot_of = {s.name: i for i, s in enumerate(plan.slots, start=1) if s.kind == "character"}
        characters = []
        for name, position in zip(names, _positions(len(names))):
            view = dict(self._character_view(self.story.character(name)))
            view["slot"] = slot_of.get(name)
            view["position"] = position
            characters.append(view)
        chain = None
        if plan.chain is not None:
            chain = {
                "slot": len(plan.slots),
                "scene_id": plan.chain.scene_id,
                "source": plan.chain.source,
            }
        return {
            **self._base(),
            "scene": self._scene_view(scene),
            "characters": characters,
            "referenced": [c for c in characters if c["slot"] is not None],
            "text_only": [c for c in characters if c["slot"] is None],
            "chain": chain,
            "slot_count": len(plan.slots),
        }

    def fix_edit(self, element: str, fix: str, sheet_of: str | None = None) -> str:
        """Image edit repairing one element of a keyframe (input 1); nothing else changes.
        `sheet_of`: the character whose sheet is sent as input 2 to anchor the fix."""
        return self._render(
            ("fix_edit", element, fix, sheet_of),
            "fix_edit",
            lambda: {
                **self._base(),
                "element": normalize_space(element),
                "fix": normalize_space(fix),
                "sheet_of": sheet_of,
            },
        )

    # ── video prompts: motion only ──

    def video(self, scene_index: int) -> str:
        """Image → video. The context holds no visual_description at all: the keyframe
        carries appearance, and appearance text in a video prompt causes drift."""
        scene = self.story.scenes[scene_index]

        def context() -> dict[str, Any]:
            view = self._scene_view(scene)
            view.pop("description")  # what happens over time, not the motion to render
            return {**self._base(), "scene": view, "names": list(present_characters(self.story, scene_index))}

        return self._render(("video", scene_index), "video", context)

    def video_fix(self, scene_index: int, issues: list[str]) -> str:
        """Video edit correcting drift found in the last frame; motion stays identical."""
        scene = self.story.scenes[scene_index]
        cleaned = tuple(normalize_space(i) for i in issues if i and i.strip())

        def context() -> dict[str, Any]:
            view = self._scene_view(scene)
            view.pop("description")
            return {
                **self._base(),
                "scene": view,
                "names": list(present_characters(self.story, scene_index)),
                "issues": list(cleaned),
            }

        return self._render(("video_fix", scene_index, cleaned), "video_fix", context)

    def reword(self, prompt: str) -> str:
        """The one softened re-attempt after a moderation block."""
        return self._render(("reword", prompt), "reword", lambda: {**self._base(), "prompt": prompt})

    # ── vision checks (the judge) ──

    def check_sheet(self, character: Character) -> str:
        return self._render(
            ("check_sheet", character.name),
            "check_sheet",
            lambda: {**self._base(), "character": self._character_view(character)},
        )

    def check_keyframe(self, scene_index: int) -> str:
        scene = self.story.scenes[scene_index]
        return self._render(
            ("check_keyframe", scene_index),
            "check_keyframe",
            lambda: {**self._base(), "scene": self._scene_view(scene), "characters": self._judge_views(scene_index)},
        )

    def check_last_frame(self, scene_index: int) -> str:
        scene = self.story.scenes[scene_index]
        return self._render(
            ("check_last_frame", scene_index),
            "check_last_frame",
            lambda: {**self._base(), "scene": self._scene_view(scene), "characters": self._judge_views(scene_index)},
        )

    # ── template bookkeeping (cache keys, reports) ──

    def template_digest(self, name: str) -> str:
        return self._templates.digest(name)

    def templates_used(self) -> dict[str, Path]:
        return {name: self._templates.path(name) for name in TEMPLATE_NAMES}


def render_plan_prompts(
    concept: str,
    *,
    characters: int | None = None,
    scenes: int | None = None,
    override_dir: Path | None = None,
) -> tuple[str, str]:
    """(system, user) messages of the planning call that turns a concept into a StoryPlan."""
    templates = _Templates(_search_path(None, override_dir))
    context = {
        "concept": normalize_space(concept),
        "characters": characters,
        "scenes": scenes,
        "min_duration": MIN_DURATION_S,
        "max_duration": MAX_DURATION_S,
        "edit_max_s": VIDEO_EDIT_MAX_S,
        "max_references": MAX_REFERENCE_IMAGES,
        "aspect_ratios": list(ASPECT_RATIOS),
        "transitions": list(TRANSITIONS),
    }
    return templates.render("plan_system", context), templates.render("plan_user", context)


# ─── the listing behind `storyc prompts` ────────────────────────────────────


def _images(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"image": n, **item} for n, item in enumerate(items, start=1)]


def prompt_listing(prompts: PromptSet, scene_id: int | None = None) -> list[dict[str, Any]]:
    """Every deterministic prompt a build sends, in build order, as
    {step, kind, prompt, slots[, text_only, image]} records. `slots` lists the images
    sent with the prompt, 1-based, in order. With scene_id, only that scene's steps."""
    story = prompts.story
    entries: list[dict[str, Any]] = []
    if scene_id is None:
        for character in story.characters:
            step = f"character:{character.name}"
            if character.reference_image:
                entries.append(
                    {
                        "step": step,
                        "kind": "character_from_reference",
                        "prompt": prompts.character_from_reference(character),
                        "slots": _images({"kind": "reference_image", "path": character.reference_image}),
                    }
                )
            else:
                entries.append(
                    {
                        "step": step,
                        "kind": "character_sheet",
                        "prompt": prompts.character_sheet(character),
                        "slots": [],
                    }
                )
            entries.append(
                {
                    "step": step,
                    "kind": "check_sheet",
                    "prompt": prompts.check_sheet(character),
                    "slots": _images({"kind": "sheet", "name": character.name}),
                }
            )
    for index, scene in enumerate(story.scenes):
        if scene_id is not None and scene.scene_id != scene_id:
            continue
        sheets = [{"kind": "sheet", "name": n} for n in judge_characters(story, index)]
        keyframe_step = f"keyframe:{scene.scene_id}"
        if scene.keyframe_image:
            entries.append(
                {
                    "step": keyframe_step,
                    "kind": "keyframe_pinned",
                    "prompt": None,
                    "slots": [],
                    "image": scene.keyframe_image,
                }
            )
        else:
            plan = allocate_slots(story, index)
            entries.append(
                {
                    "step": keyframe_step,
                    "kind": "keyframe",
                    "prompt": prompts.keyframe(index),
                    "slots": [slot.to_json(n) for n, slot in enumerate(plan.slots, start=1)],
                    "text_only": list(plan.text_only),
                }
            )
            entries.append(
                {
                    "step": keyframe_step,
                    "kind": "check_keyframe",
                    "prompt": prompts.check_keyframe(index),
                    "slots": _images({"kind": "keyframe", "scene_id": scene.scene_id}, *sheets),
                }
            )
        video_step = f"video:{scene.scene_id}"
        entries.append(
            {
                "step": video_step,
                "kind": "video",
                "prompt": prompts.video(index),
                "slots": _images({"kind": "keyframe", "scene_id": scene.scene_id}),
            }
        )
        entries.append(
            {
                "step": video_step,
                "kind": "check_last_frame",
                "prompt": prompts.check_last_frame(index),
                "slots": _images({"kind": "last_frame", "scene_id": scene.scene_id}, *sheets),
            }
        )
    return entries


def _describe_image(item: dict[str, Any]) -> str:
    kind = item["kind"]
    if kind in ("character", "sheet"):
        return f"{'character' if kind == 'character' else 'sheet of'} {item['name']}"
    if kind == "chain":
        return f"chain scene {item['scene_id']} {item['source']}"
    if kind == "reference_image":
        return f"reference image {item['path']}"
    return f"{kind.replace('_', ' ')} of scene {item['scene_id']}"


def format_listing(entries: list[dict[str, Any]]) -> str:
    """The text form of `storyc prompts`: a header per prompt, its images, the prompt."""
    blocks = []
    for entry in entries:
        lines = [f"== {entry['step']} {entry['kind']}"]
        if entry["slots"]:
            lines.append("images: " + ", ".join(f"{s['image']} = {_describe_image(s)}" for s in entry["slots"]))
        if entry.get("text_only"):
            lines.append("text-only (no reference image, will drift): " + ", ".join(entry["text_only"]))
        if entry["kind"] == "keyframe_pinned":
            lines.append(f"pinned keyframe {entry['image']}: used as is, no prompt sent")
        else:
            lines.append(entry["prompt"])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
