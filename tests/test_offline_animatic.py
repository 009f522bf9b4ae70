"""The offline animatic tells the story: every frame carries a caption band (scene and
title, camera words, action, name tags, the line being said), shot size follows the
camera words, features come from the right words, props named in the action are drawn,
and the judge still reads the pictures right around all of it.

Text is checked without OCR: the test renders the same text with the same font and
compares it with the frame's pixels (normalised correlation of the luminance), and a
different text must compare clearly worse."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from storyc.backends.base import ImageRequest, JudgeRequest
from storyc.backends.offline import captions, draw, figures, framing, judge, props, segment, shots
from storyc.backends.offline import video as offline_video
from storyc.backends.offline.backend import OfflineBackend
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.load.loader import load_story
from storyc.media import ffmpeg as media
from storyc.media.assemble import CROSSFADE_S
from storyc.media.probe import probe

ROOT = Path(__file__).resolve().parent.parent
EMBER = "A small fox with burnt orange fur, a cream chest and dark brown paws, wearing an emerald scarf"
SAGE = "A wise old owl with silver grey feathers, amber eyes and a violet cloak"


@pytest.fixture(autouse=True)
def _scale(monkeypatch):
    monkeypatch.setenv(media.RENDER_SCALE_ENV, "0.5")
    monkeypatch.delenv("STORYC_OFFLINE_FAULTS", raising=False)
    monkeypatch.delenv("STORYC_OFFLINE_LATENCY", raising=False)


# ─── comparing text without OCR ──────────────────────────────────────────────


def correlation(a: Image.Image, b: Image.Image) -> float:
    """Normalised cross-correlation of two same-sized images' luminance (-1..1)."""
    a, b = a.convert("L"), b.convert("L").resize(a.size)
    sa, sb = ImageStat.Stat(a), ImageStat.Stat(b)
    if sa.stddev[0] < 1e-6 or sb.stddev[0] < 1e-6:
        return 0.0
    mean_ab = ImageStat.Stat(ImageChops.multiply(a, b)).mean[0] * 255
    return (mean_ab - sa.mean[0] * sb.mean[0]) / (sa.stddev[0] * sb.stddev[0])


def title_box(size: tuple[int, int], title: str) -> tuple[int, int, int, int]:
    lay = captions.Layout(*size)
    width = captions.text_width(title, lay.title_px) + 2 * lay.pad
    return (0, 0, min(size[0], round(width)), lay.top)


def title_match(frame: Image.Image, card: captions.Card) -> float:
    """How well the frame's top bar matches `card`'s title rendered alone."""
    expected = Image.new("RGB", frame.size)
    expected.paste(captions.draw_static(card, frame.size), (0, 0), captions.draw_static(card, frame.size))
    box = title_box(frame.size, captions.title_text(card))
    return correlation(frame.crop(box), expected.crop(box))


def best_tag_match(frame: Image.Image, name: str) -> tuple[float, int]:
    """The best correlation of `name`'s tag anywhere along the tag row (tags follow their
    figures as the camera moves), and where."""
    tag = captions.draw_tag(name, frame.size)
    flat = Image.new("RGB", tag.size, captions.BAND_FILL[:3])
    flat.paste(tag, (0, 0), tag)
    top = captions.tag_y(frame.size)
    best = (-1.0, 0)
    for x in range(0, frame.width - tag.width + 1):
        score = correlation(frame.crop((x, top, x + tag.width, top + tag.height)), flat)
        best = max(best, (score, x))
    return best


def middle_frame(video: Path, t: float) -> Image.Image:
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= t:
                return frame.to_image().convert("RGB")
    raise AssertionError(f"no frame at {t} s in {video}")


# ─── the band in a clip ──────────────────────────────────────────────────────


@pytest.mark.integration
def test_a_clip_shows_title_camera_action_tags_and_timed_lines(tmp_path):
    size = media.dimensions("16:9", "720p")  # 640×360 at this scale
    still = tmp_path / "kf.jpg"
    figs = [draw.draw_figure("Ember", EMBER, 200), draw.draw_figure("Sage", SAGE, 200)]
    media.save_jpeg(draw.compose(size, "autumn forest", "dusk", "amber", figs), still)
    lines = captions.timed_lines(
        [
            {"speaker": "Sage", "line": "Welcome, little one.", "start_s": 0.2, "end_s": 1.0},
            {"speaker": "Ember", "line": "What is that light?", "start_s": 1.2, "end_s": 1.9},
        ],
        2.0,
    )
    card = captions.Card(
        2, "Meeting the Old Owl", "the owl turns its head", "medium shot, slow pan right", ("Ember", "Sage"), lines
    )
    clip = tmp_path / "clip.mp4"
    tag_xs = [c / size[0] for c in draw.slot_centres(2, size[0])]
    offline_video.render_clip(
        still, clip, width=size[0], height=size[1], duration_s=2, camera=card.camera, drift_degrees=0, tone_hz=300,
        caption=card, tag_xs=tag_xs,
    )  # fmt: skip
    early, late = middle_frame(clip, 0.5), middle_frame(clip, 1.5)
    other = captions.Card(9, "A Different Title Here", names=("Ember", "Sage"))
    for frame in (early, late):
        assert title_match(frame, card) > 0.9 and title_match(frame, other) < title_match(frame, card) - 0.15
        for name in card.names:
            score, _ = best_tag_match(frame, name)
            assert score > 0.85, name
        assert best_tag_match(frame, "Zed")[0] < 0.7  # a name nobody has is not there
    # the subtitle row shows each line while it is said, and only then
    sub_top = captions.Layout(*size).subtitle_top
    row = (0, sub_top, size[0], size[1])

    def shows(frame: Image.Image, line: captions.TimedLine) -> float:
        expected = Image.new("RGB", size, captions.BAND_FILL[:3])
        strip = captions.draw_subtitle(line, size)
        expected.paste(strip, (0, sub_top), strip)
        return correlation(frame.crop(row), expected.crop(row))

    assert shows(early, lines[0]) > 0.8 > shows(early, lines[1]) + 0.3
    assert shows(late, lines[1]) > 0.8 > shows(late, lines[0]) + 0.3


@pytest.mark.unit
def test_timed_lines_are_placed_in_order_within_the_clip():
    lines = captions.timed_lines(
        [{"speaker": "A", "line": "one two three"}, {"speaker": "B", "line": "four"}], 6.0, "Once."
    )
    assert [ln.speaker for ln in lines] == [None, "A", "B"]
    assert lines[0].start_s >= 0.2 and lines[-1].end_s <= 6.0
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(lines))
    assert lines[1].end_s - lines[1].start_s > lines[2].end_s - lines[2].start_s  # longer lines stay longer
    given = captions.timed_lines([{"speaker": "A", "text": "hi", "start_s": 1.0, "end_s": 2.5}], 6.0)
    assert (given[0].start_s, given[0].end_s, given[0].caption) == (1.0, 2.5, "A: hi")


@pytest.mark.unit
def test_caption_text_is_cut_to_fit_and_never_boxes():
    long = "the owl " * 40
    lines = captions.wrap(long, 12, 300, 2)
    assert len(lines) == 2 and lines[-1].endswith("...")
    assert all(captions.text_width(line, 12) <= 300 for line in lines)
    assert captions.printable("Ember — the fox…", 14) == "Ember - the fox..."
    assert captions.printable("星", 14) in ("星", "?")


@pytest.mark.integration
def test_the_band_is_neutral_so_drift_and_its_estimate_ignore_it(tmp_path):
    """Drift is applied under the band and measured from colour: the band must neither
    take part in the drift nor hide it from the estimate."""
    size = media.dimensions("16:9", "720p")
    still = tmp_path / "kf.jpg"
    media.save_jpeg(draw.compose(size, "meadow", "day", "", [draw.draw_figure("Ember", EMBER, 200)]), still)
    card = captions.Card(1, "A Title", "an action line", "static", ("Ember",))
    clip = tmp_path / "drift.mp4"
    offline_video.render_clip(
        still, clip, width=size[0], height=size[1], duration_s=2, camera="static", drift_degrees=60, tone_hz=300,
        caption=card, tag_xs=[0.5],
    )  # fmt: skip
    assert offline_video.estimate_drift(clip) == pytest.approx(60, abs=8)
    for colour in (
        captions.TITLE_FILL,
        captions.SUBTITLE_FILL,
        captions.TAG_FILL,
        captions.BAND_FILL,
        captions.CAMERA_FILL,
    ):
        assert max(colour[:3]) - min(colour[:3]) <= 2, colour


# ─── features from the right words ───────────────────────────────────────────


@pytest.mark.unit
@pytest.mark.parametrize(
    ("description", "subject", "ears", "tail", "mask"),
    [
        ("A shy boy of ten with a fox keyring on his backpack", "boy", None, None, False),
        ("A girl holding a picture of an owl", "girl", None, None, False),
        ("A girl in a fox-print hoodie", "girl", None, None, False),
        ("A chubby grey raccoon in a green vest", "raccoon", "round", "ringed", True),
        ("A young red fox with a bushy tail", "fox", "pointed", "bushy", False),
        ("An elderly great horned owl with ear tufts", "owl", "tufts", None, False),
        ("A barn owl with a white heart-shaped face", "owl", None, None, False),
        ("A brown dog with floppy ears and no tail", "dog", "floppy", None, False),
        ("A girl with pointed ears and a red cap", "girl", "pointed", None, False),
    ],
)
def test_features_come_from_what_the_character_is(description, subject, ears, tail, mask):
    body = figures.anatomy(description)
    assert (body.subject, body.ears, body.tail, body.mask) == (subject, ears, tail, mask)


@pytest.mark.unit
def test_colours_paint_the_part_they_name():
    palette = figures.part_palette("Milo", "A shy boy with a teal hoodie, a fox keyring and blue jeans", (0, 0, 0))
    assert palette.body == (0, 128, 128)  # the hoodie, not the face
    assert palette.head in figures.SKIN_TONES and palette.legs == (40, 80, 200)
    fox = figures.part_palette("Ember", EMBER, (0, 0, 0))
    assert fox.neck is not None and fox.neck[1] > fox.neck[0]  # the emerald scarf, at the neck
    assert fox.body[0] > 150 and fox.body[2] < 60  # burnt orange fur


@pytest.mark.unit
def test_figures_show_their_features():
    def coloured(img: Image.Image, box, test) -> int:
        crop = img.crop(tuple(round(v) for v in box))
        return sum(1 for p in segment.pixels(crop) if p[3] > 128 and test(p))

    boy = draw.draw_figure("Milo", "A shy boy with a fox keyring and a yellow raincoat", 300)
    raccoon = draw.draw_figure("Rocky", "A grey raccoon", 300)
    w, h = raccoon.size
    above_head = (0, 0, boy.width, boy.height * 0.07)
    assert coloured(boy, above_head, lambda p: True) == 0  # a keyring gives no ears
    assert coloured(raccoon, (0, 0, w, h * 0.07), lambda p: True) > 0  # round ears
    dark = lambda p: max(p[:3]) < 70  # noqa: E731
    assert coloured(raccoon, (0.3 * w, 0.21 * h, 0.7 * w, 0.29 * h), dark) > 0.4 * (0.4 * w * 0.08 * h)  # the mask
    tail = (0.75 * w, 0.75 * h, w, 0.95 * h)
    assert coloured(raccoon, tail, dark) > 0 and coloured(raccoon, tail, lambda p: not dark(p)) > 0  # ringed
    assert coloured(boy, tail, lambda p: True) < coloured(raccoon, tail, lambda p: True) / 4


# ─── shots and props ─────────────────────────────────────────────────────────


@pytest.mark.unit
def test_camera_words_pick_the_shot():
    name = lambda camera: shots.shot_from_camera(camera).name  # noqa: E731
    assert name("wide shot, slow dolly forward") == "wide"
    assert name("medium shot, slow pan right") == "medium"
    assert name("close-up, slow push in") == "close-up"
    assert name("medium close-up") == "medium close-up"
    assert name("extreme wide establishing shot") == "extreme wide"
    assert name("slow pan") == "full"
    low, high = shots.shot_from_camera("low angle wide shot"), shots.shot_from_camera("high angle wide shot")
    assert low.horizon > shots.shot_from_camera("wide shot").horizon > high.horizon and low.height > high.height


def keyframe(backend, tmp_path, sheets, camera, action="", name="kf"):
    dest = tmp_path / f"{name}.jpg"
    backend.edit_image(
        ImageRequest(
            prompt="compose", model="m", aspect_ratio="16:9", resolution="720p", dest=dest,
            references=(sheets["Ember"], sheets["Sage"]), hints=scene_hints(camera, action),
        )
    )  # fmt: skip
    return dest


def scene_hints(camera: str, action: str = "") -> dict:
    return {
        "step": "keyframe", "scene_id": 1, "setting": "autumn forest at dusk", "mood": "warm amber", "palette": "amber",
        "camera": camera, "action": action, "characters": {"Ember": EMBER, "Sage": SAGE}, "attempt": 1,
        "slots": [{"kind": "character", "name": "Ember"}, {"kind": "character", "name": "Sage"}], "text_only": [],
    }  # fmt: skip


@pytest.fixture(scope="module")
def sheets(tmp_path_factory) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(media.RENDER_SCALE_ENV, "0.5")
        folder = tmp_path_factory.mktemp("sheets")
        out = {}
        for name, description in (("Ember", EMBER), ("Sage", SAGE)):
            out[name] = folder / f"{name}.jpg"
            media.save_jpeg(draw.draw_sheet(name, description, media.dimensions("16:9", "720p")), out[name])
        return out


def judged(backend, image, sheets, camera, action="", kind="keyframe"):
    return backend.judge(
        JudgeRequest(
            kind=kind, prompt="check", model="v", image=image, references=(sheets["Ember"], sheets["Sage"]),
            names=("Ember", "Sage"), hints={**scene_hints(camera, action), "step": f"check_{kind}"},
        )
    )[0]  # fmt: skip


def figure_heights(image: Path) -> list[int]:
    with Image.open(image) as im:
        region, _ = framing.analysis_region(im.convert("RGB"), "keyframe")
    copy = judge.analysis_copy(region)
    mask = segment.foreground_mask(copy)
    out = []
    for i in range(2):
        box = judge.strip_box(i, 2, copy.size)
        extent = framing.figure_extent(mask.crop(box))
        out.append(extent[3] - extent[1])
    return out


@pytest.mark.unit
def test_shot_size_follows_the_camera_and_the_judge_still_reads_it(tmp_path, sheets):
    backend = OfflineBackend()
    heights = {}
    for camera in ("wide shot", "medium shot", "close-up"):
        for attempt in range(1, 8):  # the first draw without a simulated error
            hints = {**scene_hints(camera), "attempt": attempt}
            dest = tmp_path / f"{camera}_{attempt}.jpg"
            backend.edit_image(
                ImageRequest(prompt="c", model="m", aspect_ratio="16:9", resolution="720p", dest=dest,
                             references=(sheets["Ember"], sheets["Sage"]), hints=hints)
            )  # fmt: skip
            score = judged(backend, dest, sheets, camera)
            if score.overall_score >= 0.8:
                break
        else:
            pytest.fail(f"no {camera} draw passed the check")
        heights[camera] = figure_heights(dest)
        # a close-up's figures are cut by the band: the judge compares what shows
        assert score.overall_score >= 0.8, (camera, score)
    assert heights["wide shot"][0] * 1.4 < heights["medium shot"][0] <= heights["close-up"][0] * 1.05
    # a close-up shows heads large: the figure's top part is most of the picture's height
    with Image.open(tmp_path / "close-up_1.jpg") as im:
        top, bottom = captions.picture_rows(im.height)
    assert heights["close-up"][0] > 0.6 * (bottom - top) * judge.ANALYSIS_WIDTH / im.width


def compose_from_sheets(sheets, dest: Path, camera: str, action: str = "", hue: dict | None = None) -> Path:
    """A keyframe as the backend composes one, without a simulated model error (or with
    the hue rotations given per name)."""
    size = media.dimensions("16:9", "720p")
    hints = scene_hints(camera, action)
    scene = framing.scene_framing(size, hints, ["Ember", "Sage"])
    figs = []
    for name, sheet in sheets.items():
        with Image.open(sheet) as im:
            figs.append(draw.hue_rotate(segment.extract_figure(im), (hue or {}).get(name, 0)))
    picture = draw.compose(
        size, hints["setting"], hints["mood"], hints["palette"], figs, shot=scene.shot, prop_boxes=scene.prop_boxes
    )
    return media.save_jpeg(picture, dest)


@pytest.mark.unit
def test_a_prop_named_in_the_action_is_drawn_labelled_and_left_out_of_the_check(tmp_path, sheets):
    found = props.props_in("the fox lowers its head to the crystal as the owl raises a red lantern", exclude=("Ember",))
    assert [p.name for p in found] == ["crystal", "lantern"] and found[1].colour == (200, 40, 40)
    assert props.props_in("the sun rose as they stick together") == []
    action = "the fox lowers its head to the crystal"
    for camera in ("medium shot", "wide shot"):
        plain = compose_from_sheets(sheets, tmp_path / f"plain {camera}.jpg", camera)
        with_prop = compose_from_sheets(sheets, tmp_path / f"prop {camera}.jpg", camera, action)
        scene = framing.scene_framing(media.dimensions("16:9", "720p"), scene_hints(camera, action), ["Ember", "Sage"])
        (pb,) = scene.prop_boxes
        a, b = Image.open(plain).convert("RGB"), Image.open(with_prop).convert("RGB")
        assert ImageStat.Stat(ImageChops.difference(a.crop(pb.shape), b.crop(pb.shape))).mean[0] > 20  # drawn
        label_alone = Image.new("RGB", b.size, (250, 248, 240))
        props.draw(label_alone, [pb])
        assert correlation(b.crop(pb.label), label_alone.crop(pb.label)) > 0.8  # its label reads "crystal"
        # no prop box covers a figure's pixels, and the figures score the same with it
        assert segment.foreground_mask(a).crop(pb.box).getbbox() is None
        backend = OfflineBackend()
        s_plain = judged(backend, plain, sheets, camera)
        s_prop = judged(backend, with_prop, sheets, camera, action)
        assert s_plain.overall_score >= 0.8, s_plain
        for name in ("Ember", "Sage"):
            assert s_prop.per_character[name] == pytest.approx(s_plain.per_character[name], abs=0.03)


@pytest.mark.unit
def test_a_hue_error_in_a_close_up_is_still_caught(tmp_path, sheets):
    """The cut-figure comparison must not excuse a wrong colour."""
    backend = OfflineBackend()
    right = compose_from_sheets(sheets, tmp_path / "right.jpg", "close-up")
    wrong = compose_from_sheets(sheets, tmp_path / "wrong.jpg", "close-up", hue={"Ember": 70})
    good, bad = judged(backend, right, sheets, "close-up"), judged(backend, wrong, sheets, "close-up")
    assert good.overall_score >= 0.85, good
    assert bad.per_character["Ember"] < 0.7 and bad.per_character["Sage"] == pytest.approx(
        good.per_character["Sage"], abs=0.02
    )
    assert any(i.startswith("Ember: colours off") for i in bad.issues)


# ─── the demo, end to end ────────────────────────────────────────────────────


def scene_middles(story) -> list[float]:
    """The middle of each scene in the assembled video (a crossfade overlaps 0.5 s)."""
    starts, t = [], 0.0
    for i, scene in enumerate(story.scenes):
        if i and scene.transition == "crossfade":
            t -= CROSSFADE_S
        starts.append(t)
        t += scene.duration_seconds
    return [s + scene.duration_seconds / 2 for s, scene in zip(starts, story.scenes, strict=True)]


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_video_shows_each_scenes_title_and_names(tmp_path, prefect_harness):
    result = run_build(
        BuildOptions(story=ROOT / "stories" / "fox_and_owl.yaml", backend="offline", out_dir=tmp_path / "out",
                     cache_dir=tmp_path / "cache")
    )  # fmt: skip
    assert result.status == "built", result.message
    story = load_story(ROOT / "stories" / "fox_and_owl.yaml").story
    video = tmp_path / "out" / "final_video.mp4"
    names_seen = set()
    for scene, t in zip(story.scenes, scene_middles(story), strict=True):
        frame = middle_frame(video, t)
        frame.save(tmp_path / f"scene_{scene.scene_id}_middle.png")
        card = captions.Card(scene.scene_id, scene.title, names=tuple(scene.characters_present))
        others = [captions.Card(s.scene_id, s.title) for s in story.scenes if s is not scene]
        mine = title_match(frame, card)
        assert mine > 0.9, (scene.scene_id, mine)
        assert all(mine > title_match(frame, other) + 0.15 for other in others)
        for name in scene.characters_present:
            score, _ = best_tag_match(frame, name)
            assert score > 0.85, (scene.scene_id, name, score)
            names_seen.add(name)
    assert names_seen == {c.name for c in story.characters}
    assert math.isclose(probe(video).duration_s, 23.0, abs_tol=0.1)
