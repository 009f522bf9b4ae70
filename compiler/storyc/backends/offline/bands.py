"""The geometry of the offline animatic's caption bands (drawn by captions.py): pure
arithmetic, without Pillow, so the assembly can keep burned subtitles clear of the band."""

from __future__ import annotations

from dataclasses import dataclass

# band geometry, as fractions of the frame height
TOP_BAR = 0.075
BOTTOM_BAND = 0.21
TAG_ROW = 0.05  # the name tags' row at the top of the bottom band
ACTION_ROWS = 0.075  # up to two lines of action text
MIN_FONT_PX = 6


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of the bands for one frame size."""

    width: int
    height: int

    @property
    def unit(self) -> int:
        """What text sizes follow: the short side, so a vertical frame's text fits its width."""
        return min(self.width, self.height)

    @property
    def top(self) -> int:
        return round(self.height * TOP_BAR)

    @property
    def band_top(self) -> int:
        return self.height - round(self.height * BOTTOM_BAND)

    @property
    def pad(self) -> int:
        return max(2, round(self.unit * 0.018))

    @property
    def title_px(self) -> int:
        return max(MIN_FONT_PX, round(self.unit * 0.042))

    @property
    def camera_px(self) -> int:
        return max(MIN_FONT_PX, round(self.unit * 0.028))

    @property
    def tag_px(self) -> int:
        return max(MIN_FONT_PX, round(self.unit * 0.03))

    @property
    def action_px(self) -> int:
        return max(MIN_FONT_PX, round(self.unit * 0.031))

    @property
    def subtitle_px(self) -> int:
        return max(MIN_FONT_PX, round(self.unit * 0.033))

    @property
    def action_top(self) -> int:
        return self.band_top + round(self.height * TAG_ROW)

    @property
    def subtitle_top(self) -> int:
        # even: ffmpeg lays overlays on 4:2:0 frames at even rows
        return (self.action_top + round(self.height * ACTION_ROWS)) // 2 * 2
