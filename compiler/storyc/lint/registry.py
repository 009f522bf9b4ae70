"""The one place lint rules are registered. Order here is the order of --list-rules."""

from __future__ import annotations

from storyc.diagnostics import Severity
from storyc.lint import approvals, audio, budget, capability, content, locations, names, references, style, templates
from storyc.lint.base import Rule
from storyc.lint.loader_rules import LOADER_RULES


class E900InternalError(Rule):
    """storyc itself failed on this input (a bug: please report it with the story). Lint still
    prints this positioned line instead of a traceback and exits 1.

    Bad::

        path/story.yaml:1:1: error E900 internal error in W405: ...

    Good::

        no E900 line at all
    """

    code = "E900"
    summary = "internal error in storyc (a bug; please report)"
    checked_by_loader = True  # produced by the runner, never by a rule's check


SEMANTIC_RULES: tuple[type[Rule], ...] = (
    references.E301DuplicateSceneId,
    references.E302DuplicateCharacterName,
    references.E303UnknownCharacter,
    references.E304BadChainFrom,
    names.E305UnsafeName,
    references.E306MissingImageFile,
    audio.E307SpeakerNotInScene,
    audio.E308UnknownVoice,
    audio.E309VoiceNeedsVoiceModel,
    audio.E310MissingMusicFile,
    capability.E311FeatureNeedsModel,
    capability.E312SeamlessCutImpossible,
    locations.E313UnknownLocation,
    locations.E314DuplicateLocationName,
    content.E315NoScenes,
    content.E316Placeholder,
    templates.E501TemplateError,
    budget.W401ReferenceImageBudget,
    budget.W402DurationBeyondVideoEdit,
    style.W403ShortVisualDescription,
    style.W404VagueStyle,
    style.W405ChainSettingMismatch,
    style.W406UnusedCharacter,
    style.W407SceneWithoutAnchor,
    style.W408RepeatedCharacterInScene,
    names.W409NamesDifferOnlyInCase,
    references.W410ImageOutsideStoryFolder,
    references.W411ImageFormat,
    references.W412ChainSourceWithoutChain,
    references.W413SceneIdsOutOfOrder,
    templates.W414UnknownTemplateOverride,
    audio.W415LinesDoNotFit,
    audio.W416NarrationLongerThanScene,
    approvals.W417StaleApproval,
    capability.W418SeamlessNotAdjacent,
    locations.W419UnusedLocation,
    capability.W420LongSceneCost,
    capability.W421ResolutionCapped,
)

ALL_RULES: tuple[type[Rule], ...] = LOADER_RULES + SEMANTIC_RULES + (E900InternalError,)
RULES_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in ALL_RULES}
INTERNAL_ERROR = E900InternalError.code


def _check_registry() -> None:
    # Cheap guard at import: codes are unique and their letter matches the severity.
    assert len(RULES_BY_CODE) == len(ALL_RULES), "duplicate rule code"
    for rule in ALL_RULES:
        assert rule.code[0] == ("E" if rule.severity is Severity.ERROR else "W"), rule.code


_check_registry()
