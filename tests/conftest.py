"""Shared pytest fixtures.

`prefect_harness` starts Prefect's test harness (a temporary server with a fresh
database, ~12 s) at most ONCE per session, and only when a test asks for it.
"""

from __future__ import annotations

import os

import pytest

# Quiet, fast Prefect settings (shared/design/prefect-facts.md), before anything imports prefect.
for _name, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
}.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
