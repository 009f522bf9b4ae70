"""storyc.media: sizes and ffmpeg errors (ffmpeg), PyAV probing and frames (probe), the one-pass assembly (assemble).
Real ffmpeg on tiny clips (160×90 or so, 1 s)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from storyc.media import ffmpeg as media
from storyc.media.assemble import Clip, assemble, build_assembly_graph
from storyc.media.ffmpeg import MediaError
from storyc.media.probe import extract_frame, probe, read_frame


def make_clip(
    dest: Path, seconds: float = 1.0, colour: str = "red", size: str = "160x90", audio: bool = True, rate: int = 30
) -> Path:
    args = ["-f", "lavfi", "-i", f"color=c={colour}:s={size}:r={rate}:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    media.run_ffmpeg([*args, str(dest)])
    return dest


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "red": make_clip(d / "red.mp4", 1.0, "red"),
        "blue_silent": make_clip(d / "blue.mp4", 1.5, "blue", audio=False),
        "green_square": make_clip(d / "green.mp4", 1.0, "green", size="100x100", rate=25),
    }


# ─── sizes ───────────────────────────────────────────────────────────────────


@pytest.mark.unit
@pytest.mark.parametrize(
    "aspect,res,size",
    [
        ("16:9", "720p", (1280, 720)),
        ("9:16", "720p", (720, 1280)),
        ("1:1", "720p", (720, 720)),
        ("4:3", "720p", (960, 720)),
        ("3:4", "720p", (720, 960)),
        ("3:2", "720p", (1080, 720)),
        ("2:3", "720p", (720, 1080)),
        ("16:9", "480p", (854, 480)),
        ("9:16", "480p", (480, 854)),
        ("1:1", "480p", (480, 480)),
        ("4:3", "480p", (640, 480)),
        ("3:2", "480p", (720, 480)),
    ],
)
def test_dimensions_table(monkeypatch, aspect, res, size):
    monkeypatch.delenv(media.RENDER_SCALE_ENV, raising=False)
    assert media.dimensions(aspect, res) == size
    assert all(v % 2 == 0 for v in size)


@pytest.mark.unit
def test_render_scale_env_applies_everywhere_and_stays_even(monkeypatch):
    monkeypatch.setenv(media.RENDER_SCALE_ENV, "0.25")
    assert media.dimensions("16:9", "720p") == (320, 180)
    w, h = media.dimensions("16:9", "480p")
    assert (w % 2, h % 2) == (0, 0) and h == 120
    assert media.dimensions("16:9", "720p", scale=1.0) == (1280, 720)  # explicit scale wins
    monkeypatch.setenv(media.RENDER_SCALE_ENV, "tiny")
    with pytest.raises(MediaError, match="STORYC_RENDER_SCALE"):
        media.dimensions("16:9", "720p")


@pytest.mark.unit
def test_unsupported_size_is_a_media_error():
    with pytest.raises(MediaError, match="unsupported"):
        media.dimensions("5:4", "720p")


# ─── ffmpeg errors ───────────────────────────────────────────────────────────


@pytest.mark.integration
def test_run_ffmpeg_failure_names_the_cause_without_traceback(tmp_path):
    with pytest.raises(MediaError) as info:
        media.run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")], what="reading")
    message = str(info.value)
    assert message.startswith("reading failed:")
    assert "missing.mp4" in message and "Traceback" not in message


# ─── probing and frames ──────────────────────────────────────────────────────


@pytest.mark.integration
def test_probe(clips):
    info = probe(clips["red"])
    assert (info.width, info.height, info.fps, info.has_audio) == (160, 90, 30.0, True)
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert probe(clips["blue_silent"]).has_audio is False


@pytest.mark.integration
def test_probe_of_garbage_is_a_media_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError):
        probe(bad)


@pytest.mark.integration
def test_extract_first_and_last_frame(tmp_path):
    # red for 1 s then blue for 1 s: the first frame is red, the last blue
    src = tmp_path / "two.mp4"
    media.run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x64:r=24:d=1",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=64x64:r=24:d=1",
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(src),
        ]
    )
    from PIL import Image

    first = extract_frame(src, tmp_path / "frames" / "first.jpg", "first")
    last = extract_frame(src, tmp_path / "frames" / "last.jpg", "last")
    r, _g, b = Image.open(first).getpixel((32, 32))
    assert r > 200 and b < 60
    r, _g, b = Image.open(last).getpixel((32, 32))
    assert b > 200 and r < 60
    assert not [p for p in (tmp_path / "frames").iterdir() if p.name.startswith(".")]  # no temp leftovers


# ─── assembly ────────────────────────────────────────────────────────────────


@pytest.mark.unit
def test_graph_offsets_for_mixed_transitions():
    clips = [
        Clip(Path("a"), 3),
        Clip(Path("b"), 3, "crossfade"),
        Clip(Path("c"), 4, "cut"),
        Clip(Path("d"), 3, "crossfade"),
    ]
    graph, total = build_assembly_graph(clips, [True, False, True, True], 320, 180)
    assert total == pytest.approx(3 + 3 - 0.5 + 4 + 3 - 0.5)
    assert "xfade=transition=fade:duration=0.5:offset=2.5" in graph
    assert "xfade=transition=fade:duration=0.5:offset=9" in graph  # (3 + 3 - 0.5 + 4) - 0.5
    assert graph.count("acrossfade=d=0.5") == 2
    assert "concat=n=2:v=1:a=1" in graph  # the cut joins one concat
    assert "anullsrc" in graph  # the silent clip gets a silent track
    assert "force_original_aspect_ratio=decrease" in graph and "setsar=1" in graph


@pytest.mark.integration
def test_assemble_mixed_clips_one_pass(tmp_path, clips):
    seq = [
        Clip(clips["red"], 1.0),
        Clip(clips["blue_silent"], 1.5, "crossfade"),
        Clip(clips["green_square"], 1.0, "cut"),
        Clip(clips["red"], 1.0, "match-cut"),
    ]
    out = assemble(seq, tmp_path / "final.mp4", 160, 90)
    info = probe(out)
    assert (info.width, info.height, info.fps) == (160, 90, 24.0)
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    assert info.duration_s == pytest.approx(1 + 1.5 - 0.5 + 1 + 1, abs=0.05)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart
    assert b"Lavf" not in data and b"creation_time" not in data  # no encoder string / timestamps
    import av

    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.sample_rate == 44100 and audio.codec_context.channels == 2


@pytest.mark.integration
def test_assemble_single_clip_and_letterbox(tmp_path, clips):
    out = assemble([Clip(clips["green_square"], 1.0)], tmp_path / "one.mp4", 160, 90)
    info = probe(out)
    assert (info.width, info.height) == (160, 90) and info.has_audio
    frame = read_frame(out, "first")
    assert frame.getpixel((5, 45))[1] < 40  # pillarbox is black
    assert frame.getpixel((80, 45))[1] > 100  # the green picture in the middle


@pytest.mark.integration
def test_assemble_is_byte_identical(tmp_path, clips):
    seq = [Clip(clips["red"], 1.0), Clip(clips["blue_silent"], 1.5, "crossfade")]
    a = assemble(seq, tmp_path / "a.mp4", 160, 90)
    b = assemble(seq, tmp_path / "b" / "b.mp4", 160, 90)
    assert sha(a) == sha(b)


@pytest.mark.integration
def test_assemble_failure_leaves_nothing(tmp_path, clips):
    dest = tmp_path / "out" / "final.mp4"
    with pytest.raises(MediaError):
        assemble([Clip(clips["red"], 1.0), Clip(tmp_path / "nope.mp4", 1.0)], dest, 160, 90)
    assert not dest.exists()
    assert not list(dest.parent.glob("*")) if dest.parent.exists() else True
    with pytest.raises(MediaError):
        assemble([], dest, 160, 90)


@pytest.mark.integration
def test_media_module_imports_no_heavy_packages():
    code = (
        "import sys, storyc.media.ffmpeg, storyc.media.probe, storyc.media.assemble; "
        "print([m for m in ('av', 'PIL', 'imageio_ffmpeg', 'prefect') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
