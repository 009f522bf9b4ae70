"""storyc.run.prefect_settings: the quiet Prefect settings the executor and deploy share."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from storyc.run.prefect_settings import (
    PREFECT_QUIET_ENV,
    PREFECT_RUN_LOGGERS,
    quiet_prefect_env,
    run_logger_levels_kept,
    silence_run_loggers,
)

pytestmark = pytest.mark.unit


def test_quiet_env_keeps_the_users_own_settings(monkeypatch):
    for name in PREFECT_QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    quiet_prefect_env()
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"  # no client telemetry, no usage notice on a terminal


def test_run_loggers_are_silenced_inside_and_restored_after():
    loggers = [logging.getLogger(name) for name in PREFECT_RUN_LOGGERS]
    before = [logger.level for logger in loggers]
    loggers[0].setLevel(logging.INFO)
    try:
        with run_logger_levels_kept():
            silence_run_loggers()
            assert {logger.level for logger in loggers} == {logging.CRITICAL}
        assert loggers[0].level == logging.INFO
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


def test_the_settings_module_imports_no_prefect():
    code = "import sys, storyc.run.prefect_settings, storyc.deploy; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
