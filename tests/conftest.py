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
    from storyc.build.options import BuildOptions
    from storyc.build.pipeline import run_build
    from storyc.hashing import file_sha256

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


KINDS = ("unit", "integration")


def pytest_collection_modifyitems(config, items):
    """Every test says what kind it is: exactly one of `unit` and `integration` (a browser
    test is an integration test too), so `-m unit` and `make check` select what they say.

    Tests that need the in-process Prefect server run last: once it starts, its
    background threads share the process (and its CPU and `random` state) with every
    later test, so the pure front-end and hypothesis tests go first."""
    unmarked = []
    for item in items:
        kinds = [kind for kind in KINDS if item.get_closest_marker(kind)]
        if len(kinds) != 1 or (item.get_closest_marker("browser") and kinds != ["integration"]):
            unmarked.append(f"{item.nodeid}: {kinds or 'no kind'}")
    if unmarked:
        raise pytest.UsageError(
            "every test is marked exactly one of unit / integration (browser tests: integration), see CONTRIBUTING.md:\n  "
            + "\n  ".join(unmarked)
        )
    items.sort(key=lambda item: "prefect_harness" in getattr(item, "fixturenames", ()))
