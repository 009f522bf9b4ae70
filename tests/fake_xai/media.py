"""Real, tiny media for the fake xAI service: JPEGs drawn with Pillow, MP4s encoded by
the imageio-ffmpeg wheel's ffmpeg (H.264 + AAC, so downstream probing, frame
extraction and assembly see what the real API returns)."""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
from pathlib import Path

_RATIOS = {"1:1": (1, 1), "16:9": (16, 9), "9:16": (9, 16), "4:3": (4, 3), "3:4": (3, 4), "3:2": (3, 2), "2:3": (2, 3)}


def frame_size(aspect_ratio: str, long_side: int) -> tuple[int, int]:
    """Even (width, height) for `aspect_ratio` with the long side `long_side` px."""
    w, h = _RATIOS.get(aspect_ratio, (16, 9))
    if w >= h:
        width, height = long_side, round(long_side * h / w)
    else:
        width, height = round(long_side * w / h), long_side
    return width - width % 2, height - height % 2


def make_jpeg(aspect_ratio: str = "16:9", seed: int = 0, long_side: int = 192) -> bytes:
    from PIL import Image, ImageDraw

    size = frame_size(aspect_ratio, long_side)
    hue = (seed * 47) % 255
    img = Image.new("RGB", size, (hue, 120, 255 - hue))
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w // 4, h // 4, w // 2, h * 3 // 4), fill=(255 - hue, 200, hue))
    draw.rectangle((w // 2, h // 3, w * 4 // 5, h * 5 // 6), fill=(30, (seed * 13) % 255, 90))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=64)
def make_mp4(duration_s: float, aspect_ratio: str = "16:9", long_side: int = 128, seed: int = 0) -> bytes:
    """An H.264/AAC clip of exactly `duration_s` seconds, its hue turned by `seed` (so
    different requests give different clips, the same request the same bytes; cached:
    encoding costs ~0.1 s)."""
    w, h = frame_size(aspect_ratio, long_side)
    with tempfile.TemporaryDirectory(prefix="fake-xai-") as tmp:
        out = Path(tmp) / "clip.mp4"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=s={w}x{h}:r=12:d={duration_s},hue=h={seed % 360}",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=44100:duration={duration_s}",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "32k",
                "-shortest",
                "-movflags",
                "+faststart",
                "-fflags",
                "+bitexact",
                "-map_metadata",
                "-1",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def probe_duration(data: bytes) -> float | None:
    """Duration of an MP4 given as bytes (PyAV), None if unreadable."""
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            if container.duration:
                return container.duration / 1_000_000
            stream = container.streams.video[0]
            return float(stream.duration * stream.time_base) if stream.duration else None
    except Exception:
        return None


def probe_height(data: bytes) -> int | None:
    """Frame height of an MP4 given as bytes (PyAV), None if unreadable."""
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            return container.streams.video[0].height
    except Exception:
        return None
