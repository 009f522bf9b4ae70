"""PyAV: a video's facts (size, duration, streams) and its first or last frame.

PyAV is imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from storyc.media import ffmpeg
from storyc.media.ffmpeg import MediaError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream
    from PIL import Image


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration_s: float
    fps: float
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None


def _open(path: Path | str) -> InputContainer:
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


def _decoded_frames(container: InputContainer, stream: VideoStream) -> Iterator[VideoFrame]:
    try:
        yield from container.decode(stream)
    except Exception as exc:  # av.error.* on a corrupt file
        raise MediaError(f"cannot decode video: {exc}") from None


def _rgb(frame: VideoFrame) -> Image.Image:
    image: Image.Image = frame.to_image()  # PyAV's stub leaves to_image unannotated
    return image.convert("RGB")


def read_frame(video: Path | str, which: Literal["first", "last"] = "first") -> Image.Image:
    """The first or last decoded frame of `video` as a PIL RGB image."""
    with _open(video) as container:
        stream = next(iter(container.streams.video), None)
        if stream is None:
            raise MediaError(f"{Path(video).name} has no video stream")
        stream.thread_type = "NONE"  # deterministic and cheap for a handful of frames
        if which == "first":
            for frame in _decoded_frames(container, stream):
                return _rgb(frame)
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
        return _rgb(last)


def extract_frame(video: Path | str, dest: Path | str, which: Literal["first", "last"] = "first") -> Path:
    """Decode the first or last frame of `video` and write it to `dest` as a JPEG, atomically."""
    if which not in ("first", "last"):
        raise ValueError(f"which must be 'first' or 'last', not {which!r}")
    return ffmpeg.save_jpeg(read_frame(video, which), dest)


def audio_duration(path: Path | str) -> float:
    """The length in seconds of the first audio stream of `path` (any format ffmpeg reads),
    from its decoded samples: exact, whatever the container's header says."""
    with _open(path) as container:
        stream = next(iter(container.streams.audio), None)
        if stream is None:
            raise MediaError(f"{Path(path).name} has no audio stream")
        samples = rate = 0
        try:
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
        except Exception as exc:  # av.error.* on a corrupt file
            raise MediaError(f"cannot decode {Path(path).name}: {exc}") from None
        if not rate:
            raise MediaError(f"{Path(path).name} has no audio samples")
        return round(samples / rate, 6)
