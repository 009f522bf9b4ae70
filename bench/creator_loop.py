"""The creator's loop (issue 13): build the 3-scene demo, edit one scene, see it again.

Real `storyc build` processes (offline backend), timed from the moment the command is
started, on the demo story (stories/fox_and_owl.yaml). Two versions, each with its own
story copy and cache: the new code (the warm build engine) and today's commit (the
branch point with main, run from a `git archive` of it with PYTHONPATH; it starts
Prefect's temporary server on every build). The machine is shared, so each step runs
both versions one after the other, and the edit loop is repeated (medians):

1. first build, default quality; the new code has no engine running (its home and
   Prefect database exist, as on any day after the first). Goal: <= 20 s.
2. the same story at draft quality (--draft when `storyc build` has it, otherwise
   STORYC_RENDER_SCALE=0.5): the draft cache the loop works from (engine warm).
3. --rounds times: scene 3's action edited, rebuilt at draft quality. Goals (new code,
   engine warm, median): <= 5 s to the new final_video.mp4, <= 1 s to the first backend
   call. Each round also runs design (a) for comparison: the new code without the
   engine, in its own process against the engine's Prefect server (STORYC_ENGINE=off,
   PREFECT_API_URL): it pays `import prefect` and a first flow run in a fresh process.

Per build: wall time, time to the first backend call (the first `call` line of `storyc -v`),
with the engine its start (from its announcing line to the build's first line), the
seconds of each step, and the share of the wall time in each phase: start-up (CLI, engine
or Prefect start, flow run creation: until the first step starts), keyframes (character
sheets and keyframes), clips, assembly (assemble + storyboard) and the rest (reports,
exit); steps overlap, so a phase is the union of its steps' intervals. The load average
is printed with each build. Ratios are today / new. Last line: one JSON object.

Run: .venv/bin/python bench/creator_loop.py [--rounds 3] [--no-today] [--today-ref COMMIT]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "stories" / "fox_and_owl.yaml"
EDITED_SCENE = 3
EDITED_ACTION = "action: the fox lowers its head to the crystal as the owl nods slowly"
DRAFT_SCALE = "0.5"
_DONE = re.compile(r"^done\s+(\S+)\s.*?([\d.]+)s$")
_CALL = re.compile(r"^\s+call\s+\S+\s+\w+:")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def phases(wall: float, steps: dict[str, tuple[float, float]]) -> dict:
    """Seconds and share of the wall time per phase, from each step's (start, end)."""
    if not steps:
        return {"startup_s": round(wall, 2)}
    first_start = min(a for a, _ in steps.values())
    kinds = {
        "keyframes": [v for k, v in steps.items() if k.startswith(("character:", "keyframe:"))],
        "clips": [v for k, v in steps.items() if k.startswith("video:")],
        "assembly": [v for k, v in steps.items() if k in ("assemble", "script")],
    }
    out = {"startup_s": round(first_start, 2)}
    for name, spans in kinds.items():
        out[f"{name}_s"] = round(_union(spans), 2)
    out["rest_s"] = round(max(0.0, wall - first_start - _union(list(steps.values()))), 2)
    out["share"] = {k[:-2]: round(v / wall, 3) for k, v in out.items() if k.endswith("_s")}
    return out


def timed_build(cmd: list[str], story: Path, out: Path, cache: Path, env: dict, *extra: str) -> dict:
    """One `storyc -v build`, its output lines timestamped as they come."""
    load = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "-v", "build", str(story), "--out", str(out), "--cache", str(cache), "--backend", "offline", *extra],
        env=env,
        cwd=story.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(time.perf_counter() - t0, line.rstrip("\n")) for line in proc.stdout]
    code = proc.wait()
    wall = time.perf_counter() - t0
    first_call = next((t for t, line in lines if _CALL.match(line)), None)
    steps = {}
    for t, line in lines:
        m = _DONE.match(line)
        if m:
            steps[m[1]] = (max(0.0, t - float(m[2])), t)
    # with the engine: from its "starting the build engine" line to the fork's first line
    starting = next((t for t, line in lines if "starting the build engine" in line), None)
    forked = next((t for t, line in lines if line.startswith("storyc build: backend ")), None)
    result = {
        "exit": code,
        "engine_start_s": round(forked - starting, 2) if starting is not None and forked else None,
        "wall_s": round(wall, 2),
        "first_call_s": round(first_call, 2) if first_call is not None else None,
        "steps_run": {sid: round(b - a, 2) for sid, (a, b) in sorted(steps.items())},
        "phases": phases(wall, steps),
        "started_engine": any("starting the build engine" in line for _, line in lines),
        "load_before": load,
    }
    if code != 0:
        result["output_tail"] = [line for _, line in lines[-15:]]
    return result


def edit(story: Path, take: int) -> None:
    text = story.read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("action: the fox lowers its head"))
    new = f"{EDITED_ACTION.split('slowly')[0]}slowly, take {take}"
    story.write_text(text.replace(line.strip(), new))


def _say(what: str, run: dict) -> None:
    share = run["phases"].get("share", {})
    print(
        f"{what:<44} {run['wall_s']:>6.1f}s  first call {run['first_call_s'] or float('nan'):>5.2f}s  "
        f"load {run['load_before'][0]:>4.1f}  "
        + " ".join(f"{k} {v:.0%}" for k, v in share.items())
        + ("" if run["exit"] == 0 else f"  EXIT {run['exit']}: {run.get('output_tail')}"),
        flush=True,
    )


def draft_args(cmd: list[str], env: dict) -> tuple[list[str], dict]:
    """--draft when this storyc has it, else the render scale it stands for."""
    helped = subprocess.run([*cmd, "build", "--help"], env=env, capture_output=True, text=True).stdout
    if "--draft" in helped:
        return ["--draft"], env
    return [], {**env, "STORYC_RENDER_SCALE": DRAFT_SCALE}


class Version:
    """One storyc (the new code or today's) with its story copy, cache and output folders."""

    def __init__(self, name: str, cmd: list[str], env: dict, work: Path):
        self.name, self.cmd, self.env = name, cmd, env
        self.folder = work / name
        self.folder.mkdir()
        self.story = self.folder / DEMO.name
        shutil.copy(DEMO, self.story)
        self.draft_extra, self.draft_env = draft_args(cmd, env)
        self.draft = "--draft" if self.draft_extra else f"STORYC_RENDER_SCALE={DRAFT_SCALE}"
        self.runs: dict = {"draft": self.draft, "edit_rebuilds": []}

    def build(self, key: str, label: str, *, draft: bool, env: dict | None = None) -> dict:
        out = self.folder / ("draft" if draft else "out")
        extra = self.draft_extra if draft else []
        run = timed_build(
            self.cmd, self.story, out, self.folder / "cache", env or (self.draft_env if draft else self.env), *extra
        )
        _say(f"{self.name}: {label}", run)
        if key == "edit_rebuilds":
            self.runs[key].append(run)
        else:
            self.runs[key] = run
        return run


def median_of(runs: list[dict], field: str) -> float | None:
    values = [r[field] for r in runs if r.get(field) is not None and r["exit"] == 0]
    return round(statistics.median(values), 2) if values else None


def today_tree(ref: str, work: Path) -> Path:
    """storyc as it was at `ref`: its compiler/, prompts/, schemas/ and pyproject.toml."""
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "compiler", "prompts", "schemas", "pyproject.toml"],
        capture_output=True,
        check=True,
    ).stdout
    tree = work / "today-src"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-today", action="store_true", help="skip today's commit")
    ap.add_argument("--today-ref", default=None, help="default: the merge base of HEAD and main")
    ap.add_argument("--rounds", type=int, default=3, help="edit-and-rebuild rounds (medians are reported)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cl-"))  # short: the engine's socket path has a limit
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "STORYC_", "XAI_"))}
    base_env["STORYC_ENGINE_HOME"] = str(work / "engines")
    os.environ["STORYC_ENGINE_HOME"] = base_env["STORYC_ENGINE_HOME"]
    from storyc.run.engine import client as engine
    from storyc.run.engine.home import engine_home

    cmd = [sys.executable, "-m", "storyc"]
    result: dict = {"bench": "creator_loop", "story": str(DEMO.relative_to(ROOT)), "edited_scene": EDITED_SCENE}
    try:
        # The engine's first start makes its Prefect database (untimed for the loop: a
        # user pays it once); today's builds use that same database.
        t0 = time.perf_counter()
        engine.ensure_running(engine_home())
        result["engine_first_start_new_database_s"] = round(time.perf_counter() - t0, 2)
        engine.stop(engine_home())
        print(f"engine's first start (new Prefect database): {result['engine_first_start_new_database_s']:.1f}s")

        versions = [Version("new", cmd, base_env, work)]
        if not args.no_today:
            ref = (
                args.today_ref
                or subprocess.run(
                    ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
            tree = today_tree(ref, work)
            # an existing database, as for the new code: a copy of the engine's (not the
            # same file: the engine's server uses it while today's builds run)
            today_prefect = work / "today-prefect"
            shutil.copytree(engine_home().prefect_home, today_prefect)
            today_env = {**base_env, "PYTHONPATH": str(tree / "compiler"), "PREFECT_HOME": str(today_prefect)}
            result["today_ref"] = ref
            versions.append(Version("today", cmd, today_env, work))
        new = versions[0]

        # The machine is shared: each step runs the versions one after the other, and the
        # edit loop is repeated (medians), so that a burst of load hits both alike.
        for version in versions:
            version.build("first_build", "first build, default quality", draft=False)
        result["engine_rss_mb"] = (engine.status(engine_home()) or {}).get("rss_mb")
        for version in versions:
            version.build("draft_build", "full draft build", draft=True)
        server_only: list[dict] = []
        for take in range(1, args.rounds + 1):
            for version in versions:
                edit(version.story, take)
                version.build("edit_rebuilds", f"scene {EDITED_SCENE} edited ({take}), draft rebuild", draft=True)
            api_url = (engine.status(engine_home()) or {}).get("api_url")
            if api_url:  # design (a): the new code, no engine, on the engine's server
                edit(new.story, 100 + take)
                env_a = {**new.draft_env, "STORYC_ENGINE": "off", "PREFECT_API_URL": api_url}
                server_only.append(
                    new.build("edit_rebuilds_server_only", "edited, design (a): server only", draft=True, env=env_a)
                )
        new.runs["edit_rebuilds_server_only"] = server_only
        for version in versions:
            edits = version.runs["edit_rebuilds"]
            version.runs["edit_rebuild_median"] = {f: median_of(edits, f) for f in ("wall_s", "first_call_s")}
            result[version.name] = version.runs
        new.runs["edit_rebuild_server_only_median"] = {f: median_of(server_only, f) for f in ("wall_s", "first_call_s")}
        if len(versions) > 1:
            today = versions[1].runs
            ratios = {}
            for key in ("first_build", "draft_build"):
                ratios[f"{key}_wall"] = round(today[key]["wall_s"] / new.runs[key]["wall_s"], 2)
                if new.runs[key]["first_call_s"] and today[key]["first_call_s"]:
                    ratios[f"{key}_first_call"] = round(today[key]["first_call_s"] / new.runs[key]["first_call_s"], 2)
            for field in ("wall_s", "first_call_s"):
                a, b = today["edit_rebuild_median"][field], new.runs["edit_rebuild_median"][field]
                if a and b:
                    ratios[f"edit_rebuild_{field[:-2]}"] = round(a / b, 2)
            result["ratios_today_over_new"] = ratios
    finally:
        engine.stop(engine_home())
        shutil.rmtree(work, ignore_errors=True)

    new = result["new"]
    edit_median = new["edit_rebuild_median"]
    result["goals"] = {
        "first_build_le_20s": new["first_build"]["exit"] == 0 and new["first_build"]["wall_s"] <= 20,
        "edit_rebuild_le_5s": (edit_median["wall_s"] or 99) <= 5,
        "edit_first_call_le_1s": (edit_median["first_call_s"] or 99) <= 1,
    }
    result["load_after"] = loadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
