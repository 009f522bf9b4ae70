"""ffmpeg and PyAV: sizes, probing, frame extraction and the one-pass assembly.

No Prefect here, and PyAV / Pillow / imageio_ffmpeg are imported inside the functions
that need them, so `storyc lint` never pays for them.

Test and preview override: `STORYC_RENDER_SCALE` (e.g. `0.25`) multiplies every size
that `dimensions()` returns (rounded to even numbers, as H.264 with yuv420p needs), so
tests and benchmarks render tiny clips through exactly the same code paths. The offline
backend and the assembly both size through `dimensions()`, so the scale is applied
consistently everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from storyc.store.cache import new_file_mode

FPS = 24
CROSSFADE_S = 0.5
AUDIO_RATE = 44100
# Fixed encoder settings: the same inputs give the same bytes on any machine.
X264_PRESET = "veryfast"
X264_CRF = "20"
ENCODER_THREADS = "2"
AAC_BITRATE = "128k"
# Metadata and flags that keep timestamps, encoder version strings and other
# run-dependent bits out of the container.
DETERMINISTIC_OUTPUT_FLAGS = (
    "-map_metadata",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-flags:a",
    "+bitexact",
)
JPEG_QUALITY = 90

RENDER_SCALE_ENV = "STORYC_RENDER_SCALE"

# Short side 720 or 480; the long side follows the aspect ratio (seed: 16:9 720p → 1280×720).
_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "720p": {
        "16:9": (1280, 720),
        "9:16": (720, 1280),
        "1:1": (720, 720),
        "4:3": (960, 720),
        "3:4": (720, 960),
        "3:2": (1080, 720),
        "2:3": (720, 1080),
    },
    "480p": {
        "16:9": (854, 480),
        "9:16": (480, 854),
        "1:1": (480, 480),
        "4:3": (640, 480),
        "3:4": (480, 640),
        "3:2": (720, 480),
        "2:3": (480, 720),
    },
}


class MediaError(Exception):
    """ffmpeg or decoding failed. The message is for users: what failed and ffmpeg's last
    words, never a Python traceback."""


# ─── sizes ───────────────────────────────────────────────────────────────────


def render_scale() -> float:
    """The test/preview scale from STORYC_RENDER_SCALE (default 1.0)."""
    raw = os.environ.get(RENDER_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise MediaError(f"{RENDER_SCALE_ENV}={raw!r} is not a number (expected e.g. 0.25)") from None
    if not 0.01 <= value <= 4.0:
        raise MediaError(f"{RENDER_SCALE_ENV}={raw!r} is out of range (0.01 to 4)")
    return value


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def dimensions(aspect_ratio: str, resolution: str, *, scale: float | None = None) -> tuple[int, int]:
    """Frame size in pixels for an aspect ratio and a resolution, times the render scale."""
    try:
        width, height = _SIZES[resolution][aspect_ratio]
    except KeyError:
        raise MediaError(f"unsupported size {aspect_ratio} {resolution}") from None
    factor = render_scale() if scale is None else scale
    if factor == 1.0:
        return width, height
    return _even(width * factor), _even(height * factor)


# ─── ffmpeg ──────────────────────────────────────────────────────────────────


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_FOLLOW_UP = re.compile(
    r"Terminating thread|Task finished with error|Could not open encoder before EOF|Nothing was written|"
    r"Error reinitializing filters|Failed to configure output pad"
)


def run_ffmpeg(argv: Sequence[str], *, what: str = "ffmpeg") -> None:
    """Run ffmpeg with `argv` (the arguments after the executable): no shell, stdin
    closed, stderr captured. Raises MediaError with ffmpeg's last stderr lines."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *argv]
    try:
        # Own session: a terminal's Ctrl-C (sent to the whole process group) must not kill a
        # render in flight; storyc finishes and records it, then stops (exit 130).
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        raise MediaError(f"{what}: cannot run ffmpeg ({exc.strerror})") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        # ffmpeg ends a failure with generic follow-up lines; the cause comes before them
        causes = [line for line in lines if not _FOLLOW_UP.search(line)] or lines
        detail = "; ".join(causes[-3:]) or f"exit code {proc.returncode}"
        raise MediaError(f"{what} failed: {detail}")


def temp_path_for(dest: Path, suffix: str | None = None) -> Path:
    """A fresh temp file name in dest's folder (same filesystem, so os.replace is atomic).
    The name keeps dest's extension, so ffmpeg can still tell the format."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f"{TEMP_MARK}{suffix or dest.suffix}", dir=dest.parent)
    try:
        os.fchmod(fd, new_file_mode())  # ffmpeg and Pillow write into it: it becomes the output
    finally:
        os.close(fd)
    return Path(name)


TEMP_MARK = ".tmp"


def remove_stale_temps(folder: Path | str) -> int:
    """Delete temp files that a killed process left behind (names made by
    temp_path_for: `.<dest name>.<random>.tmp<ext>`), under `folder`. Call it only while
    holding the build lock. Returns how many were removed."""
    removed = 0
    for path in Path(folder).rglob(".*"):
        if path.is_file() and TEMP_MARK in path.name[1:]:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


class atomic_output:
    """`with atomic_output(dest) as tmp:` write tmp; on success it replaces dest, on any
    error it is removed, so dest is either absent/old or complete."""

    def __init__(self, dest: Path | str):
        self.dest = Path(dest)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.tmp = temp_path_for(self.dest)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.dest)
        else:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass


def save_jpeg(image, dest: Path | str) -> Path:
    """Write a PIL image as a JPEG atomically: fixed quality, no EXIF, no timestamps
    (Pillow writes neither unless asked), so same pixels → same bytes."""
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        image.convert("RGB").save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return dest


# ─── probing and frames (PyAV) ───────────────────────────────────────────────


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration_s: float
    fps: float
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None


def _open(path: Path | str):
    import av

    try:
        return av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:  # missing, unreadable or not a media file
        raise MediaError(f"cannot read {Path(path).name}: {exc}") from None


def probe(path: Path | str) -> VideoInfo:
    with _open(path) as container:
        video = next(iter(container.streams.video), None)
        audio = next(iter(container.streams.audio), None)
        if video is None:
            raise MediaError(f"{Path(path).name} has no video stream")
        duration = 0.0
        if video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = video.average_rate or video.base_rate
        return VideoInfo(
            width=video.codec_context.width,
            height=video.codec_context.height,
            duration_s=round(duration, 6),
            fps=float(rate) if rate else 0.0,
            has_audio=audio is not None,
            video_codec=video.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


def _decoded_frames(container, stream) -> Iterator:
    try:
        yield from container.decode(stream)
    except Exception as exc:  # av.error.* on a corrupt file
        raise MediaError(f"cannot decode video: {exc}") from None


def read_frame(video: Path | str, which: Literal["first", "last"] = "first"):
    """The first or last decoded frame of `video` as a PIL RGB image."""
    with _open(video) as container:
        stream = next(iter(container.streams.video), None)
        if stream is None:
            raise MediaError(f"{Path(video).name} has no video stream")
        stream.thread_type = "NONE"  # deterministic and cheap for a handful of frames
        if which == "first":
            for frame in _decoded_frames(container, stream):
                return frame.to_image().convert("RGB")
            raise MediaError(f"{Path(video).name} has no frames")
        # last: seek about a second before the end, then decode to the very last frame
        last = None
        if stream.duration and stream.time_base:
            target = max(0, int(stream.duration - 1.0 / stream.time_base))
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except Exception:
                container.seek(0)
        for frame in _decoded_frames(container, stream):
            last = frame
        if last is None:  # the seek overshot: decode from the start
            container.seek(0)
            for frame in _decoded_frames(container, stream):
                last = frame
        if last is None:
            raise MediaError(f"{Path(video).name} has no frames")
        return last.to_image().convert("RGB")


def extract_frame(video: Path | str, dest: Path | str, which: Literal["first", "last"] = "first") -> Path:
    """Decode the first or last frame of `video` and write it to `dest` as a JPEG, atomically."""
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', not {which!r}")
    return save_jpeg(read_frame(video, which), dest)


# ─── assembly ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Clip:
    path: Path
    duration_s: float
    transition_in: str = "cut"  # cut | crossfade | match-cut; ignored on the first clip


def encoder_args(fps: int = FPS) -> list[str]:
    """The output encoder settings shared by every video storyc writes."""
    return [
        "-c:v",
        "libx264",
        "-preset",
        X264_PRESET,
        "-crf",
        X264_CRF,
        "-pix_fmt",
        "yuv420p",
        "-r",
        str(fps),
        "-threads",
        ENCODER_THREADS,
        "-c:a",
        "aac",
        "-b:a",
        AAC_BITRATE,
        "-ar",
        str(AUDIO_RATE),
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        *DETERMINISTIC_OUTPUT_FLAGS,
    ]


def _fmt(seconds: float) -> str:
    return f"{seconds:.6f}".rstrip("0").rstrip(".") or "0"


def normalise_filters(width: int, height: int, fps: int, duration_s: float) -> tuple[str, str]:
    """The video and audio filter chains that bring one clip to the common format and to
    exactly `duration_s` (short clips are padded by holding the last frame / silence)."""
    d = _fmt(duration_s)
    video = (
        f"fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p,"
        f"tpad=stop_mode=clone:stop=-1,trim=duration={d},setpts=PTS-STARTPTS,settb=1/{fps}"
    )
    audio = (
        f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"apad,atrim=duration={d},asetpts=PTS-STARTPTS"
    )
    return video, audio


def build_assembly_graph(
    clips: Sequence[Clip], has_audio: Sequence[bool], width: int, height: int, fps: int = FPS
) -> tuple[str, float]:
    """The filter_complex joining all clips, and the output's duration.

    Consecutive cuts are joined by one concat; a crossfade overlaps the running output
    and the next clip by 0.5 s (xfade at offset = running length - 0.5, acrossfade)."""
    parts: list[str] = []
    fps = int(fps)
    for i, clip in enumerate(clips):
        vf, af = normalise_filters(width, height, fps, clip.duration_s)
        parts.append(f"[{i}:v]{vf}[v{i}]")
        if has_audio[i]:
            parts.append(f"[{i}:a]{af}[a{i}]")
        else:  # silent track so the graph has audio for every clip
            parts.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,{af}[a{i}]")

    counter = 0

    def label(prefix: str) -> str:
        nonlocal counter
        counter += 1
        return f"{prefix}{counter}"

    # pending: labelled segments (video, audio, duration) waiting to be concatenated
    pending: list[tuple[str, str, float]] = [("v0", "a0", clips[0].duration_s)]

    def flush() -> tuple[str, str, float]:
        if len(pending) == 1:
            return pending[0]
        inputs = "".join(f"[{v}][{a}]" for v, a, _ in pending)
        v, a = label("cv"), label("ca")
        c = label("cc")  # concat's output time base differs from xfade's: reset it
        parts.append(f"{inputs}concat=n={len(pending)}:v=1:a=1[{c}][{a}];[{c}]settb=1/{fps}[{v}]")
        return v, a, sum(d for _, _, d in pending)

    for i, clip in enumerate(clips[1:], start=1):
        crossfade = clip.transition_in == "crossfade" and clip.duration_s > CROSSFADE_S and pending[-1][2] > CROSSFADE_S
        if not crossfade:
            pending.append((f"v{i}", f"a{i}", clip.duration_s))
            continue
        v_prev, a_prev, length = flush()
        v, a = label("xv"), label("xa")
        offset = _fmt(length - CROSSFADE_S)
        parts.append(f"[{v_prev}][v{i}]xfade=transition=fade:duration={CROSSFADE_S}:offset={offset}[{v}]")
        parts.append(f"[{a_prev}][a{i}]acrossfade=d={CROSSFADE_S}[{a}]")
        pending[:] = [(v, a, length + clip.duration_s - CROSSFADE_S)]

    v_out, a_out, total = flush()
    parts.append(f"[{v_out}]null[vout]")
    parts.append(f"[{a_out}]anull[aout]")
    return ";".join(parts), total


def assemble(clips: Sequence[Clip], dest: Path | str, width: int, height: int, fps: int = FPS) -> Path:
    """Join `clips` into `dest` with ONE ffmpeg run: every clip normalised (fps, scale
    and pad to width×height, yuv420p, 44.1 kHz stereo) and joined with its transition.
    H.264 + AAC, faststart, no metadata; written to a temp file, then renamed."""
    if not clips:
        raise MediaError("assemble: no clips")
    dest = Path(dest)
    has_audio = [probe(c.path).has_audio for c in clips]
    graph, _ = build_assembly_graph(clips, has_audio, width, height, fps)
    inputs: list[str] = []
    for clip in clips:
        # one decoder thread per input: a dozen multi-threaded decoders only fight the
        # encoder for the cores (decoding is exact either way)
        inputs += ["-threads", "1", "-i", str(clip.path)]
    with atomic_output(dest) as tmp:
        run_ffmpeg(
            # one filter thread: the graph's per-frame work is light, and slice threads
            # only contend with x264's (measured: ~8% faster on 2 cores; same bytes)
            [
                *inputs,
                "-filter_complex_threads",
                "1",
                "-filter_complex",
                graph,
                "-map",
                "[vout]",
                "-map",
                "[aout]",
                *encoder_args(fps),
                "-f",
                "mp4",
                str(tmp),
            ],
            what=f"assembling {dest.name}",
        )
    return dest
