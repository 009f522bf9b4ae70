"""SIGKILL a real `storyc build` (subprocess, simulated API latencies) at several moments,
resume each time, and check (issue 5):

- the final video is byte-identical to an uninterrupted build of the same story;
- no partial or corrupt file is ever left in the cache or the output folder: after every
  kill every file is complete and matches its recorded hash (cache blob names, cache
  step/call entries, state.json sha256); after the resumed build no temp file is left;
- paid calls: a killed build writes no report.json, so each build's paid calls are counted
  by the instrumented CLI (tests/_crashkit.py: one `S` line per backend call started, one
  `D` line when its result is durable in the cache). Total paid calls exceed the
  uninterrupted build's by exactly the calls in flight at the kills (and never more), and
  every call that had finished before a kill is replayed from the cache, never paid again;
- no process the killed build started (its fork in the warm build engine and that fork's
  ffmpeg, or Prefect's temporary server with STORYC_ENGINE=off) outlives it. Processes are
  matched by an environment marker each build inherits (the engine itself carries none:
  it serves later builds), so servers started by other tests at the same time are not
  counted.

Budget: 4 subprocess builds (the first starts the session's build engine, the others
reuse it) + one in-process reference build on the session harness.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _crashkit as ck
from conftest import RELIABILITY_SCENES as SCENES
from storyc.hashing import file_sha256
from storyc.run.engine import client as engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20261125


def test_sigkill_at_random_moments_then_resume(reliability_reference, tmp_path):
    story = tmp_path / "story.yaml"
    story.write_text(ck.make_story(SCENES))
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "calls.log"
    rng = random.Random(SEED)
    marks, kills, in_flight, durable_before_kills = [], [], 0, 0

    def kill(proc, mark, when: str):
        nonlocal in_flight, durable_before_kills
        os.kill(proc.pid, signal.SIGKILL)
        ck.finish(proc)
        started, durable = ck.read_call_log(log)["by_pid"].get(proc.pid, (0, 0))
        in_flight += started - durable
        durable_before_kills += durable
        kills.append((when, started, durable))
        check = ck.verify_tree(out, cache)
        assert check["corrupt"] == [], (when, check["corrupt"])

    # 1: killed the moment it starts Prefect: the warm build engine, when none runs yet (it
    # goes on starting, for the next builds, and is no process of the killed build), or the
    # temporary server with STORYC_ENGINE=off (the watchdog's hardest case)
    engine.stop()  # an engine an earlier test of this session started
    mark = f"crash-{os.getpid()}-1"
    marks.append(mark)
    proc = ck.start_build(story, out, cache, ck.build_env(log, mark), tmp_path / "logs", "run1")
    started = ck.wait_for_prefect_start(mark, proc)
    assert started, "the build never started Prefect"
    kill(proc, mark, f"at {started} start")

    # 2, 3: killed at a random moment while paid calls are running
    for n in (2, 3):
        mark = f"crash-{os.getpid()}-{n}"
        marks.append(mark)
        proc = ck.start_build(story, out, cache, ck.build_env(log, mark), tmp_path / "logs", f"run{n}")
        assert ck.first_call_of(log, proc.pid, proc), ck.finish(proc)
        delay = rng.uniform(0.3, 2.5)
        try:
            proc.wait(timeout=delay)
        except Exception:
            kill(proc, mark, f"{delay:.2f}s into the calls")
            continue
        pytest.fail(f"run {n} finished before its kill at {delay:.2f}s: {ck.finish(proc)}")

    # 4: the resumed build finishes
    mark = f"crash-{os.getpid()}-4"
    marks.append(mark)
    proc = ck.start_build(story, out, cache, ck.build_env(log, mark), tmp_path / "logs", "run4")
    code, _stdout, stderr = ck.finish(proc)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert file_sha256(out / "final_video.mp4") == reliability_reference["final"]

    report = json.loads((out / "report.json").read_text())
    calls = ck.read_call_log(log)
    assert report["status"] == "built" and report["api_calls_total"] == calls["by_pid"][proc.pid][0]
    # every call that finished before a kill was replayed, not paid again ...
    assert durable_before_kills + report["api_calls_total"] == reliability_reference["calls"], kills
    # ... so the only extra calls are the ones in flight at the kills
    extra = calls["started"] - reliability_reference["calls"]
    assert 0 <= extra <= in_flight, (extra, in_flight, kills)

    final = ck.verify_tree(out, cache)
    assert final["corrupt"] == [] and final["temps"] == [], final
    state = json.loads((out / "state.json").read_text())
    assert {rec["status"] for rec in state["steps"].values()} == {"done"} and state["jobs"] == {}

    if started == "engine":  # the engine the killed build started served the next three
        assert engine.status()["builds_served"] == 3

    # nothing a killed build started is still running (the watchdog stops it within ~3 s)
    leftovers = {m: ck.leftover_processes(m, grace_s=8.0) for m in marks}
    for procs in leftovers.values():
        ck.kill_all(procs)
    assert all(not procs for procs in leftovers.values()), leftovers
