"""Benchmark: the reliability figures of the README (issue 5), on a generated 6-scene story.

Every build is the real `storyc build` CLI in a subprocess (offline backend, tiny renders
via STORYC_RENDER_SCALE, simulated API latencies), run through the paid-call counter of
tests/_crashkit.py.

1. Faults: a fault-free build, then a build with
   STORYC_OFFLINE_FAULTS="transient=0.2,ratelimit=0.1,expired=0.05,truncated=0.05,seed=7"
   (fresh output and cache). Checks: it completes; its final_video.mp4 is byte-identical
   to the fault-free one; report.json's retries equal the injected faults (calls started
   minus calls that succeeded); its successful calls equal the fault-free build's (no
   asset generated twice); no request was tried more than 1 + the retry limit (4).
2. Crashes: kill/resume rounds as in bench/crash_resume.py (SIGKILL at random moments,
   some the instant Prefect's server appears, some during start-up), compared with the
   fault-free build.
3. Ctrl-C: once a build has finished a step, a second build of the same output folder
   is started (seconds until it is refused: second_build_refused_s), then SIGINT goes to
   the first build's process group as a terminal sends it (seconds until it exits with
   130, its calls in flight finished and recorded: ctrl_c_stop_s).

Prints a table, then one JSON line: builds_run, faults_injected, kills, resumes,
assets_lost (must be 0), corrupt_files (must be 0), extra_paid_calls (must not exceed
calls_in_flight_at_kills), identical_final_video, second_build_refused_s, ctrl_c_stop_s,
and the details.

    python bench/reliability.py [--kills 10] [--scenes 6] [--seed 7] [--scale 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import _crashkit as ck

ISSUE_FAULTS = "transient=0.2,ratelimit=0.1,expired=0.05,truncated=0.05,seed=7"
MAX_RETRIES = 4  # storyc.run.retry.RetryPolicy's default


def fault_scenario(
    work: Path, story: Path, reference: dict, *, scale: str, latency: str, faults: str, mark: str
) -> dict:
    from storyc.hashing import file_sha256

    log = work / "faults_calls.log"
    out, cache = work / "faults_out", work / "faults_cache"
    proc = ck.start_build(
        story, out, cache, ck.build_env(log, mark, scale=scale, latency=latency, faults=faults), work / "logs", "faults"
    )
    code, _, err = ck.finish(proc)
    if code != 0:
        return {"completed": False, "error": err.strip().splitlines()[-1:]}
    report = json.loads((out / "report.json").read_text())
    started, durable = ck.read_call_log(log)["by_pid"][proc.pid]
    tries = Counter(line.split()[2] for line in log.read_text().splitlines() if line.startswith("S "))
    check = ck.verify_tree(out, cache)
    ref_report = json.loads((work / "ref_out" / "report.json").read_text())
    return {
        "completed": True,
        "identical_final_video": file_sha256(out / "final_video.mp4") == reference["final_sha256"],
        "faults_injected": started - durable,
        "report_retries": report["retries"],
        "retries_match_faults": report["retries"] == started - durable,
        "successful_calls": report["api_calls_total"],
        "fault_free_calls": ref_report["api_calls_total"],
        "same_calls_per_step": {s["id"]: s["api_calls"] for s in report["steps"]}
        == {s["id"]: s["api_calls"] for s in ref_report["steps"]},
        "max_tries_per_request": max(tries.values()),
        "tries_within_retry_limit": max(tries.values()) <= 1 + MAX_RETRIES,
        "corrupt_files": len(check["corrupt"]),
        "temp_files": len(check["temps"]),
        "leftover_processes": len(ck.leftover_processes(mark, grace_s=4.0)),
    }


def interrupt_scenario(work: Path, story: Path, *, scale: str, latency: str, mark: str) -> dict:
    """How fast a second build is refused and a Ctrl-C stops a build (tests/test_interrupt.py
    checks what happens; this times it)."""
    import signal

    log = work / "interrupt_calls.log"
    out, cache = work / "interrupt_out", work / "interrupt_cache"
    env = ck.build_env(log, mark, scale=scale, latency=latency)
    first = ck.start_build(story, out, cache, env, work / "logs", "interrupt-first")
    if not (
        ck.first_call_of(log, first.pid, first) and ck.wait_for_line(out / "state.json", '"status": "done"', 120, first)
    ):
        code, _, err = ck.finish(first)
        return {"error": f"the build ended ({code}) before a step was done: {err.strip().splitlines()[-1:]}"}
    t0 = time.monotonic()
    second = ck.start_build(story, out, cache, env, work / "logs", "interrupt-second")
    refused_code, _, _ = ck.finish(second, timeout_s=120)
    refused_s = time.monotonic() - t0
    os.killpg(first.pid, signal.SIGINT)
    t0 = time.monotonic()
    code, _, err = ck.finish(first, timeout_s=120)
    stop_s = time.monotonic() - t0
    started, durable = ck.read_call_log(log)["by_pid"].get(first.pid, (0, 0))
    return {
        "second_build_refused_s": round(refused_s, 2),
        "second_build_exit_code": refused_code,
        "ctrl_c_stop_s": round(stop_s, 2),
        "ctrl_c_exit_code": code,
        "ctrl_c_calls_in_flight_finished": 0 < started == durable,
        "ctrl_c_message": (err.strip().splitlines() or [""])[-1][:100],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", default="0.1", help="STORYC_RENDER_SCALE for the renders")
    ap.add_argument("--latency", default=ck.LATENCY, help="STORYC_OFFLINE_LATENCY")
    ap.add_argument("--faults", default=ISSUE_FAULTS, help="STORYC_OFFLINE_FAULTS of the fault scenario")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="storyc-reliability-"))
    story = work / "story.yaml"
    story.write_text(ck.make_story(args.scenes))
    mark = f"reliability-{os.getpid()}"

    reference = ck.reference_build(work, story, scale=args.scale, latency=args.latency, mark=f"{mark}-ref")
    print(f"fault-free build: {reference['api_calls_total']} paid calls, {reference['wall_s']:.1f}s", flush=True)
    faults = fault_scenario(
        work, story, reference, scale=args.scale, latency=args.latency, faults=args.faults, mark=f"{mark}-faults"
    )
    print(f"faulty build: {json.dumps(faults)}", flush=True)

    def on_kill(fig, check):
        print(
            f"  kill {fig['kills']:>3} at {fig['kill_moments_s'][-1]:>5.2f}s: {check['files']} files checked, "
            f"{len(check['corrupt'])} corrupt",
            flush=True,
        )

    crash = ck.crash_rounds(
        work,
        story,
        reference,
        kills=args.kills,
        seed=args.seed,
        scale=args.scale,
        latency=args.latency,
        mark=f"{mark}-crash",
        on_kill=on_kill,
    )

    interrupt = interrupt_scenario(work, story, scale=args.scale, latency=args.latency, mark=f"{mark}-interrupt")
    print(f"Ctrl-C: {json.dumps(interrupt)}", flush=True)

    fault_ok = bool(faults.get("completed"))
    result = {
        "story_scenes": args.scenes,
        "builds_run": 4 + crash["builds_run"],  # + the fault-free, the faulty and the two Ctrl-C builds
        "faults_injected": faults.get("faults_injected", 0),
        "fault_retries_in_report": faults.get("report_retries", 0),
        "kills": crash["kills"],
        "resumes": crash["resumes"],
        "assets_lost": crash["assets_lost"]
        + (0 if fault_ok and faults["successful_calls"] == faults["fault_free_calls"] else 1),
        "corrupt_files": crash["corrupt_files"] + faults.get("corrupt_files", 0),
        "extra_paid_calls": crash["extra_paid_calls"],
        "calls_in_flight_at_kills": crash["calls_in_flight_at_kills"],
        "identical_final_video": crash["identical_final_video"] and fault_ok and faults["identical_final_video"],
        "baseline_paid_calls_per_build": reference["api_calls_total"],
        "retries_match_faults": faults.get("retries_match_faults", False),
        "max_tries_per_request": faults.get("max_tries_per_request"),
        "kills_at_server_spawn": crash["kills_at_server_spawn"],
        "kills_before_first_call": crash["kills_before_first_call"],
        "temp_files_left": crash["temp_files_after_build"] + faults.get("temp_files", 0),
        "leaked_processes": crash["leaked_processes"] + faults.get("leftover_processes", 0),
        "failed_runs": crash["failed_runs"] + (0 if fault_ok else 1),
        "second_build_refused_s": interrupt.get("second_build_refused_s"),
        "ctrl_c_stop_s": interrupt.get("ctrl_c_stop_s"),
        "ctrl_c_clean": interrupt.get("ctrl_c_exit_code") == 130
        and interrupt.get("second_build_exit_code") == 1
        and bool(interrupt.get("ctrl_c_calls_in_flight_finished")),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    examples = crash["corrupt_examples"] + crash["leaked_examples"] + ([] if fault_ok else [faults.get("error")])
    examples += [interrupt["error"]] if "error" in interrupt else []
    if examples:
        result["examples"] = examples
    print()
    for key, value in result.items():
        if key != "examples":
            print(f"{key:<32}{value}")
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    ok = (
        result["identical_final_video"]
        and result["assets_lost"] == 0
        and result["corrupt_files"] == 0
        and result["extra_paid_calls"] <= result["calls_in_flight_at_kills"]
        and result["leaked_processes"] == 0
        and result["retries_match_faults"]
        and result["ctrl_c_clean"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
