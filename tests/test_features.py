"""Issue 11's features end to end: one story (tests/fixtures/features/story.yaml) with a
seamless cut, a reference-to-video scene, a scene past 15 s, best-of-N keyframes and sheets,
turnaround sheets, locations and 1080p, built offline and against the strict fake xAI
service; what reached the service is read from the fake's request log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image, ImageChops, ImageStat
from typer.testing import CliRunner
from xai_sdk.proto import video_pb2

from fake_xai import decode_data_uri
from fake_xai.fixtures import TEST_KEY, _fake_xai_server  # noqa: F401 (fixture)
from fake_xai.media import probe_duration
from storyc.backends.offline import segment
from storyc.backends.offline.captions import picture_rows
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.cli.app import app
from storyc.graph.builder import build_graph
from storyc.load.loader import load_story
from storyc.media.probe import probe, read_frame
from storyc.prompts.promptset import PromptSet

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

STORY = Path(__file__).parent / "fixtures" / "features" / "story.yaml"
SCALE = "0.1"
FAST_ENV = {
    "STORYC_RENDER_SCALE": SCALE,
    "STORYC_XAI_POLL_INTERVAL": "0.05",
    "STORYC_XAI_RETRY_BASE": "0.01",
    "STORYC_RATE_LIMITS": "image=50,video=20",
}
SECONDS = {1: 4, 2: 4, 3: 5, 4: 18}  # scene 4: a 15 s generation and a 3 s extension


def _copy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(STORY, folder / "story.yaml"))


def _picture_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference (0-255) of the rows between the caption bands."""
    top, bottom = picture_rows(a.height)
    a, b = a.convert("RGB").crop((0, top, a.width, bottom)), b.convert("RGB").crop((0, top, b.width, bottom))
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("STORYC_RENDER_SCALE", SCALE)
    mp.delenv("XAI_API_KEY", raising=False)
    root = tmp_path_factory.mktemp("features-offline")
    story = _copy(root)
    result = run_build(
        BuildOptions(
            story=story,
            out_dir=root / "out",
            cache_dir=root / "cache",
            backend="offline",
            rates={"image": 1e3, "video": 1e3},
        )
    )
    mp.undo()
    out = root / "out"
    return SimpleNamespace(
        result=result,
        out=out,
        state=json.loads((out / "state.json").read_text()),
        report=json.loads((out / "report.json").read_text()),
    )


def test_offline_build_of_every_feature(offline):
    assert offline.result.status == "built", offline.result.message
    steps = offline.state["steps"]
    assert {"location:Harbour", "location:Lighthouse"} <= set(steps)
    out = offline.out
    for scene, seconds in SECONDS.items():  # every mode gives the clip its length
        assert probe(out / steps[f"video:{scene}"]["outputs"]["video"]).duration_s == pytest.approx(seconds, abs=0.05)
    assert probe(out / "final_video.mp4").duration_s == pytest.approx(sum(SECONDS.values()), abs=0.2)
    # scene 4 is a generation extended by video.extend: the extended clip holds both
    assert probe(out / "videos/scene_4_s1.mp4").duration_s == pytest.approx(15, abs=0.05)
    assert steps["video:4"]["outputs"]["video"] == "videos/scene_4_s1_e1.mp4"


def test_offline_seamless_cut_ends_on_the_next_keyframe(offline):
    steps, out = offline.state["steps"], offline.out
    last_1 = read_frame(out / steps["video:1"]["outputs"]["video"], "last")
    first_2 = read_frame(out / steps["video:2"]["outputs"]["video"], "first")
    keyframe_2 = Image.open(out / steps["keyframe:2"]["outputs"]["keyframe"]).resize(last_1.size)
    seamless = _picture_diff(last_1, first_2)
    assert seamless < 3.0  # the same picture, up to H.264's rounding
    assert _picture_diff(last_1, keyframe_2) < 4.0
    # a cut that is not seamless (scene 3's reference clip into scene 4) jumps
    jump = _picture_diff(
        read_frame(out / steps["video:3"]["outputs"]["video"], "last"),
        read_frame(out / steps["video:4"]["outputs"]["video"], "first"),
    )
    assert jump > 5 * max(seamless, 1.0)


def test_offline_best_of_n_judges_every_candidate_and_keeps_the_best(offline):
    steps = offline.state["steps"]
    for sid, n in (("character:Mira", 2), ("character:Gull", 2), ("location:Harbour", 2), ("keyframe:1", 3)):
        scores = steps[sid]["attempt_scores"]
        first_request = [path for path in scores if "_v1_" in path]
        assert len(first_request) == n, (sid, scores)
        assert steps[sid]["score"] == max(scores.values())
        kept = next(iter(steps[sid]["outputs"].values()))
        assert scores[kept] == max(scores.values())
    every = [
        score
        for sid in ("keyframe:1", "keyframe:2", "keyframe:3", "keyframe:4")
        for score in steps[sid]["attempt_scores"].values()
    ]
    assert len(set(every)) > 4  # the candidates are different takes, scored apart
    page = (offline.out / "storyboard.html").read_text()
    for path, score in steps["keyframe:3"]["attempt_scores"].items():
        assert path in page and f"{score:.2f}" in page
    assert "v1 #3" in page and 'id="locations"' in page


def test_offline_turnaround_sheet_shows_three_views_in_one_image(offline):
    sheet = Image.open(offline.out / offline.state["steps"]["character:Mira"]["outputs"]["sheet"]).convert("RGB")
    mask = segment.foreground_mask(sheet)
    columns = "".join("#" if any(mask.getpixel((x, y)) for y in range(mask.height)) else "." for x in range(mask.width))
    views = [run for run in columns.split(".") if len(run) >= 3]  # a speck of JPEG noise is no view
    assert len(views) == 3, columns


def test_graph_edges_of_the_features(tmp_path):
    loaded = load_story(_copy(tmp_path))
    graph = build_graph(loaded, PromptSet(loaded.story, story_path=loaded.path))
    steps = graph.steps
    assert "keyframe:2" in steps["video:1"].deps  # scene 1's clip ends on scene 2's keyframe
    assert "keyframe:1" in steps["keyframe:2"].deps and "video:1" not in steps["keyframe:2"].deps
    assert "location:Harbour" in steps["keyframe:1"].deps  # the plate in a free slot
    assert "location:Harbour" not in steps["keyframe:2"].deps  # 2 sheets + the chain frame: no slot left
    assert "location:Lighthouse" in steps["video:3"].deps  # the reference clip's plate
    order = list(steps)
    assert order.index("keyframe:2") < order.index("video:1")
    assert steps["video:4"].calls_min["video"] == 2  # a generation and an extension
    # storyc graph shows the seamless edge for what it is
    result = CliRunner().invoke(app, ["graph", str(loaded.path), "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    assert "n_keyframe_2 -- ends on --> n_video_1" in result.output
    dot = CliRunner().invoke(app, ["graph", str(loaded.path), "--format", "dot"]).output
    assert '"keyframe:2" -> "video:1" [label="ends on", style=bold];' in dot


# ─── against the strict fake xAI service ─────────────────────────────────────


@pytest.fixture(scope="module")
def xai(_fake_xai_server, tmp_path_factory):
    fake = _fake_xai_server
    fake.reset()
    folder = tmp_path_factory.mktemp("features-xai")
    story = _copy(folder)
    out = folder / "out"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**fake.env(TEST_KEY), **FAST_ENV}.items():
            mp.setenv(k, v)
        result = CliRunner().invoke(
            app, ["build", str(story), "--backend", "xai", "--out", str(out), "--cache", str(folder / "cache")]
        )
    built = SimpleNamespace(
        result=result,
        out=out,
        calls=fake.requests(),
        billed=(fake.billed_count(), fake.billed_usd()),
        state=json.loads((out / "state.json").read_text()) if (out / "state.json").exists() else {},
        report=json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {},
    )
    fake.reset()
    return built


def _of(xai, method):
    return [c for c in xai.calls if c.method == method]


def _bytes(xai, step: str, role: str) -> bytes:
    return (xai.out / xai.state["steps"][step]["outputs"][role]).read_bytes()


def _scene_of(call) -> int:
    """Which scene a clip request is for, by its prompt (the scenes' actions differ)."""
    for scene, words in ((1, "walks toward the end"), (2, "flaps its wings"), (3, "climbs the steps"), (4, "waves at")):
        if words in call.prompt.lower():
            return scene
    raise AssertionError(call.prompt[:120])


def test_xai_build_of_every_feature(xai):
    assert xai.result.exit_code == 0, xai.result.output
    assert xai.report["backend"] == "xai"
    # what storyc reported is what the service billed
    assert (xai.report["api_calls_total"], round(xai.report["cost_usd"], 4)) == (xai.billed[0], round(xai.billed[1], 4))
    for scene, seconds in SECONDS.items():
        clip = xai.out / xai.state["steps"][f"video:{scene}"]["outputs"]["video"]
        assert probe(clip).duration_s == pytest.approx(seconds, abs=0.15)


def test_xai_last_frame_only_on_the_seamless_parents_clip(xai):
    starts = [c for c in _of(xai, "GenerateVideo") if not c.request.HasField("video")]
    pinned = [c for c in starts if c.last_frame_url() is not None]
    assert [_scene_of(c) for c in pinned] == [1]
    assert decode_data_uri(pinned[0].last_frame_url()) == _bytes(xai, "keyframe:2", "keyframe")
    assert decode_data_uri(pinned[0].image_urls()[0]) == _bytes(xai, "keyframe:1", "keyframe")


def test_xai_reference_images_where_the_story_asks(xai):
    starts = [c for c in _of(xai, "GenerateVideo") if not c.request.HasField("video")]
    assert sorted(_scene_of(c) for c in starts) == [1, 2, 3, 4]
    sheets = {n: _bytes(xai, f"character:{n}", "sheet") for n in ("Mira", "Gull")}
    for call in starts:
        refs = [decode_data_uri(u) for u in call.reference_urls()]
        scene = _scene_of(call)
        if scene == 3:  # reference-to-video: the sheets and the plate, no first frame
            assert not call.request.HasField("image")
            assert refs == [sheets["Mira"], sheets["Gull"], _bytes(xai, "location:Lighthouse", "plate")]
            assert "<IMAGE_3>" in call.prompt and call.request.duration <= 10
        else:  # image mode on 1.5 with video_reference_images: the sheets beside the first frame
            assert call.request.HasField("image")
            present = {1: ["Mira"], 2: ["Mira", "Gull"], 4: ["Mira"]}[scene]
            assert refs == [sheets[n] for n in present]
    for call in _of(xai, "GenerateImage") + _of(xai, "ExtendVideo"):
        assert not getattr(call.request, "reference_images", [])
    edits = [c for c in _of(xai, "GenerateVideo") if c.request.HasField("video")]
    assert all(not c.request.reference_images and not c.request.HasField("last_frame") for c in edits)


def test_xai_n_only_on_best_of_n_requests(xai):
    images = _of(xai, "GenerateImage")
    by_n = {}
    for call in images:
        by_n.setdefault(call.request.n or 1, []).append(call)
    sheets = [
        c for c in images if "turnaround sheet" in c.prompt or "Background plate" in c.prompt or "Redraw" in c.prompt
    ]
    composes = [c for c in images if "Action:" in c.prompt and "Change ONLY" not in c.prompt]
    assert {c.request.n for c in sheets} == {2} and len(sheets) >= 4  # 2 sheets and 2 plates, 2 candidates each
    assert {c.request.n for c in composes} == {3} and len(composes) >= 4
    fixes = [c for c in images if "Change ONLY" in c.prompt]
    assert all((c.request.n or 1) == 1 for c in fixes)
    assert set(by_n) <= {1, 2, 3}
    # every candidate was judged
    assert len(xai.state["steps"]["keyframe:1"]["attempt_scores"]) >= 3


def test_xai_extension_only_for_the_long_scene(xai):
    [extension] = _of(xai, "ExtendVideo")
    assert _scene_of(extension) == 4 and extension.request.duration == 3
    assert probe_duration(decode_data_uri(extension.request.video.url)) == pytest.approx(15, abs=0.1)
    assert extension.request.model == "grok-imagine-video-1.5"


def test_xai_1080p_exactly_where_the_story_asks(xai):
    starts = [c for c in _of(xai, "GenerateVideo") if not c.request.HasField("video")]
    resolution = {_scene_of(c): c.request.resolution for c in starts}
    assert resolution == {
        1: video_pb2.VIDEO_RESOLUTION_1080P,
        2: video_pb2.VIDEO_RESOLUTION_1080P,
        3: video_pb2.VIDEO_RESOLUTION_720P,  # reference-to-video: 720p at most
        4: video_pb2.VIDEO_RESOLUTION_720P,  # extended: 720p at most
    }
