"""Where an engine lives, when one is used, and what identifies its code.

One engine per user and installation: `~/.cache/storyc/engine/<key>/` (STORYC_ENGINE_HOME
overrides the parent folder), where `key` names the Python interpreter and the storyc
package it serves, so two virtual environments never share an engine. The folder holds
the socket, the lock the engine holds for its lifetime (a second engine started in a
race sees it and steps aside), engine.json (pid, state, the Prefect server's URL), the
log, and the Prefect server's home (its SQLite database outlives the engine: a restart
on an existing database is several seconds faster than on a new one).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import storyc
from storyc.store.fsutil import BUILD_CLIENT_PID_ENV

ENGINE_ENV = "STORYC_ENGINE"  # "off": never use an engine (build in this process, as before)
HOME_ENV = "STORYC_ENGINE_HOME"
IDLE_ENV = "STORYC_ENGINE_IDLE_SECONDS"
CLIENT_PID_ENV = BUILD_CLIENT_PID_ENV  # set in an engine's fork: the pid of the client it builds for

DEFAULT_IDLE_S = 20 * 60
_PACKAGE_DIR = Path(storyc.__file__).resolve().parent


@dataclass(frozen=True)
class EngineHome:
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "sock"

    @property
    def lock(self) -> Path:
        return self.root / "engine.lock"

    @property
    def info(self) -> Path:
        return self.root / "engine.json"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    def read_info(self) -> dict | None:
        """engine.json as the engine last wrote it, or None."""
        try:
            return json.loads(self.info.read_text())
        except (OSError, ValueError):
            return None


def installation_key() -> str:
    """The interpreter and the storyc package this process runs: one engine each."""
    ident = f"{os.path.realpath(sys.executable)}\0{_PACKAGE_DIR}"
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def engines_root() -> Path:
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "storyc" / "engine"


def engine_home() -> EngineHome:
    return EngineHome(engines_root() / installation_key())


def code_fingerprint() -> str:
    """Changes whenever storyc's code does (an upgrade, or an edit to an editable install):
    an engine running older code is retired instead of serving the build. Sizes and
    modification times of the package's .py files: a few milliseconds."""
    digest = hashlib.sha256(storyc.__version__.encode())
    for folder, dirs, files in os.walk(_PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def idle_limit_s() -> float:
    raw = os.environ.get(IDLE_ENV, "").strip()
    try:
        return max(1.0, float(raw)) if raw else float(DEFAULT_IDLE_S)
    except ValueError:
        return float(DEFAULT_IDLE_S)


def engine_client_pid() -> int | None:
    """In a build an engine runs for a client: that client's pid (what the user started,
    so what the build names as itself in its lock file). None in an ordinary process."""
    raw = os.environ.get(CLIENT_PID_ENV, "")
    return int(raw) if raw.isdigit() else None


def why_no_engine() -> str | None:
    """Why this process builds without an engine (None: it may use one)."""
    if os.environ.get(ENGINE_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return f"{ENGINE_ENV}=off"
    if os.environ.get("PREFECT_API_URL"):
        return "PREFECT_API_URL is set: the build runs on that server"
    if engine_client_pid() is not None:
        return "this is already an engine's build"
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return "the engine needs Linux"
    return None
