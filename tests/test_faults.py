"""Fault injection on the offline backend (issue 5): a build with
STORYC_OFFLINE_FAULTS="transient=0.2,ratelimit=0.1,expired=0.05,truncated=0.05,seed=7"
completes, its final video is byte-identical to a fault-free build of the same story,
report.json counts the retries, and no asset is generated more often than its retries allow.

In-process builds on the session's Prefect harness (no subprocess: ~3 s each), the real
offline backend (faults from the environment variable, as a user sets them), tiny renders.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _crashkit import make_story, verify_tree
from _events import watch
from storyc.backends.offline import faults as offline_faults
from storyc.backends.offline.backend import OfflineBackend
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.hashing import file_sha256
from storyc.run.retry import RetryPolicy

# The issue's rates. Which requests fail is a hash of the seed and each request (its
# prompt included), so the seed is the one that meets every kind with today's templates
# (seed=7 did until the keyframe and fix templates named their inputs <IMAGE_N>).
ISSUE_FAULTS = "transient=0.2,ratelimit=0.1,expired=0.05,truncated=0.05,seed=8"
FAST_RETRY = RetryPolicy(max_retries=4, base_s=0.005, cap_s=0.02)  # the CLI default backs off 0.5 s, 1 s, ...

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    monkeypatch.delenv(offline_faults.LATENCY_ENV, raising=False)
    monkeypatch.delenv(offline_faults.FAULTS_ENV, raising=False)


class _Tries:
    """Every try the offline backend starts (by request identity) and every asset it wrote,
    from its audit events (tests/_events.py)."""

    def __init__(self):
        self.started: Counter[str] = Counter()  # request identity → tries
        self.written: Counter[str] = Counter()  # asset (out-relative dest) → successful generations
        self._lock = threading.Lock()

    def __call__(self, event: str, args: tuple) -> None:
        with self._lock:
            if event == "storyc.offline.call_started":
                self.started[args[1]] += 1
            elif event == "storyc.offline.call_done" and args[1] is not None:
                self.written[Path(args[1]).as_posix().split("/out/", 1)[-1]] += 1


def _build(story: Path, root: Path, backend: OfflineBackend | None = None):
    return run_build(
        BuildOptions(
            story=story,
            out_dir=root / "out",
            cache_dir=root / "cache",
            backend="offline",
            retry=FAST_RETRY,
            backend_factory=(lambda name: backend) if backend is not None else None,
        )
    )


def _watched_build(story: Path, root: Path):
    """A build on an offline backend made here (its faults from the environment, as a user
    sets them), with its tries counted."""
    backend, tries = OfflineBackend(), _Tries()
    with watch(tries):
        result = _build(story, root, backend)
    return result, tries, backend


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("story") / "story.yaml"
    path.write_text(make_story(3))
    return path


@pytest.fixture(scope="module")
def clean_build(story, tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORYC_RENDER_SCALE", "0.1")
        mp.delenv(offline_faults.FAULTS_ENV, raising=False)
        result = _build(story, root)
    assert result.status == "built", result.message
    return root, result.report


def test_faulty_build_matches_the_fault_free_build(story, clean_build, tmp_path, monkeypatch):
    clean_root, clean_report = clean_build
    monkeypatch.setenv(offline_faults.FAULTS_ENV, ISSUE_FAULTS)
    result, tries, backend = _watched_build(story, tmp_path)
    assert result.status == "built", result.message
    report = json.loads((tmp_path / "out" / "report.json").read_text())

    # the same video, to the byte
    assert file_sha256(tmp_path / "out" / "final_video.mp4") == file_sha256(clean_root / "out" / "final_video.mp4")

    # faults of every kind were injected, and every one of them is a counted retry
    injected = backend.faults_injected
    assert set(injected) == set(offline_faults.FAULT_KINDS), injected
    assert report["retries"] == sum(injected.values()) == sum(tries.started.values()) - report["api_calls_total"]
    assert sum(s["retries"] for s in report["steps"]) == report["retries"]

    # the faults cost retries, never extra successful (billed) calls or different loops
    assert report["api_calls"] == clean_report["api_calls"]
    by_step = {s["id"]: (s["api_calls"], s["attempts"]) for s in report["steps"]}
    assert by_step == {s["id"]: (s["api_calls"], s["attempts"]) for s in clean_report["steps"]}

    # no request is tried more often than the retry policy allows, no asset made twice
    assert max(tries.started.values()) <= 1 + FAST_RETRY.max_retries
    assert max(tries.started.values()) <= 1 + backend.fault_plan.max_consecutive
    assert tries.written and set(tries.written.values()) == {1}, tries.written

    # every file complete and matching its recorded hash; no temp file left behind
    check = verify_tree(tmp_path / "out", tmp_path / "cache")
    assert check["corrupt"] == [] and check["temps"] == []


def test_a_call_failing_past_its_retries_fails_its_step_cleanly(story, tmp_path, monkeypatch):
    """Every call rate-limited more times than the policy retries: each request is tried
    exactly 1 + max_retries times, nothing is generated, and the build says which steps
    failed and why, with finished work kept (none here) and no traceback."""
    monkeypatch.setenv(offline_faults.FAULTS_ENV, "ratelimit=1.0,max=50,seed=1")
    result, tries, _ = _watched_build(story, tmp_path)
    assert result.status == "failed"
    assert "character:Ava" in result.message and "rate limited (simulated 429)" in result.message
    assert "Traceback" not in result.message
    assert set(tries.started.values()) == {1 + FAST_RETRY.max_retries}
    assert not tries.written
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed" and report["api_calls_total"] == 0
    assert report["retries"] == FAST_RETRY.max_retries * len(tries.started)
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert {sid: rec["status"] for sid, rec in state["steps"].items()} == {
        "character:Ava": "failed",
        "character:Bo": "failed",
    }
    assert verify_tree(tmp_path / "out", tmp_path / "cache")["corrupt"] == []


def test_cli_reads_the_fault_spec_and_refuses_a_bad_one(story, tmp_path, monkeypatch):
    """A wrong STORYC_OFFLINE_FAULTS is a one-line error, not a traceback."""
    from typer.testing import CliRunner

    from storyc.cli.app import app

    monkeypatch.setenv(offline_faults.FAULTS_ENV, "transient=0.2,sparks=0.1")
    r = CliRunner().invoke(app, ["build", str(story), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 1, r.output
    assert "STORYC_OFFLINE_FAULTS: unknown fault 'sparks'" in r.output
    assert ("Traceback" not in r.output and r.exception is None) or isinstance(r.exception, SystemExit)
