"""Which features a figure gets, from the right words of its description, and how
they are drawn.

The subject is the first creature word of the description that names what the
character *is*, not something it has: in "a boy with a fox keyring" the fox is a
keyring (a creature word followed by an object word), so the figure is a boy, without
fox ears; in "a picture of an owl" the owl is a picture. The subject's species gives
its defaults (a raccoon: round ears, a dark eye mask, a ringed tail; a fox: pointed ears,
a bushy tail; an owl: a beak, ear tufts when it is horned or tufted), and explicit
phrases adjust them ("floppy ears", "a striped tail", "no tail"). Small tables, one
place to extend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import ImageDraw

from storyc.model.colours import RGB, colour_words, shade

# ─── vocabulary ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Anatomy:
    subject: str = ""  # the creature word the figure is (empty: nothing recognised)
    ears: str | None = None  # pointed | round | long | floppy | tufts
    tail: str | None = None  # bushy | ringed | thin | puff
    mask: bool = False  # a dark band across the eyes
    beak: bool = False
    antenna: bool = False


_HUMAN = Anatomy()
SPECIES: dict[str, Anatomy] = {
    **dict.fromkeys(("fox", "vixen"), Anatomy(ears="pointed", tail="bushy")),
    **dict.fromkeys(("wolf", "husky", "coyote", "jackal"), Anatomy(ears="pointed", tail="bushy")),
    **dict.fromkeys(("squirrel", "chipmunk"), Anatomy(ears="pointed", tail="bushy")),
    **dict.fromkeys(("cat", "kitten", "kitty", "lynx", "leopard", "panther"), Anatomy(ears="pointed", tail="thin")),
    **dict.fromkeys(("dog", "puppy", "hound", "spaniel", "beagle"), Anatomy(ears="floppy", tail="thin")),
    "raccoon": Anatomy(ears="round", tail="ringed", mask=True),
    "red panda": Anatomy(ears="round", tail="ringed", mask=True),
    "lemur": Anatomy(ears="round", tail="ringed"),
    **dict.fromkeys(("tiger", "tigress"), Anatomy(ears="round", tail="ringed")),
    **dict.fromkeys(("lion", "lioness", "cub"), Anatomy(ears="round", tail="thin")),
    **dict.fromkeys(("bear", "teddy", "panda", "koala", "hamster"), Anatomy(ears="round")),
    **dict.fromkeys(("mouse", "rat"), Anatomy(ears="round", tail="thin")),
    **dict.fromkeys(("rabbit", "bunny", "hare"), Anatomy(ears="long", tail="puff")),
    "owl": Anatomy(beak=True),  # ear tufts only when horned or tufted (EAR_PHRASES)
    **dict.fromkeys(
        ("bird", "robin", "crow", "raven", "parrot", "sparrow", "duck", "duckling", "penguin", "chicken", "hen"),
        Anatomy(beak=True),
    ),
    **dict.fromkeys(("eagle", "hawk", "falcon", "pigeon", "dove", "goose", "swan", "magpie", "finch"), Anatomy(beak=True)),
    **dict.fromkeys(("robot", "android", "droid", "automaton"), Anatomy(antenna=True)),
    **dict.fromkeys(
        _PEOPLE := (
            "boy", "girl", "man", "woman", "child", "kid", "person", "lady", "gentleman", "baby", "toddler",
            "teenager", "teen", "grandmother", "grandfather", "grandma", "grandpa", "granny", "mother", "father",
            "king", "queen", "prince", "princess", "knight", "wizard", "witch", "sailor", "pirate", "keeper",
            "fisherman", "fisherwoman", "farmer", "baker", "detective", "scientist", "explorer", "elf", "dwarf",
            "student", "teacher", "doctor", "nurse", "soldier", "captain", "monk", "girlfriend", "boyfriend",
        ),
        _HUMAN,
    ),
}  # fmt: skip

# object words: a creature word right before one of these is what the object looks like
OBJECT_NOUNS = (
    "keyring", "key ring", "key-ring", "keychain", "key chain", "badge", "pin", "brooch", "sticker", "patch",
    "plush", "plushie", "toy", "figurine", "figure", "charm", "logo", "print", "pattern", "motif", "embroidery",
    "costume", "mask", "hat", "cap", "beanie", "hood", "hoodie", "shirt", "t-shirt", "tee", "sweater", "jumper",
    "jacket", "backpack", "bag", "purse", "pendant", "necklace", "locket", "tattoo", "picture", "drawing",
    "painting", "photo", "book", "doll", "puppet", "statue", "carving", "ornament", "emblem", "slippers", "socks",
    "mug", "kite", "balloon", "lamp", "lantern", "clock", "shaped", "print", "pajamas", "onesie", "ears",
    "headband", "tail",
)  # fmt: skip
# ... and a creature word after one of these + "of" is the object's picture
PICTURE_NOUNS = ("picture", "drawing", "painting", "photo", "photograph", "statue", "carving", "toy", "model", "image")

# explicit ear phrases, "<word> ... ears" or "ear tufts": (words, ear kind)
EAR_PHRASES: list[tuple[tuple[str, ...], str]] = [
    (("tufted", "tufts", "tuft", "horned"), "tufts"),
    (("floppy", "droopy", "lop", "lop-eared"), "floppy"),
    (("long",), "long"),
    (("pointed", "pointy", "triangular"), "pointed"),
    (("round", "rounded"), "round"),
]
TAIL_PHRASES: list[tuple[tuple[str, ...], str | None]] = [
    (("no tail", "tailless", "without a tail"), None),
    (("striped tail", "ringed tail", "banded tail"), "ringed"),
    (("bushy tail", "fluffy tail", "brush"), "bushy"),
    (("thin tail", "long tail", "whip tail", "skinny tail"), "thin"),
    (("cotton tail", "cottontail", "puff tail", "puffy tail"), "puff"),
]
MASK_PHRASES = ("eye mask", "bandit mask", "domino mask", "masked face", "dark mask", "black mask")

_PLURAL = r"(?:s|es)?"


def _creature_pattern() -> re.Pattern[str]:
    names = sorted(SPECIES, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + rf"){_PLURAL}\b")


_CREATURE = _creature_pattern()
_OBJECT_AFTER = re.compile(
    r"^(?:['’]s)?[\s-]*(?:" + "|".join(re.escape(o) for o in sorted(OBJECT_NOUNS, key=len, reverse=True)) + r")\b"
)
_PICTURE_BEFORE = re.compile(r"\b(?:" + "|".join(PICTURE_NOUNS) + r")s?\s+of\s+(?:an?\s+|the\s+)?$")


def _is_object(text: str, start: int, end: int) -> bool:
    """Is the creature word at text[start:end] describing an object (a fox keyring, a
    picture of an owl) rather than naming what the character is?"""
    if _OBJECT_AFTER.match(text[end:]):
        return True
    return bool(_PICTURE_BEFORE.search(text[max(0, start - 40) : start]))


def subject(description: str) -> str:
    """The creature word the description's character is ('' when none is recognised)."""
    text = " ".join(description.lower().split())
    for m in _CREATURE.finditer(text):
        if not _is_object(text, m.start(), m.end()):
            return m.group(1)
    return ""


def _own_words(text: str) -> str:
    """The description without the object phrases (a "fox keyring" says nothing about
    the character's ears)."""
    out, last = [], 0
    for m in _CREATURE.finditer(text):
        if _is_object(text, m.start(), m.end()):
            tail = _OBJECT_AFTER.match(text[m.end() :])
            out.append(text[last : m.start()])
            last = m.end() + (tail.end() if tail else 0)
    out.append(text[last:])
    return " ".join(out)


def _has(text: str, phrases: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", text) for p in phrases)


def anatomy(description: str) -> Anatomy:
    """The features a description calls for (see the module docstring)."""
    text = " ".join(description.lower().split())
    kind = subject(description)
    body = replace(SPECIES.get(kind, Anatomy()), subject=kind)
    own = _own_words(text)
    # "<ear word> [one word] ears" or "ear tufts"; an owl is tufted only when it says so
    for words, ears in EAR_PHRASES:
        ear_words = "|".join(re.escape(w) for w in words)
        if re.search(rf"\b(?:{ear_words})\b(?:[\s,-]+[\w-]+)?[\s-]+ears?\b", own) or (
            ears == "tufts" and (re.search(r"\bear[\s-]+tufts?\b", own) or (kind == "owl" and "horned" in own))
        ):
            body = replace(body, ears=ears)
            break
    for phrases, tail in TAIL_PHRASES:
        if _has(own, phrases):
            body = replace(body, tail=tail)
            break
    if _has(own, MASK_PHRASES):
        body = replace(body, mask=True)
    return body


# ─── drawing ─────────────────────────────────────────────────────────────────

OUTLINE: RGB = (35, 35, 40)
BEAK: RGB = (232, 170, 60)
EYE_WHITE: RGB = (245, 245, 240)
Box = Callable[[float, float, float, float], list[float]]


def _stroke(d: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour: RGB, width: float, lw: int) -> None:
    """A thick rounded stroke with an outline."""
    for fill, grow in ((OUTLINE, lw), (colour, 0)):
        r = width / 2 + grow
        d.line(points, fill=fill, width=max(1, round(2 * r)), joint="curve")
        for x, y in (points[0], points[-1]):
            d.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _along(points: list[tuple[float, float]], u: float) -> tuple[float, float]:
    """The point a fraction u of the way along a polyline (by segment count)."""
    k = min(len(points) - 2, int(u * (len(points) - 1)))
    t = u * (len(points) - 1) - k
    (x0, y0), (x1, y1) = points[k], points[k + 1]
    return x0 + (x1 - x0) * t, y0 + (y1 - y0) * t


def draw_tail(d: ImageDraw.ImageDraw, kind: str | None, size: tuple[int, int], fur: RGB, lw: int) -> None:
    """Behind the legs, curling out to the figure's right below its arm, inside its box."""
    if kind is None:
        return
    w, h = size
    if kind == "puff":
        r = 0.09 * w
        d.ellipse(
            [0.76 * w - r, 0.80 * h - r, 0.76 * w + r, 0.80 * h + r], fill=shade(fur, 0.6), outline=OUTLINE, width=lw
        )
        return
    thick = {"bushy": 0.2, "ringed": 0.14, "thin": 0.05}.get(kind, 0.1) * w
    reach = 1.0 - (thick / 2 + lw) / w  # the tip stays inside the box
    path = [
        (x * w, y * h)
        for x, y in ((0.60, 0.86), (0.74, 0.91), (0.86, 0.87), (min(0.92, reach), 0.78), (min(0.92, reach), 0.70))
    ]
    _stroke(d, path, fur if kind != "thin" else shade(fur, -0.25), thick, lw)
    if kind == "bushy":  # a pale tip
        x, y = path[-1]
        r = thick / 2
        d.ellipse([x - r, y - r, x + r, y + r * 0.9], fill=shade(fur, 0.7), outline=OUTLINE, width=lw)
    elif kind == "ringed":  # dark rings across the tail
        ring = shade(fur, -0.55)
        for u in (0.3, 0.55, 0.8, 1.0):
            x, y = _along(path, u)
            r = thick / 2
            d.ellipse([x - r, y - r * 0.45, x + r, y + r * 0.45], fill=ring)


def draw_ears(d: ImageDraw.ImageDraw, kind: str | None, box: Box, size: tuple[int, int], accent: RGB, lw: int) -> None:
    """Before the head (the head overlaps their bases)."""
    outline = OUTLINE
    w, h = size
    for side in (1, -1):

        def x(v: float, side: int = side) -> float:  # mirror around the centre line for the right ear
            return (v if side == 1 else 1 - v) * w

        if kind == "pointed":
            d.polygon(
                [(x(0.26), 0.20 * h), (x(0.34), 0.02 * h), (x(0.46), 0.14 * h)], fill=accent, outline=outline, width=lw
            )
        elif kind == "tufts":
            d.polygon(
                [(x(0.28), 0.14 * h), (x(0.27), 0.0), (x(0.40), 0.11 * h)], fill=accent, outline=outline, width=lw
            )
        elif kind == "round":
            d.ellipse(sorted_box(box, 0.22, 0.04, 0.40, 0.18, side), fill=accent, outline=outline, width=lw)
        elif kind == "long":
            d.ellipse(sorted_box(box, 0.30, 0.0, 0.42, 0.20, side), fill=accent, outline=outline, width=lw)
        elif kind == "floppy":
            d.ellipse(sorted_box(box, 0.15, 0.13, 0.30, 0.34, side), fill=accent, outline=outline, width=lw)


def sorted_box(box: Box, x0: float, y0: float, x1: float, y1: float, side: int) -> list[float]:
    return box(x0, y0, x1, y1) if side == 1 else box(1 - x1, y0, 1 - x0, y1)


def draw_face(d: ImageDraw.ImageDraw, body: Anatomy, box: Box, size: tuple[int, int], lw: int) -> None:
    """Eyes (on a dark mask band when masked), a beak, an antenna."""
    outline = OUTLINE
    w, h = size
    eye = max(2, int(0.035 * w))
    if body.mask:
        d.rounded_rectangle(box(0.29, 0.205, 0.71, 0.295), radius=max(1, int(0.04 * h)), fill=(45, 40, 42))
        for cx in (0.40, 0.60):
            d.ellipse(
                [cx * w - eye * 1.4, 0.25 * h - eye * 1.4, cx * w + eye * 1.4, 0.25 * h + eye * 1.4], fill=EYE_WHITE
            )
    for cx in (0.40, 0.60):
        d.ellipse([cx * w - eye, 0.25 * h - eye, cx * w + eye, 0.25 * h + eye], fill=outline)
    if body.beak:
        d.polygon(
            [(0.45 * w, 0.28 * h), (0.55 * w, 0.28 * h), (0.50 * w, 0.34 * h)], fill=BEAK, outline=outline, width=lw
        )
    if body.antenna:
        d.line([(0.5 * w, 0.09 * h), (0.5 * w, 0.025 * h)], fill=outline, width=max(2, lw))
        d.ellipse(
            [0.5 * w - eye * 1.3, 0.0, 0.5 * w + eye * 1.3, eye * 2.6], fill=(230, 70, 60), outline=outline, width=lw
        )


# ─── part colours ────────────────────────────────────────────────────────────

# the noun a colour describes decides what it paints: "emerald scarf" paints the neck, not
# the face; "amber eyes" paint nothing (eyes are dots)
PART_NOUNS: dict[str, str] = {
    **dict.fromkeys(
        (
            "fur", "feathers", "plumage", "hide", "pelt", "wool", "fleece", "scales", "shell", "metal", "plating",
            "casing", "paint", "paintwork", "body", "coat of",
        ),
        "fur",
    ),
    **dict.fromkeys(
        (
            "coat", "shirt", "t-shirt", "tunic", "vest", "jacket", "raincoat", "dress", "sweater", "jumper", "hoodie",
            "cloak", "robe", "overalls", "uniform", "armour", "armor", "poncho", "apron", "blouse", "cardigan",
            "suit", "gown", "parka", "anorak", "dungarees", "kimono", "sari", "smock", "cape", "waistcoat",
            "mackintosh",
        ),
        "clothes",
    ),
    **dict.fromkeys(("face", "muzzle", "skin", "cheeks", "complexion", "facial", "snout", "head"), "head"),
    **dict.fromkeys(
        (
            "legs", "paws", "feet", "boots", "shoes", "trousers", "jeans", "pants", "stockings", "socks", "talons",
            "skirt", "shorts", "leggings", "sneakers", "trainers", "wellies", "wellingtons", "hooves", "claws",
            "sandals", "slippers", "tights",
        ),
        "legs",
    ),
    **dict.fromkeys(
        (
            "hair", "cap", "hat", "beanie", "hood", "mane", "ears", "tufts", "crest", "helmet", "headscarf",
            "bandana", "braid", "braids", "curls", "ponytail", "pigtails", "bun", "fringe", "bangs", "beret",
        ),
        "accent",
    ),
    **dict.fromkeys(("scarf", "collar", "necklace", "bowtie", "neckerchief", "tie", "shawl", "cravat"), "neck"),
}  # fmt: skip
# nouns whose colours paint nothing the figure has
UNPAINTED = (
    "eyes", "eye", "pupils", "nose", "beak", "bill", "spectacles", "glasses", "goggles", "keyring", "keychain",
    "buttons", "bag", "backpack", "tassels", "pendant", "lantern", "book", "umbrella", "chest", "belly", "throat",
    "tip", "tips", "backs", "insides", "rim", "barring", "stripes", "spots", "patches", "markings", "ribbon",
    "badge", "light", "lights", "glow", "teeth", "tongue", "lips", "whiskers", "freckles", "tattoo", "belt",
    "gloves", "mittens", "wings", "wing", "tail", "stripe", "band", "bands", "lenses", "frames", "leaves",
)  # fmt: skip
_ANIMALS = tuple(k for k in SPECIES if k not in _PEOPLE)
_NOUN = re.compile(
    r"(?<![\w-])("
    + "|".join(re.escape(n) for n in sorted([*PART_NOUNS, *UNPAINTED, *SPECIES], key=len, reverse=True))
    + r")(?![\w-])|[.;:!?]"
)
_RUN_GAP = re.compile(r"^[\s,-]*(?:(?:and|or|with|a|of)\s+)?$")  # what may separate colours of one run
_NOUN_GAP = re.compile(r"^[\s-]*(?:[a-z]+[\s-]+){0,2}$")  # at most two words between a run and its noun
SKIN_TONES: tuple[RGB, ...] = ((241, 204, 170), (224, 172, 125), (176, 122, 84), (120, 80, 55))
HAIR: RGB = (70, 45, 30)


def _mean(colours: list[RGB]) -> RGB:
    return tuple(round(sum(c[i] for c in colours) / len(colours)) for i in range(3))  # type: ignore[return-value]


def _colour_runs(segment: str) -> list[tuple[int, int, RGB]]:
    """(start, end, colour) of each run of adjacent colour words in `segment` ("silver
    grey", "emerald green" are one run each; the run's colour is their mean)."""
    runs: list[tuple[int, int, list[RGB]]] = []
    pos = 0
    for text, colour in colour_words(segment):
        start = segment.find(text, pos)
        if start < 0:
            continue
        end = start + len(text)
        if runs and _RUN_GAP.match(segment[runs[-1][1] : start]) and "and" not in segment[runs[-1][1] : start]:
            runs[-1] = (runs[-1][0], end, [*runs[-1][2], colour])
        else:
            runs.append((start, end, [colour]))
        pos = end
    return [(a, b, _mean(cs)) for a, b, cs in runs]


def part_colours(description: str) -> tuple[dict[str, RGB], list[RGB]]:
    """Colours by the part they paint (fur, clothes, head, legs, accent, neck: the first
    mention wins; "species" for "a grey raccoon"), and the colours that name no part."""
    text = " ".join(description.lower().split())
    parts: dict[str, RGB] = {}
    loose: list[RGB] = []
    last = 0
    for m in [*_NOUN.finditer(text), None]:
        end = m.start() if m else len(text)
        segment = text[last:end]
        runs = _colour_runs(segment)
        noun = m.group(1) if m else None
        owned = None
        if noun and runs and _NOUN_GAP.match(segment[runs[-1][1] :]):
            owned = runs.pop()
        loose += [c for _, _, c in runs]
        part = PART_NOUNS.get(noun or "") or ("species" if noun in _ANIMALS else None)
        if owned is not None and part:
            parts.setdefault(part, owned[2])
        last = m.end() if m else len(text)
    return parts, loose


@dataclass(frozen=True)
class Palette:
    body: RGB  # the torso: clothes, else fur
    head: RGB
    legs: RGB
    accent: RGB  # hair, cap, ears
    fur: RGB  # the tail
    neck: RGB | None = None  # a scarf or collar, when the description gives one a colour

    @property
    def four(self) -> list[RGB]:
        return [self.body, self.head, self.legs, self.accent]


def part_palette(name: str, description: str, fallback: RGB) -> Palette:
    """Each part's colour from the words naming it; unnamed parts follow from the fur or
    body (a person's face and hair: a skin tone and dark hair)."""
    parts, loose = part_colours(description)
    fur = parts.get("fur") or parts.get("species") or (loose[0] if loose else None)
    body = parts.get("clothes") or fur or parts.get("head") or fallback
    fur = fur or body
    person = subject(description) in _PEOPLE or "skin" in description.lower()
    if "head" in parts:
        head = parts["head"]
    elif person:
        head = SKIN_TONES[sum(map(ord, name)) % len(SKIN_TONES)]
    else:
        head = shade(fur, 0.12)
    clothed_animal = not person and "clothes" in parts and ("fur" in parts or "species" in parts)
    legs = parts.get("legs") or (fur if clothed_animal else shade(body, -0.45))
    accent = parts.get("accent") or (HAIR if person else shade(fur, -0.3))
    return Palette(body, head, legs, accent, fur, parts.get("neck"))
