"""ffmpeg and storyc's fixed output settings: frame sizes, the ffmpeg runner, the
deterministic encoder arguments and JPEG writing (same inputs → same bytes anywhere).

No Prefect here, and PyAV / Pillow / imageio_ffmpeg are imported inside the functions
that need them, so `storyc lint` never pays for them. Probing and frames are in
media/probe.py, the one-pass assembly in media/assemble.py.

Internal test and benchmark override (users preview with `storyc build --draft`):
`STORYC_RENDER_SCALE` (e.g. `0.25`) multiplies every size that `dimensions()` returns
(rounded to even numbers, as H.264 with yuv420p needs), so tests and benchmarks render tiny
clips through exactly the same code paths. The offline backend and the assembly both size
through `dimensions()`, so the scale is applied consistently everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from storyc.store.fsutil import atomic_output

if TYPE_CHECKING:
    from PIL import Image

FPS = 24
AUDIO_RATE = 44100
# Fixed encoder settings: the same inputs give the same bytes on any machine.
X264_PRESET = "veryfast"
# `storyc build --draft`: about a third less encoding work for the final video, somewhat larger files
X264_DRAFT_PRESET = "ultrafast"
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

# Short side 1080, 720 or 480; the long side follows the aspect ratio (seed: 16:9 720p → 1280×720).
_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "1080p": {
        "16:9": (1920, 1080),
        "9:16": (1080, 1920),
        "1:1": (1080, 1080),
        "4:3": (1440, 1080),
        "3:4": (1080, 1440),
        "3:2": (1620, 1080),
        "2:3": (1080, 1620),
    },
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
    """The test/benchmark scale from STORYC_RENDER_SCALE (default 1.0)."""
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


def even(value: float) -> int:
    """The nearest even number, at least 2 (H.264 with yuv420p needs even sizes)."""
    return max(2, round(value / 2.0) * 2)


def dimensions(aspect_ratio: str, resolution: str, *, scale: float | None = None) -> tuple[int, int]:
    """Frame size in pixels for an aspect ratio and a resolution, times the render scale."""
    try:
        width, height = _SIZES[resolution][aspect_ratio]
    except KeyError:
        raise MediaError(f"unsupported size {aspect_ratio} {resolution}") from None
    factor = render_scale() if scale is None else scale
    if factor == 1.0:
        return width, height
    return even(width * factor), even(height * factor)


# ─── ffmpeg ──────────────────────────────────────────────────────────────────


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    exe: str = imageio_ffmpeg.get_ffmpeg_exe()  # imageio_ffmpeg has no types
    return exe


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


def encoder_args(fps: int = FPS, *, draft: bool = False) -> list[str]:
    """The output encoder settings shared by every video storyc writes (`draft`: the fast
    preset of `storyc build --draft`; still deterministic)."""
    return [
        "-c:v",
        "libx264",
        "-preset",
        X264_DRAFT_PRESET if draft else X264_PRESET,
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


def fmt_seconds(seconds: float) -> str:
    """Seconds for a filter argument: 6 decimals at most, no trailing zeros."""
    return f"{seconds:.6f}".rstrip("0").rstrip(".") or "0"


def save_jpeg(image: Image.Image, dest: Path | str) -> Path:
    """Write a PIL image as a JPEG atomically: fixed quality, no EXIF, no timestamps
    (Pillow writes neither unless asked), so same pixels → same bytes."""
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        image.convert("RGB").save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return dest
