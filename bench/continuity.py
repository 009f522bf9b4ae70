"""Continuity at cuts, and what best-of-N costs.

1. Cuts. The same 4-scene story is built offline twice with grok-imagine-video-1.5: every
   scene after the first chained from the one before by `chain_source: last_frame` (the
   seed: the next keyframe is composed from the previous clip's last frame), then by
   `chain_source: seamless` (the previous clip ends exactly on the next keyframe). At each
   cut it measures the mean absolute pixel difference (0-255, RGB) between the last frame
   of a clip and the first frame of the next, over the picture rows (the offline animatic's
   caption bands, which name each scene, are left out).
2. Best-of-N. Against the strict fake xAI service (tests/fake_xai, which bills like the
   real one), a keyframe edit with 3 reference images asked as N candidates in ONE
   `sample_batch(n=N)` request vs N separate requests, through storyc's real xai backend:
   image requests on the wire, billed USD, and with every candidate judged, all calls.

    .venv/bin/python bench/continuity.py [--scale 0.25] [--n 4]

Last line: one JSON object {"cuts": {...}, "best_of_n": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from storyc.backends.offline.captions import picture_rows
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.media.probe import read_frame
from storyc.model.prices import chat_cost

WORDS = (
    "wearing a bright yellow raincoat with navy buttons, dark green trousers, black rubber boots, "
    "short copper red hair, freckles across the nose and a silver whistle on a cord"
)
SCENES = [
    ("the wooden pier at dawn", "wide shot, slow push in", "Mira walks along the pier"),
    ("the end of the pier", "medium shot, static", "Mira stops and looks at the sea"),
    ("the end of the pier, gulls overhead", "wide shot, slow push in", "Mira points at a passing boat"),
    ("the harbour wall", "medium shot, static", "Mira waves at the boat"),
]


def story_text(chain_source: str) -> str:
    scenes = []
    for i, (setting, camera, action) in enumerate(SCENES, start=1):
        chained = f", chain_source: {chain_source}" if i > 1 else ""
        q = json.dumps  # flow-mapping values with commas need quotes
        scenes.append(
            f"  - {{scene_id: {i}, title: Scene {i}, description: {q(action + '.')}, characters_present: [Mira], "
            f"setting: {q(setting)}, camera: {q(camera)}, mood: soft pastel morning light, action: {q(action)}, "
            f"duration_seconds: 4{chained}}}"
        )
    return (
        "title: Continuity bench\n"
        "style: flat vector illustration with bold outlines, soft pastel shading and gentle rim light\n"
        "color_palette: teal, coral, cream, deep navy\n"
        "models: {video: grok-imagine-video-1.5}\n"
        "characters:\n"
        f"  - {{name: Mira, role: protagonist, visual_description: 'A young harbour pilot {WORDS}.', "
        "personality_cues: [bold]}\n"
        "scenes:\n" + "\n".join(scenes) + "\n"
    )


def picture_diff(a: Image.Image, b: Image.Image) -> float:
    top, bottom = picture_rows(a.height)
    a = a.convert("RGB").crop((0, top, a.width, bottom))
    b = b.convert("RGB").crop((0, top, b.width, bottom))
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def cuts(folder: Path, chain_source: str) -> list[float]:
    story = folder / chain_source / "story.yaml"
    story.parent.mkdir(parents=True)
    story.write_text(story_text(chain_source))
    out = story.parent / "out"
    result = run_build(BuildOptions(story=story, out_dir=out, cache_dir=story.parent / "cache", backend="offline"))
    if result.status != "built":
        raise SystemExit(f"{chain_source}: {result.status}: {result.message}")
    state = json.loads((out / "state.json").read_text())
    clips = [out / state["steps"][f"video:{i}"]["outputs"]["video"] for i in range(1, len(SCENES) + 1)]
    return [picture_diff(read_frame(a, "last"), read_frame(b, "first")) for a, b in pairwise(clips)]


def best_of_n(folder: Path, n: int) -> dict:
    from fake_xai import FakeXai
    from storyc.backends.base import ImageRequest
    from storyc.backends.xai.backend import XaiBackend, XaiConfig

    fake = FakeXai(pending_polls=0).start()
    try:
        refs = []
        for k in range(3):
            path = folder / f"ref{k}.jpg"
            Image.new("RGB", (192, 108), (40 + 60 * k, 120, 200 - 50 * k)).save(path)
            refs.append(path)
        backend = XaiBackend(
            XaiConfig(api_key="xai-bench", api_host=fake.host, insecure=True, rate_spec="image=1000,video=1000")
        )
        prompt = "flat vector illustration. Mira from <IMAGE_1> on the pier of <IMAGE_2>; <IMAGE_3> is the last frame."

        def ask(candidates: tuple[Path, ...], dest: Path) -> None:
            backend.edit_image(
                ImageRequest(prompt, "grok-imagine-image", "16:9", "720p", dest, tuple(refs), candidates=candidates)
            )

        fake.reset()
        ask(tuple(folder / f"batch_{k}.jpg" for k in range(n)), folder / "batch_0.jpg")
        batch = {"requests": fake.count("GenerateImage"), "usd": fake.billed_usd()}
        fake.reset()
        for k in range(n):
            ask((), folder / f"single_{k}.jpg")
        separate = {"requests": fake.count("GenerateImage"), "usd": fake.billed_usd()}
        backend.close()
    finally:
        fake.stop()
    judge = chat_cost(None, n_images=2, model="grok-4-1-fast-reasoning")  # every candidate judged either way
    for row in (batch, separate):
        row["calls_with_checks"] = row["requests"] + n
        row["usd_with_checks"] = round(row["usd"] + n * judge, 6)
    return {
        "n": n,
        "reference_images": len(refs),
        "batch": batch,
        "separate": separate,
        "request_ratio": round(batch["requests"] / separate["requests"], 4),
        "cost_ratio": round(batch["usd"] / separate["usd"], 4),
        "calls_ratio_with_checks": round(batch["calls_with_checks"] / separate["calls_with_checks"], 4),
        "cost_ratio_with_checks": round(batch["usd_with_checks"] / separate["usd_with_checks"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="0.25", help="STORYC_RENDER_SCALE of the offline builds")
    ap.add_argument("--n", type=int, default=4, help="candidates of the best-of-N comparison")
    args = ap.parse_args()
    os.environ["STORYC_RENDER_SCALE"] = str(args.scale)
    os.environ.pop("XAI_API_KEY", None)
    folder = Path(tempfile.mkdtemp(prefix="storyc-continuity-"))
    try:
        last_frame = cuts(folder, "last_frame")
        seamless = cuts(folder, "seamless")
        bon = best_of_n(folder, args.n)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mean_lf, mean_sm = sum(last_frame) / len(last_frame), sum(seamless) / len(seamless)
    print(f"cuts ({len(last_frame)} per build, mean |last frame - next first frame|, 0-255, picture rows):")
    print(f"  chain_source last_frame  {mean_lf:7.2f}   per cut {[round(d, 2) for d in last_frame]}")
    print(f"  chain_source seamless    {mean_sm:7.2f}   per cut {[round(d, 2) for d in seamless]}")
    print(f"best-of-{args.n}, a 3-reference keyframe edit, fake xAI's bill:")
    for name in ("batch", "separate"):
        row = bon[name]
        print(
            f"  {name:9} {row['requests']} image request(s) ${row['usd']:.4f}; "
            f"with {args.n} checks: {row['calls_with_checks']} calls ${row['usd_with_checks']:.4f}"
        )
    print(
        f"  ratios (one n={args.n} request / {args.n} requests): requests {bon['request_ratio']}, "
        f"cost {bon['cost_ratio']}, calls with checks {bon['calls_ratio_with_checks']}, "
        f"cost with checks {bon['cost_ratio_with_checks']}"
    )
    print(
        json.dumps(
            {
                "cuts": {
                    "scale": float(args.scale),
                    "last_frame_mean_diff": round(mean_lf, 3),
                    "seamless_mean_diff": round(mean_sm, 3),
                    "last_frame_per_cut": [round(d, 3) for d in last_frame],
                    "seamless_per_cut": [round(d, 3) for d in seamless],
                    "ratio": round(mean_sm / mean_lf, 4) if mean_lf else None,
                },
                "best_of_n": bon,
            }
        )
    )


if __name__ == "__main__":
    main()
