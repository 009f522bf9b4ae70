"""How a scene's clip is made: its mode, its resolution, its reference images and, for a
scene longer than one generation, its segments and extensions. One pure function of the
story and the capability table, read by lint (costs, limits), the graph (estimates,
edges) and the video step (what it asks for), so all three agree.

A scene up to one generation's length (15 s; 10 s from references) is one generation, as
in the seed. A longer one is cut into the fewest segments that fit, each in proportion to its room:
each segment is a generation extended (`video.extend`, 2-10 s per extension) as long as
the clip it continues stays within the extension input limit (15 s: so a segment is at
most 25 s, 20 s from references); the next segment starts from the previous one's last
frame and follows it with a match cut. A clip that must end on the next scene's keyframe
(`chain_source: seamless` there) ends with a plain generation: an extension cannot pin
its last frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from storyc.model.capabilities import EXTEND, IMAGE_WITH_REFERENCES, ModelInfo, info_of, lower_resolution
from storyc.model.story import Story

Mode = Literal["image", "reference"]


@dataclass(frozen=True)
class Segment:
    """One generation of a clip and the extensions that continue it."""

    number: int  # 1-based
    start_s: int  # where it starts in the scene
    base_s: int  # the generation's length
    extensions: tuple[int, ...] = ()  # each extension's new seconds, in order
    mode: Mode = "image"  # a later segment always starts from the previous one's last frame

    @property
    def seconds(self) -> int:
        return self.base_s + sum(self.extensions)


@dataclass(frozen=True)
class ClipPlan:
    scene_id: int
    mode: Mode
    resolution: str  # what every request of the clip asks for (the story's, capped by the mode)
    segments: tuple[Segment, ...]
    end_on: int | None  # the scene_id whose keyframe the clip ends on (seamless), else None
    sheet_references: bool  # image mode: the sheets go along as reference images

    @property
    def seconds(self) -> int:
        return sum(s.seconds for s in self.segments)

    @property
    def generations(self) -> int:
        return len(self.segments)

    @property
    def extensions(self) -> int:
        return sum(len(s.extensions) for s in self.segments)

    @property
    def long(self) -> bool:
        return len(self.segments) > 1 or bool(self.segments[0].extensions)


def sheet_references(story: Story) -> bool:
    """Image mode also sends the sheets as reference images: `quality.video_reference_images`,
    by default where the video model takes references with a first frame."""
    video = info_of(story.models.video, "video")
    wanted = story.quality.video_reference_images
    return video.can(IMAGE_WITH_REFERENCES) if wanted is None else wanted and video.can(IMAGE_WITH_REFERENCES)


def clip_plan(story: Story, index: int) -> ClipPlan:
    scene = story.scenes[index]
    video = info_of(story.models.video, "video")
    child = story.seamless_child_index(index)
    mode: Mode = scene.video_mode
    pinned_end = child is not None and mode == "image"  # lint refuses seamless after a reference clip
    lengths = split_seconds(scene.duration_seconds, video, mode, pinned_end)
    segments: list[Segment] = []
    start = 0
    for number, length in enumerate(lengths, start=1):
        seg_mode: Mode = mode if number == 1 else "image"
        last = number == len(lengths)
        base, extensions = _split_segment(length, video, seg_mode, extend=not (pinned_end and last))
        segments.append(Segment(number, start, base, extensions, seg_mode))
        start += length
    resolution = lower_resolution(story.resolution, video.resolutions)
    if mode == "reference":
        resolution = lower_resolution(resolution, video.reference_resolutions)
    if any(s.extensions for s in segments):
        resolution = lower_resolution(resolution, video.extension_resolutions)
    return ClipPlan(
        scene_id=scene.scene_id,
        mode=mode,
        resolution=resolution,
        segments=tuple(segments),
        end_on=story.scenes[child].scene_id if pinned_end and child is not None else None,
        sheet_references=mode == "image" and sheet_references(story),
    )


def _generation_max(video: ModelInfo, mode: Mode) -> int:
    return video.reference_max_s if mode == "reference" else video.duration_s[1]


def _capacity(video: ModelInfo, mode: Mode, extend: bool) -> int:
    """The longest segment: a generation, extended while the clip stays within the input limit."""
    length = _generation_max(video, mode)
    if extend and video.can(EXTEND):
        while video.extension_input_s[0] <= length <= video.extension_input_s[1]:
            length += video.extension_s[1]
    return length


def split_seconds(duration: int, video: ModelInfo, mode: Mode, pinned_end: bool = False) -> list[int]:
    """The fewest segment lengths that fit, each in proportion to how long it can be."""
    for count in range(1, duration + 1):
        caps = [
            _capacity(video, mode if i == 0 else "image", extend=not (pinned_end and i == count - 1))
            for i in range(count)
        ]
        if sum(caps) < duration:
            continue
        lengths = [duration * cap // sum(caps) for cap in caps]
        for i in sorted(range(count), key=lambda i: -caps[i])[: duration - sum(lengths)]:
            lengths[i] += 1
        return lengths
    return [duration]  # unreachable: one-second segments always fit


def _split_segment(length: int, video: ModelInfo, mode: Mode, *, extend: bool) -> tuple[int, tuple[int, ...]]:
    """A segment as (its generation's seconds, each extension's seconds)."""
    base = min(length, _generation_max(video, mode))
    rest = length - base
    if not rest or not extend or not video.can(EXTEND):
        return base, ()
    low, high = video.extension_s
    if rest < low:  # the last extension must be at least `low`: the generation gives way
        base -= low - rest
        rest = low
    extensions = []
    while rest:
        step = min(high, rest)
        if 0 < rest - step < low:
            step = rest - low
        extensions.append(step)
        rest -= step
    return base, tuple(extensions)
