"""End-to-end builds on a real Prefect flow (the session harness), real ffmpeg on tiny
clips (STORYC_RENDER_SCALE), a counting fake backend for exact call accounting, and the
real offline backend for the full 2-scene build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _fake_backend import FakeBackend
from storyc.backends.base import BackendError
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.hashing import file_sha256
from storyc.run.retry import RetryPolicy

SCALE = "0.1"

STORY = """\
title: Harbour test
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: teal, coral, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue striped shirt, personality_cues: [shy]}
scenes:
  - {scene_id: 1, title: Ava at the pier, description: Ava walks along the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava walks toward the sea, duration_seconds: 3}
  - {scene_id: 2, title: Bo joins Ava, description: Bo runs up to Ava., characters_present: [Ava, Bo],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Bo runs to Ava and waves, duration_seconds: 3,
     transition: crossfade}
  - {scene_id: 3, title: Both look out, description: They watch the boats., characters_present: [Ava, Bo],
     setting: end of the wooden pier, camera: "wide shot, push in", mood: golden, action: they sit and watch boats, duration_seconds: 3}
"""

# Scores by attempt: Ava's sheet passes on the 2nd try; keyframe 1 goes compose → fix →
# regenerate; scene 2's clip needs one correction.
SCORES = {
    ("character:Ava", "sheet"): [0.6, 0.9],
    ("keyframe:1", "keyframe"): [0.5, 0.7, 0.85],
    ("video:2", "last_frame"): [0.5, 0.9],
}
EXPECTED_CALLS = {"image": 2 + 1 + 3 + 1 + 1, "video": 3 + 1, "vision": 3 + 3 + 1 + 1 + 4, "chat": 0, "tts": 0}


@pytest.fixture(autouse=True)
def _tiny_renders(monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", SCALE)
    monkeypatch.delenv("XAI_API_KEY", raising=False)


def _story(folder: Path, text: str = STORY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "story.yaml"
    path.write_text(text)
    return path


def _build(story: Path, out: Path, cache: Path, backend=None, **kw):
    backend = backend or FakeBackend(SCORES)
    kw.setdefault("rates", {"image": 1000.0, "video": 1000.0})  # the API's rate limits only slow tests down
    opts = BuildOptions(
        story=story, out_dir=out, cache_dir=cache, backend="offline", backend_factory=lambda name: backend, **kw
    )
    return run_build(opts), backend


@pytest.fixture(scope="module")
def first_build(tmp_path_factory, prefect_harness):
    """One full build all tests of this module compare against (its cache is copied, never mutated)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STORYC_RENDER_SCALE", SCALE)
    root = tmp_path_factory.mktemp("first")
    story = _story(root)
    result, backend = _build(story, root / "out", root / "cache")
    yield {
        "root": root,
        "story": story,
        "result": result,
        "backend": backend,
        "final": file_sha256(root / "out" / "final_video.mp4"),
    }
    mp.undo()


def _copy_cache(first, dest: Path) -> Path:
    shutil.copytree(first["root"] / "cache", dest)
    return dest


@pytest.mark.integration
@pytest.mark.slow
def test_full_build_runs_every_loop_and_counts_every_call(first_build):
    result, backend, out = first_build["result"], first_build["backend"], first_build["root"] / "out"
    assert result.status == "built", result.message
    rep = json.loads((out / "report.json").read_text())
    assert rep["api_calls"] == EXPECTED_CALLS == dict(backend.calls, chat=0, tts=0)
    assert rep["api_calls_total"] == sum(EXPECTED_CALLS.values()) and rep["cache_hits"] == 0
    assert rep["backend"] == "offline" and rep["wall_s"] > 0 and rep["cost_usd"] > 0
    steps = {s["id"]: s for s in rep["steps"]}
    assert set(steps) == {
        "character:Ava",
        "character:Bo",
        "keyframe:1",
        "video:1",
        "keyframe:2",
        "video:2",
        "keyframe:3",
        "video:3",
        "assemble",
        "script",
    }
    assert steps["keyframe:1"]["attempts"] == 3 and steps["keyframe:1"]["score"] == 0.85
    assert steps["video:2"]["attempts"] == 2 and steps["character:Ava"]["attempts"] == 2
    # every attempt is kept, with the design's names
    for rel in (
        "character_sheets/Ava_v1.jpg",
        "character_sheets/Ava_v2.jpg",
        "keyframes/scene_1_v1.jpg",
        "keyframes/scene_1_v2.jpg",
        "keyframes/scene_1_v3.jpg",
        "videos/scene_2.mp4",
        "videos/scene_2_c1.mp4",
        "frames/scene_1_first.jpg",
        "frames/scene_1_last.jpg",
        "script.md",
        "final_video.mp4",
    ):
        assert (out / rel).is_file(), rel
    # the fix edit of keyframe 1 was sent the best image so far, with the fix template
    state = json.loads((out / "state.json").read_text())
    fix = state["steps"]["keyframe:1"]["prompts"]["fix_2"]
    assert "Change ONLY Ava in <IMAGE_1>: restore the colours" in fix and fix.count("Change ONLY") == 1
    assert fix.count("Keep everything else identical") == 1
    # ... together with Ava's chosen sheet as <IMAGE_2> (design technique 7)
    assert "Ava must look exactly as in <IMAGE_2> (their character sheet)." in fix
    fixes = [refs for sid, step, refs in backend.image_requests if sid == "keyframe:1" and step == "fix"]
    assert fixes == [("scene_1_v1.jpg", "Ava_v2.jpg")]
    assert state["keyframes"][0]["edit_passes"] == 1 and state["videos"][1]["correction_passes"] == 1
    assert state["videos"][1]["video_path"] == "videos/scene_2_c1.mp4"  # the correction scored best
    assert state["final_video_path"] == "final_video.mp4" and state["jobs"] == {}
    assert all(len(s["key"]) == 64 and s["status"] == "done" for s in state["steps"].values())
    from storyc.media import ffmpeg as media
    from storyc.media.probe import probe

    info = probe(out / "final_video.mp4")
    assert (info.width, info.height) == media.dimensions("16:9", "720p")
    assert info.has_audio and abs(info.duration_s - (9 - 0.5)) < 0.2  # one 0.5 s crossfade


@pytest.mark.integration
@pytest.mark.slow
def test_noop_rebuild_is_up_to_date_without_prefect(first_build, tmp_path):
    cache = _copy_cache(first_build, tmp_path / "cache")
    code = (
        "import sys, json\n"
        "from storyc.build.options import BuildOptions\n"
        "from storyc.build.pipeline import run_build\n"
        f"r = run_build(BuildOptions(story={str(first_build['story'])!r}, out_dir={str(tmp_path / 'out')!r},"
        f" cache_dir={str(cache)!r}, backend='offline'))\n"
        "print(json.dumps({'status': r.status, 'calls': r.report['api_calls_total'], 'hits': r.report['cache_hits'],"
        " 'prefect': 'prefect' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    # its time (goal < 1.5 s) is measured by bench/incremental.py
    assert data == {"status": "up_to_date", "calls": 0, "hits": 10, "prefect": False}
    # restored from the cache into a fresh folder: identical bytes
    assert file_sha256(tmp_path / "out" / "final_video.mp4") == first_build["final"]


@pytest.mark.integration
@pytest.mark.slow
def test_editing_one_scene_reruns_only_it_and_its_chain(first_build, tmp_path):
    cache = _copy_cache(first_build, tmp_path / "cache")
    story = _story(tmp_path / "s", STORY.replace("action: Bo runs to Ava and waves", "action: Bo cartwheels to Ava"))
    result, backend = _build(story, tmp_path / "out", cache)
    assert result.status == "built", result.message
    ran = {s["id"] for s in result.report["steps"] if not s["cached"]}
    assert ran == {"keyframe:2", "video:2", "keyframe:3", "video:3", "assemble", "script"}
    assert {what for _, what in backend.log} == {"keyframe:2", "video:2", "keyframe:3", "video:3"}


@pytest.mark.integration
@pytest.mark.slow
def test_resume_after_a_crash_pays_nothing_twice(first_build, tmp_path):
    story = first_build["story"]
    crashing = FakeBackend(SCORES, fail_after=9)  # dies mid-way through keyframe 1's loop
    result, _ = _build(story, tmp_path / "out", tmp_path / "cache", backend=crashing)
    assert result.status == "failed" and "injected crash" in result.message
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert state["steps"]["character:Ava"]["status"] == "done"
    # the storyboard still shows what was made and says why the build stopped
    page = (tmp_path / "out" / "storyboard.html").read_text()
    script = (tmp_path / "out" / "script.md").read_text()
    assert "This build did not finish (failed)" in page and "injected crash" in page
    assert "character_sheets/Ava_v1.jpg" in page and "final video: not assembled yet" in page
    assert script.splitlines()[2].startswith("> **⚠ This build did not finish (failed)")
    resumed, backend = _build(story, tmp_path / "out", tmp_path / "cache")
    assert resumed.status == "built", resumed.message
    finished = (tmp_path / "out" / "storyboard.html").read_text()
    assert "did not finish" not in finished and "final_video.mp4" in finished
    paid = sum(crashing.calls.values()) + sum(backend.calls.values())
    assert paid == sum(EXPECTED_CALLS.values())  # the calls made before the crash were not repeated
    assert file_sha256(tmp_path / "out" / "final_video.mp4") == first_build["final"]


@pytest.mark.integration
@pytest.mark.slow
def test_transient_errors_are_retried_and_counted(first_build, tmp_path):
    flaky = FakeBackend(SCORES, transient_every=5)
    result, _ = _build(
        first_build["story"],
        tmp_path / "out",
        tmp_path / "cache",
        backend=flaky,
        retry=RetryPolicy(max_retries=3, base_s=0.001, cap_s=0.01),
    )
    assert result.status == "built", result.message
    assert result.report["retries"] == sum(1 for kind, _ in flaky.log if kind == "transient") > 0
    assert result.report["api_calls"] == EXPECTED_CALLS
    assert file_sha256(tmp_path / "out" / "final_video.mp4") == first_build["final"]


class _BilledFailureOnFirstClip(FakeBackend):
    """The first clip is delivered to a URL that has already expired: billed, then lost."""

    def __init__(self):
        super().__init__(SCORES)
        self.failed_once = False

    def image_to_video(self, req, *, job_key, journal=None):
        if not self.failed_once:
            self.failed_once = True
            exc = BackendError("video URL expired before download", retryable=True)
            exc.spent_calls, exc.spent_usd = 1, 0.21
            raise exc
        return super().image_to_video(req, job_key=job_key, journal=journal)


@pytest.mark.integration
@pytest.mark.slow
def test_billed_failed_calls_count_in_the_report_and_the_budget(first_build, tmp_path):
    backend = _BilledFailureOnFirstClip()
    result, _ = _build(
        first_build["story"],
        tmp_path / "out",
        tmp_path / "cache",
        backend=backend,
        retry=RetryPolicy(max_retries=3, base_s=0.001, cap_s=0.01),
    )
    assert result.status == "built", result.message
    expected = dict(EXPECTED_CALLS, video=EXPECTED_CALLS["video"] + 1)
    assert result.report["api_calls"] == expected
    assert result.report["cost_usd"] == pytest.approx(first_build["result"].report["cost_usd"] + 0.21, abs=1e-6)


@pytest.mark.integration
@pytest.mark.slow
def test_select_builds_only_the_selection(first_build, tmp_path):
    story = first_build["story"]
    missing, _ = _build(story, tmp_path / "out", tmp_path / "cache", select="scene:2")
    assert missing.status == "missing" and "video:1 (needed by keyframe:2)" in missing.message
    result, backend = _build(story, tmp_path / "out", tmp_path / "cache", select="+keyframe:1")
    assert result.status == "built", result.message
    steps = {s["id"]: s for s in result.report["steps"]}
    assert {sid for sid, s in steps.items() if s["status"] == "done"} == {"character:Ava", "keyframe:1"}
    assert steps["video:3"]["status"] == "skipped"
    assert set(backend.calls) == {"image", "vision"}


@pytest.mark.integration
@pytest.mark.slow
def test_a_select_build_shows_every_cached_scene_and_the_table_lists_script(first_build, tmp_path):
    from _html import parse_page

    cache = _copy_cache(first_build, tmp_path / "cache")
    out = tmp_path / "out"
    # scene 3 chains from video:2's last frame: its key is known only once video:2 has run again
    # (to the same bytes here), and then its cached takes are shown, not "–"
    result, backend = _build(first_build["story"], out, cache, select="video:2", force=True)
    assert result.status == "built", result.message
    assert {what for _, what in backend.log} == {"video:2"}
    steps = {s["id"]: s for s in result.report["steps"]}
    assert steps["keyframe:3"]["cached"] and steps["video:3"]["cached"] and steps["video:3"]["score"] is not None
    assert steps["assemble"]["status"] == "skipped"  # not selected: the video is not rebuilt
    page = "".join(parse_page((out / "storyboard.html").read_text()).text)
    assert "keyframe – · last frame –" not in page and page.count("Consistencykeyframe ") == 3
    # the full build's storyboard lists its own step in the build table
    full = "".join(parse_page((first_build["root"] / "out" / "storyboard.html").read_text()).text)
    assert "video:3done" in full and "scriptdone0$0.0000" in full


# every loop exhausted: nothing passes, and every clip drifts below its keyframe
EXHAUSTED = {"*": [0.1], **{(f"keyframe:{n}", "keyframe"): [0.5] for n in (1, 2, 3)}}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("scores,bound", [({}, "calls_min"), (EXHAUSTED, "calls_max")], ids=["min", "max"])
def test_dry_run_matches_counted_calls(first_build, tmp_path, scores, bound):
    story = first_build["story"]
    dry, _ = _build(story, tmp_path / "out", tmp_path / "cache", dry_run=True)
    assert dry.status == "dry_run" and not (tmp_path / "out").exists()
    backend = FakeBackend(scores)
    result, _ = _build(story, tmp_path / "out", tmp_path / "cache", backend=backend)
    assert result.status == "built", result.message
    counted = {k: result.report["api_calls"][k] for k in dry.dry_run[bound]}
    assert counted == dry.dry_run[bound]


@pytest.mark.integration
@pytest.mark.slow
def test_max_cost_stops_before_the_call_that_would_exceed_it(first_build, tmp_path):
    # sheets ($0.063) and keyframe 1 ($0.063) fit; video 1 (3 s at 720p: $0.21) would not
    result, backend = _build(first_build["story"], tmp_path / "out", tmp_path / "cache", max_cost=0.2)
    assert result.status == "budget" and "--max-cost $0.20" in result.message and "video:1" in result.message
    assert result.report["cost_usd"] <= 0.2
    assert backend.calls["video"] == 0
    done = {s["id"] for s in result.report["steps"] if s["status"] == "done"}
    assert done == {"character:Ava", "character:Bo", "keyframe:1"}  # finished work is kept (and cached)
    again, _ = _build(first_build["story"], tmp_path / "out2", tmp_path / "cache", select="+keyframe:1")
    assert again.status == "up_to_date"


@pytest.mark.integration
@pytest.mark.slow
def test_max_cost_prices_each_call_with_the_storys_models(prefect_harness, tmp_path):
    """The budget's per-call estimates come from the price table row of the story's model:
    a 3 s 720p clip of grok-imagine-video-1.5 is estimated at $0.42, over the $0.35 budget
    ($0.063 spent on the sheets and keyframe 1); grok-imagine-video's $0.21 would fit."""
    story = _story(
        tmp_path, STORY.replace("characters:\n", "models: {video: grok-imagine-video-1.5}\ncharacters:\n", 1)
    )
    result, backend = _build(story, tmp_path / "out", tmp_path / "cache", backend=FakeBackend({}), max_cost=0.35)
    assert result.status == "budget", result.message
    assert "stopped before video:1 image→video (estimated $0.4200)" in result.message
    assert backend.calls["video"] == 0


@pytest.mark.integration
@pytest.mark.slow
def test_offline_cli_build_is_deterministic_and_lint_gates_it(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    two = STORY.split("  - {scene_id: 3")[0]
    story = _story(tmp_path / "s", two)
    runner = CliRunner()
    finals = []
    for n in (1, 2):
        r = runner.invoke(
            app, ["build", str(story), "--out", str(tmp_path / f"out{n}"), "--cache", str(tmp_path / f"c{n}")]
        )
        assert r.exit_code == 0, r.output
        assert r.output.splitlines()[0].startswith("storyc build: backend offline")
        finals.append(file_sha256(tmp_path / f"out{n}" / "final_video.mp4"))
    assert finals[0] == finals[1]
    # outputs are as readable as any file the user writes (0o666 less the umask), not 0600
    # like the temp files they were renamed from: a team shares output folders and caches
    from storyc.store.fsutil import new_file_mode

    modes = {
        p.relative_to(tmp_path): oct(p.stat().st_mode & 0o777)
        for p in [*(tmp_path / "out1").rglob("*"), *(tmp_path / "c1").rglob("*")]
        if p.is_file()
    }
    assert len(modes) > 20 and set(modes.values()) == {oct(new_file_mode())}, modes
    r = runner.invoke(app, ["build", str(story), "--out", str(tmp_path / "out1"), "--cache", str(tmp_path / "c1")])
    assert r.exit_code == 0 and "up to date" in r.output
    bad = _story(tmp_path / "bad", two.replace("characters_present: [Ava, Bo]", "characters_present: [Ava, Zed]"))
    r = runner.invoke(app, ["build", str(bad), "--out", str(tmp_path / "outbad")])
    assert r.exit_code == 1 and "Zed" in r.output and not (tmp_path / "outbad").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_a_draft_and_the_full_build_share_the_cache_and_score_the_same(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app
    from storyc.media.probe import probe

    story = _story(tmp_path / "s", STORY.split("  - {scene_id: 3")[0])
    runner = CliRunner()
    folders = ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]

    def build(*flags: str) -> dict:
        r = runner.invoke(app, ["build", str(story), *folders, *flags])
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / "out" / "report.json").read_text())

    def size() -> tuple[int, int]:
        info = probe(tmp_path / "out" / "final_video.mp4")
        return info.width, info.height

    def judged() -> dict:
        steps = json.loads((tmp_path / "out" / "state.json").read_text())["steps"]
        return {sid: (s["score"], s["attempt_scores"]) for sid, s in steps.items() if s["score"] is not None}

    draft = build("--draft")
    assert draft["draft"] is True and draft["api_calls_total"] > 0
    draft_scores = judged()
    page = (tmp_path / "out" / "storyboard.html").read_text()
    assert "Draft (storyc build --draft)" in page
    assert size() == (86, 48)  # 480p at this suite's render scale
    # the full build renders nothing again: the offline draft's takes are the full build's,
    # so their scores are the same by construction; only the final video is made again
    full = build()
    assert full["draft"] is False and full["api_calls_total"] == 0
    assert {s["id"] for s in full["steps"] if not s["cached"]} == {"assemble", "script"}
    assert judged() == draft_scores
    assert size() == (128, 72)
    assert "Draft (storyc build --draft)" not in (tmp_path / "out" / "storyboard.html").read_text()
    # both are in the cache: the draft again is restored, not rendered
    again = runner.invoke(app, ["build", str(story), *folders, "--draft"])
    assert again.exit_code == 0 and "up to date" in again.output, again.output


@pytest.mark.integration
@pytest.mark.slow
def test_a_paid_backends_draft_renders_480p_clips_without_corrections(prefect_harness, tmp_path):
    from storyc.media.probe import probe

    story = _story(tmp_path / "s")
    backend = FakeBackend(SCORES)  # video:2's first clip drifts: a full build corrects it
    opts = BuildOptions(
        story=story,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        backend="xai",  # the graph of a paid backend; the counting fake answers its calls
        backend_factory=lambda name: backend,
        rates={"image": 1000.0, "video": 1000.0},
        draft=True,
    )
    dry = run_build(BuildOptions(**{**opts.__dict__, "dry_run": True}))
    assert dry.dry_run["draft"] is True and dry.dry_run["calls_max"]["video"] == 3  # one clip per scene
    result = run_build(opts)
    assert result.status == "built", result.message
    assert backend.calls["video"] == 3  # no correction, although video:2 scored 0.5
    steps = {s["id"]: s for s in result.report["steps"]}
    assert steps["video:2"]["score"] == 0.5 and result.report["draft"] is True
    clip = probe(tmp_path / "out" / "videos" / "scene_1.mp4")
    final = probe(tmp_path / "out" / "final_video.mp4")
    assert (clip.width, clip.height) == (final.width, final.height) == (86, 48)  # 480p at the suite's scale
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert state["draft"] is True


@pytest.mark.integration
@pytest.mark.slow
def test_force_regenerates_everything_selected(first_build, tmp_path):
    cache = _copy_cache(first_build, tmp_path / "cache")
    result, backend = _build(first_build["story"], tmp_path / "out", cache, force=True, select="scene:3")
    assert result.status == "built", result.message
    assert {what for _, what in backend.log} == {"keyframe:3", "video:3"}  # new calls, not memo replays
    assert result.report["api_calls_total"] == 4 and result.report["cache_hits"] == 6
    steps = {s["id"]: s["status"] for s in result.report["steps"]}
    assert steps["assemble"] == steps["script"] == "skipped"  # downstream of the selection, not selected


@pytest.mark.integration
@pytest.mark.slow
def test_graph_after_a_build_shows_every_step_cached_with_its_build_key(first_build):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    r = CliRunner().invoke(
        app,
        [
            "graph",
            str(first_build["story"]),
            "--format",
            "json",
            "--backend",
            "offline",
            "--cache",
            str(first_build["root"] / "cache"),
        ],
    )
    assert r.exit_code == 0, r.output
    steps = {s["id"]: s for s in json.loads(r.output)["steps"]}
    state = json.loads((first_build["root"] / "out" / "state.json").read_text())
    assert all(s["cached"] for s in steps.values())
    assert {sid: s["key"] for sid, s in steps.items()} == {sid: rec["key"] for sid, rec in state["steps"].items()}


@pytest.mark.integration
@pytest.mark.slow
def test_a_transition_edit_reassembles_without_prefect_or_backend(first_build, tmp_path):
    cache = _copy_cache(first_build, tmp_path / "cache")
    story = _story(tmp_path / "s", STORY.replace("transition: crossfade", "transition: cut"))

    def no_backend(name):
        raise AssertionError("no backend is needed to re-assemble")

    result = run_build(
        BuildOptions(
            story=story, out_dir=tmp_path / "out", cache_dir=cache, backend="offline", backend_factory=no_backend
        )
    )
    assert result.status == "built", result.message
    assert {s["id"] for s in result.report["steps"] if not s["cached"]} == {"assemble", "script"}
    assert "prefect" not in result.report and result.report["api_calls_total"] == 0
    from storyc.media.probe import probe

    assert abs(probe(tmp_path / "out" / "final_video.mp4").duration_s - 9) < 0.2  # no crossfade now


@pytest.mark.unit
def test_per_kind_limits_cap_concurrency_and_rate(monkeypatch):
    import threading

    from storyc.run.executor import Limits

    monkeypatch.setenv("STORYC_CONCURRENCY", "video=2")
    limits = Limits(rates={"image": 20.0})
    assert limits.concurrency["video"] == 2 and limits.rates == {"image": 20.0, "video": 1.0}
    capped = Limits(rates={"video": 0})  # the cap alone (the 1/s rate would make this test slow)
    assert capped.concurrency["video"] == 2 and "video" not in capped.rates
    # Six clips ask for the cap of two: the first two in hold it until every clip has
    # arrived at it, so the other four are made to wait, and none may get in beside them.
    arrived, inside, peak, done = [0], [0], [0], [0]
    changed, release = threading.Condition(), threading.Event()

    def clip():
        with limits.throttle("vision"):  # not rate limited, capped at 8
            pass
        with changed:
            arrived[0] += 1
            changed.notify_all()
        with capped.throttle("video"):
            with changed:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
                changed.notify_all()
            release.wait(timeout=60)
            with changed:
                inside[0] -= 1
                done[0] += 1

    threads = [threading.Thread(target=clip) for _ in range(6)]
    for t in threads:
        t.start()
    with changed:
        assert changed.wait_for(lambda: arrived[0] == 6 and inside[0] >= 2, timeout=60), (arrived, inside)
        held = inside[0]
    release.set()
    for t in threads:
        t.join(timeout=60)
    assert held == 2 and done[0] == 6 and peak[0] == 2
    t0 = time.perf_counter()
    for _ in range(5):
        with limits.throttle("image"):
            pass
    assert time.perf_counter() - t0 >= 4 / 20.0 * 0.9  # 5 images at 20/s: at least 4 intervals


@pytest.mark.unit
@pytest.mark.parametrize(
    "fix_prompt, expected",
    [
        # the form the check prompts ask the judge for: unwrapped, so the template frames it once
        (
            "Change ONLY Ember's scarf: make it emerald green. Keep everything else identical. "
            "Do not alter any character not mentioned.",
            ("Ember", "Ember's scarf", "make it emerald green."),
        ),
        ("change only Sage: restore the silver plumage", ("Sage", "Sage", "restore the silver plumage")),
        ("Make the scarf green", ("Ember", "Ember", "Make the scarf green")),
        (None, ("Ember", "Ember", "Ember: scarf is red")),
        ("Change ONLY Ember. Keep everything else identical.", ("Ember", "Ember", "Ember: scarf is red")),
    ],
)
def test_fix_target_unwraps_the_judges_fix_prompt(fix_prompt, expected):
    from storyc.model.vision import ConsistencyScore
    from storyc.run.keyframe import fix_target

    score = ConsistencyScore(
        overall_score=0.5,
        per_character={"Ember": 0.5, "Sage": 0.9},
        issues=["Ember: scarf is red"],
        fix_prompt=fix_prompt,
    )
    assert fix_target(score) == expected


@pytest.mark.unit
def test_progress_shows_a_row_per_running_step_on_a_terminal_and_plain_lines_otherwise(monkeypatch, capsys):
    import io

    from storyc.cli import progress
    from storyc.model.state import StepRecord

    def record(sid):
        return StepRecord(
            id=sid, kind="character", key="k" * 64, status="done", api_calls=2, attempts=1, score=0.9, wall_s=0.5
        )

    events = [
        ("plan", {"steps": 3}),
        ("step_started", {"step": "character:Ava"}),
        ("step_started", {"step": "character:Bo"}),
        ("call_started", {"step": "character:Ava", "kind": "image", "what": "sheet v1"}),
        ("call", {"step": "character:Ava", "kind": "image", "what": "sheet v1"}),
        ("call_started", {"step": "character:Bo", "kind": "video", "what": "image→video"}),
        ("call_progress", {"step": "character:Bo", "kind": "video", "what": "image→video", "percent": 45}),
    ]
    # not a terminal: nothing but one line per finished step
    plain = progress.BuildProgress(total=0)
    for event, data in [*events, ("step_finished", {"record": record("character:Ava")})]:
        plain(event, data)
    assert capsys.readouterr().out == "done    character:Ava  2 call(s)  score 0.90  0.5s\n"
    # a terminal: a live row per running step, with its calls, gone when the step ends
    monkeypatch.setattr(progress.sys.stdout, "isatty", lambda: True, raising=False)
    live = progress.BuildProgress(total=0)
    live.rich.console.file = io.StringIO()
    for event, data in events:
        live(event, data)
    assert set(live.rows) == {"character:Ava", "character:Bo"}
    ava = next(t for t in live.rich.tasks if t.id == live.rows["character:Ava"])
    assert "1 call(s)" in ava.description and "sheet v1" in ava.description
    bo = next(t for t in live.rich.tasks if t.id == live.rows["character:Bo"])
    assert "video: image→video 45%" in bo.description  # the provider's progress of a rendering clip
    live("step_finished", {"record": record("character:Ava")})
    live("step_failed", {"step": "character:Bo", "error": "boom"})
    live.stop()
    assert live.rows == {} and [t.id for t in live.rich.tasks] == [live.task]
    assert "done    character:Ava" in live.rich.console.file.getvalue()


@pytest.mark.unit
def test_a_score_below_the_threshold_is_flagged_on_its_step_line(capsys):
    from storyc.cli import progress
    from storyc.model.state import StepRecord

    def finished(sid, score, cached=False):
        rec = StepRecord(
            id=sid, kind="video", key="k" * 64, status="done", api_calls=6, score=score, wall_s=3.2, cached=cached
        )
        return {"record": rec, "threshold": 0.8}

    plain = progress.BuildProgress(total=0)
    plain("step_finished", finished("video:4", 0.76))
    plain("step_finished", finished("video:3", 0.8))  # at the threshold: a pass
    plain("step_finished", finished("video:2", 0.61, cached=True))  # restored, and still below
    plain("step_finished", finished("video:1", 0.95, cached=True))
    assert capsys.readouterr().out.splitlines() == [
        "done    video:4  6 call(s)  score 0.76 ▼ below 0.80  3.2s",
        "done    video:3  6 call(s)  score 0.80  3.2s",
        "cached  video:2  score 0.61 ▼ below 0.80",
        "cached  video:1",
    ]
    summary = progress.low_scores_summary(
        {"threshold": 0.8, "below_threshold": [{"id": "video:4", "score": 0.76}, {"id": "keyframe:2", "score": 0.71}]}
    )
    assert summary.startswith("2 take(s) kept below the 0.80 threshold") and "video:4 0.76, keyframe:2 0.71" in summary
    assert progress.low_scores_summary({"threshold": 0.8, "below_threshold": []}) is None


@pytest.mark.integration
@pytest.mark.slow
def test_low_scores_are_summarised_and_strict_makes_them_an_error(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    # a threshold no offline take reaches, one attempt each: every judged take stays below it
    strict = STORY.split("  - {scene_id: 2")[0] + (
        "quality: {consistency_threshold: 0.999, max_character_attempts: 1, max_keyframe_iterations: 1, "
        "max_video_corrections: 0}\n"
    )
    story = _story(tmp_path / "s", strict)
    runner = CliRunner()
    folders = ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    r = runner.invoke(app, ["build", str(story), *folders])
    assert r.exit_code == 0, r.output
    assert "score 0." in r.stdout and "▼ below 1.00" in r.stdout  # the 0.999 threshold, at two decimals
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    low = {s["id"] for s in report["below_threshold"]}
    assert {"character:Ava", "keyframe:1", "video:1"} <= low and report["threshold"] == 0.999
    warning = [line for line in r.stderr.splitlines() if "below the 1.00 threshold" in line]
    assert warning and warning[0].startswith("storyc build: warning: ") and "keyframe:1" in warning[0]
    # the same takes, restored from the cache, are flagged again; --strict fails the build
    r = runner.invoke(app, ["build", str(story), *folders, "--strict"])
    assert r.exit_code == 1, r.output
    assert "up to date" in r.stdout and "▼ below" in r.stdout
    assert r.stderr.strip().splitlines()[-1].startswith("storyc build: --strict: ")


@pytest.mark.unit
def test_dry_run_honours_max_cost(tmp_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    story = _story(tmp_path / "s")
    runner = CliRunner()
    base = ["build", str(story), "--dry-run", "--backend", "offline", "--cache", str(tmp_path / "cache")]
    plain = runner.invoke(app, base)
    assert plain.exit_code == 0, plain.output
    estimate = json.loads(plain.stdout.strip().splitlines()[-1])
    low, high = estimate["cost_min_usd"], estimate["cost_max_usd"]
    # even the cheapest run cannot fit: exit 1, naming the minimum
    refused = runner.invoke(app, [*base, "--max-cost", "0.01"])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"storyc build: --max-cost $0.01 cannot fit this build: it costs at least ${low:.2f} "
        "(every check passing first time); raise --max-cost or build less (--select, --until)"
    )
    # the cheapest fits, the dearest not: a note, exit 0; both fit: nothing to say
    between = runner.invoke(app, [*base, "--max-cost", f"{(low + high) / 2:.2f}"])
    assert between.exit_code == 0 and "fits the cheapest run but not the dearest" in between.stderr
    roomy = runner.invoke(app, [*base, "--max-cost", f"{high + 1:.2f}"])
    assert roomy.exit_code == 0 and "--max-cost" not in roomy.stderr
    assert not (tmp_path / "cache").exists()  # a dry run creates nothing


@pytest.mark.unit
def test_budget_names_the_refused_call_and_calls_after_it_as_not_started():
    from storyc.run.budget import Budget
    from storyc.run.errors import BudgetExceeded

    budget = Budget(1.0)
    budget.reserve(0.6, "video:1 image→video")
    with pytest.raises(BudgetExceeded, match=r"stopped before video:3 image→video .*\$0\.6000 in flight"):
        budget.reserve(0.5, "video:3 image→video")
    budget.settle(0.6, 0.6)
    with pytest.raises(BudgetExceeded, match=r"not started \(video:5 image→video\)"):
        budget.reserve(0.01, "video:5 image→video")  # it would fit, but the build is stopping
    assert "video:3" in budget.stopped


@pytest.mark.integration
@pytest.mark.slow
def test_a_clip_that_scores_as_its_keyframe_did_is_not_corrected(first_build, tmp_path):
    """Keyframe 2's loop ends at 0.6 (below the 0.8 threshold); its clip's last frame scores
    0.58: it did not drift, so no video edit is paid for. Clip 3 falls from 0.9 to 0.5: corrected."""
    scores = {
        ("keyframe:2", "keyframe"): [0.6],
        ("video:2", "last_frame"): [0.58],
        ("video:3", "last_frame"): [0.5, 0.9],
    }
    result, _ = _build(first_build["story"], tmp_path / "out", tmp_path / "cache", backend=FakeBackend(scores))
    assert result.status == "built", result.message
    steps = {s["id"]: s for s in result.report["steps"]}
    assert steps["video:2"]["calls"] == {"video": 1, "vision": 1} and steps["video:2"]["score"] == 0.58
    assert steps["video:3"]["calls"] == {"video": 2, "vision": 2} and steps["video:3"]["score"] == 0.9
