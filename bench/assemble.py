"""Benchmark: storyc's one-pass assembly against the seed's two-pass assembly.

Generates 12 short clips with the offline backend (3 s each, mixed cameras, sizes and
transitions), then, in the same run and on the same clips, alternately times:

- one pass (storyc.media.assemble.assemble): one ffmpeg run normalises every clip and joins them
  with their transitions (cut / crossfade / match-cut);
- two passes (design doc, pipeline.md STEP 6 seed code): one ffmpeg run per clip to
  normalise it into a temp file, then the concat demuxer and a full re-encode.

Both use storyc's encoder settings (same x264 preset, CRF and thread count, AAC) so the
comparison is about the pipeline shape, not the codec settings. Note the seed's concat
demuxer ignores transitions, so the one-pass side does strictly more work (crossfades).

Prints a table, then one JSON line: {"one_pass_s", "two_pass_s", "ratio", ...}.
Goal: ratio <= 0.6.

    python bench/assemble.py [--runs 3] [--scale 0.5] [--clips 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from storyc.backends.base import ImageRequest, VideoRequest
from storyc.backends.offline.backend import OfflineBackend
from storyc.media import ffmpeg as media
from storyc.media.assemble import Clip, assemble
from storyc.media.probe import probe

CHARACTERS = {
    "Ember": "A small fox with burnt orange fur, a cream chest and dark brown paws, wearing an emerald scarf",
    "Sage": "A wise old owl with silver grey feathers, amber eyes and a violet cloak",
}
SETTINGS = ["autumn forest", "snowy hill at night", "sea shore at dawn", "cave", "sunny meadow", "city street"]
CAMERAS = ["slow push in", "static wide shot", "pan right", "orbit", "pull back", "pan left"]
TRANSITIONS = ["cut", "crossfade", "cut", "match-cut", "crossfade", "cut"]


def make_clips(work: Path, count: int) -> tuple[list[Clip], list[float]]:
    """`count` 3 s clips from the offline backend; some in 4:3 so normalising has work to do."""
    backend = OfflineBackend()
    sheets = {}
    for name, description in CHARACTERS.items():
        dest = work / f"{name}.jpg"
        backend.generate_image(
            ImageRequest(
                prompt=description,
                model="offline",
                aspect_ratio="16:9",
                resolution="720p",
                dest=dest,
                hints={"step": "character", "name": name, "visual_description": description},
            )
        )
        sheets[name] = dest
    clips, encode_times = [], []
    for i in range(count):
        aspect = "4:3" if i % 4 == 3 else "16:9"
        keyframe = work / f"kf{i}.jpg"
        backend.edit_image(
            ImageRequest(
                prompt=f"scene {i}",
                model="offline",
                aspect_ratio=aspect,
                resolution="720p",
                dest=keyframe,
                references=(sheets["Ember"], sheets["Sage"]),
                hints={
                    "step": "keyframe",
                    "scene_id": i,
                    "setting": SETTINGS[i % 6],
                    "mood": "soft light",
                    "palette": "forest greens, amber",
                    "camera": CAMERAS[i % 6],
                    "characters": CHARACTERS,
                    "slots": [{"kind": "character", "name": "Ember"}, {"kind": "character", "name": "Sage"}],
                },
            )
        )
        dest = work / f"clip{i:02d}.mp4"
        started = time.perf_counter()
        backend.image_to_video(
            VideoRequest(
                prompt=CAMERAS[i % 6],
                model="offline",
                dest=dest,
                image=keyframe,
                duration_s=3,
                aspect_ratio=aspect,
                resolution="720p",
                hints={"camera": CAMERAS[i % 6]},
            ),
            job_key=f"clip{i}",
        )
        encode_times.append(time.perf_counter() - started)
        clips.append(Clip(dest, 3.0, TRANSITIONS[i % 6]))
    return clips, encode_times


def one_pass(clips: list[Clip], dest: Path, width: int, height: int) -> None:
    assemble(clips, dest, width, height)


def two_pass(clips: list[Clip], dest: Path, width: int, height: int, work: Path) -> None:
    """The seed's STEP 6: normalise each clip to a file, then concat demuxer + re-encode."""
    listing = work / "concat.txt"
    lines = []
    for i, clip in enumerate(clips):
        norm = work / f"norm{i:02d}.mp4"
        media.run_ffmpeg(
            [
                "-i",
                str(clip.path),
                "-vf",
                f"fps=24,scale={width}:{height}:force_original_aspect_ratio=decrease,pad={width}:{height}:-1:-1:color=black",
                *media.encoder_args(),
                str(norm),
            ],
            what="normalising",
        )
        lines.append(f"file '{norm.resolve()}'")
    listing.write_text("\n".join(lines) + "\n")
    media.run_ffmpeg(
        ["-f", "concat", "-safe", "0", "-i", str(listing), *media.encoder_args(), str(dest)], what="concat"
    )


def _child_cpu(before: os.times_result) -> float:
    """CPU seconds (user + system) that ffmpeg children used since `before`: less
    sensitive than wall time to other work on a shared machine."""
    now = os.times()
    return (now.children_user - before.children_user) + (now.children_system - before.children_system)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each method (alternating)")
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get(media.RENDER_SCALE_ENV) or 0.5),
        help="render scale of 720p (default 0.5: 640×360)",
    )
    args = parser.parse_args()
    os.environ[media.RENDER_SCALE_ENV] = str(args.scale)
    width, height = media.dimensions("16:9", "720p")

    with tempfile.TemporaryDirectory(prefix="storyc-bench-assemble-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        clips, encode_times = make_clips(work, args.clips)
        generate_s = time.perf_counter() - started
        one, two, one_cpu, two_cpu = [], [], [], []
        for run in range(args.runs):
            for method in ("one", "two") if run % 2 == 0 else ("two", "one"):  # alternate the order
                out = work / f"final_{method}_{run}.mp4"
                cpu_before = os.times()
                started = time.perf_counter()
                if method == "one":
                    one_pass(clips, out, width, height)
                    one.append(time.perf_counter() - started)
                    one_cpu.append(_child_cpu(cpu_before))
                else:
                    scratch = work / f"two_{run}"
                    scratch.mkdir()
                    two_pass(clips, out, width, height, scratch)
                    two.append(time.perf_counter() - started)
                    two_cpu.append(_child_cpu(cpu_before))
        one_info = probe(work / "final_one_0.mp4")
        two_info = probe(work / "final_two_0.mp4")
        identical = (work / "final_one_0.mp4").read_bytes() == (work / f"final_one_{args.runs - 1}.mp4").read_bytes()

    one_s, two_s = statistics.median(one), statistics.median(two)
    ratio = one_s / two_s if two_s else 0.0
    print(
        f"{args.clips} clips of 3 s at {width}x{height} (made in {generate_s:.1f} s; "
        f"image→video median {statistics.median(encode_times):.2f} s per clip)"
    )
    print(f"{'method':<34}{'median s':>10}{'runs':>32}{'output s':>10}")
    print(
        f"{'one pass (storyc, transitions)':<34}{one_s:>10.2f}{' '.join(f'{t:.2f}' for t in one):>32}{one_info.duration_s:>10.2f}"
    )
    print(
        f"{'two pass (seed, cuts only)':<34}{two_s:>10.2f}{' '.join(f'{t:.2f}' for t in two):>32}{two_info.duration_s:>10.2f}"
    )
    cpu_ratio = statistics.median(one_cpu) / statistics.median(two_cpu) if two_cpu else 0.0
    print(
        f"ffmpeg CPU s (median): one pass {statistics.median(one_cpu):.2f}, two pass {statistics.median(two_cpu):.2f}, "
        f"ratio {cpu_ratio:.2f}; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    verdict = "meets" if ratio <= 0.6 else "misses"
    print(
        f"ratio one/two = {ratio:.2f} ({verdict} the goal of <= 0.6); one-pass output byte-identical across runs: {identical}"
    )
    print(
        json.dumps(
            {
                "one_pass_s": round(one_s, 3),
                "two_pass_s": round(two_s, 3),
                "ratio": round(ratio, 3),
                "clips": args.clips,
                "width": width,
                "height": height,
                "runs": args.runs,
                "clip_encode_s": round(statistics.median(encode_times), 3),
                "deterministic": identical,
                "cpu_ratio": round(cpu_ratio, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
