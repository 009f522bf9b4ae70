"""The offline camera: which motion the camera words ask for, and where a point of the
keyframe ends up in a clip's frame at time t (the clip renderer moves the picture this
way; the name tags, the keyframe layout and the judge follow the same arithmetic)."""

from __future__ import annotations

import math

MAX_ZOOM = 0.12
PAN_MARGIN = 1.0 + MAX_ZOOM  # the frame is scaled this much so a pan has room to move

_ZOOM_OUT = ("pull back", "pull-back", "pulls back", "zoom out", "zooms out", "dolly out", "dolly back", "pullback")
_ZOOM_IN = ("push in", "push-in", "pushes in", "dolly", "zoom", "close in", "closes in")
_DRIFT = ("orbit", "tracking", "track", "arc", "handheld", "crane", "follow")


def camera_motion(camera: str) -> str:
    """zoom_in | zoom_out | pan_left | pan_right | drift | static, from the camera words."""
    text = camera.lower()
    if any(w in text for w in _ZOOM_OUT):
        return "zoom_out"
    if any(w in text for w in _ZOOM_IN):
        return "zoom_in"
    if "pan left" in text or "pans left" in text:
        return "pan_left"
    if "pan" in text:
        return "pan_right"
    if any(w in text for w in _DRIFT):
        return "drift"
    return "static"


def transform(motion: str, u: float) -> tuple[float, float, float]:
    """(scale, x0, y0) at clip progress u (0..1): a keyframe point (x, y), in fractions of
    the frame, shows at (scale*x - x0, scale*y - y0)."""
    s = PAN_MARGIN
    if motion in ("zoom_in", "zoom_out"):
        z = 1 + MAX_ZOOM * (u if motion == "zoom_in" else 1 - u)
        return z, (z - 1) / 2, (z - 1) / 2
    if motion == "pan_right":
        return s, (s - 1) * u, (s - 1) / 2
    if motion == "pan_left":
        return s, (s - 1) * (1 - u), (s - 1) / 2
    if motion == "drift":
        wave = math.sin(math.pi * u)
        return s, (s - 1) * (0.5 + 0.5 * wave), (s - 1) * (0.5 - 0.3 * wave)
    return 1.0, 0.0, 0.0


def x_expression(motion: str, x: float, width: int, duration_s: float) -> str:
    """An ffmpeg expression of t: where keyframe column x (a fraction of the width) shows
    during the clip, in pixels (for an overlay that follows a figure)."""
    s, d = PAN_MARGIN, f"{duration_s:.6f}".rstrip("0").rstrip(".")
    if motion == "zoom_in":
        z = f"(1+{MAX_ZOOM}*t/{d})"
        return f"{width}*({z}*{x:.6f}-({z}-1)/2)"
    if motion == "zoom_out":
        z = f"(1+{MAX_ZOOM}*(1-t/{d}))"
        return f"{width}*({z}*{x:.6f}-({z}-1)/2)"
    if motion == "pan_right":
        return f"{width}*({s}*{x:.6f}-{s - 1:.6f}*t/{d})"
    if motion == "pan_left":
        return f"{width}*({s}*{x:.6f}-{s - 1:.6f}*(1-t/{d}))"
    if motion == "drift":
        return f"{width}*({s}*{x:.6f}-{s - 1:.6f}*(0.5+0.5*sin(PI*t/{d})))"
    return f"{width * x:.3f}"


def safe_rows(top: float, bottom: float) -> tuple[float, float]:
    """The keyframe rows (fractions of the height) that stay between the frame rows `top`
    and `bottom` however the camera moves (its largest scale, centred vertically)."""
    s = PAN_MARGIN
    return (top + (s - 1) / 2) / s, (bottom + (s - 1) / 2) / s
