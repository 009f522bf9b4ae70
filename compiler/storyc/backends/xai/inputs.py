"""Local inputs (reference photos, extracted frames, pinned keyframes, clips to edit) sent
inline as data URIs, downscaled or re-encoded when needed to stay under the gRPC message
cap (a request over it fails client side and is never billed, but never succeeds either).
The MIME type of each data URI is the one its bytes sniff as: the service refuses a
mismatch."""

from __future__ import annotations

import base64
import io
import subprocess
import tempfile
from pathlib import Path

from storyc.backends.base import BackendError
from storyc.backends.download import sniff_kind

MIB = 1 << 20
MAX_INLINE_IMAGE_BYTES = 6 * MIB  # raw bytes of one inline image (chat images: 10 MiB max)
MAX_INLINE_VIDEO_BYTES = 12 * MIB  # raw bytes of a clip to edit (base64: ~16 MiB)


def inline_image(path: Path, max_bytes: int = MAX_INLINE_IMAGE_BYTES, *, step: str = "") -> str:
    """A local image as a data URI: JPEG/PNG as is when small enough, else re-encoded as a
    downscaled JPEG (Pillow, imported only then) until it fits `max_bytes`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackendError(f"{step}: cannot read input image {path}: {exc.strerror or exc}") from None
    kind = sniff_kind(data[:16])
    if kind in ("jpeg", "png") and len(data) <= max_bytes:
        return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
    try:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except Exception as exc:  # Pillow raises many types for bad files
        raise BackendError(f"{step}: input image {path} is not a readable picture ({exc})") from None
    side, quality = min(max(picture.size), 2048), 90
    while True:
        copy = picture.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes or side <= 256:
            return f"data:image/jpeg;base64,{base64.b64encode(out.getvalue()).decode('ascii')}"
        side, quality = int(side * 0.75), max(70, quality - 5)


def probe_duration(path: Path) -> float | None:
    """A clip's duration in seconds (PyAV, imported only here), None if unknown."""
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
    except Exception:
        return None
    return None


def inline_video(path: Path, max_bytes: int = MAX_INLINE_VIDEO_BYTES, *, step: str = "") -> str:
    """A local MP4 as a data URI, re-encoded smaller (ffmpeg) when over `max_bytes`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackendError(f"{step}: cannot read input video {path}: {exc.strerror or exc}") from None
    if sniff_kind(data[:16]) != "mp4":
        raise BackendError(f"{step}: input video {path} is not an MP4 file")
    if len(data) > max_bytes:
        import imageio_ffmpeg

        with tempfile.TemporaryDirectory(prefix="storyc-edit-") as tmp:
            smaller = Path(tmp) / "input.mp4"
            proc = subprocess.run(
                [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(path),
                    "-vf",
                    "scale='min(1280,iw)':-2",
                    "-c:v",
                    "libx264",
                    "-crf",
                    "28",
                    "-preset",
                    "veryfast",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "96k",
                    "-movflags",
                    "+faststart",
                    str(smaller),
                ],
                capture_output=True,
            )
            data = smaller.read_bytes() if proc.returncode == 0 and smaller.exists() else data
        if len(data) > max_bytes:
            raise BackendError(f"{step}: input video {path} is too large to send ({len(data)} bytes)")
    return f"data:video/mp4;base64,{base64.b64encode(data).decode('ascii')}"
