"""The loader's codes, documented as rules so `storyc lint --list-rules` lists everything.

Their check happens in storyc.load while the file is read and validated (a story
that fails them cannot be linted further); these classes only carry the documentation.
"""

from __future__ import annotations

from storyc.lint.base import Rule


class LoaderRule(Rule):
    checked_by_loader = True


class E101YamlSyntax(LoaderRule):
    """The file is not valid YAML (or JSON). The diagnostic points where the broken token starts.

    Bad::

        title: "Ember and the Crystal
        style: watercolor

    Good::

        title: "Ember and the Crystal"
        style: watercolor
    """

    code = "E101"
    summary = "YAML syntax error"


class E102ForbiddenTag(LoaderRule):
    """Only plain YAML is read: explicit tags such as ``!!python/object`` and merge keys (``<<``)
    are refused at their line, and nothing is ever executed or constructed from them.

    Bad::

        title: !!python/object/apply:os.system ["echo hi"]

    Good::

        title: Ember and the Crystal
    """

    code = "E102"
    summary = "forbidden YAML tag or merge key"


class E103DuplicateKey(LoaderRule):
    """A mapping defines the same key twice; YAML would silently keep only one of them.

    Bad::

        duration_seconds: 8
        duration_seconds: 6

    Good::

        duration_seconds: 8
    """

    code = "E103"
    summary = "duplicate key in a mapping"


class E104AliasBomb(LoaderRule):
    """Anchors and aliases may not expand beyond a fixed node budget or refer to themselves
    (a "billion laughs" document is refused quickly).

    Bad::

        a: &a [x, x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]   # ... and so on

    Good::

        # write values out, or use a few small aliases
        cues: &cues [wise, patient]
    """

    code = "E104"
    summary = "alias expansion too large or recursive"


class E105FileProblem(LoaderRule):
    """The file cannot be read as a story: too large, not UTF-8 (e.g. UTF-16 or Latin-1),
    binary content or control characters, a directory, or unreadable.

    Bad::

        story.yaml saved as UTF-16, or a PNG renamed to story.yaml

    Good::

        story.yaml saved as UTF-8 text
    """

    code = "E105"
    summary = "unreadable file (size, encoding, binary content, directory)"


class E106DocumentShape(LoaderRule):
    """A story file holds exactly one YAML document whose top level is a mapping of fields.

    Bad::

        - title: Ember
        ---
        title: Sage

    Good::

        title: Ember and the Crystal
    """

    code = "E106"
    summary = "empty document, several documents, or not a mapping"


class E201SchemaType(LoaderRule):
    """A value has the wrong type or is not one of the allowed values.

    Bad::

        duration_seconds: "8"
        aspect_ratio: 21:9

    Good::

        duration_seconds: 8
        aspect_ratio: "16:9"
    """

    code = "E201"
    summary = "value of the wrong type or not an allowed value"


class E202UnknownField(LoaderRule):
    """A field the story format does not have (usually a typo); the message suggests the nearest name.

    Bad::

        scenes:
          - scene_id: 1
            duraton_seconds: 8

    Good::

        scenes:
          - scene_id: 1
            duration_seconds: 8
    """

    code = "E202"
    summary = "unknown field (with a did-you-mean hint)"


class E203MissingField(LoaderRule):
    """A required field is absent; the diagnostic points at the mapping that lacks it and
    names every field it misses. A field written with a typo (``titel``) is E202 instead,
    with a did-you-mean hint, and not reported twice.

    Bad::

        characters:
          - name: Ember
            role: protagonist

    Good::

        characters:
          - name: Ember
            role: protagonist
            visual_description: A young red fox ...
            personality_cues: [curious, brave]
    """

    code = "E203"
    summary = "required field missing"


class E204DurationRange(LoaderRule):
    """duration_seconds must be a whole number from 3 to 60. Up to 15 s a scene is one video
    generation (the seed's range, which `storyc plan` keeps); longer scenes are extended or
    rendered as segments (W420 says how, and what it costs).

    Bad::

        duration_seconds: 90

    Good::

        duration_seconds: 8
    """

    code = "E204"
    summary = "duration_seconds outside 3..60"


LOADER_RULES: tuple[type[Rule], ...] = (
    E101YamlSyntax,
    E102ForbiddenTag,
    E103DuplicateKey,
    E104AliasBomb,
    E105FileProblem,
    E106DocumentShape,
    E201SchemaType,
    E202UnknownField,
    E203MissingField,
    E204DurationRange,
)
