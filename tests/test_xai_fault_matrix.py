"""The fault matrix: each failure shape the xAI service can produce x each call kind
(image generate, image edit, video start, video poll, video download, chat) in a real
`storyc build --backend xai` against the strict fake service.

Each cell ends in one of:
- `identical`: the build completes with a final video byte-identical to the fault-free build;
- `reworded`: it completes after the one reworded attempt (that asset differs, by design);
- `fails`: it fails that step with one clear line naming the step (the expected words given).
In every cell the service's own bill (count and cost) equals what report.json says, and no
request is paid for twice unless the cell is one where a retry was unavoidable (the job
expired, its URL was gone), and then report.json counts the retry.

docs/xai-faults.md holds this table; `test_the_docs_table_is_this_matrix` keeps them equal.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from fake_xai.answers import story_plan
from fake_xai.fixtures import TEST_KEY, _fake_xai_server  # noqa: F401 (fixture)
from storyc.author.planner import plan_to_story_data, render_story_yaml
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.hashing import file_sha256
from storyc.model.story_plan import StoryPlan
from storyc.run.retry import RetryPolicy

DOCS = Path(__file__).resolve().parents[1] / "docs" / "xai-faults.md"
ENV = {
    "STORYC_RENDER_SCALE": "0.1",
    "STORYC_XAI_POLL_INTERVAL": "0.02",
    "STORYC_XAI_RETRY_BASE": "0.01",
    "STORYC_RATE_LIMITS": "image=50,video=50",
}
FAST_RETRY = RetryPolicy(max_retries=2, base_s=0.01, cap_s=0.05)


def is_edit(request) -> bool:
    return request.HasField("image") or len(request.images) > 0


def is_generation(request) -> bool:
    return not is_edit(request)


@dataclass(frozen=True)
class Cell:
    kind: str  # the call kind the fault hits
    shape: str  # the fake's fault name
    times: int  # how many requests in a row meet it
    outcome: str  # identical | reworded | fails
    says: str = ""  # for `fails`: words the step's one line must hold
    paid_twice: bool = False  # a retry was unavoidable (a new job): reported as a retry

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.shape}" + (f"-x{self.times}" if self.times > 1 else "")


# call kind → (fake method, which of its requests)
KINDS = {
    "image generate": ("GenerateImage", is_generation),
    "image edit": ("GenerateImage", is_edit),
    "video start": ("GenerateVideo", None),
    "video poll": ("GetDeferredVideo", None),
    "video download": ("GenerateVideo", None),  # asset faults ride on the job's result URL
    "chat": ("GetCompletion", None),
}
MANY = 1000

MATRIX = [
    # image generate: the character sheet (text → image)
    Cell("image generate", "unavailable", 1, "identical"),
    Cell("image generate", "resource_exhausted", 1, "identical"),
    Cell("image generate", "resource_exhausted", MANY, "fails", "RESOURCE_EXHAUSTED"),
    Cell("image generate", "deadline_exceeded", 1, "fails", "possibly billed"),
    Cell("image generate", "oversized_answer", 1, "fails", "possibly billed"),
    Cell("image generate", "invalid_argument", 1, "fails", "INVALID_ARGUMENT"),
    Cell("image generate", "moderation", 1, "reworded"),
    Cell("image generate", "moderation_rpc", 1, "reworded"),
    Cell("image generate", "empty_images", 1, "reworded"),
    Cell("image generate", "moderation", 2, "fails", "moderation refused the sheet prompt of character"),
    Cell("image generate", "empty_images", 2, "fails", "moderation refused the sheet prompt of character"),
    # image edit: the keyframe composed from the sheet
    Cell("image edit", "unavailable", 1, "identical"),
    Cell("image edit", "resource_exhausted", 1, "identical"),
    Cell("image edit", "deadline_exceeded", 1, "fails", "possibly billed"),
    Cell("image edit", "oversized_answer", 1, "fails", "possibly billed"),
    Cell("image edit", "invalid_argument", 1, "fails", "INVALID_ARGUMENT"),
    Cell("image edit", "moderation", 1, "reworded"),
    Cell("image edit", "moderation_rpc", 1, "reworded"),
    Cell("image edit", "empty_images", 1, "reworded"),
    Cell("image edit", "moderation_rpc", 2, "fails", "moderation refused the compose prompt of scene 1"),
    # video start
    Cell("video start", "unavailable", 1, "identical"),
    Cell("video start", "resource_exhausted", 1, "identical"),
    Cell("video start", "deadline_exceeded", 1, "fails", "possibly billed"),
    Cell("video start", "invalid_argument", 1, "fails", "INVALID_ARGUMENT"),
    Cell("video start", "moderation", 1, "reworded"),
    Cell("video start", "moderation_rpc", 1, "reworded"),
    Cell("video start", "failed_moderation", 1, "reworded"),
    Cell("video start", "failed_moderation", 2, "fails", "moderation refused the video prompt of scene 1"),
    Cell("video start", "failed", 1, "fails", "video generation failed [internal_error]"),
    Cell("video start", "expired", 1, "identical", paid_twice=True),
    Cell("video start", "expired", 2, "fails", "expired again", paid_twice=True),
    # video poll (free)
    Cell("video poll", "unavailable", 1, "identical"),
    Cell("video poll", "resource_exhausted", 1, "identical"),
    Cell("video poll", "deadline_exceeded", 1, "identical"),
    Cell("video poll", "resource_exhausted", MANY, "fails", "RESOURCE_EXHAUSTED"),
    Cell("video poll", "oversized_answer", 1, "fails", "RESOURCE_EXHAUSTED"),
    # video download (the result URL)
    Cell("video download", "truncated_once", 1, "identical"),
    Cell("video download", "http_500_once", 1, "identical"),
    Cell("video download", "reset_once", 1, "identical"),
    Cell("video download", "truncated", 1, "fails", "paying nothing"),
    Cell("video download", "asset_404", 1, "identical", paid_twice=True),
    # chat: the vision checks
    Cell("chat", "unavailable", 1, "identical"),
    Cell("chat", "resource_exhausted", 1, "identical"),
    Cell("chat", "deadline_exceeded", 1, "fails", "possibly billed"),
    Cell("chat", "oversized_answer", 1, "fails", "possibly billed"),
    Cell("chat", "invalid_argument", 1, "fails", "INVALID_ARGUMENT"),
    Cell("chat", "bad_json", 1, "fails", "not a valid ConsistencyScore"),
    Cell("chat", "moderation_rpc", 1, "identical"),  # the reworded check answers the same
    Cell("chat", "moderation_rpc", 2, "fails", "moderation refused the check prompt"),
]


def write_story(folder: Path) -> Path:
    """1 character, 1 scene of 3 s: a sheet (image generate), a keyframe (image edit with the
    sheet), a clip (video start, polls, download), three vision checks (chat)."""
    plan = story_plan("Create a visual story plan for: a fox\nUse exactly 1 character. Use exactly 1 scene.")
    data = plan_to_story_data(StoryPlan.model_validate(plan))
    data["scenes"][0]["duration_seconds"] = 3
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "story.yaml"
    path.write_text(render_story_yaml(data, header=["fault matrix"], schema_ref="x.json"))
    return path


def build(fake, folder: Path, on_event=None) -> tuple:
    story = write_story(folder)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**fake.env(TEST_KEY), **ENV}.items():
            mp.setenv(name, value)
        result = run_build(
            BuildOptions(
                story=story,
                backend="xai",
                out_dir=folder / "out",
                cache_dir=folder / "cache",
                retry=FAST_RETRY,
                on_event=on_event,
            )
        )
    report = json.loads((folder / "out" / "report.json").read_text())
    return result, report


@pytest.fixture(scope="module")
def reference(_fake_xai_server, tmp_path_factory, prefect_harness):
    fake = _fake_xai_server
    fake.reset()
    fake.pending_polls = 2
    events = []
    result, report = build(fake, tmp_path_factory.mktemp("reference"), lambda e, data: events.append((e, dict(data))))
    assert result.status == "built", result.message
    bills = fake.billed_count()
    assert report["api_calls_total"] == bills == 6  # sheet, keyframe, clip, 3 checks
    assert report["cost_usd"] == pytest.approx(fake.billed_usd(), abs=1e-6) and report["possibly_billed"] == 0
    # the clip's progress, as the service reports it while PENDING, reaches the progress line
    progress = [d for e, d in events if e == "call_progress"]
    assert [d["step"] for d in progress] == ["video:1", "video:1"] and progress[0]["percent"] < progress[1]["percent"]
    fake.reset()
    return file_sha256(result.out_dir / "final_video.mp4")


@pytest.fixture
def fake(_fake_xai_server):
    _fake_xai_server.reset()
    _fake_xai_server.pending_polls = 1
    yield _fake_xai_server
    _fake_xai_server.reset()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("cell", MATRIX, ids=lambda c: c.id)
def test_fault_matrix(cell, fake, reference, tmp_path):
    method, match = KINDS[cell.kind]
    fake.inject(method, cell.shape, times=cell.times, match=match)
    result, report = build(fake, tmp_path)
    final = result.out_dir / "final_video.mp4"

    if cell.outcome == "fails":
        assert result.status == "failed", (cell, result.message)
        assert len(result.failed) == 1, result.failed
        [(step, line)] = result.failed.items()
        assert "\n" not in line and line.startswith(f"{step}: "), line  # one line naming the step
        assert cell.says in line, line
        assert "Traceback" not in result.message
    else:
        assert result.status == "built", (cell, result.message)
        if cell.outcome == "identical":
            assert file_sha256(final) == reference
        else:
            assert final.is_file() and file_sha256(final) != reference
        assert json.loads((result.out_dir / "state.json").read_text())["jobs"] == {}

    # the service's bill is what report.json says
    assert report["api_calls_total"] == fake.billed_count(), (report["api_calls"], fake.bills)
    possibly = report["possibly_billed"]
    if possibly and cell.kind == "chat":  # the chat table price is an estimate: it errs high
        assert fake.billed_usd() <= report["cost_usd"] <= fake.billed_usd() + 0.002
    else:
        assert report["cost_usd"] == pytest.approx(fake.billed_usd(), abs=1e-6)
    assert possibly == (1 if "possibly billed" in cell.says else 0)

    # nothing paid for twice, unless unavoidable and reported as a retry
    repeats = sum(n - 1 for n in Counter(b.key for b in fake.bills).values())
    if cell.paid_twice:
        assert repeats == 1 and report["retries"] >= 1
    else:
        assert repeats == 0, fake.bills


@pytest.mark.unit
def test_every_kind_meets_every_shape_that_applies_to_it():
    shapes_by_kind: dict[str, set[str]] = {}
    for cell in MATRIX:
        shapes_by_kind.setdefault(cell.kind, set()).add(cell.shape)
    assert set(shapes_by_kind) == set(KINDS)
    for kind in ("image generate", "image edit", "video start", "chat"):
        assert {"unavailable", "resource_exhausted", "deadline_exceeded", "invalid_argument"} <= shapes_by_kind[kind]
        assert shapes_by_kind[kind] & {"moderation", "moderation_rpc", "empty_images", "failed_moderation"}
    assert {"unavailable", "resource_exhausted", "deadline_exceeded"} <= shapes_by_kind["video poll"]
    assert {"truncated", "asset_404", "reset_once", "http_500_once"} <= shapes_by_kind["video download"]


@pytest.mark.unit
def test_the_docs_table_is_this_matrix():
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in KINDS:
            rows[(cells[0], cells[1], cells[2])] = cells[3]
    expected = {
        (c.kind, c.shape, "always" if c.times == MANY else f"x{c.times}"): c.outcome + (f": {c.says}" if c.says else "")
        for c in MATRIX
    }
    assert {k: re.sub(r"\s+", " ", v) for k, v in rows.items()} == expected
