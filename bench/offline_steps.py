"""CPU cost of the offline backend's steps: one full offline build, steps run one after
another in this process (no Prefect, so nothing else shares the measurement), with the
CPU seconds of each step (this process + its ffmpeg children, from getrusage) summed by
step kind. CPU time, not wall time: the machine is shared, wall time is noise.

    .venv/bin/python bench/offline_steps.py [story.yaml] [--scale 1.0] [--profile out.prof]

`--profile` also writes a cProfile of the whole run (open with `python -m pstats`).
Last line: one JSON object {"kinds": {kind: {"steps", "cpu_s", "self_s", "ffmpeg_s"}}, ...}.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from storyc.build import pipeline
from storyc.build.options import BuildOptions
from storyc.run import local

ROOT = Path(__file__).resolve().parent.parent


def cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("story", nargs="?", default=str(ROOT / "stories" / "fox_and_owl.yaml"))
    ap.add_argument("--scale", default=os.environ.get("STORYC_RENDER_SCALE", "1.0"))
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    os.environ["STORYC_RENDER_SCALE"] = str(args.scale)
    os.environ.pop("STORYC_OFFLINE_LATENCY", None)
    os.environ.pop("STORYC_OFFLINE_FAULTS", None)

    per_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"steps": 0, "self_s": 0.0, "ffmpeg_s": 0.0})
    per_step: dict[str, dict[str, float]] = {}
    original = local.run_step

    def measured(ctx, sid):
        s0, c0 = cpu()
        w0 = time.perf_counter()
        try:
            return original(ctx, sid)
        finally:
            s1, c1 = cpu()
            kind = ctx.graph.steps[sid].kind
            row = per_kind[kind]
            row["steps"] += 1
            row["self_s"] += s1 - s0
            row["ffmpeg_s"] += c1 - c0
            per_step[sid] = {
                "self_s": round(s1 - s0, 2),
                "ffmpeg_s": round(c1 - c0, 2),
                "wall_s": round(time.perf_counter() - w0, 2),
            }

    local.run_step = measured
    # every step in this process, one after another (no Prefect, no threads)
    pipeline.execute = lambda ctx, to_run, **kw: local.run_local(ctx, to_run)

    work = Path(tempfile.mkdtemp(prefix="storyc-bench-offline-"))
    opts = BuildOptions(story=Path(args.story), backend="offline", out_dir=work / "out", cache_dir=work / "cache")
    profiler = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    s0, c0 = cpu()
    if profiler:
        profiler.enable()
    result = pipeline.run_build(opts)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    s1, c1 = cpu()
    wall = time.perf_counter() - t0
    if not result.ok:
        print(json.dumps({"error": result.message}))
        sys.exit(1)
    for sid, row in per_step.items():
        print(f"{sid:24} self {row['self_s']:6.2f} s  ffmpeg {row['ffmpeg_s']:6.2f} s  wall {row['wall_s']:6.2f} s")
    kinds = {
        k: {
            "steps": int(v["steps"]),
            "cpu_s": round(v["self_s"] + v["ffmpeg_s"], 2),
            "self_s": round(v["self_s"], 2),
            "ffmpeg_s": round(v["ffmpeg_s"], 2),
        }
        for k, v in per_kind.items()
    }
    calls: dict[str, int] = {}
    for step in result.report.get("steps", []):
        for kind, n in (step.get("calls") or {}).items():
            calls[kind] = calls.get(kind, 0) + n
    for step in result.report.get("steps", []):
        kind = step["id"].split(":")[0]
        if kind in kinds:
            kinds[kind].setdefault("calls", {})
            for k, n in (step.get("calls") or {}).items():
                kinds[kind]["calls"][k] = kinds[kind]["calls"].get(k, 0) + n
    for k, v in kinds.items():
        print(
            f"{k:10} {v['steps']} step(s): cpu {v['cpu_s']:6.2f} s (python {v['self_s']:.2f}, ffmpeg {v['ffmpeg_s']:.2f})"
            f"  calls {v.get('calls', {})}"
        )
    print(
        json.dumps(
            {
                "story": Path(args.story).name,
                "scale": float(args.scale),
                "kinds": kinds,
                "cpu_s": round(s1 - s0 + c1 - c0, 2),
                "wall_s": round(wall, 2),
                "calls": calls,
                "out": str(work / "out"),
            }
        )
    )


if __name__ == "__main__":
    main()
