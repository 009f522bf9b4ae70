"""storyc against a real Prefect server, and on a real worker.

One `prefect server start` (SQLite in its own PREFECT_HOME, own process group) serves the
whole module. The tests run the real CLIs as subprocesses:

- `storyc build` with PREFECT_API_URL: the server records the flow run and one task run
  per step (named by step id, all COMPLETED), and storyc starts no temporary server.
- `storyc deploy` refuses a bad story (positioned diagnostics, nothing registered), a
  missing server and a missing pool.
- `storyc deploy --run` on a process work pool, with one `prefect worker start`: the
  worker loads the flow from the installed package and renders a real video.

Phase timings are printed (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import _crashkit as ck

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORY_SCENES = 2
PREFECT = [sys.executable, "-m", "prefect"]
STORYC = [sys.executable, "-m", "storyc"]
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env(home: Path) -> dict:
    """A clean environment: no xAI key, no inherited Prefect server, quiet Prefect."""
    drop = (
        "XAI_API_KEY",
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "STORYC_WATCHDOG_TAG",
        "STORYC_OFFLINE_FAULTS",
        "STORYC_OFFLINE_LATENCY",
        ck.MARK_ENV,
        ck.CALL_LOG_ENV,
    )
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "STORYC_RENDER_SCALE": "0.1",  # tiny frames: the pipeline is what is tested
        }
    )
    return env


def _stop_group(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGTERM to the process group we started, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Server:
    def __init__(self, url: str, root: Path):
        self.url = url
        self.root = root

    def env(self, home: Path, **extra: str) -> dict:
        home.mkdir(parents=True, exist_ok=True)
        return {**_base_env(home), "PREFECT_API_URL": self.url, **extra}

    @contextlib.contextmanager
    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.url}), get_client(sync_client=True) as client:
            yield client


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = _base_env(root / "home")
    (root / "home").mkdir()
    t0 = time.perf_counter()
    with open(root / "server.log", "wb") as log:  # the server writes through its own copy
        proc = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,  # its own process group: stopped as one, never by name
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited ({proc.returncode}):\n" + (root / "server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prefect server did not answer /api/health in 90 s")
            time.sleep(0.2)
        TIMINGS["server_start_s"] = time.perf_counter() - t0
        yield Server(url, root)
    finally:
        t1 = time.perf_counter()
        _stop_group(proc)
        TIMINGS["server_stop_s"] = time.perf_counter() - t1
        print("\nprefect server timings: " + json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


def _run(argv: list[str], env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _write_story(folder: Path, name: str = "harbour.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    story = folder / name
    story.write_text(ck.make_story(STORY_SCENES))
    return story


# ─── storyc build, recorded on the server ───────────────────────────────────


def test_build_is_recorded_on_the_server(prefect_server, tmp_path):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterFlowRunId
    from prefect.client.schemas.objects import StateType

    story = _write_story(tmp_path)
    home = tmp_path / "build-home"  # storyc's own PREFECT_HOME: a temporary server would put its database here
    env = prefect_server.env(home)
    argv = [
        *STORYC,
        "build",
        str(story),
        "--backend",
        "offline",
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
    ]
    t0 = time.perf_counter()
    done = _run(argv, env, tmp_path)
    TIMINGS["build_s"] = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr
    assert "built" in done.stdout

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    ran = [s["id"] for s in report["steps"] if s["status"] != "skipped" and not s["cached"]]
    assert len(ran) == len(report["steps"]) >= 8  # a fresh build runs every step
    flow_run_id = report["prefect"]["flow_run_id"]

    with prefect_server.client() as client:
        flow_run = client.read_flow_run(flow_run_id)
        assert client.read_flow(flow_run.flow_id).name == "storyc-build"
        assert flow_run.name == f"{story.stem}: {len(ran)} step(s)"
        assert flow_run.state_type == StateType.COMPLETED
        task_runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]))
        )
        # exactly one task run per executed step, named by its step id, all completed
        assert sorted(tr.name for tr in task_runs) == sorted(ran)
        assert {tr.state_type for tr in task_runs} == {StateType.COMPLETED}
        assert all(tr.task_key.startswith("storyc_step") for tr in task_runs)
        runs_before = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        assert len(runs_before) == 1

    # PREFECT_API_URL set: no temporary server (its SQLite database would be in PREFECT_HOME)
    assert not list(home.rglob("*.db")), sorted(p.name for p in home.rglob("*"))

    # an up-to-date rebuild starts no flow at all
    t0 = time.perf_counter()
    again = _run(argv, env, tmp_path)
    TIMINGS["noop_rebuild_s"] = time.perf_counter() - t0
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    with prefect_server.client() as client:
        builds = [fr for fr in client.read_flow_runs() if fr.name.startswith(f"{story.stem}:")]
        assert [str(fr.id) for fr in builds] == [flow_run_id]


# ─── storyc deploy: refusals ─────────────────────────────────────────────────


def test_deploy_refuses_bad_story_missing_server_and_missing_pool(prefect_server, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = ck.make_story(STORY_SCENES).replace("duration_seconds: 3", "duration_seconds: 90", 1)
    bad.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "duration_seconds: 90" in row)
    env = prefect_server.env(tmp_path / "home")

    refused = _run([*STORYC, "deploy", str(bad), "--pool", "bad-pool", "--create-pool"], env, tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert re.search(rf"bad\.yaml:{line}:\d+: error E204 ", refused.stderr), refused.stderr
    assert "Traceback" not in refused.stderr and "deployed" not in refused.stdout

    good = _write_story(tmp_path)
    overrides = tmp_path / "team_prompts"
    overrides.mkdir()
    (overrides / "keyframe.j2").write_text("{{ scene.no_such_field }")
    broken_prompts = _run(
        [*STORYC, "deploy", str(good), "--pool", "bad-pool", "--create-pool", "--prompts", str(overrides)],
        env,
        tmp_path,
    )
    assert broken_prompts.returncode == 1 and "E501" in broken_prompts.stderr, broken_prompts.stderr

    no_pool = _run([*STORYC, "deploy", str(good), "--pool", "no-such-pool"], env, tmp_path)
    assert no_pool.returncode == 1
    assert "work pool 'no-such-pool' does not exist" in no_pool.stderr
    assert "prefect work-pool create no-such-pool --type process" in no_pool.stderr

    no_server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    no_server = _run([*STORYC, "deploy", str(good), "--pool", "bad-pool"], no_server_env, tmp_path)
    assert no_server.returncode == 1
    assert "set PREFECT_API_URL" in no_server.stderr and "Traceback" not in no_server.stderr

    unreachable = _run(
        [*STORYC, "deploy", str(good), "--pool", "bad-pool"],
        {**env, "PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api"},
        tmp_path,
    )
    assert unreachable.returncode == 1
    assert "is not reachable" in unreachable.stderr and "Traceback" not in unreachable.stderr

    from prefect.exceptions import ObjectNotFound

    with prefect_server.client() as client:  # nothing was registered, no pool was created
        for name in ("bad-pool", "no-such-pool"):
            with pytest.raises(ObjectNotFound):
                client.read_work_pool(name)
        assert not [d for d in client.read_deployments() if d.name in (bad.stem, good.stem)]


# ─── storyc deploy: a worker renders the story ──────────────────────────────


@pytest.fixture(scope="module")
def process_pool_worker(prefect_server, tmp_path_factory):
    """A process work pool created with Prefect's CLI and one worker polling it."""
    pool = "storyc-test-pool"
    tmp_path = tmp_path_factory.mktemp("worker")
    env = prefect_server.env(tmp_path / "worker-home", PREFECT_WORKER_QUERY_SECONDS="1")
    t0 = time.perf_counter()
    created = _run([*PREFECT, "work-pool", "create", pool, "--type", "process"], env, tmp_path)
    assert created.returncode == 0, created.stdout + created.stderr
    TIMINGS["pool_create_s"] = time.perf_counter() - t0
    log_path = tmp_path / "worker.log"
    worker_dir = tmp_path / "worker-cwd"  # not the story's folder: the worker has only the installed package
    worker_dir.mkdir()
    with open(log_path, "wb") as log:  # the worker writes through its own copy
        proc = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", pool, "--name", "storyc-test-worker"],
            env=env,
            cwd=worker_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield pool, log_path
    finally:
        t1 = time.perf_counter()
        _stop_group(proc)  # before the server fixture stops the server
        TIMINGS["worker_stop_s"] = time.perf_counter() - t1


def _wait_final(client, run_id: str, worker_log: Path, timeout: float = 120):
    """The flow run once final, and when a worker first moved it out of SCHEDULED."""
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    picked = None
    while True:
        flow_run = client.read_flow_run(run_id)
        if picked is None and flow_run.state_type != StateType.SCHEDULED:
            picked = time.perf_counter()
        if flow_run.state and flow_run.state.is_final():
            return flow_run, picked or time.perf_counter()
        if time.monotonic() > deadline:
            pytest.fail(
                f"flow run still {flow_run.state_name} after {timeout} s; worker log:\n{worker_log.read_text()[-3000:]}"
            )
        time.sleep(0.5)


def test_deployment_renders_on_a_worker(prefect_server, process_pool_worker, tmp_path):
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentTaskRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.client.schemas.objects import StateType

    from storyc.media.probe import probe

    pool, worker_log = process_pool_worker
    story = _write_story(tmp_path / "shared" / "stories")
    out, cache = tmp_path / "shared" / "out", tmp_path / "shared" / "cache"
    secret = "xai-" + "S3cr3t" * 6  # the deploying machine's key must not travel with the deployment
    env = prefect_server.env(tmp_path / "deploy-home", XAI_API_KEY=secret)

    t0 = time.perf_counter()
    deployed = _run(
        [*STORYC, "deploy", str(story), "--pool", pool, "--cache", str(cache), "--out", str(out), "--run"],
        env,
        tmp_path,
    )
    TIMINGS["deploy_s"] = time.perf_counter() - t0
    assert deployed.returncode == 0, deployed.stderr
    full_name = f"storyc-render/{story.stem}"
    assert f"prefect worker start --pool {pool}" in deployed.stdout
    assert f"prefect deployment run '{full_name}'" in deployed.stdout
    run_id = re.search(r"started flow run ([0-9a-f-]{36}) ", deployed.stdout).group(1)

    with prefect_server.client() as client:
        deployment = client.read_deployment_by_name(full_name)
        assert deployment.entrypoint == "storyc.deploy.storyc_render"  # the installed package, no source tree
        assert not deployment.pull_steps and deployment.work_pool_name == pool
        assert deployment.parameters == {"story": str(story), "out": str(out), "cache": str(cache)}
        assert secret not in deployment.model_dump_json()
        assert deployment.global_concurrency_limit.limit == 1  # runs of one story queue: one output folder

        flow_run, picked = _wait_final(client, run_id, worker_log)
        TIMINGS["worker_pickup_s"] = picked - t0 - TIMINGS["deploy_s"]
        TIMINGS["deployed_run_s"] = time.perf_counter() - t0 - TIMINGS["deploy_s"]
        assert flow_run.state_type == StateType.COMPLETED, worker_log.read_text()[-3000:]
        assert flow_run.name == f"render {story.stem}"
        assert secret not in flow_run.model_dump_json()

        # the build flow ran as a subflow of the deployed run, one task run per step
        parents = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run.id]))
        )
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[tr.id for tr in parents])
            )
        )
        assert len(subflows) == 1 and subflows[0].state_type == StateType.COMPLETED
        assert client.read_flow(subflows[0].flow_id).name == "storyc-build"
        steps = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[subflows[0].id]))
        )
        report = json.loads((out / "report.json").read_text())
        assert sorted(tr.name for tr in steps) == sorted(s["id"] for s in report["steps"])
        assert {tr.state_type for tr in steps} == {StateType.COMPLETED}

    # registering again updates the same deployment
    again = _run(
        [*STORYC, "deploy", str(story), "--pool", pool, "--cache", str(cache), "--out", str(out / "v2")], env, tmp_path
    )
    assert again.returncode == 0, again.stderr
    with prefect_server.client() as client:
        updated = client.read_deployment_by_name(full_name)
        assert updated.id == deployment.id and updated.parameters["out"] == str(out / "v2")

    assert report["backend"] == "offline"  # the worker has no XAI_API_KEY: its choice, not the deployer's
    final = out / "final_video.mp4"
    info = probe(final)
    assert info.width > 0 and info.height > 0 and info.video_codec
    assert info.duration_s == pytest.approx(3 * STORY_SCENES, abs=0.5)
    assert (cache / "steps").is_dir()  # the cache went where --cache said
    assert secret not in worker_log.read_text()


def test_a_failed_render_fails_its_flow_run_with_the_reason(prefect_server, process_pool_worker, tmp_path):
    """--backend xai on a worker without XAI_API_KEY: FAILED, with storyc's one line."""
    from prefect.client.schemas.objects import StateType

    pool, worker_log = process_pool_worker
    story = _write_story(tmp_path / "shared", "needs_key.yaml")
    env = prefect_server.env(tmp_path / "deploy-home")
    t0 = time.perf_counter()
    deployed = _run(
        [
            *STORYC,
            "deploy",
            str(story),
            "--pool",
            pool,
            "--backend",
            "xai",
            "--out",
            str(tmp_path / "out"),
            "--cache",
            str(tmp_path / "cache"),
            "--run",
        ],
        env,
        tmp_path,
    )
    assert deployed.returncode == 0, deployed.stderr
    run_id = re.search(r"started flow run ([0-9a-f-]{36}) ", deployed.stdout).group(1)
    with prefect_server.client() as client:
        flow_run, _ = _wait_final(client, run_id, worker_log)
    TIMINGS["failed_run_s"] = time.perf_counter() - t0
    assert flow_run.state_type == StateType.FAILED
    assert "RenderFailed" in flow_run.state.message and "XAI_API_KEY" in flow_run.state.message, flow_run.state.message
    assert not (tmp_path / "out").exists()  # the backend failed before the output folder was made


# ─── the deployed flow's own refusals (no server needed) ─────────────────────


def test_render_story_fails_with_one_clear_reason(tmp_path):
    from storyc.deploy import RenderFailed, render_story

    with pytest.raises(RenderFailed, match=r"is not a file on worker .*mount the shared storage"):
        render_story(str(tmp_path / "gone.yaml"), str(tmp_path / "out"), str(tmp_path / "cache"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(ck.make_story(STORY_SCENES).replace("duration_seconds: 3", "duration_seconds: 90", 1))
    with pytest.raises(RenderFailed, match=r"does not lint:\n.*bad\.yaml:\d+:\d+: error E204 "):
        render_story(str(bad), str(tmp_path / "out"), str(tmp_path / "cache"), backend="offline")
    assert not (tmp_path / "out").exists()
    # the deployment's template overrides reach the build: a broken one is the build's E501
    good = tmp_path / "good.yaml"
    good.write_text(ck.make_story(STORY_SCENES))
    overrides = tmp_path / "team_prompts"
    overrides.mkdir()
    (overrides / "keyframe.j2").write_text("{{ scene.no_such_field }")
    with pytest.raises(RenderFailed, match=r"does not lint:\n.*E501"):
        render_story(
            str(good), str(tmp_path / "out"), str(tmp_path / "cache"), backend="offline", prompts=str(overrides)
        )
    assert not (tmp_path / "out").exists()
