"""Incremental builds: a no-op rebuild and a one-scene edit, through the real CLI.

1. Full offline build of the generated 12-scene story of bench/schedule.py (3 chained
   sequences of 4) into a fresh cache.
2. No-op rebuild (`storyc build`, a new process, as a user runs it): wall time, API
   calls, whether Prefect was started. Goal: 0 calls, "up to date", under 1.5 s.
3. Edit scene 6's action (the middle of sequence 2) and rebuild: the minimal set is that
   scene's keyframe and video, the scenes chained after it in its sequence (7, 8), and
   assemble + script. Calls made outside that set must be 0.

Last line: one JSON object. Run: .venv/bin/python bench/incremental.py [--scale 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from schedule import make_story

EDITED_SCENE = 6


def storyc(*args: str, env: dict) -> tuple[float, subprocess.CompletedProcess]:
    exe = Path(sys.executable).with_name("storyc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "storyc"]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default=os.environ.get("STORYC_RENDER_SCALE", "0.25"))
    args = ap.parse_args()
    env = {**os.environ, "STORYC_RENDER_SCALE": str(args.scale)}
    env.pop("XAI_API_KEY", None)
    env.pop("STORYC_OFFLINE_LATENCY", None)

    work = Path(tempfile.mkdtemp(prefix="storyc-bench-incremental-"))
    story = make_story(work)
    out, cache = work / "out", work / "cache"
    common = ["--backend", "offline", "--out", str(out), "--cache", str(cache)]

    full_s, proc = storyc("build", str(story), *common, env=env)
    if proc.returncode != 0:
        print(json.dumps({"error": "full build failed", "stderr": proc.stderr[-2000:]}))
        sys.exit(1)
    full = json.loads((out / "report.json").read_text())

    noop_s, proc = storyc("build", str(story), *common, env=env)
    noop = json.loads((out / "report.json").read_text())
    up_to_date = proc.returncode == 0 and "up to date" in proc.stdout
    prefect_started = "prefect" in noop  # the report has a prefect section only when a flow ran

    data = json.loads(story.read_text())
    scene = data["scenes"][EDITED_SCENE - 1]
    scene["action"] = scene["action"] + ", then stops and looks back"
    story.write_text(json.dumps(data, indent=1))
    edit_s, proc = storyc("build", str(story), *common, env=env)
    if proc.returncode != 0:
        print(json.dumps({"error": "edit build failed", "stderr": proc.stderr[-2000:]}))
        sys.exit(1)
    edit = json.loads((out / "report.json").read_text())

    sequence_end = ((EDITED_SCENE - 1) // 4 + 1) * 4
    minimal = {f"{k}:{n}" for n in range(EDITED_SCENE, sequence_end + 1) for k in ("keyframe", "video")}
    minimal |= {"assemble", "script"}
    rebuilt = {s["id"] for s in edit["steps"] if not s["cached"]}
    calls_outside = sum(s["api_calls"] for s in edit["steps"] if s["id"] not in minimal)
    full_calls_minimal = sum(s["api_calls"] for s in full["steps"] if s["id"] in minimal)
    result = {
        "bench": "incremental",
        "render_scale": float(args.scale),
        "full_build_s": round(full_s, 3),
        "full_build_calls": full["api_calls_total"],
        "noop_rebuild_s": round(noop_s, 3),
        "noop_rebuild_calls": noop["api_calls_total"],
        "noop_up_to_date": up_to_date,
        "noop_prefect_started": prefect_started,
        "goal_noop_0_calls_under_1_5_s": up_to_date and noop["api_calls_total"] == 0 and noop_s < 1.5,
        "edit_scene": EDITED_SCENE,
        "edit_rebuild_s": round(edit_s, 3),
        "edit_calls": edit["api_calls_total"],
        "edit_steps_rebuilt": sorted(rebuilt),
        "minimal_steps": sorted(minimal),
        "edit_rebuilt_only_minimal_set": rebuilt <= minimal,
        "edit_calls_outside_minimal_set": calls_outside,
        "minimal_set_calls_in_full_build": full_calls_minimal,
        "edit_cache_hits": edit["cache_hits"],
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
