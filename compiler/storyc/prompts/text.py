"""Text helpers for prompts, also exposed to templates as filters: whitespace collapsing,
sentence splitting, a description's brief, the moderation softener."""

from __future__ import annotations

import re
from typing import Any

# How many words of a character's description the keyframe prompt repeats next to its
# reference image: whole leading sentences only (never cut mid-sentence), at least one.
BRIEF_MAX_WORDS = 45

# A possible sentence end: terminal punctuation, any closing quotes or brackets, a space.
_SENTENCE_BREAK = re.compile(r"[.!?][\"'\u201d\u2019)\]]*\s+")
# A period after one of these words (or after a single letter, an initial) is not a sentence
# end: "a St. Bernard-sized dog", "approx. 40 years", "J. R. Smith". Erring towards not
# splitting only makes a brief longer, never cuts it inside a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "prof",
        "st",
        "mt",
        "ft",
        "jr",
        "sr",
        "capt",
        "col",
        "gen",
        "lt",
        "sgt",
        "rev",
        "hon",
        "vs",
        "etc",
        "approx",
        "ca",
        "cf",
        "e.g",
        "i.e",
        "no",
        "nos",
        "vol",
        "fig",
        "inc",
        "ltd",
        "co",
        "ave",
        "rd",
        "blvd",
        "dept",
        "est",
        "min",
        "max",
        "incl",
        "excl",
    ]
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


def with_note(prompt: str, note: str | None) -> str:
    """`prompt` with a reviewer's redo note appended (`storyc build --redo TARGET --note TEXT`);
    unchanged without one. The note is part of the prompt, so of the step's cache key."""
    note = normalize_space(note or "")
    if not note:
        return prompt
    return f"{prompt.rstrip()}\nRevision note (follow it exactly): {sentence(note)}"
