"""The offline backend's video maker: a keyframe becomes a clip with ffmpeg, moved as
the camera words say, with a quiet tone for audio (none for a silent clip), (sometimes) a slow colour drift
that the drift check should catch and `correct_drift` should remove, and the caption
band (captions.py, laid over by overlays.py) on top.
"""

from __future__ import annotations

import cmath
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storyc.backends.offline import captions, draw, overlays
from storyc.backends.offline.camera import MAX_ZOOM, PAN_MARGIN, camera_motion
from storyc.backends.offline.segment import pixels
from storyc.media import ffmpeg as media
from storyc.media.assemble import Clip, assemble, assemble_picture
from storyc.media.probe import extract_frame, probe, read_frame
from storyc.store.fsutil import atomic_output

DRIFT_BINS = 72  # 5° chroma-angle bins
# Clips are intermediates (the assembly re-encodes them) and still images in motion: a
# faster x264 preset than the final video's costs little here. A keyframe every second
# keeps reading a clip's last frame (the drift check) to one second of decoding.
CLIP_PRESET = "ultrafast"
CLIP_GOP = str(media.FPS)


def clip_encoder_args() -> list[str]:
    """The shared encoder settings, with the clip preset and a one-second GOP."""
    args = media.encoder_args()
    args[args.index("-preset") + 1] = CLIP_PRESET
    return [*args, "-g", CLIP_GOP]


def motion_parts(motion: str, width: int, height: int, duration_s: float, fps: int = media.FPS) -> tuple[str, str]:
    """The filters that move a still as the camera words say: (what is done once to the
    still, what is done to every frame of the looped still, possibly nothing)."""
    frames = max(1, round(duration_s * fps))
    fit = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1"
    if motion in ("zoom_in", "zoom_out"):
        z = f"1+{MAX_ZOOM}*on/{frames}" if motion == "zoom_in" else f"{1 + MAX_ZOOM}-{MAX_ZOOM}*on/{frames}"
        # upscale first so zoompan's whole-pixel steps don't jitter
        return (
            f"{fit},scale={width * 2}:{height * 2}",
            f"zoompan=z='{z}':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s={width}x{height}:fps={fps}",
        )
    big_w, big_h = media.even(width * PAN_MARGIN), media.even(height * PAN_MARGIN)
    grow = f"{fit},scale={big_w}:{big_h}"
    d = media.fmt_seconds(duration_s)
    if motion == "pan_right":
        return grow, f"crop={width}:{height}:x='(iw-ow)*t/{d}':y='(ih-oh)/2'"
    if motion == "pan_left":
        return grow, f"crop={width}:{height}:x='(iw-ow)*(1-t/{d})':y='(ih-oh)/2'"
    if motion == "drift":
        return grow, f"crop={width}:{height}:x='(iw-ow)*(0.5+0.5*sin(PI*t/{d}))':y='(ih-oh)*(0.5-0.3*sin(PI*t/{d}))'"
    return fit, ""


def motion_filter(motion: str, width: int, height: int, duration_s: float, fps: int = media.FPS) -> str:
    """A filter chain turning a looped still into width×height frames with the motion."""
    return ",".join(p for p in motion_parts(motion, width, height, duration_s, fps) if p)


def clip_caption(hints: Mapping[str, Any], duration_s: float, width: int) -> dict[str, Any]:
    """The caption band of a clip (scene, title, action, camera, timed lines) and its
    name tags under the figures' slots, from the request hints: render_clip's
    `caption` and `tag_xs`."""
    names = draw.figure_layout(hints, list((hints.get("characters") or {}).keys()))
    card = captions.card_from_hints(hints, names, duration_s)
    return {"caption": card, "tag_xs": [x / width for x in draw.slot_centres(len(names), width)] if names else []}


def hue_ramp(degrees: float, duration_s: float) -> str:
    """A hue rotation growing linearly from 0 at the first frame to `degrees` at the end."""
    return f"hue=h='{degrees:.3f}*t/{media.fmt_seconds(duration_s)}'"


def render_clip(
    image: Path,
    dest: Path,
    *,
    width: int,
    height: int,
    duration_s: float,
    camera: str,
    drift_degrees: float,
    tone_hz: int | None,
    caption: captions.Card | None = None,
    tag_xs: Sequence[float] = (),
    last_frame: Path | None = None,
    end_camera: str = "",
) -> None:
    """Encode the still `image` into `dest`: motion, optional drift, a quiet tone (none, and
    no audio stream, when `tone_hz` is None: a silent clip), and the caption band
    (`caption`, name tags at `tag_xs`: keyframe x of each figure, 0..1).

    `last_frame`: the clip dissolves from the moving picture into that frame, reaching it
    exactly on the last frame (a seamless cut), framed as a clip with `end_camera` words
    frames its first frame, so the next clip starts on the very picture this one ends on."""
    motion = camera_motion(camera)
    frames = max(1, round(duration_s * media.FPS))
    # the still is decoded and scaled once, then repeated: only the motion runs per frame
    once, per_frame = motion_parts(motion, width, height, duration_s)
    vf = f"{once},loop=loop={frames - 1}:size=1:start=0,setpts=N/{media.FPS}/TB"
    if per_frame:
        vf += "," + per_frame
    if drift_degrees:
        vf += "," + hue_ramp(drift_degrees, duration_s)
    # square pixels: scaling to even sizes and zoompan leave a sample aspect like 80/81,
    # which players (and the storyboard page) then show squashed
    vf += ",setsar=1"
    d = media.fmt_seconds(duration_s)
    # inputs: the still (0), the tone (1, unless silent), the end frame, the overlays
    sound: list[str] = []
    tone, audio_map = "", []
    if tone_hz is not None:
        sound = ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate={media.AUDIO_RATE}:duration={d}"]
        tone, audio_map = ";[1:a]volume=0.06,aformat=channel_layouts=stereo[a]", ["-map", "[a]"]
    next_input = 1 + (tone_hz is not None)
    picture = f"[0:v]{vf}"
    if last_frame is not None:
        # the end frame: the next clip's first frame (its camera at t=0), held for the clip
        end_once, end_per_frame = motion_parts(camera_motion(end_camera or "static"), width, height, duration_s)
        end = ",".join(p for p in (end_once, end_per_frame) if p)
        ramp = f"min(1,N/{max(1, frames - 1)})"
        picture = (
            f"[0:v]{vf},format=yuv444p[moving];"
            f"[{next_input}:v]{end},setsar=1,format=yuv444p,loop=loop={frames - 1}:size=1:start=0,"
            f"setpts=N/{media.FPS}/TB[end];"
            f"[moving][end]blend=all_expr='A*(1-{ramp})+B*{ramp}'"
        )
        next_input += 1
    with tempfile.TemporaryDirectory(prefix="storyc-captions-") as folder:
        extra: list[str] = []
        if last_frame is not None:
            extra += ["-i", str(last_frame)]
        graph = f"{picture},format=yuv420p[v]"
        if caption is not None:  # laid over after the motion and drift: the text stays put and neutral
            laid = overlays.write(caption, tag_xs, motion, (width, height), duration_s, Path(folder), next_input)
            for path in laid.inputs:
                extra += ["-i", str(path)]
            graph = f"{picture}[pic];{laid.chain};[cap]format=yuv420p[v]"
        with atomic_output(dest) as tmp:
            media.run_ffmpeg(
                [
                    "-i",
                    str(image),
                    *sound,
                    *extra,
                    "-filter_complex",
                    f"{graph}{tone}",
                    "-map",
                    "[v]",
                    *audio_map,
                    "-t",
                    d,
                    *clip_encoder_args(),
                    "-f",
                    "mp4",
                    str(tmp),
                ],
                what=f"rendering {Path(dest).name}",
            )


def extend_clip(
    video: Path,
    dest: Path,
    *,
    seconds: float,
    width: int,
    height: int,
    drift_degrees: float,
    tone_hz: int | None,
    caption: captions.Card | None = None,
    tag_xs: Sequence[float] = (),
) -> None:
    """`video` continued by `seconds` from its last frame (held, as a still camera would,
    with the drift a model's continuation may bring), both parts in `dest`; silent (no
    audio stream) when `tone_hz` is None, as the clip it continues."""
    with tempfile.TemporaryDirectory(prefix="storyc-extend-") as folder:
        last = extract_frame(video, Path(folder) / "last.jpg", "last")
        more = Path(folder) / "more.mp4"
        render_clip(
            last,
            more,
            width=width,
            height=height,
            duration_s=seconds,
            camera="static",
            drift_degrees=drift_degrees,
            tone_hz=tone_hz,
            caption=caption,
            tag_xs=tag_xs,
        )
        join = assemble if tone_hz is not None else assemble_picture
        join([Clip(video, probe(video).duration_s), Clip(more, seconds)], dest, width, height)


def _chroma_histogram(img) -> list[float]:
    """Chroma angle histogram (Cb/Cr plane, where ffmpeg's hue filter rotates), weighted
    by chroma strength; greys don't vote."""
    small = img.convert("RGB").resize((96, max(2, 96 * img.height // img.width))).convert("YCbCr")
    hist = [0.0] * DRIFT_BINS
    for _, cb, cr in pixels(small):
        z = complex(cb - 128, cr - 128)
        strength = abs(z)
        if strength < 6:
            continue
        angle = math.degrees(cmath.phase(z)) % 360
        hist[int(angle / (360 / DRIFT_BINS)) % DRIFT_BINS] += strength
    return hist


def estimate_drift(video: Path) -> float:
    """Degrees of hue rotation of the last frame against the first (signed, like the hue
    filter's h), from the best circular alignment of their chroma-angle histograms."""
    first = _chroma_histogram(read_frame(video, "first"))
    last = _chroma_histogram(read_frame(video, "last"))
    n = DRIFT_BINS
    scores = [sum(first[i] * last[(i + k) % n] for i in range(n)) for k in range(n)]
    best = max(range(n), key=lambda k: (scores[k], -min(k, n - k)))
    left, right = scores[(best - 1) % n], scores[(best + 1) % n]
    denom = left - 2 * scores[best] + right
    frac = 0.5 * (left - right) / denom if denom else 0.0  # parabolic peak refinement
    shift = (best + frac) * 360 / n
    if shift > 180:
        shift -= 360
    # ffmpeg's hue h rotates Cb/Cr the other way round from atan2(Cr, Cb)
    return round(HUE_FILTER_SIGN * shift, 1)


HUE_FILTER_SIGN = 1.0


def correct_drift(video: Path, dest: Path) -> float:
    """Re-encode `video` into `dest` with its measured colour drift ramped back out;
    same duration, size and audio. Returns the drift it removed (degrees)."""
    info = probe(video)
    drift = estimate_drift(video)
    d = media.fmt_seconds(info.duration_s)
    vf = f"{hue_ramp(-drift, info.duration_s)},format=yuv420p" if abs(drift) >= 1 else "format=yuv420p"
    audio = ["-map", "0:a"] if info.has_audio else []
    with atomic_output(dest) as tmp:
        media.run_ffmpeg(
            [
                "-i",
                str(video),
                "-filter_complex",
                f"[0:v]{vf}[v]",
                "-map",
                "[v]",
                *audio,
                "-t",
                d,
                *clip_encoder_args(),
                "-f",
                "mp4",
                str(tmp),
            ],
            what=f"correcting {Path(dest).name}",
        )
    return drift
