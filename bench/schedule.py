"""How close does the Prefect executor get to the best schedule the graph allows?

A generated 12-scene, 4-character story in 3 chained sequences of 4 (`chain_from: none`
starts each sequence), rendered with the offline backend and simulated latencies
image=0.3 s, video=1.0 s, chat/vision=0.1 s (STORYC_OFFLINE_LATENCY), on a fresh cache.

Printed (last line, JSON):
- wall_s: the whole build as a user sees it (load, plan, Prefect start, steps, reports).
- prefect_startup_s: from the flow call to the first step starting (Prefect's fixed cost:
  the temporary server start, the flow run's creation). Reported separately.
- steps_wall_s: first step started → last step finished (the part the scheduler controls).
- critical_path_s: the same steps with the same call counts (the attempts this build
  actually made), the same latencies and the same rate limits (image 5/s, video 1/s),
  simulated with unlimited workers: the best any scheduler could do. Local work
  (drawing, ffmpeg) is not in it; it is in steps_wall_s, so the ratio is honest.
- sequential_s: the seed's fully sequential schedule (every call one after the other),
  simulated with the same call counts and latencies.
- local_tail_s: assemble + script (local ffmpeg work after the last clip, no API call).
- ratios: steps_wall / critical path (goal <= 1.10), the same with the local tail added to
  the critical path, wall / critical path, sequential / steps_wall.

Run: .venv/bin/python bench/schedule.py [--scale 0.25]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

LATENCY = {"image": 0.3, "video": 1.0, "vision": 0.1, "chat": 0.1}
RATES = {"image": 5.0, "video": 1.0}

COLOURS = ["crimson", "cobalt blue", "emerald green", "golden yellow", "violet", "orange", "white", "black"]
NAMES = ["Ember", "Sage", "Juno", "Pike"]


def make_story(folder: Path, scenes: int = 12, per_sequence: int = 4) -> Path:
    chars = []
    for i, name in enumerate(NAMES):
        a, b = COLOURS[i % len(COLOURS)], COLOURS[(i + 3) % len(COLOURS)]
        desc = (
            f"A figure named {name} with a {a} coat, {b} boots, a round face, short hair and a calm expression, "
            f"standing upright; the {a} coat has large {b} buttons and a wide collar."
        )
        chars.append(
            {
                "name": name,
                "role": "protagonist" if i == 0 else "supporting",
                "visual_description": desc,
                "personality_cues": ["calm", "curious", "kind"],
            }
        )
    scene_list = []
    for n in range(scenes):
        seq = n // per_sequence
        present = [NAMES[seq % 4], NAMES[(seq + 1) % 4]] if n % 2 else [NAMES[seq % 4]]
        scene = {
            "scene_id": n + 1,
            "title": f"Scene number {n + 1}",
            "description": f"Sequence {seq + 1}, beat {n % per_sequence + 1}.",
            "characters_present": present,
            "setting": ["a forest clearing at dawn", "a harbour at noon", "a city rooftop at night"][seq % 3],
            "camera": ["wide shot, slow dolly forward", "medium shot, pan left", "close up, static"][n % 3],
            "mood": "soft warm light",
            "action": f"the characters move forward, beat {n % per_sequence + 1}",
            "duration_seconds": 3,
            "transition": "cut",
        }
        if n % per_sequence == 0 and n:
            scene["chain_from"] = "none"
        scene_list.append(scene)
    story = {
        "version": 1,
        "title": "Schedule benchmark",
        "style": "flat vector illustration with bold outlines, soft pastel shading and gentle film grain texture",
        "aspect_ratio": "16:9",
        "resolution": "480p",
        "color_palette": "teal, coral, cream, slate",
        "characters": chars,
        "scenes": scene_list,
    }
    path = folder / "schedule_story.json"
    path.write_text(json.dumps(story, indent=1))
    return path


def simulate(steps: dict[str, dict], deps: dict[str, tuple[str, ...]], latency=LATENCY, rates=RATES) -> float:
    """Unlimited workers; each step makes its calls one after another; a rate-limited kind
    grants one call per 1/rate seconds (first come, first served). Returns the makespan."""
    next_token = dict.fromkeys(rates, 0.0)
    remaining = {sid: {d for d in deps[sid] if d in steps} for sid in steps}
    children: dict[str, list[str]] = {sid: [] for sid in steps}
    for sid, ds in remaining.items():
        for d in ds:
            children[d].append(sid)
    # event: (time, seq, step, index of the next call)
    queue: list[tuple[float, int, str, int]] = []
    seq = 0
    for sid, ds in remaining.items():
        if not ds:
            heapq.heappush(queue, (0.0, seq, sid, 0))
            seq += 1
    finish: dict[str, float] = {}
    while queue:
        t, _, sid, i = heapq.heappop(queue)
        calls = steps[sid]
        if i < len(calls):
            kind = calls[i]
            start = t
            if kind in rates:
                start = max(t, next_token[kind])
                next_token[kind] = start + 1.0 / rates[kind]
            heapq.heappush(queue, (start + latency.get(kind, 0.0), seq, sid, i + 1))
            seq += 1
            continue
        finish[sid] = t
        for child in children[sid]:
            remaining[child].discard(sid)
            if not remaining[child]:
                ready = max(finish[d] for d in deps[child] if d in steps) if deps[child] else t
                heapq.heappush(queue, (ready, seq, child, 0))
                seq += 1
    return max(finish.values()) if finish else 0.0


def call_sequence(step_calls: dict[str, int], kind_order=("image", "vision", "video")) -> list[str]:
    """A step's calls in loop order (generate/check pairs); only the counts matter for the makespan."""
    out: list[str] = []
    counts = dict(step_calls)
    while any(counts.values()):
        for kind in kind_order + tuple(k for k in counts if k not in kind_order):
            if counts.get(kind):
                out.append(kind)
                counts[kind] -= 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--scale",
        default=os.environ.get("STORYC_RENDER_SCALE", "0.25"),
        help="STORYC_RENDER_SCALE for the renders (local ffmpeg work is not what is measured)",
    )
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    os.environ["STORYC_RENDER_SCALE"] = str(args.scale)
    os.environ["STORYC_OFFLINE_LATENCY"] = ",".join(f"{k}={v}" for k, v in LATENCY.items() if k != "vision")
    os.environ.pop("XAI_API_KEY", None)

    from storyc.build.options import BuildOptions
    from storyc.build.pipeline import run_build

    work = Path(tempfile.mkdtemp(prefix="storyc-bench-schedule-"))
    story = make_story(work)
    marks: list[tuple[str, float]] = []

    def on_event(event, data):
        if event in ("step_started", "step_finished"):
            marks.append((event, time.perf_counter()))

    t0 = time.perf_counter()
    result = run_build(
        BuildOptions(
            story=story,
            backend="offline",
            out_dir=work / "out",
            cache_dir=work / "cache",
            rates=RATES,
            on_event=on_event,
        )
    )
    wall = time.perf_counter() - t0
    if result.status != "built":
        print(json.dumps({"error": result.message, "status": result.status}))
        sys.exit(1)
    rep = result.report
    from storyc.build.prepare import prepare

    graph = prepare(story, backend="offline", cache_dir=work / "cache").graph
    steps = {s["id"]: call_sequence(s.get("calls", {})) for s in rep["steps"]}
    deps = {sid: graph.steps[sid].deps for sid in graph.order}
    critical = simulate(steps, deps)
    critical_unlimited = simulate(steps, deps, rates={})
    sequential = sum(LATENCY[k] for calls in steps.values() for k in calls)
    # Assembly and the storyboard are local work after the last clip (ffmpeg, no API):
    # not in the latency model, reported so the ratio can be read both ways.
    tail = sum(s["wall_s"] for s in rep["steps"] if s["id"] in ("assemble", "script"))
    starts = [t for e, t in marks if e == "step_started"]
    ends = [t for e, t in marks if e == "step_finished"]
    steps_wall = max(ends) - min(starts)
    out = {
        "bench": "schedule",
        "scenes": 12,
        "characters": 4,
        "sequences": 3,
        "latency_s": LATENCY,
        "rate_limits_per_s": RATES,
        "render_scale": float(args.scale),
        "api_calls": rep["api_calls"],
        "api_calls_total": rep["api_calls_total"],
        "wall_s": round(wall, 3),
        "prefect_startup_s": rep.get("prefect", {}).get("startup_s"),
        "steps_wall_s": round(steps_wall, 3),
        "critical_path_s": round(critical, 3),
        "critical_path_no_rate_limits_s": round(critical_unlimited, 3),
        "sequential_s": round(sequential, 3),
        "local_tail_s": round(tail, 3),
        "ratio_steps_wall_to_critical": round(steps_wall / critical, 3),
        "ratio_steps_wall_to_critical_plus_local_tail": round(steps_wall / (critical + tail), 3),
        "ratio_wall_to_critical": round(wall / critical, 3),
        "speedup_vs_sequential": round(sequential / steps_wall, 3),
        "goal_steps_wall_within_1_10x_critical": steps_wall <= 1.10 * critical,
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
