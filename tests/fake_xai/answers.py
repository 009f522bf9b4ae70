"""What the fake chat model answers: JSON valid for the schema the request asked for.

A `StoryPlan` that storyc accepts and lints clean (>= 80-word visual descriptions, at
most 2 characters per scene, 8 s clips), sized by the "N characters" / "N scenes"
the planning prompt asks for; a `ConsistencyScore` from a queue of scores.
"""

from __future__ import annotations

import json
import re

NAMES = ["Ember", "Sage", "Juniper", "Bramble", "Wren", "Thistle"]
COLOURS = [
    ("rust-orange", "cream-white", "emerald-green"),
    ("slate-grey", "amber", "deep violet"),
    ("honey-gold", "charcoal", "teal"),
    ("chestnut-brown", "ivory", "crimson"),
    ("silver-blue", "moss-green", "copper"),
    ("jet-black", "saffron", "rose-pink"),
]


def describe(name: str, index: int) -> str:
    fur, belly, accent = COLOURS[index % len(COLOURS)]
    return (
        f"{name} is a small young woodland creature of about three years, standing roughly knee height, "
        f"with dense {fur} fur across the back and head, a soft {belly} chest and muzzle, and large round "
        f"{accent} eyes with visible catchlights. The face is narrow with a short rounded snout, a tiny black "
        f"nose, and slightly oversized pointed ears tipped in darker {fur}. The build is slender and light, "
        f"with long agile legs and a bushy tail ending in a {belly} tip. {name} wears a hand-knitted {accent} "
        f"scarf wrapped twice around the neck, a worn leather satchel with brass buckles on the left hip, "
        f"and a single wooden bead bracelet on the right foreleg. A small notch marks the edge of the left ear."
    )


def story_plan(user_text: str) -> dict:
    def count(word: str, default: int, cap: int) -> int:
        match = re.search(rf"(\d+)\s+{word}", user_text)
        return max(1, min(cap, int(match.group(1)))) if match else default

    n_chars = count("characters?", 2, len(NAMES))
    n_scenes = count("scenes?", 3, 12)
    match = re.search(r"plan for:\s*(.+)", user_text)
    concept = " ".join(match.group(1).split())[:60].rstrip(". ") if match else ""
    names = NAMES[:n_chars]
    characters = [
        {
            "name": name,
            "role": "protagonist" if i == 0 else "supporting",
            "visual_description": describe(name, i),
            "personality_cues": ["curious", "gentle", "quick to laugh"],
        }
        for i, name in enumerate(names)
    ]
    scenes = []
    for s in range(n_scenes):
        present = [names[s % n_chars]] if n_chars == 1 else [names[s % n_chars], names[(s + 1) % n_chars]]
        scenes.append(
            {
                "scene_id": s + 1,
                "title": f"Clearing at dawn {s + 1}",
                "description": (
                    f"{present[0]} explores the clearing and notices something glinting in the moss. "
                    f"The discovery draws the friends closer together."
                ),
                "characters_present": present,
                "setting": "a mossy forest clearing at dawn, light mist, tall birch trees",
                "camera": "medium shot, slow dolly forward",
                "mood": "warm golden hour light, soft long shadows",
                "action": f"{present[0]} steps forward and lifts a glowing stone from the moss",
                "duration_seconds": 8,
                "transition": "cut" if s == 0 else "crossfade",
            }
        )
    return {
        "title": f"The Glowing Stone ({concept})" if concept else "The Glowing Stone",
        "style": "Studio Ghibli-inspired watercolor animation with soft edges, warm tones and hand-drawn texture",
        "aspect_ratio": "16:9",
        "color_palette": "deep forest greens, amber, moonlight silver",
        "characters": characters,
        "scenes": scenes,
    }


def judged_names(user_text: str) -> list[str]:
    """The characters a check prompt names: "image 2 is Ember" (keyframe, last frame) or
    "portrait of Ember matches" (sheet)."""
    names = re.findall(r"\bimage \d+ is ([A-Z][\w -]*?)(?=[;.])", user_text)
    if not names:
        names = re.findall(r"character portrait of ([A-Z][\w -]*?) matches", user_text)
    return list(dict.fromkeys(names))


def per_character_is_a_list(schema: dict) -> bool:
    """What xAI's structured outputs can fill: an array of {name, score} items. A map
    (`additionalProperties` a schema, not literally true) is treated as a closed object
    with no properties: the answer can only be {} (docs: additionalProperties defaults to
    false and must be set to true explicitly)."""
    field = schema.get("properties", {}).get("per_character", {})
    return field.get("type") == "array"


def consistency_score(score: float, names: list[str] | None = None, *, as_list: bool = True) -> dict:
    issues = [] if score >= 0.8 else ["the scarf colour differs from the reference"]
    names = names or []
    per_character = [{"name": n, "score": score} for n in names] if as_list else {}
    return {
        "overall_score": score,
        "per_character": per_character,
        "issues": issues,
        "fix_prompt": None if score >= 0.8 else "Change ONLY the scarf: match the reference colour exactly.",
    }


def answer_for(schema_json: str, user_text: str, score: float, plan_patch=None) -> str:
    """The JSON content answering a structured-output request with schema `schema_json`."""
    schema = json.loads(schema_json or "{}")
    title = schema.get("title", "")
    if title == "StoryPlan":
        plan = story_plan(user_text)
        return json.dumps(plan_patch(plan) if plan_patch else plan)
    if title == "ConsistencyScore":
        return json.dumps(consistency_score(score, judged_names(user_text), as_list=per_character_is_a_list(schema)))
    return json.dumps({})
