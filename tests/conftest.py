"""Shared pytest fixtures.

`prefect_harness` starts Prefect's test harness (a temporary server with a fresh
database, ~12 s) at most ONCE per session, and only when a test asks for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from storyc.run.prefect_settings import quiet_prefect_env

# The executor's quiet, fast Prefect settings, before anything imports prefect.
quiet_prefect_env()

# `storyc build` run as a subprocess (the crash, interrupt and CLI tests) starts the warm
# build engine (storyc.run.engine): this session's own, in a temporary folder, stopped when
# the session ends (and after 5 idle minutes should the session itself be killed).
_ENGINES = tempfile.mkdtemp(prefix="storyc-engines-")
os.environ["STORYC_ENGINE_HOME"] = _ENGINES
os.environ["STORYC_ENGINE_IDLE_SECONDS"] = "300"


def pytest_sessionfinish(session, exitstatus):
    from storyc.run.engine.client import stop

    stop(timeout_s=30)
    shutil.rmtree(_ENGINES, ignore_errors=True)


# CI explores the same examples on every run (a red CI is then a change of ours, and a
# green local run with HYPOTHESIS_PROFILE=ci predicts it); developers' runs explore new
# random examples each time, which is how new bugs are found.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
_hypothesis_settings.register_profile("dev", print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


RELIABILITY_SCENES = 3  # the story the crash, interrupt and lock tests build (_crashkit.make_story)


@pytest.fixture(scope="session")
def reliability_reference(tmp_path_factory, prefect_harness):
    """The uninterrupted offline build the crash and interrupt tests compare against (built
    once per session, in-process: the same bytes as the CLI, see test_build.py)."""
    import _crashkit as ck
    from storyc.backends.offline import faults as offline_faults
    from storyc.build.pipeline import BuildOptions, run_build
    from storyc.store.hashing import file_sha256

    root = tmp_path_factory.mktemp("reliability-reference")
    story = root / "story.yaml"
    story.write_text(ck.make_story(RELIABILITY_SCENES))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORYC_RENDER_SCALE", "0.1")
        mp.delenv("XAI_API_KEY", raising=False)
        mp.delenv(offline_faults.FAULTS_ENV, raising=False)
        mp.delenv(offline_faults.LATENCY_ENV, raising=False)
        result = run_build(BuildOptions(story=story, out_dir=root / "out", cache_dir=root / "cache", backend="offline"))
    assert result.status == "built", result.message
    return {
        "story": story,
        "final": file_sha256(root / "out" / "final_video.mp4"),
        "calls": result.report["api_calls_total"],
    }


def pytest_collection_modifyitems(config, items):
    """Tests that need the in-process Prefect server run last: once it starts, its
    background threads share the process (and its CPU and `random` state) with every
    later test, so the pure front-end and hypothesis tests go first."""
    items.sort(key=lambda item: "prefect_harness" in getattr(item, "fixturenames", ()))
