"""pytest fixtures for the fake xAI service. Import the names into a test module.

`fake_xai` is started once per test module that imports it (a module-level
FixtureDef) and reset before each test; `xai_env` points the environment at it.
"""

from __future__ import annotations

import pytest

from .service import FakeXai

TEST_KEY = "xai-TESTKEY-0123456789abcdefSECRET"


@pytest.fixture(scope="session")
def _fake_xai_server():
    fake = FakeXai(pending_polls=2).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_xai(_fake_xai_server):
    fake = _fake_xai_server
    fake.reset()  # pending_polls 2, cost reported, no rate limits, day-long URLs
    yield fake
    fake.reset()


@pytest.fixture
def xai_env(fake_xai, monkeypatch):
    for name, value in fake_xai.env(TEST_KEY).items():
        monkeypatch.setenv(name, value)
    return fake_xai
