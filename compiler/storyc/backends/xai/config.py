"""The xai backend's settings (from the environment) and the gRPC channel options.

  XAI_API_KEY            required; never logged, never in an exception text
  XAI_API_HOST           default api.x.ai
  STORYC_XAI_INSECURE=1  plaintext gRPC, refused unless the host is loopback (local test services)
  STORYC_XAI_TIMEOUT, STORYC_XAI_POLL_INTERVAL, STORYC_XAI_VIDEO_TIMEOUT,
  STORYC_XAI_RETRY_BASE, STORYC_XAI_MAX_RETRIES, STORYC_RATE_LIMITS ("image=5,video=1")

The SDK's channel retries UNAVAILABLE up to 5 times by itself (its default service
config), invisibly: one paid call could reach the service 5 times per storyc attempt
while report.json counted 1. `channel_options` keeps that policy for the free, idempotent
methods and turns it off for the paid ones, so storyc's own loop sees, bounds and counts
every attempt of a paid call.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storyc.backends.base import BackendError

DEFAULT_HOST = "api.x.ai"
MIB = 1 << 20
MESSAGE_CAP_BYTES = 20 * MIB  # gRPC messages each way (the SDK's and the service's cap)

# The methods that bill their work (service names from xai_sdk.proto's *_pb2_grpc stubs).
PAID_METHODS: tuple[tuple[str, str], ...] = (
    ("xai_api.Image", "GenerateImage"),
    ("xai_api.Video", "GenerateVideo"),
    ("xai_api.Video", "ExtendVideo"),
    ("xai_api.Chat", "GetCompletion"),
    ("xai_api.Chat", "GetCompletionChunk"),
    ("xai_api.Chat", "StartDeferredCompletion"),
)
# The SDK's own policy (xai_sdk/client.py), kept for everything that is not paid: a poll
# retried by the channel costs nothing and changes no count.
FREE_RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> str:
    """gRPC service config: the SDK's retry policy by default, none for paid methods (the
    most specific `name` entry wins)."""
    return json.dumps(
        {
            "methodConfig": [
                {"name": [{}], "retryPolicy": FREE_RETRY_POLICY},
                {"name": [{"service": service, "method": method} for service, method in PAID_METHODS]},
            ]
        }
    )


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise BackendError(f"{name}={raw!r} is not a number") from None


@dataclass
class XaiConfig:
    api_key: str = field(repr=False)
    api_host: str = DEFAULT_HOST
    insecure: bool = False
    timeout_s: float = 300.0  # per RPC
    poll_interval_s: float = 2.0  # per job; every poll also takes a token of the shared video bucket
    video_timeout_s: float = 900.0  # polling gives up (the job stays in the journal)
    retry_base_s: float = 1.0
    retry_max_delay_s: float = 30.0
    max_retries: int = 5  # UNAVAILABLE / RESOURCE_EXHAUSTED retries per RPC
    expired_restarts: int = 1
    download_attempts: int = 3  # a failed video download (not a gone URL) is fetched again, in all
    max_message_bytes: int = MESSAGE_CAP_BYTES  # gRPC cap each way; inline inputs stay under 3/4 of it
    rate_spec: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> XaiConfig:
        env = os.environ if env is None else env
        api_key = overrides.pop("api_key", None) or env.get("XAI_API_KEY", "").strip()
        if not api_key:
            raise BackendError(
                "the xai backend needs an API key: set XAI_API_KEY (https://console.x.ai), "
                "or render locally with --backend offline"
            )
        values: dict[str, Any] = {
            "api_key": api_key,
            "api_host": env.get("XAI_API_HOST", "").strip() or DEFAULT_HOST,
            "insecure": env.get("STORYC_XAI_INSECURE", "") in ("1", "true", "yes"),
            "timeout_s": _env_float(env, "STORYC_XAI_TIMEOUT", cls.timeout_s),
            "poll_interval_s": _env_float(env, "STORYC_XAI_POLL_INTERVAL", cls.poll_interval_s),
            "video_timeout_s": _env_float(env, "STORYC_XAI_VIDEO_TIMEOUT", cls.video_timeout_s),
            "retry_base_s": _env_float(env, "STORYC_XAI_RETRY_BASE", cls.retry_base_s),
            "max_retries": int(_env_float(env, "STORYC_XAI_MAX_RETRIES", cls.max_retries)),
            "rate_spec": env.get("STORYC_RATE_LIMITS") or None,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def host_name(self) -> str:
        host = self.api_host
        if host.startswith("["):
            return host[1 : host.find("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    @property
    def inline_budget_bytes(self) -> int:
        """Raw bytes all inline inputs of one request may take (base64 adds a third)."""
        return self.max_message_bytes * 3 // 4 * 3 // 4

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.service_config", service_config()),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): exponential, capped, jittered 50-100 %."""
        delay = min(self.retry_max_delay_s, self.retry_base_s * (2**attempt))
        return delay * random.uniform(0.5, 1.0)
