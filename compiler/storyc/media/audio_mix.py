"""The sound of the final video, as an extension of the one-pass assembly.

The assembly (build_assembly_graph) joins the clips into the labels [vout] and [aout]. The
extension adds inputs (speech files, music, a subtitle file) and filters after those labels,
so the final video is still ONE ffmpeg run:

    [aout] (the clips' own sound; dropped when audio.native is false)
    speech files, each delayed to its start (adelay) and mixed        → [speech]
    music, looped (-stream_loop) and trimmed to the video, at music_volume_db,
      ducked under [speech] by sidechaincompress                      → [music]
    amix of the three, padded/trimmed to the video's length, then loudnorm to
      audio.loudness_lufs                                             → the audio output
    [vout], with subtitles burned in by libass when subtitles: burned → the video output
    soft subtitles: the .srt as a mov_text stream with a language tag

Loudness is normalized in two passes: a measuring run of the same sound graph without the
pictures (loudnorm print_format=json, output discarded), then the real run with the measured
values (linear=true), which lands within a fraction of a LU of the target; a one-pass
loudnorm misses short mixes by several LU (see tests/test_audio_mix.py).

Hook for the assembly: `assemble_with_sound` below composes ffmpeg.build_assembly_graph with
`sound_extension`; the build calls it when the story has sound and burned subtitles. With
soft subtitles or none, the picture does not depend on the sound: the build joins the
pictures once (media.assemble.assemble_picture, cached on the clips alone) and
`mix_onto_picture` makes the sound (the same graph on the clips' sound alone) and muxes it
with that picture, copied, not encoded again: a changed line costs an audio pass, not a
video encode.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyc.media.assemble import CROSSFADE_S, Clip, build_assembly_graph, clip_inputs
from storyc.media.ffmpeg import (
    AAC_BITRATE,
    AUDIO_RATE,
    DETERMINISTIC_OUTPUT_FLAGS,
    FPS,
    MediaError,
    encoder_args,
    ffmpeg_exe,
    run_ffmpeg,
)
from storyc.media.probe import probe
from storyc.media.subtitles import SUBTITLE_LANGUAGE
from storyc.model.story import SubtitleMode
from storyc.store.fsutil import atomic_output

# Ducking: music under speech drops by up to ~ratio-fold above the threshold, quickly, and
# comes back in about a third of a second (long enough not to pump between words).
DUCK_THRESHOLD = 0.02  # sidechain level (linear) above which the music is compressed
DUCK_RATIO = 8
DUCK_ATTACK_MS = 15
DUCK_RELEASE_MS = 300
TRUE_PEAK_DB = -1.5
LOUDNESS_RANGE_LU = 11
STEREO = f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
FIXED_FRAMES = "asetnsamples=n=1024:p=0"


@dataclass(frozen=True)
class PlacedSpeech:
    """A rendered line (any format ffmpeg reads) and where it starts on the video's timeline."""

    path: Path
    start_s: float


@dataclass(frozen=True)
class SoundPlan:
    """What the sound pass mixes, from the story's audio settings and the timed lines."""

    speech: tuple[PlacedSpeech, ...] = ()
    native: bool = True
    music: Path | None = None
    music_volume_db: float = -18.0
    loudness_lufs: float = -16.0
    subtitles: SubtitleMode = "none"
    subtitle_file: Path | None = None  # .srt for soft; .ass (write_burn_style) for burned
    subtitle_language: str = SUBTITLE_LANGUAGE

    def __post_init__(self) -> None:
        if self.subtitles != "none" and self.subtitle_file is None:
            raise ValueError(f"subtitles: {self.subtitles} needs a subtitle_file")

    @property
    def audible(self) -> bool:
        """False when there is nothing to hear (no native sound, speech or music): silence, not normalized."""
        return self.native or bool(self.speech) or self.music is not None


@dataclass(frozen=True)
class Loudness:
    """loudnorm's first-pass measurement."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


@dataclass(frozen=True)
class AssemblyExtension:
    """What the sound pass adds to the assembly's ffmpeg run."""

    inputs: tuple[str, ...]  # argv after the clips' inputs
    filters: tuple[str, ...]  # filter_complex parts after the assembly's
    video_label: str | None  # the labels to -map (None: no video output)
    audio_label: str
    output_args: tuple[str, ...]  # extra maps and codecs (subtitle stream)


def _fmt(seconds: float) -> str:
    return f"{seconds:.6f}".rstrip("0").rstrip(".") or "0"


def filter_path(path: Path | str) -> str:
    """`path` as a filter option value inside -filter_complex: escaped once for the option
    parser and once for the graph parser (ffmpeg-filters, "Notes on filtergraph escaping")."""
    text = str(path)
    for special in ("\\", "'", ":"):
        text = text.replace(special, "\\" + special)
    graph = ""
    for char in text:
        graph += "\\" + char if char in "\\'[],;" else char
    return graph


def clip_starts(clips: Sequence[Clip]) -> tuple[list[float], float]:
    """Where each clip starts in the assembled video, and its length: the arithmetic of
    build_assembly_graph (a crossfade overlaps the running output and the next clip by 0.5 s
    when both are longer than that)."""
    if not clips:
        return [], 0.0
    starts, total, last_segment = [0.0], clips[0].duration_s, clips[0].duration_s
    for clip in clips[1:]:
        crossfade = clip.transition_in == "crossfade" and clip.duration_s > CROSSFADE_S and last_segment > CROSSFADE_S
        if crossfade:
            starts.append(total - CROSSFADE_S)
            total += clip.duration_s - CROSSFADE_S
            last_segment = total  # the crossfade merges everything so far into one segment
        else:
            starts.append(total)
            total += clip.duration_s
            last_segment = clip.duration_s
    return [round(s, 6) for s in starts], round(total, 6)


def _loudnorm(target: float, measured: Loudness | None) -> str:
    base = f"loudnorm=I={_fmt(target)}:TP={_fmt(TRUE_PEAK_DB)}:LRA={LOUDNESS_RANGE_LU}"
    if measured is None:
        return base + ":print_format=json"
    return (
        f"{base}:measured_I={_fmt(measured.input_i)}:measured_TP={_fmt(measured.input_tp)}"
        f":measured_LRA={_fmt(measured.input_lra)}:measured_thresh={_fmt(measured.input_thresh)}"
        f":offset={_fmt(measured.target_offset)}:linear=true:print_format=summary"
    )


def sound_extension(
    plan: SoundPlan,
    duration_s: float,
    first_input: int,
    *,
    video_in: str = "vout",
    audio_in: str = "aout",
    measured: Loudness | None = None,
    measuring: bool = False,
) -> AssemblyExtension:
    """The inputs, filters and output arguments that turn the assembly's [vout]/[aout] into the
    final picture and mix. `first_input` is the index of the first input it adds (the number of
    clips). `measuring`: the first loudness pass (no video, no subtitles, loudnorm prints its
    measurement); otherwise `measured` (from the first pass) sets loudnorm's linear mode, and
    None normalizes in one (dynamic) pass."""
    d = _fmt(duration_s)
    inputs: list[str] = []
    filters: list[str] = []
    index = first_input

    def add_input(*argv: str) -> int:
        nonlocal index
        inputs.extend(argv)
        index += 1
        return index - 1

    beds: list[str] = []
    if plan.native:
        beds.append(audio_in)
    else:
        filters.append(f"[{audio_in}]anullsink")

    speech_key = None
    if plan.speech:
        labels = []
        for k, placed in enumerate(plan.speech):
            i = add_input("-i", str(placed.path))
            delay = max(0, round(placed.start_s * 1000))
            filters.append(f"[{i}:a]{STEREO},adelay=delays={delay}:all=1[sp{k}]")
            labels.append(f"[sp{k}]")
        if len(labels) == 1:
            filters.append(f"{labels[0]}apad,atrim=duration={d}[speech]")
        else:
            filters.append(
                f"{''.join(labels)}amix=inputs={len(labels)}:duration=longest:dropout_transition=0:normalize=0,"
                f"apad,atrim=duration={d}[speech]"
            )
        if plan.music is not None:
            filters.append("[speech]asplit=2[speech_mix][speech_key]")
            beds.append("speech_mix")
            speech_key = "speech_key"
        else:
            beds.append("speech")

    if plan.music is not None:
        i = add_input("-stream_loop", "-1", "-i", str(plan.music))
        music = f"[{i}:a]{STEREO},volume={_fmt(plan.music_volume_db)}dB,atrim=duration={d},asetpts=PTS-STARTPTS"
        if speech_key:
            # sidechaincompress's output depends on how its two inputs are cut into frames, which
            # varies from run to run; fixed frames make the same inputs give the same bytes
            filters.append(f"{music},{FIXED_FRAMES}[music_bed]")
            filters.append(f"[{speech_key}]{FIXED_FRAMES}[speech_level]")
            filters.append(
                f"[music_bed][speech_level]sidechaincompress=threshold={DUCK_THRESHOLD}:ratio={DUCK_RATIO}"
                f":attack={DUCK_ATTACK_MS}:release={DUCK_RELEASE_MS}[music]"
            )
        else:
            filters.append(f"{music}[music]")
        beds.append("music")

    if not beds:
        filters.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=duration={d}[mix]")
    elif len(beds) == 1:
        filters.append(f"[{beds[0]}]apad,atrim=duration={d}[mix]")
    else:
        filters.append(
            f"{''.join(f'[{b}]' for b in beds)}amix=inputs={len(beds)}:duration=longest:dropout_transition=0"
            f":normalize=0,apad,atrim=duration={d}[mix]"
        )
    silent = not beds
    if silent:
        filters.append("[mix]anull[mixed]")
    else:
        loudnorm = _loudnorm(plan.loudness_lufs, None if measuring else measured)
        if not measuring and measured is None:
            loudnorm = loudnorm.replace(":print_format=json", "")
        filters.append(f"[mix]{loudnorm},{STEREO}[mixed]")

    output_args: list[str] = []
    if measuring:  # on the assembly's sound alone (build_assembly_graph(video=False)): no picture
        return AssemblyExtension(tuple(inputs), tuple(filters), None, "mixed", ())
    video_label = video_in
    if plan.subtitles == "burned" and plan.subtitle_file is not None:  # (never None then: __post_init__)
        filters.append(f"[{video_in}]subtitles=filename={filter_path(plan.subtitle_file)}[vsubs]")
        video_label = "vsubs"
    elif plan.subtitles == "soft":
        i = add_input("-i", str(plan.subtitle_file))
        output_args += [
            "-map",
            f"{i}:s:0",
            "-c:s",
            "mov_text",
            "-metadata:s:s:0",
            f"language={plan.subtitle_language}",
        ]
    return AssemblyExtension(tuple(inputs), tuple(filters), video_label, "mixed", tuple(output_args))


# ─── running it ──────────────────────────────────────────────────────────────

SCENE_TRACK_RATE = 22050  # what offline speech renders at; a storyboard preview needs no more


def write_speech_track(speech: Sequence[PlacedSpeech], duration_s: float, dest: Path | str) -> Path:
    """A scene's lines alone, each at its start, as one mono WAV of `duration_s` (the
    storyboard plays it beside the scene's clip)."""
    if not speech:
        raise MediaError("a speech track needs at least one line")
    dest = Path(dest)
    d = _fmt(duration_s)
    inputs: list[str] = []
    filters: list[str] = []
    for k, placed in enumerate(speech):
        inputs += ["-i", str(placed.path)]
        delay = max(0, round(placed.start_s * 1000))
        filters.append(
            f"[{k}:a]aresample={SCENE_TRACK_RATE},aformat=channel_layouts=mono,adelay=delays={delay}:all=1[l{k}]"
        )
    labels = "".join(f"[l{k}]" for k in range(len(speech)))
    filters.append(
        f"{labels}amix=inputs={len(speech)}:duration=longest:dropout_transition=0:normalize=0,"
        f"apad,atrim=duration={d}[track]"
    )
    with atomic_output(dest) as tmp:
        run_ffmpeg(
            [
                *inputs,
                "-filter_complex",
                ";".join(filters),
                "-map",
                "[track]",
                "-c:a",
                "pcm_s16le",
                "-ar",
                str(SCENE_TRACK_RATE),
                "-ac",
                "1",
                "-map_metadata",
                "-1",
                "-fflags",
                "+bitexact",
                "-flags:a",
                "+bitexact",
                "-f",
                "wav",
                str(tmp),
            ],
            what=f"mixing {dest.name}",
        )
    return dest


def _run_capturing(argv: Sequence[str], *, what: str) -> str:
    """ffmpeg with info-level logging (loudnorm prints its measurement there); stderr back."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-y", *argv]
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
    except OSError as exc:
        raise MediaError(f"{what}: cannot run ffmpeg ({exc.strerror})") from None
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        raise MediaError(f"{what} failed: {'; '.join(lines[-3:]) or f'exit code {proc.returncode}'}")
    return text


_JSON_BLOCK = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}", re.S)


def parse_loudnorm(stderr: str) -> Loudness | None:
    """loudnorm's print_format=json measurement from ffmpeg's log; None for silence."""
    blocks = _JSON_BLOCK.findall(stderr)
    if not blocks:
        raise MediaError("loudness measurement: loudnorm printed no measurement")
    values = json.loads(blocks[-1])
    try:
        measured = Loudness(
            input_i=float(values["input_i"]),
            input_tp=float(values["input_tp"]),
            input_lra=float(values["input_lra"]),
            input_thresh=float(values["input_thresh"]),
            target_offset=float(values["target_offset"]),
        )
    except (KeyError, ValueError) as exc:
        raise MediaError(f"loudness measurement: unreadable loudnorm output ({exc})") from None
    if not all(abs(v) != float("inf") for v in vars(measured).values()) or measured.input_i < -69:
        return None  # silence: nothing to normalize
    return measured


def measure_mix(
    clips: Sequence[Clip], has_audio: Sequence[bool], plan: SoundPlan, width: int, height: int, fps: int
) -> Loudness | None:
    """First loudness pass: the same sound graph (no picture decoded), nothing encoded."""
    graph, total = build_assembly_graph(clips, has_audio, width, height, fps, video=False)
    ext = sound_extension(plan, total, len(clips), measuring=True)
    stderr = _run_capturing(
        [
            *clip_inputs(clips),
            *ext.inputs,
            "-filter_complex_threads",
            "1",
            "-filter_complex",
            ";".join([graph, *ext.filters]),
            "-map",
            f"[{ext.audio_label}]",
            "-f",
            "null",
            "-",
        ],
        what="measuring the loudness of the mix",
    )
    return parse_loudnorm(stderr)


def assemble_with_sound(
    clips: Sequence[Clip],
    dest: Path | str,
    width: int,
    height: int,
    plan: SoundPlan,
    fps: int = FPS,
    *,
    two_pass: bool = True,
    draft: bool = False,
) -> Path:
    """ffmpeg.assemble plus the sound pass: the clips joined as there, their sound mixed with
    the speech and music, normalized, and the subtitles added; one encoding run (after a
    measuring run that encodes nothing, when `two_pass`). `draft`: the fast encoder preset."""
    if not clips:
        raise MediaError("assemble: no clips")
    dest = Path(dest)
    has_audio = [probe(c.path).has_audio for c in clips]
    measured = measure_mix(clips, has_audio, plan, width, height, fps) if two_pass and plan.audible else None
    graph, total = build_assembly_graph(clips, has_audio, width, height, fps)
    ext = sound_extension(plan, total, len(clips), measured=measured)
    with atomic_output(dest) as tmp:
        run_ffmpeg(
            [
                *clip_inputs(clips),
                *ext.inputs,
                "-filter_complex_threads",
                "1",
                "-filter_complex",
                ";".join([graph, *ext.filters]),
                "-map",
                f"[{ext.video_label}]",
                "-map",
                f"[{ext.audio_label}]",
                *ext.output_args,
                *encoder_args(fps, draft=draft),
                "-f",
                "mp4",
                str(tmp),
            ],
            what=f"assembling {dest.name} with sound",
        )
    return dest


def mix_onto_picture(
    picture: Path | str,
    clips: Sequence[Clip],
    dest: Path | str,
    plan: SoundPlan,
    *,
    two_pass: bool = True,
) -> Path:
    """The final video from an assembled picture (assemble_picture of the same clips) and the
    sound pass: the clips' sound, the speech and the music mixed and normalized as in
    assemble_with_sound, soft subtitles added; the picture's stream is copied. Burned
    subtitles change the picture: use assemble_with_sound for them."""
    if plan.subtitles == "burned":
        raise MediaError("burned subtitles change the picture: assemble_with_sound draws them")
    if not clips:
        raise MediaError("assemble: no clips")
    dest = Path(dest)
    has_audio = [probe(c.path).has_audio for c in clips]
    # the sound graph reads only the clips' audio, so any size does: the picture is not decoded
    measured = measure_mix(clips, has_audio, plan, 2, 2, FPS) if two_pass and plan.audible else None
    graph, total = build_assembly_graph(clips, has_audio, 2, 2, FPS, video=False)
    ext = sound_extension(plan, total, len(clips), measured=measured)  # soft subtitles or none: no [vout] filter
    # the picture is the last input, after the clips and the sound pass's own
    picture_index = len(clips) + ext.inputs.count("-i")
    audio_output = ["-c:a", "aac", "-b:a", AAC_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2"]
    with atomic_output(dest) as tmp:
        run_ffmpeg(
            [
                *clip_inputs(clips),
                *ext.inputs,
                "-i",
                str(picture),
                "-filter_complex_threads",
                "1",
                "-filter_complex",
                ";".join([graph, *ext.filters]),
                "-map",
                f"{picture_index}:v:0",
                "-map",
                f"[{ext.audio_label}]",
                *ext.output_args,
                "-c:v",
                "copy",
                *audio_output,
                "-movflags",
                "+faststart",
                *DETERMINISTIC_OUTPUT_FLAGS,
                "-f",
                "mp4",
                str(tmp),
            ],
            what=f"mixing the sound of {dest.name}",
        )
    return dest
