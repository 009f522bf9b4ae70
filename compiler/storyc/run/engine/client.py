"""The client side of the engine: hand this process's `storyc build` to it (starting it
when none runs), ask its status, stop it. Light: no Prefect, no storyc stage imported."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from storyc.run.engine.home import EngineHome, code_fingerprint, engine_home, idle_limit_s, why_no_engine
from storyc.run.engine.wire import Channel
from storyc.store.fsutil import lock_holder

START_TIMEOUT_S = 240.0  # the Prefect server's first start on a new database, under load
RETIRE_WAIT_S = 20.0  # for an engine running older code to finish its builds and go
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# What the engine keeps from the environment of the build that starts it: where things
# are, never a build's own settings (each build brings its whole environment along).
_ENGINE_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
_ENGINE_ENV_PREFIXES = ("LC_", "XDG_", "STORYC_ENGINE_")


class EngineUnavailable(Exception):
    """The engine could not be started or reached; the build runs in this process."""


# ─── talking to a running engine ─────────────────────────────────────────────


def _connect(home: EngineHome, timeout: float = 10.0) -> Channel | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(home.socket))
    except OSError:  # no socket file, or a dead engine's
        sock.close()
        return None
    return Channel(sock)


def _ask(home: EngineHome, request: dict) -> dict | None:
    channel = _connect(home)
    if channel is None:
        return None
    try:
        channel.send(request)
        reply, _ = channel.recv()
        return reply
    except (OSError, ValueError):
        return None
    finally:
        channel.close()


def status(home: EngineHome | None = None) -> dict | None:
    """The running engine's own account of itself, or None when none answers."""
    return _ask(home or engine_home(), {"op": "status"})


def stop(home: EngineHome | None = None, *, timeout_s: float = 60.0) -> dict | None:
    """Stop the engine once its running builds end; wait until it is gone. Returns what it
    said (its pid, the builds it waits for), or None when no engine runs."""
    home = home or engine_home()
    reply = _ask(home, {"op": "stop"})
    if reply is None:
        info = home.read_info()
        if lock_holder(home.lock) is None or not info:
            return None
        with contextlib.suppress(ProcessLookupError):  # starting, not answering yet: SIGTERM stops it
            os.kill(int(info["pid"]), signal.SIGTERM)
        reply = {"ok": True, "pid": info["pid"], "builds": 0}
    deadline = time.monotonic() + timeout_s
    while lock_holder(home.lock) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    reply["stopped"] = lock_holder(home.lock) is None
    return reply


# ─── starting one ────────────────────────────────────────────────────────────


def _engine_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k in _ENGINE_ENV_KEEP or k.startswith(_ENGINE_ENV_PREFIXES)}
    env["DO_NOT_TRACK"] = "1"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def _log_tail(home: EngineHome, lines: int = 3) -> str:
    try:
        text = home.log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _spawn(home: EngineHome) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    os.chmod(home.root, 0o700)
    if home.log.exists() and home.log.stat().st_size > 1_000_000:
        home.log.unlink()
    # The engine imports what this process has imported (it runs the same command).
    preload = sorted(name for name in sys.modules if name.startswith("storyc.") and "engine" not in name)
    with open(home.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "storyc.run.engine.daemon", str(home.root)],
            env=_engine_env(),
            cwd=str(home.root),
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no terminal: Ctrl-C in this one does not reach it
        )
    # It takes the engine's lock, forks the engine off and exits (or exits at once when
    # another engine holds the lock): either way the lock is held when it returns.
    proc.communicate("\n".join(preload).encode(), timeout=60)
    if proc.returncode != 0:
        raise EngineUnavailable(f"the engine exited with code {proc.returncode}: {_log_tail(home)}")


def ensure_running(home: EngineHome, *, timeout_s: float = START_TIMEOUT_S) -> dict:
    """The engine's status once it answers, starting it if needed. Two builds racing here
    start one engine: the lifetime lock lets only one through. Raises EngineUnavailable."""
    deadline = time.monotonic() + timeout_s
    spawned = False
    retiring_since: float | None = None
    while True:
        answer = status(home)
        if answer is not None and answer.get("state") == "ready":
            return answer
        holder = lock_holder(home.lock)
        if holder is None:
            if spawned:
                raise EngineUnavailable(f"the engine stopped while starting: {_log_tail(home)}")
            _spawn(home)
            spawned = True
            continue
        info = home.read_info() or {}
        if info.get("state") == "stopping":  # an older engine finishing its builds
            retiring_since = retiring_since or time.monotonic()
            if time.monotonic() - retiring_since > RETIRE_WAIT_S:
                raise EngineUnavailable("an engine running older code is still finishing its builds")
        if time.monotonic() > deadline:
            raise EngineUnavailable(f"the engine did not start in {timeout_s:.0f} s: {_log_tail(home)}")
        time.sleep(0.05)


# ─── handing a build over ────────────────────────────────────────────────────


def _main_program() -> dict | None:
    """What this process runs, for the engine's fork to run the same: `python -m storyc`,
    the `storyc` script, or a wrapper script around storyc's main(); None when it is
    neither (no module, no file: the build runs here)."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return {"module": spec.name}
    path = getattr(main, "__file__", None)
    return {"path": os.path.abspath(path)} if path else None


def _stdio_usable() -> bool:
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        return sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2
    except (OSError, ValueError, AttributeError):  # closed, or replaced (an in-process test runner)
        return False


def _umask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():  # read without changing it
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    return 0o022


class _SignalForwarder:
    """While a build runs in the engine, Ctrl-C, SIGTERM and SIGHUP go to its fork, which
    stops exactly as an in-process build does. One that comes while the request is on its
    way waits for the fork's pid; if no fork starts, it acts here (Ctrl-C stops this)."""

    def __enter__(self) -> _SignalForwarder:
        self.pid: int | None = None
        self.pending: list[int] = []
        self.previous = {sig: signal.signal(sig, self._on_signal) for sig in FORWARDED_SIGNALS}
        return self

    def _on_signal(self, signum, frame) -> None:
        if self.pid is None:
            self.pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def forward_to(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        if self.pid is None and self.pending:
            raise KeyboardInterrupt


def _build_in_engine(home: EngineHome, fingerprint: str, say: Callable[[str, bool], None]) -> int | str | None:
    """The exit code of this build run by the engine; "stale" when the engine runs other
    storyc code; None when no engine takes it."""
    channel = _connect(home)
    if channel is None:
        return None
    request = {
        "op": "build",
        "argv": sys.argv,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "path": sys.path,
        "main": _main_program(),
        "umask": _umask(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "client_pid": os.getpid(),
        "fingerprint": fingerprint,
    }
    sys.stdout.flush()
    sys.stderr.flush()
    with _SignalForwarder() as forwarder:
        try:
            channel.send(request, fds=(0, 1, 2))
            reply, _ = channel.recv()
        except (OSError, ValueError):
            reply = None
        if not reply or "pid" not in reply or reply.get("stale"):
            channel.close()
            return "stale" if reply and reply.get("stale") else None
        forwarder.forward_to(int(reply["pid"]))
        channel.sock.settimeout(None)
        try:
            reply, _ = channel.recv()
        except OSError:
            reply = None
        finally:
            channel.close()
    if not reply or "exit" not in reply:
        say(f"the build engine stopped during the build (its log: {home.log})", True)
        return 1
    code = int(reply["exit"])
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it


def hand_off(*, needs_engine: Callable[[], bool], say: Callable[[str, bool], None]) -> int | None:
    """Run this process's `storyc build` in the engine and return its exit code, or None
    when it should run in this process: the engine is off (STORYC_ENGINE=off, the user's
    PREFECT_API_URL, not Linux), or none runs and `needs_engine()` says this build would
    not start Prefect (refused before anything starts, up to date, only local steps), or
    the engine cannot start (say() tells why)."""
    if why_no_engine() is not None or not _stdio_usable() or _main_program() is None:
        return None
    home = engine_home()
    fingerprint = code_fingerprint()
    handed = _build_in_engine(home, fingerprint, say)
    if isinstance(handed, int):
        return handed
    if handed is None and not needs_engine():
        return None
    starting = handed is None and lock_holder(home.lock) is not None
    if starting and (home.read_info() or {}).get("state") == "starting":
        say("waiting for the build engine another build is starting", False)
    else:  # none runs, or it runs older storyc code, or it is stopping
        say(
            f"starting the build engine (a local Prefect server, reused by later builds; it stops after "
            f"{idle_limit_s() / 60:.0f} idle minutes, or with `storyc server stop`)",
            False,
        )
    try:
        ensure_running(home)
    except EngineUnavailable as exc:
        say(f"the build engine is not available ({exc}); building without it", True)
        return None
    handed = _build_in_engine(home, fingerprint, say)
    if not isinstance(handed, int):
        say("the build engine did not take the build; building without it", True)
        return None
    return handed
