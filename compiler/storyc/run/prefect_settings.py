"""Prefect's quiet, fast settings, shared by the build executor and `storyc deploy`.

Nothing here imports Prefect: the environment must be set before Prefect is imported
(it reads its settings then), and storyc's own lines report failed steps, so Prefect's
per-run loggers are silenced during a build.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

# Set before prefect is imported (setdefault: the user's own settings win).
PREFECT_QUIET_ENV = {
    # No telemetry: the server's (which also prints an ERROR per run when offline) and the
    # client's (DO_NOT_TRACK; without it a terminal shows Prefect's usage-data notice).
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
}

# Loggers that print a traceback per failed task or flow run.
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.task_engine", "prefect.flow_engine")


def quiet_prefect_env() -> None:
    for name, value in PREFECT_QUIET_ENV.items():
        os.environ.setdefault(name, value)


def silence_run_loggers() -> None:
    """storyc reports failed steps itself (one line each); Prefect's per-task ERROR
    tracebacks would bury that. The run's states are still recorded on the server."""
    for name in PREFECT_RUN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def run_logger_levels_kept() -> Iterator[None]:
    """Restore the run loggers' levels after the block (a build inside it silences them)."""
    levels = {name: logging.getLogger(name).level for name in PREFECT_RUN_LOGGERS}
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
