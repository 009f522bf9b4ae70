"""The warm build engine (storyc.run.engine; issue 13): real `storyc build` subprocesses,
real engines (each a `prefect server` and a forking storyc), no mock.

- Two builds racing to start the engine start one; both finish; a non-TTY build says in
  one line that it starts it; `storyc server status|stop` show and stop it, server too.
- An idle engine stops itself and its Prefect server; an engine killed outright takes its
  server along (parent-death signal), and the next build starts a new one.
- A killed `storyc build` leaves nothing behind: the engine kills its fork at once (no
  call starts after the kill), the fork's watchdog its ffmpeg; the engine serves on.
- An engine running other storyc code (an upgrade, an edited checkout) is retired.
- Telemetry stays off everywhere (engine, server, every build: DO_NOT_TRACK=1,
  PREFECT_SERVER_ANALYTICS_ENABLED=false) and a build on a terminal prints no notice.
- Refusals start nothing: --max-cost below the minimum cost and a bad --select exit at
  once, without an engine, an output folder or `import prefect`.

Engines with their own home live in short /tmp folders (a Unix socket path is limited to
107 bytes); the others use this session's engine (conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _crashkit as ck
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.run.engine import client as engine
from storyc.run.engine.home import CLIENT_PID_ENV, HOME_ENV, IDLE_ENV, EngineHome, engine_home, why_no_engine
from storyc.run.engine.wire import Channel
from storyc.store.fsutil import lock_holder

STORYC = [sys.executable, "-m", "storyc"]
STARTING = "storyc build: starting the build engine"
WAITING = "storyc build: waiting for the build engine another build is starting"


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    for name in ("XAI_API_KEY", "PREFECT_API_URL", "STORYC_ENGINE", "STORYC_OFFLINE_FAULTS", "STORYC_OFFLINE_LATENCY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def own_home(monkeypatch):
    """An engine home of this test only (short path), its engine stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="se-"))
    monkeypatch.setenv(HOME_ENV, str(root))
    try:
        yield engine_home()
    finally:
        engine.stop(engine_home(), timeout_s=30)
        shutil.rmtree(root, ignore_errors=True)


def _story(folder: Path, scenes: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    story = folder / "story.yaml"
    story.write_text(ck.make_story(scenes))
    return story


def _env_of(mark: str, log: Path | None = None, **extra: str) -> dict:
    env = ck.build_env(log, mark, latency=None)
    env.update(extra)
    return env


def _storyc(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 300):
    return subprocess.run(
        [*STORYC, *map(str, args)],
        env=env or dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pids, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _fork_of(client_pid: int) -> int | None:
    """The engine's fork running the build of `client_pid` (a fork shows the engine's own
    environment in /proc: the build's is set in it after the fork)."""
    status = engine.status() or {}
    return next((b["pid"] for b in status.get("builds_running", []) if b["client_pid"] == client_pid), None)


def _watchdog_of(mark: str) -> int | None:
    """The watchdog a build of this mark started: exec'd with the build's environment."""
    return next((pid for pid, cmd in ck.marked_processes(mark) if " -c " in cmd), None)


def _api(api_url: str, path: str, body: dict) -> list[dict]:
    import urllib.request

    request = urllib.request.Request(
        f"{api_url}/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


# ─── starting, sharing, status and stop ──────────────────────────────────────


@pytest.mark.integration
@pytest.mark.slow
def test_two_builds_racing_start_one_engine_then_status_and_stop(own_home, tmp_path):
    stories = [_story(tmp_path / name) for name in ("a", "b")]
    env = _env_of(f"race-{os.getpid()}")
    procs = [
        ck.start_build(story, story.parent / "out", story.parent / "cache", env, tmp_path / "logs", story.parent.name)
        for story in stories
    ]
    results = [ck.finish(proc) for proc in procs]
    for code, stdout, stderr in results:
        assert code == 0, stderr
        assert "built " in stdout and "Traceback" not in stdout + stderr
        # a non-TTY build: one line when it starts the engine (or waits for the other
        # build's), then the build as always
        said = [line for line in stdout.splitlines() if line.startswith((STARTING, WAITING))]
        assert len(said) == 1, stdout
    assert any(STARTING in stdout for _, stdout, _ in results)

    status = engine.status(own_home)
    assert status is not None and status["state"] == "ready"
    assert status["builds_served"] == 2  # one engine served both
    log = own_home.log.read_text()
    assert log.count("ready in") == 1 and log.count("started prefect server") == 1, log
    pid, server_pid = status["pid"], status["server_pid"]
    assert _alive(pid) and _alive(server_pid)
    # the engine's Prefect server recorded both builds: a flow run each, a task run per step
    runs = _api(status["api_url"], "flow_runs/filter", {})
    assert sorted(r["name"] for r in runs) == ["story: 8 step(s)", "story: 8 step(s)"]
    assert {r["state_type"] for r in runs} == {"COMPLETED"}
    deadline = time.monotonic() + 20  # task runs are recorded from their events, a moment later
    while True:
        tasks = _api(status["api_url"], "task_runs/filter", {"flow_runs": {"id": {"any_": [r["id"] for r in runs]}}})
        if (len(tasks) >= 16 and {t["state_type"] for t in tasks} == {"COMPLETED"}) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(tasks) == 16 and {t["state_type"] for t in tasks} == {"COMPLETED"}, tasks
    assert lock_holder(own_home.lock) is not None

    shown = _storyc("server", "status")
    assert shown.returncode == 0, shown.stderr
    assert f"build engine: ready, pid {pid}, Prefect server {status['api_url']}" in shown.stdout
    assert "2 build(s) served" in shown.stdout
    as_json = json.loads(_storyc("server", "status", "--json").stdout)
    assert as_json["pid"] == pid and as_json["builds_running"] == []

    stopped = _storyc("server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"build engine: stopped (pid {pid})")
    assert _gone([pid, server_pid])
    assert not own_home.socket.exists() and not own_home.info.exists()
    assert lock_holder(own_home.lock) is None
    assert _storyc("server", "status").stdout.startswith("build engine: not running")
    assert _storyc("server", "stop").stdout.strip() == "build engine: not running"


@pytest.mark.integration
@pytest.mark.slow
def test_an_idle_engine_stops_itself_and_a_killed_one_takes_its_server_along(own_home, monkeypatch):
    monkeypatch.setenv(IDLE_ENV, "3")
    first = engine.ensure_running(own_home)
    assert first["idle_limit_s"] == 3
    assert _gone([first["pid"], first["server_pid"]], timeout_s=60)  # idle: it went, server too
    assert "stopped (idle for" in own_home.log.read_text()
    assert lock_holder(own_home.lock) is None and not own_home.socket.exists()

    monkeypatch.setenv(IDLE_ENV, "300")
    second = engine.ensure_running(own_home)
    assert second["pid"] != first["pid"]
    os.kill(second["pid"], signal.SIGKILL)  # no clean-up at all: the kernel's parent-death signal
    assert _gone([second["pid"], second["server_pid"]])
    assert own_home.socket.exists()  # a dead engine's socket: the next one replaces it
    assert engine.status(own_home) is None

    third = engine.ensure_running(own_home)
    assert third["pid"] not in (first["pid"], second["pid"]) and third["state"] == "ready"


# ─── a killed build, a retired engine ────────────────────────────────────────


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_build_leaves_nothing_behind_and_the_engine_serves_on(tmp_path):
    story = _story(tmp_path, scenes=3)
    out, cache, log = tmp_path / "out", tmp_path / "cache", tmp_path / "calls.log"
    mark = f"engine-kill-{os.getpid()}"
    env = ck.build_env(log, mark)  # simulated API latencies: the kill lands mid-build
    proc = ck.start_build(story, out, cache, env, tmp_path / "logs", "killed")
    assert ck.first_call_of(log, proc.pid, proc), ck.finish(proc)
    served = engine.status()["builds_served"]
    fork = _fork_of(proc.pid)
    assert fork and _alive(fork)  # the build runs in a fork of the engine
    os.kill(proc.pid, signal.SIGKILL)
    ck.finish(proc)
    assert _gone([fork], timeout_s=5)  # the engine killed it at once
    assert ck.leftover_processes(mark, grace_s=8.0) == []  # its watchdog and ffmpeg too
    started = ck.read_call_log(log)["started"]
    time.sleep(1.5)
    assert ck.read_call_log(log)["started"] == started  # no call started after the kill
    assert ck.verify_tree(out, cache)["corrupt"] == []

    resumed = ck.start_build(story, out, cache, ck.build_env(log, mark + "-resume"), tmp_path / "logs", "resumed")
    code, stdout, stderr = ck.finish(resumed)
    assert code == 0, stderr
    assert STARTING not in stdout  # the same engine
    status = engine.status()
    assert status["builds_served"] == served + 1 and status["builds_running"] == []


@pytest.mark.integration
@pytest.mark.slow
def test_an_engine_running_other_code_is_retired(tmp_path):
    story = _story(tmp_path)
    done = _storyc("build", story, "--out", tmp_path / "out", "--cache", tmp_path / "cache", env=_env_of("stale"))
    assert done.returncode == 0, done.stderr
    old = engine.status()
    channel = engine._connect(engine_home())
    with open(os.devnull, "rb") as null:
        fd = null.fileno()
        channel.send({"op": "build", "fingerprint": "an older storyc"}, fds=(fd, fd, fd))
        reply, _ = channel.recv()
    channel.close()
    assert reply == {"stale": True, "pid": old["pid"]}
    assert _gone([old["pid"], old["server_pid"]])
    assert "stopping (storyc's code changed)" in engine_home().log.read_text()
    up_to_date = _storyc("build", story, "--out", tmp_path / "out2", "--cache", tmp_path / "cache", env=_env_of("s2"))
    assert up_to_date.returncode == 0 and "up to date" in up_to_date.stdout  # needs no engine: starts none
    assert STARTING not in up_to_date.stdout and engine.status() is None
    again = subprocess.run(
        [*STORYC, "build", str(story), "--out", str(tmp_path / "out3"), "--cache", str(tmp_path / "cache3")],
        env=_env_of("s3"),
        capture_output=True,
        text=True,
        timeout=300,
        umask=0o027,  # the fork writes files with the client's umask, not the engine's
    )
    assert again.returncode == 0, again.stderr
    assert STARTING in again.stdout
    modes = {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out3").rglob("*") if p.is_file()}
    assert modes == {oct(0o640)}, modes
    assert engine.status()["pid"] != old["pid"]


# ─── telemetry and notices ───────────────────────────────────────────────────


@pytest.mark.integration
@pytest.mark.slow
def test_telemetry_stays_off_and_a_terminal_shows_no_notice(tmp_path):
    story = _story(tmp_path, scenes=3)
    mark = f"telemetry-{os.getpid()}"
    env = ck.build_env(None, mark)  # simulated latencies: time to look at the build's fork
    env.pop("DO_NOT_TRACK", None)
    env.pop("PREFECT_SERVER_ANALYTICS_ENABLED", None)
    env["TERM"] = "xterm"
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*STORYC, "build", str(story), "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(follower)
    output, fork_env = b"", None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if fork_env is None and (watchdog := _watchdog_of(mark)):
            with contextlib.suppress(OSError):
                fork_env = _environ(watchdog)  # the build's environment, as its children get it
        ready, _, _ = select.select([leader], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: every writer is done
                break
            if not chunk:
                break
            output += chunk
    assert proc.wait(timeout=60) == 0, output.decode(errors="replace")
    os.close(leader)
    text = output.decode(errors="replace")
    assert "built " in text and "anonymous usage" not in text and "DO_NOT_TRACK" not in text

    status = engine.status()
    assert fork_env is not None, "the build's watchdog was never seen"
    for who, environ in (
        ("engine", _environ(status["pid"])),
        ("prefect server", _environ(status["server_pid"])),
        ("build", fork_env),
    ):
        assert environ.get("DO_NOT_TRACK") == "1", who
        assert environ.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false", who
    assert fork_env["PREFECT_API_URL"] == status["api_url"] and fork_env[CLIENT_PID_ENV] == str(proc.pid)
    assert mark not in json.dumps(_environ(status["pid"]))  # the engine keeps no build's settings


# ─── refusals start nothing ──────────────────────────────────────────────────

_PROBE = (
    "import sys\n"
    "from storyc.cli.app import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    sys.stderr.write('prefect imported: %s\\n' % ('prefect' in sys.modules))\n"
)


@pytest.mark.integration
@pytest.mark.slow
def test_refusals_start_no_engine_and_import_no_prefect(own_home, tmp_path):
    story = _story(tmp_path)
    out = tmp_path / "out"
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)
    env = _env_of("refusals")

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(probe), "build", str(story), "--out", str(out), "--cache", str(tmp_path / "c")]
        return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)

    budget = run("--max-cost", "0.01")
    assert budget.returncode == 1, budget.stderr
    assert "nothing was started" in budget.stderr and "--max-cost $0.01" in budget.stderr
    assert "prefect imported: False" in budget.stderr and STARTING not in budget.stdout
    bad_select = run("--select", "keyframe:99")
    assert bad_select.returncode == 2 and "prefect imported: False" in bad_select.stderr
    dry = run("--dry-run")
    assert dry.returncode == 0 and "prefect imported: False" in dry.stderr
    assert not out.exists()  # nothing was started
    assert lock_holder(own_home.lock) is None and not own_home.root.exists()


@pytest.mark.unit
def test_the_budget_is_checked_before_anything_in_process(tmp_path):
    story = _story(tmp_path)
    result = run_build(BuildOptions(story=story, out_dir=tmp_path / "out", cache_dir=tmp_path / "c", max_cost=0.01))
    assert result.status == "budget"
    assert result.message.startswith("budget: the cheapest step that could run first (character:")
    assert "nothing was started" in result.message and "--max-cost $0.01" in result.message
    assert not (tmp_path / "out").exists()


@pytest.mark.unit
def test_when_a_build_uses_no_engine(monkeypatch):
    assert why_no_engine() is None
    monkeypatch.setenv("STORYC_ENGINE", "off")
    assert why_no_engine() == "STORYC_ENGINE=off"
    monkeypatch.delenv("STORYC_ENGINE")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert "PREFECT_API_URL" in why_no_engine()  # the user's server: today's behaviour
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv(CLIENT_PID_ENV, "12345")
    assert why_no_engine() == "this is already an engine's build"


@pytest.mark.integration
def test_messages_keep_their_frames_and_descriptors(tmp_path):
    import socket
    import threading

    left, right = socket.socketpair()
    a, b = Channel(left), Channel(right)
    with open(tmp_path / "f", "w") as f:

        def send() -> None:  # the second message is larger than the socket's buffer
            a.send({"op": "x", "n": 1}, fds=(f.fileno(),))
            a.send({"op": "y", "text": "é" * 100_000})

        sender = threading.Thread(target=send)
        sender.start()
        first, fds = b.recv(max_fds=3)
        second, more = b.recv()
        sender.join()
    assert first == {"op": "x", "n": 1} and len(fds) == 1 and more == []
    os.write(fds[0], b"via the passed descriptor")
    os.close(fds[0])
    assert (tmp_path / "f").read_text() == "via the passed descriptor"
    assert second["text"] == "é" * 100_000
    a.close()
    assert b.recv() == (None, [])
    b.close()


@pytest.mark.unit
def test_engine_home_is_per_installation(monkeypatch, tmp_path):
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    home = engine_home()
    assert isinstance(home, EngineHome) and home.root.parent == tmp_path and len(home.root.name) == 12
    assert home.socket.parent == home.lock.parent == home.root


_HOLD_LOCK = (
    "import sys, time\n"
    "from storyc.store.state import BuildLock\n"
    "lock = BuildLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@pytest.mark.integration
def test_a_lock_held_for_a_dead_client_is_waited_for_not_refused(tmp_path):
    """A killed client's fork may hold its output folder's lock a moment longer (the engine
    is killing it): the next build waits for that, but still refuses a live holder."""
    from storyc.store.state import BuildLock, BuildLocked

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(out), "1.5"],
        env={**os.environ, CLIENT_PID_ENV: str(dead_pid)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    assert (out / ".storyc.lock").read_text() == str(dead_pid)  # names the client, not the fork
    assert lock_holder(out / ".storyc.lock") == str(dead_pid)  # held as the next build asks for it
    with BuildLock(out) as lock:  # not refused: it waited for the holder (named by a dead pid) to let go
        assert (out / ".storyc.lock").read_text() == str(os.getpid()) and lock is not None
    assert holder.wait(timeout=30) == 0  # it let go by ending, as the killed client's fork does

    live = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "held"
        with pytest.raises(BuildLocked, match=f"pid {live.pid}"):  # a live holder: refused, as before
            BuildLock(out).acquire()
        assert live.poll() is None
    finally:
        live.kill()
        live.wait()
