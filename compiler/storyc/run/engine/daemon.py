"""The engine process: `python -m storyc.run.engine.daemon HOME`, modules to import on stdin.

Started by the first build that needs Prefect (client.py). It takes the engine's lifetime
lock (a second engine started in a race finds it taken and exits at once), detaches,
starts a Prefect server on a free 127.0.0.1 port, imports storyc and Prefect (what the
client had imported, plus what every build imports) while the server starts,
then serves build requests on its Unix socket until it has been idle for
STORYC_ENGINE_IDLE_SECONDS (default 20 minutes) or is told to stop.

It never starts a thread: each build runs in a fork of it (see __init__.py), which must
not inherit a thread frozen mid-way (a held lock, Prefect's event loop).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from storyc.run.engine.fork import BecomeBuild, die_with_parent, run_build_in_fork
from storyc.run.engine.home import EngineHome, code_fingerprint, idle_limit_s
from storyc.run.engine.wire import Channel
from storyc.run.prefect_settings import PREFECT_QUIET_ENV
from storyc.store.fsutil import atomic_write_json, flock, open_lock_file

SERVER_START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 10.0
# Imported by every build (beyond what the client had loaded): Prefect's flow and task
# engines and what they import lazily on the first flow run (fastapi's encoder for flow
# parameters), the executor and step runners, the offline backend, media and reports.
BUILD_MODULES = (
    "prefect",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.engine",
    "prefect.futures",
    "prefect.task_runners",
    "prefect.cache_policies",
    "prefect.runtime.flow_run",
    "prefect.client.orchestration",
    "prefect.events.clients",
    "prefect.concurrency.v1.sync",
    "prefect.telemetry.run_telemetry",
    "fastapi.encoders",
    "anyio._backends._asyncio",
    "pydantic.color",
    "encodings.idna",
    "storyc.run.executor",
    "storyc.run.dispatch",
    "storyc.backends.offline.backend",
    "storyc.media.assemble",
    "storyc.report.documents",
)
UNUSED_SERVER_SERVICES = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "CLEANUP_RECONCILER",
    "TRIGGERS",
)


@dataclass
class _Build:
    pid: int
    pidfd: int
    channel: Channel
    client_pid: int
    argv: list[str]
    started: float = field(default_factory=time.time)
    client_gone: bool = False


def _rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    def __init__(self, home: EngineHome, lock_fd: int, preload: list[str]):
        self.home = home
        self.lock_fd = lock_fd
        self.preload = preload
        self.pid = os.getpid()
        self.fingerprint = code_fingerprint()
        self.idle_s = idle_limit_s()
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.server: subprocess.Popen | None = None
        self.api_url = ""
        self.listener: socket.socket | None = None
        self.builds: dict[int, _Build] = {}
        self.served = 0
        self.stopping: str | None = None  # why the engine stops (it finishes running builds first)
        self.ready_s: float | None = None
        self.sigterm = False

    # ─── start ───────────────────────────────────────────────────────────────

    def _say(self, text: str) -> None:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} engine {self.pid}: {text}\n")  # the engine's log
        sys.stdout.flush()

    def _write_info(self, state: str) -> None:
        atomic_write_json(
            self.home.info,
            {
                "pid": self.pid,
                "state": state,
                "api_url": self.api_url,
                "server_pid": self.server.pid if self.server else None,
                "fingerprint": self.fingerprint,
                "started": self.started,
                "idle_limit_s": self.idle_s,
            },
            durable=False,
        )

    def _start_server(self) -> None:
        port = _free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        # What `prefect server start` runs, without its command line (~1.5 s less under load):
        # uvicorn on Prefect's app factory, as Prefect starts its own temporary server.
        argv = ["uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        env = {**os.environ, "PREFECT_UI_ENABLED": "false", "PREFECT__SERVER_FINAL": "1"}
        # Only the services that record runs (events, task runs): storyc schedules nothing,
        # has no workers, pauses or automations; the others are periodic loops on 2 cores.
        for service in UNUSED_SERVER_SERVICES:
            env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
        self.server = subprocess.Popen(
            [sys.executable, "-m", *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sys.stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # we are single-threaded: preexec_fn is safe here
        )
        self._say(f"started prefect server pid {self.server.pid} on {self.api_url}")

    def _wait_for_server(self) -> bool:
        server = self.server
        assert server is not None  # started by serve() first
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                self._say(f"prefect server exited with code {server.returncode}")
                return False
            if self.sigterm:
                self._say("SIGTERM while starting")
                return False
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        self._say(f"prefect server did not answer in {SERVER_START_TIMEOUT_S:.0f} s")
        return False

    def _import_build_modules(self) -> None:
        import importlib

        t0 = time.perf_counter()
        for name in [*BUILD_MODULES, *self.preload]:
            try:
                importlib.import_module(name)
            except Exception as exc:  # a module that cannot load here is loaded (or fails) in the build
                self._say(f"preload {name}: {type(exc).__name__}: {exc}")
        from storyc.run import executor

        executor.prepare_engine()
        import gc
        import threading

        if threading.active_count() != 1:  # a fork must not inherit a thread
            raise RuntimeError(f"threads after preloading: {threading.enumerate()}")
        # What is loaded now is shared by every fork: out of the garbage collector's sight,
        # its pages are never copied by a collection in a fork (copy-on-write stays shared).
        gc.collect()
        gc.freeze()
        self._say(f"imported storyc and Prefect in {time.perf_counter() - t0:.1f}s")

    def _listen(self) -> None:
        path = self.home.socket
        path.unlink(missing_ok=True)  # a dead engine's (we hold the lifetime lock)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old_umask)
        listener.listen(64)
        self.listener = listener

    # ─── serve ───────────────────────────────────────────────────────────────

    def serve(self) -> int:
        t0 = time.perf_counter()
        # SIGTERM only sets a flag; its byte on the wakeup pipe ends the loop's select.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            self._write_info("starting")
            os.environ["PREFECT_HOME"] = str(self.home.prefect_home)
            os.environ["DO_NOT_TRACK"] = "1"
            for name, value in PREFECT_QUIET_ENV.items():
                os.environ.setdefault(name, value)
            os.environ.pop("PREFECT_API_URL", None)
            self._start_server()
            os.environ["PREFECT_API_URL"] = self.api_url  # before Prefect is imported: its settings read it once
            self._write_info("starting")
            self._import_build_modules()
            if not self._wait_for_server():
                return 1
            self._listen()
            self.ready_s = time.perf_counter() - t0
            self.last_activity = time.monotonic()  # idle from now, not from the start
            self._write_info("ready")
            self._say(f"ready in {self.ready_s:.1f}s; stops after {self.idle_s:.0f}s idle")
            self._loop()
            return 0
        finally:
            if os.getpid() == self.pid:  # not in a build's fork unwinding through here
                self._shutdown()

    def _on_sigterm(self, signum, frame) -> None:
        self.sigterm = True

    def _stop(self, why: str) -> None:
        if not self.stopping:
            self.stopping = why
            self._say(f"stopping ({why}); {len(self.builds)} build(s) still running")
            # No new build: the socket goes now, so the next build starts a new engine.
            if self.listener is not None:
                self.listener.close()
                self.listener = None
                with contextlib.suppress(OSError):
                    self.home.socket.unlink()
            with contextlib.suppress(OSError):
                self._write_info("stopping")

    def _loop(self) -> None:
        server = self.server
        assert server is not None  # started by serve() first
        while True:
            if self.sigterm:
                self._stop("SIGTERM")
            if server.poll() is not None and not self.stopping:
                self._stop(f"the prefect server exited with code {server.returncode}")
            if self.stopping and not self.builds:
                return
            if not self.builds and not self.stopping:
                idle = time.monotonic() - self.last_activity
                if idle >= self.idle_s:
                    self._stop(f"idle for {idle:.0f}s")
                    continue
                timeout = min(self.idle_s - idle, 5.0)
            else:
                timeout = 5.0
            waiting: list = [self._wake_r, *(b.pidfd for b in self.builds.values())]
            waiting += [b.channel.sock for b in self.builds.values() if not b.client_gone]
            if self.listener is not None:
                waiting.append(self.listener)
            try:
                ready, _, _ = select.select(waiting, [], [], timeout)
            except InterruptedError:
                continue
            for item in ready:
                if item == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 512)
                elif item is self.listener and self.listener is not None:
                    self._accept()
                elif isinstance(item, int):
                    self._reap(item)
                else:
                    self._client_readable(item)

    def _accept(self) -> None:
        if self.listener is None:  # stopping: no new request
            return
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.settimeout(REQUEST_TIMEOUT_S)
        channel = Channel(sock)
        try:
            request, fds = channel.recv(max_fds=3)
        except (OSError, ValueError):
            channel.close()
            return
        op = (request or {}).get("op")
        try:
            if op == "build" and len(fds) == 3:
                self._build(channel, request, fds)
                return
            for fd in fds:
                os.close(fd)
            if op == "status":
                channel.send(self.status())
            elif op == "stop":
                channel.send({"ok": True, "pid": self.pid, "builds": len(self.builds)})
                self._stop("storyc server stop")
            else:
                channel.send({"error": f"unknown request {op!r}"})
        except OSError:
            pass
        channel.close()

    def status(self) -> dict:
        now = time.time()
        return {
            "pid": self.pid,
            "state": "stopping" if self.stopping else "ready",
            "api_url": self.api_url,
            "server_pid": self.server.pid if self.server else None,
            "fingerprint": self.fingerprint,
            "uptime_s": round(now - self.started, 1),
            "ready_s": round(self.ready_s or 0.0, 2),
            "idle_s": 0.0 if self.builds else round(time.monotonic() - self.last_activity, 1),
            "idle_limit_s": self.idle_s,
            "builds_served": self.served,
            "builds_running": [
                {"pid": b.pid, "client_pid": b.client_pid, "argv": b.argv, "running_s": round(now - b.started, 1)}
                for b in self.builds.values()
            ],
            "rss_mb": {
                "engine": _rss_mb(self.pid),
                "prefect_server": _rss_mb(self.server.pid if self.server else None),
            },
            "home": str(self.home.root),
        }

    def _build(self, channel: Channel, request: dict, fds: list[int]) -> None:
        if request.get("fingerprint") != self.fingerprint:
            # The client runs other storyc code (an upgrade, an edited checkout): retire.
            for fd in fds:
                os.close(fd)
            channel.send({"stale": True, "pid": self.pid})
            channel.close()
            self._stop("storyc's code changed")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:  # out of memory or processes: the client builds by itself
            for fd in fds:
                os.close(fd)
            self._say(f"cannot fork a build: {exc}")
            with contextlib.suppress(OSError):
                channel.send({"error": f"cannot fork: {exc}"})
            channel.close()
            return
        if pid == 0:
            raise BecomeBuild(request, fds, channel)
        for fd in fds:
            os.close(fd)
        build = _Build(
            pid=pid,
            pidfd=os.pidfd_open(pid),
            channel=channel,
            client_pid=int(request.get("client_pid") or 0),
            argv=list(request.get("argv") or []),
        )
        self.builds[pid] = build
        self.served += 1
        self.last_activity = time.monotonic()
        try:
            channel.send({"pid": pid})
        except OSError:  # the client is already gone
            self._client_gone(build)

    def _client_readable(self, sock: socket.socket) -> None:
        build = next((b for b in self.builds.values() if b.channel.sock is sock), None)
        if build is None:
            return
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._client_gone(build)
        else:  # a client sends nothing after its request
            with contextlib.suppress(OSError):
                sock.recv(65536, socket.MSG_DONTWAIT)

    def _client_gone(self, build: _Build) -> None:
        """The client died (SIGKILL, a lost terminal): its build dies as it would have."""
        build.client_gone = True
        self._say(f"client {build.client_pid} is gone: killing its build {build.pid}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(build.pid, signal.SIGKILL)

    def _reap(self, pidfd: int) -> None:
        build = next((b for b in self.builds.values() if b.pidfd == pidfd), None)
        if build is None:
            return
        try:
            _, status = os.waitpid(build.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = 1
        os.close(build.pidfd)
        del self.builds[build.pid]
        self.last_activity = time.monotonic()
        if not build.client_gone:
            with contextlib.suppress(OSError):
                build.channel.send({"exit": code})
        build.channel.close()

    def _shutdown(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                self.home.socket.unlink()
        for build in list(self.builds.values()):  # only when the engine itself fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(build.pid, signal.SIGTERM)
        if self.server is not None and self.server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        with contextlib.suppress(OSError):
            self.home.info.unlink()
        self._say(f"stopped ({self.stopping or 'failed to start'}) after serving {self.served} build(s)")
        os.close(self.lock_fd)  # last: a new engine may start now

    # ─── in a build's fork ───────────────────────────────────────────────────

    def close_in_fork(self) -> None:
        """A build's fork holds nothing of the engine's: not the lifetime lock (a new engine
        could not start while a build outlives this one), the socket or other builds."""
        if self.listener is not None:
            self.listener.close()
        for build in self.builds.values():
            os.close(build.pidfd)
            build.channel.close()
        signal.set_wakeup_fd(-1)
        os.close(self._wake_r)
        os.close(self._wake_w)
        os.close(self.lock_fd)
        self.server = None


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: python -m storyc.run.engine.daemon HOME  (modules to preload on stdin)\n")
        return 2
    home = EngineHome(Path(argv[0]))
    home.root.mkdir(parents=True, exist_ok=True)
    os.chmod(home.root, 0o700)  # the socket runs builds as us: nobody else may reach it
    lock_fd = open_lock_file(home.lock)
    if not flock(lock_fd, exclusive=True, wait=False):
        return 0  # another engine holds the lock: it serves (or is starting); nothing to do
    os.set_inheritable(lock_fd, False)
    preload = sys.stdin.read().split()  # the modules the starting client had imported
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if os.fork() > 0:  # the client waits for this process; the engine goes on in the child
        os._exit(0)
    engine = Engine(home, lock_fd, preload)
    try:
        return engine.serve()
    except BecomeBuild as raised:
        become = raised.with_traceback(None)  # the engine's frames are of no use to the build
    run_build_in_fork(engine, become)  # outside the except clause: a build's error has no context
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
