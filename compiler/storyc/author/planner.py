"""`storyc plan`: a concept → one structured-output call → a commented story.yaml, linted.

The flow: render the planning prompts (storyc.prompts.promptset.render_plan_prompts), one
`backend.plan()` call (chat.parse(StoryPlan) on xai; a clearly marked skeleton on the
offline backend), the seed's StoryPlan turned into storyc's story format, written as
commented YAML with ruamel (round-trip mode, long strings folded), then loaded back and
linted like any hand-written story. A plan that fails validation or lint is still
written, so the author can fix it; the caller shows the diagnostics and exits 1.

Schema modeline: the file starts with `# yaml-language-server: $schema=<path>`, where
<path> is `story.schema.json` when that file sits beside the story (as `storyc init`
writes it), else the schema storyc ships (storyc.resources.schema_path()), written
relative to the story's folder. A story planned into the repository's stories/ folder
therefore gets `../schemas/story.schema.json`, exactly like the examples, and a story
written elsewhere still points at a file that exists. (An absolute path is used only when
no relative one exists, e.g. another drive on Windows.)
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.backend_name import default_backend_name
from storyc.build.backend_choice import make_backend
from storyc.diagnostics import Diagnostic
from storyc.model.story import Models
from storyc.model.story_plan import PlanCharacter, PlanScene, StoryPlan
from storyc.store.fsutil import atomic_write_text

_PLAIN_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9_' -]{0,38}[A-Za-z0-9]|[A-Za-z]")
FOLD_ABOVE_CHARS = 72  # longer single-line strings are written as folded (>-) scalars
YAML_WIDTH = 88


@dataclass
class PlanOutcome:
    path: Path
    backend: str
    model: str
    skeleton: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    lint_ran: bool = False
    cost_usd: float = 0.0
    calls: int = 0
    notes: list[str] = field(default_factory=list)  # e.g. the model ignored a requested count

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def failed(self) -> bool:
        return bool(self.errors)


# Capitalised words that start a sentence without being anyone's name.
_NOT_NAMES = frozenset(
    [
        "a",
        "an",
        "the",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "some",
        "many",
        "every",
        "each",
        "all",
        "both",
        "this",
        "that",
        "these",
        "those",
        "their",
        "his",
        "her",
        "its",
        "our",
        "my",
        "your",
        "they",
        "he",
        "she",
        "it",
        "we",
        "you",
        "i",
        "in",
        "on",
        "at",
        "by",
        "of",
        "to",
        "for",
        "from",
        "with",
        "into",
        "onto",
        "over",
        "under",
        "after",
        "before",
        "when",
        "while",
        "once",
        "then",
        "and",
        "but",
        "or",
        "so",
        "as",
        "if",
        "during",
        "deep",
        "far",
        "high",
        "long",
        "late",
        "early",
        "one",
        "day",
        "night",
        "create",
        "story",
        "tell",
        "write",
        "imagine",
    ]
)
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "nor",
        "of",
        "on",
        "onto",
        "or",
        "the",
        "to",
        "with",
        "before",
        "after",
        "until",
        "while",
        "during",
        "through",
        "over",
        "under",
        "across",
        "behind",
        "beyond",
        "near",
        "toward",
        "towards",
    ]
)
_NAMED = re.compile(r"\b(?:named|called)\s+([A-Z][\w'-]*)")
_WORD = re.compile(r"[A-Za-z][\w'-]*")
TITLE_MAX_WORDS = 12


def concept_names(concept: str) -> list[str]:
    """The characters' names a concept gives ("Two kids, Ana and Ben, ..." → Ana, Ben;
    "a robot named Bolt" → Bolt): capitalised words, except a sentence's first word when it
    is a common one (A, Two, When...). None for a concept that names no one."""
    names = _NAMED.findall(concept)
    for sentence in re.split(r"(?<=[.!?])\s+", concept):
        for i, match in enumerate(_WORD.finditer(sentence)):
            word = match.group(0)
            if not word[0].isupper() or (i == 0 and word.lower() in _NOT_NAMES) or word.lower() in _SMALL_WORDS:
                continue
            if word.isupper() and len(word) > 1:  # an acronym (NASA), not a name
                continue
            names.append(word)
    return list(dict.fromkeys(names))


def concept_title(concept: str) -> str:
    """A title from the concept's first sentence: whole when it has at most TITLE_MAX_WORDS
    words, else cut where a phrase ends (at its last clause boundary, a comma or a dash, or
    before its last small word within the limit), never inside a phrase."""
    sentence = re.split(r"(?<=[.!?])\s+", concept.strip())[0]
    words = sentence.split()
    if not words:
        return "Untitled"
    if len(words) > TITLE_MAX_WORDS:
        head = words[: TITLE_MAX_WORDS + 1]
        breaks = [i + 1 for i, w in enumerate(head[:-1]) if w.endswith((",", ";", ":", "—")) and i >= 1]
        smalls = [i for i, w in enumerate(head) if i >= 3 and w.lower().strip(",;:") in _SMALL_WORDS]
        words = head[: breaks[-1]] if breaks else head[: smalls[-1]] if smalls else head[:TITLE_MAX_WORDS]
    words[-1] = words[-1].rstrip(",;:—-.!?")
    while len(words) > 1 and words[-1].lower() in _SMALL_WORDS:
        words.pop()
        words[-1] = words[-1].rstrip(",;:—-")
    return " ".join(
        w if (i and w.lower().strip(",;:") in _SMALL_WORDS) or not w[:1].islower() else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )


def fit_skeleton(plan: StoryPlan, concept: str, characters: int | None, scenes: int | None) -> StoryPlan:
    """The offline backend's skeleton shaped to the requested counts, its text taken from
    the concept alone (never from the prompt's instructions). Only TODOs are invented."""
    concept = " ".join(concept.split())
    names = concept_names(concept)  # never the prompt's words ("Use exactly 2 characters")
    count = characters or len(names) or 1
    while len(names) < count:
        names.append(f"Character{len(names) + 1}")
    names = names[:count]
    known = {c.name: c for c in plan.characters}
    cast = [
        known.get(name)
        or PlanCharacter(
            name=name,
            role="protagonist" if i == 0 else "supporting",
            visual_description=f"TODO: describe {name}'s appearance (offline skeleton: nothing was generated). "
            "Give age, build, colours of fur/hair/skin and clothing, and distinguishing marks.",
            personality_cues=["TODO"],
        )
        for i, name in enumerate(names)
    ]
    n_scenes = scenes or len(plan.scenes) or 3
    brief = concept if len(concept) <= 80 else concept[:77].rstrip() + "..."
    shots = [
        PlanScene(
            scene_id=i,
            title=f"TODO: scene {i} title",
            description=f"TODO: describe what happens in scene {i} ({brief}).",
            # two characters per scene at most, rotating so that every character appears
            characters_present=list(dict.fromkeys([names[(i - 1) % count], names[i % count]])),
            setting="TODO: describe the setting",
            camera="medium shot, static",
            mood="TODO: describe the mood",
            action="TODO: describe the main motion",
            duration_seconds=8,
            transition="cut",
        )
        for i in range(1, n_scenes + 1)
    ]
    title = concept_title(concept)
    return plan.model_copy(update={"title": f"{title} (offline skeleton)", "characters": cast, "scenes": shots})


CHARACTER_KEYS = ("name", "role", "visual_description", "personality_cues")
SCENE_KEYS = (
    "scene_id",
    "title",
    "description",
    "characters_present",
    "setting",
    "camera",
    "mood",
    "action",
    "duration_seconds",
    "transition",
)


def plan_to_story_data(plan: StoryPlan | dict[str, Any]) -> dict[str, Any]:
    """The seed's StoryPlan as storyc story data, in the examples' key order. A plain dict
    (a model answer that did not validate) is converted as far as it goes: what is missing
    or malformed stays so, for the loader and lint to point at."""
    data = plan.model_dump(mode="json") if isinstance(plan, StoryPlan) else dict(plan)

    def pick(item: Any, keys: tuple[str, ...]) -> Any:
        return {k: item[k] for k in keys if k in item} if isinstance(item, dict) else item

    out: dict[str, Any] = {"version": 1}
    for key in ("title", "style"):
        if key in data:
            out[key] = data[key]
    out["aspect_ratio"] = data.get("aspect_ratio") or "16:9"
    out["resolution"] = "720p"
    if "color_palette" in data:
        out["color_palette"] = data["color_palette"]
    for key, keys in (("characters", CHARACTER_KEYS), ("scenes", SCENE_KEYS)):
        items = data.get(key, [])
        out[key] = [pick(item, keys) for item in items] if isinstance(items, list) else items
    return out


SCHEMA_BESIDE = "story.schema.json"  # what `storyc init` writes beside a story


def schema_reference(story_path: Path) -> str:
    from storyc.resources import schema_path

    if (Path(story_path).parent / SCHEMA_BESIDE).is_file():
        return SCHEMA_BESIDE
    schema = schema_path().resolve()
    try:
        return Path(os.path.relpath(schema, story_path.resolve().parent)).as_posix()
    except ValueError:  # no relative path (another drive)
        return schema.as_uri()


def _scalar(value: Any) -> Any:
    """Folded style for long one-line prose; everything else as ruamel chooses."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString

    if isinstance(value, str):
        if ":" in value and value.replace(":", "").replace(".", "").isdigit():
            return DoubleQuotedScalarString(value)  # "16:9" must never read as a YAML 1.1 sexagesimal
        # Folding is lossless only for normalized single-line text.
        if len(value) > FOLD_ABOVE_CHARS and value == " ".join(value.split()):
            return FoldedScalarString(value)
    return value


def render_story_yaml(data: dict[str, Any], *, header: list[str], schema_ref: str) -> str:
    """Commented YAML for story `data` (ruamel round-trip objects, so comments survive edits)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def build(value: Any, flow_lists: bool = False) -> Any:
        if isinstance(value, dict):
            out = CommentedMap()
            for k, v in value.items():
                out[k] = build(v, flow_lists=k in ("personality_cues", "characters_present"))
            return out
        if isinstance(value, list):
            seq = CommentedSeq(build(v) for v in value)
            # Flow style ([a, b]) only for plain words: ruamel's flow emitter mishandles
            # some characters ("0?" became unparseable in a property test).
            if flow_lists and all(isinstance(v, str) and _PLAIN_WORDS.fullmatch(v) for v in value):
                seq.fa.set_flow_style()
            return seq
        return _scalar(value)

    doc = build(data)
    doc.yaml_set_start_comment("\n".join([f"yaml-language-server: $schema={schema_ref}", *header]))
    if "characters" in doc:
        doc.yaml_set_comment_before_after_key(
            "characters",
            before="\nEach visual_description is the character's frozen identity: copied verbatim into\n"
            "every image prompt. Edit it here, never paraphrase it elsewhere.",
            indent=0,
        )
    if "scenes" in doc:
        doc.yaml_set_comment_before_after_key(
            "scenes",
            before="\nScenes chain from the previous scene's last frame by default (chain_from: none\n"
            "starts a fresh branch). Clips of at most 8.7 s stay correctable by video edit.",
            indent=0,
        )
    yaml = YAML(typ="rt")
    yaml.width = YAML_WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def _header(concept: str, backend: str, model: str, skeleton: bool) -> list[str]:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    concept_line = " ".join(concept.split())
    lines = []
    if skeleton:
        lines += [
            "OFFLINE SKELETON: no model was called and nothing here was generated.",
            "Every TODO is yours to write; `storyc lint` tells you what is still missing.",
            "(Plan with a model: export XAI_API_KEY=... and run `storyc plan --backend xai`.)",
        ]
    else:
        lines += [f"Planned by `storyc plan` with the {backend} backend ({model}) on {stamp}."]
    lines += [f"Concept: {concept_line}", "Check it with `storyc lint`, render it with `storyc build`."]
    return lines


def _answer_object(answer: Any) -> dict[str, Any] | None:
    """A raw structured-output answer as a JSON object, else None (nothing worth writing)."""
    import json

    if not isinstance(answer, str):
        return None
    try:
        value = json.loads(answer)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def lint_written(path: Path) -> tuple[list[Diagnostic], bool]:
    """Load the written file like any story and lint it: (diagnostics, lint ran)."""
    from storyc.diagnostics import StorycError
    from storyc.load.loader import load_story

    try:
        loaded = load_story(path)
    except StorycError as exc:
        return sorted(exc.diagnostics), True
    try:
        from storyc.lint import lint_story
    except ImportError:  # lint not installed in this build: the loader's checks still ran
        return [], False
    return list(lint_story(loaded)), True


def run_plan(
    concept: str,
    out: Path,
    *,
    backend_name: str | None = None,
    characters: int | None = None,
    scenes: int | None = None,
    model: str | None = None,
    prompts_dir: Path | None = None,
    backend: Any = None,
) -> PlanOutcome:
    """Plan `concept` into `out`. Raises BackendError (the call failed) or StorycError (a
    broken prompt override); validation and lint problems come back as diagnostics."""
    from storyc.prompts.promptset import render_plan_prompts

    name = backend_name or getattr(backend, "name", None) or default_backend_name()
    model = model or Models().chat
    system_prompt, user_prompt = render_plan_prompts(
        concept, characters=characters, scenes=scenes, override_dir=prompts_dir
    )
    owned = backend is None
    backend = backend if backend is not None else make_backend(name)
    notes = []
    invalid = None  # the model's answer, when it did not validate as a StoryPlan
    try:
        plan, result = backend.plan(system_prompt, user_prompt, model)
    except Exception as exc:
        # A paid answer that fails validation (a 20 s scene, a missing field) is still
        # written, like one that fails lint: the loader and lint then point at the problem.
        invalid = _answer_object(getattr(exc, "answer", None))
        if invalid is None:
            raise
        plan, result = invalid, exc
        notes.append(f"{exc}; written as answered, fix it in the file")
    finally:
        if owned:
            backend.close()
    skeleton = name == "offline"
    if skeleton:
        plan = fit_skeleton(plan, concept, characters, scenes)
    elif invalid is None:
        for what, wanted, got in (
            ("characters", characters, len(plan.characters)),
            ("scenes", scenes, len(plan.scenes)),
        ):
            if wanted and wanted != got:
                notes.append(f"asked for {wanted} {what}, the model planned {got}")
    data = plan_to_story_data(plan)
    header = _header(concept, name, model, skeleton)
    if invalid is not None:
        header.insert(1, "The model's answer did not validate as a StoryPlan: see `storyc lint` for what to fix.")
    text = render_story_yaml(data, header=header, schema_ref=schema_reference(out))
    atomic_write_text(out, text)
    diagnostics, lint_ran = lint_written(out)
    return PlanOutcome(
        path=out,
        backend=name,
        model=model,
        skeleton=skeleton,
        diagnostics=diagnostics,
        lint_ran=lint_ran,
        cost_usd=float(getattr(result, "cost_usd", 0.0) or 0.0),
        calls=int(getattr(result, "calls", 1) or 0),
        notes=notes,
    )
