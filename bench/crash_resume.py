"""Benchmark: SIGKILL `storyc build` at many random moments, resume each time.

A generated story (default 4 scenes, 2 characters, every scene chained to the previous
one, 3 s clips, tiny renders) is built by the real CLI in a subprocess with simulated
API latencies (STORYC_OFFLINE_LATENCY="image=0.3,video=1.0,chat=0.1"):

1. one uninterrupted reference build: its final video, paid calls and timings;
2. kill/resume rounds (fresh output and cache per round; kill, resume, kill ... until a
   run completes) until --kills kills were made. Kill moments: 10 % the instant Prefect's
   temporary server process appears, 20 % during start-up, 70 % uniformly over the paid
   calls still to make.

After every kill: every file in the output folder and the cache is complete and matches
its recorded hash (cache blob names, cache step/call entries, state.json sha256 entries).
After every round: the final video is byte-identical to the reference, no temp file is
left, and paid calls are compared with the reference. At the end: no process a killed
build started (Prefect server, ffmpeg) is still running.

Paid calls: a SIGKILLed build writes no report.json, so every build runs through the
instrumented CLI of tests/_crashkit.py, which logs each backend call when it starts and
when its result is durable in the cache; the calls in flight at a kill are the started
calls without a durable result.

Prints a table, then one JSON line with the figures.

    python bench/crash_resume.py [--kills 20] [--scenes 4] [--seed 1] [--scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import _crashkit as ck


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", default="0.1", help="STORYC_RENDER_SCALE for the renders")
    ap.add_argument("--latency", default=ck.LATENCY, help="STORYC_OFFLINE_LATENCY")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="storyc-crash-"))
    story = work / "story.yaml"
    story.write_text(ck.make_story(args.scenes))
    mark = f"crashbench-{os.getpid()}"
    reference = ck.reference_build(work, story, scale=args.scale, latency=args.latency, mark=f"{mark}-ref")
    print(
        f"reference: {reference['api_calls_total']} paid calls, {reference['wall_s']:.1f}s "
        f"(first call after {reference['first_call_s']:.1f}s)",
        flush=True,
    )

    def on_kill(fig, check):
        print(
            f"  kill {fig['kills']:>3} at {fig['kill_moments_s'][-1]:>5.2f}s: {check['files']} files checked, "
            f"{len(check['corrupt'])} corrupt, {len(check['temps'])} temp",
            flush=True,
        )

    fig = ck.crash_rounds(
        work,
        story,
        reference,
        kills=args.kills,
        seed=args.seed,
        scale=args.scale,
        latency=args.latency,
        mark=mark,
        on_kill=on_kill,
    )
    result = {
        "story_scenes": args.scenes,
        "kills": fig["kills"],
        "kills_at_server_spawn": fig["kills_at_server_spawn"],
        "kills_before_first_call": fig["kills_before_first_call"],
        "resumes": fig["resumes"],
        "builds_run": fig["builds_run"] + 1,
        "rounds": fig["rounds"],
        "baseline_paid_calls_per_build": reference["api_calls_total"],
        "paid_calls": fig["paid_calls"],
        "extra_paid_calls": fig["extra_paid_calls"],
        "calls_in_flight_at_kills": fig["calls_in_flight_at_kills"],
        "assets_lost": fig["assets_lost"],
        "corrupt_files": fig["corrupt_files"],
        "temp_files_after_kill": fig["temp_files_after_kill"],
        "temp_files_after_build": fig["temp_files_after_build"],
        "leaked_prefect_servers": fig["leaked_prefect_servers"],
        "leaked_processes": fig["leaked_processes"],
        "failed_runs": fig["failed_runs"],
        "identical_final_video": fig["identical_final_video"],
        "paid_calls_method": "instrumented CLI call log (started vs durable per build)",
        "wall_s": round(time.monotonic() - t0, 1),
    }
    if fig["corrupt_examples"] or fig["leaked_examples"]:
        result["examples"] = fig["corrupt_examples"] + fig["leaked_examples"]
    print()
    for key, value in result.items():
        if key not in ("examples", "paid_calls_method"):
            print(f"{key:<32}{value}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder: {work}")
    print(json.dumps(result))
    ok = (
        result["identical_final_video"]
        and result["corrupt_files"] == 0
        and result["assets_lost"] == 0
        and result["leaked_processes"] == 0
        and result["temp_files_after_build"] == 0
        and result["extra_paid_calls"] <= result["calls_in_flight_at_kills"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
