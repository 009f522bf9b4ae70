"""Best-of-N: one image request for N candidates (xAI's `n`), every candidate kept and
judged, so the loop that asked can keep (and fix from) the best. With N = 1 it is the
seed's one image and one check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.backends.base import CallResult
from storyc.model.prices import image_cost
from storyc.model.vision import ConsistencyScore
from storyc.run.calls import StepRun, candidate_paths, image_call, written
from storyc.run.context import BuildContext


@dataclass(frozen=True)
class Candidate:
    path: Path
    rel: str  # relative to the output folder
    score: ConsistencyScore
    result: CallResult  # the request that made it (shared by the candidates of one request)

    @property
    def value(self) -> float:
        return self.score.overall_score


def best_of(
    ctx: BuildContext,
    run: StepRun,
    *,
    what: str,
    dest: Path,
    refs: tuple[Path, ...],
    prompt: str,
    hints: Mapping[str, Any],
    n: int,
    params: Mapping[str, Any],
    judge: Callable[[Path, str], ConsistencyScore],
) -> list[Candidate]:
    """One request for `n` candidates (`dest`, or `dest`'s stem with _1 ... _n), each kept
    and judged by `judge(path, suffix)` (suffix "" for one candidate, " #k" for the k-th of
    several); returned in order, every score recorded."""
    dests = candidate_paths(dest, n)
    result = run.call(
        "image",
        what,
        image_call(ctx, dests[0], refs, hints, candidates=dests if n > 1 else ()),
        prompt=prompt,
        refs=refs,
        dest=dests[0],
        estimate=image_cost(len(refs), ctx.story.models.image, n=n),
        params=params,
        candidates=dests if n > 1 else (),
    )
    out = []
    for k, path in enumerate(written(result, dests) if n > 1 else dests, start=1):
        rel = run.keep(path)
        score = judge(path, "" if n == 1 else f" #{k}")
        run.attempt_scores[rel] = score.overall_score
        out.append(Candidate(path, rel, score, result))
    return out


def best(candidates: list[Candidate]) -> Candidate:
    """The highest score; the first of equals (the request's own order)."""
    return max(candidates, key=lambda c: c.value)
