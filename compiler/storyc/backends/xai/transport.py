"""The xai backend's plumbing: the client, one RPC under storyc's rules, the moderation
message, closing.

Every request on the wire goes through `XaiTransport._rpc`: it takes a token of its
kind's rate bucket first (starts, retries and polls alike, so concurrent jobs share the
documented limit), and sorts a failure with `errors.classify`: retried (counted), final,
possibly billed (counted as billed, never repeated), or refused on content grounds (the
caller rewords once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import xai_sdk

from storyc.backends.base import BackendError, ModerationBlocked
from storyc.backends.download import is_loopback_host
from storyc.backends.ratelimit import RateLimiter
from storyc.backends.xai.config import XaiConfig
from storyc.backends.xai.errors import ModerationRefused, Tally, Verdict, api_error, classify
from storyc.redact import redact, register_secret

T = TypeVar("T")

# The default softening when no `reword` is given (storyc's builds pass PromptSet.reword).
# It is appended, not prefixed: every prompt must keep starting with the style lock.
REWORD_NOTE = "A family-friendly, non-violent depiction, suitable for all audiences."

# Which of a step's prompts a request carries (request hints["step"] → the prompt's role
# in state.json), so a refusal names the prompt the author must look at.
PROMPT_ROLES = {
    "character": "sheet",
    "location": "plate",
    "keyframe": "compose",
    "fix": "fix",
    "video": "video",
    "video_fix": "correction",
    "video_extend": "extend",
    "check_sheet": "check",
    "check_plate": "check",
    "check_keyframe": "check",
    "check_last_frame": "check",
}


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"


def _default_reword(prompt: str) -> str:
    return f"{prompt.rstrip()} {REWORD_NOTE}"


class XaiTransport:
    """The client (one thread-safe gRPC channel), the rate buckets and `_rpc`."""

    def __init__(
        self,
        config: XaiConfig | None = None,
        *,
        rate_limiter: RateLimiter | None = None,
        reword: Callable[[str], str] | None = None,
        client: Any = None,
    ):
        self.config = config or XaiConfig.from_env()
        cfg = self.config
        register_secret(cfg.api_key)  # every storyc message is scrubbed of it from now on
        if cfg.insecure and not is_loopback_host(cfg.host_name):
            raise BackendError(
                f"STORYC_XAI_INSECURE=1 sends the API key in plaintext; it is only allowed for a loopback "
                f"XAI_API_HOST (a local test service), not {cfg.host_name}"
            )
        try:
            self.rate_limiter = rate_limiter or RateLimiter.from_spec(cfg.rate_spec)
        except ValueError as exc:
            raise BackendError(f"STORYC_RATE_LIMITS: {exc}") from None
        self._reword = reword or _default_reword
        # Result URLs are https; plain http only from a local test service on loopback.
        self._allow_loopback_http = is_loopback_host(cfg.host_name)
        if client is None:
            try:
                client = xai_sdk.Client(
                    api_key=cfg.api_key,
                    api_host=cfg.api_host,
                    timeout=cfg.timeout_s,
                    use_insecure_channel=cfg.insecure,
                    channel_options=cfg.channel_options(),
                )
            except Exception as exc:
                raise BackendError(redact(f"cannot set up the xAI client for {cfg.api_host}: {exc}")) from None
        self._client = client
        self._closed = threading.Event()

    # ── one request ────────────────────────────────────────────────────────
    def _rpc(self, kind: str, step: str, tally: Tally, fn: Callable[[], T], *, paid: bool, table_usd: float = 0.0) -> T:
        """Run one RPC with storyc's rules. A paid call whose outcome is unknown is billed
        to `tally` at `table_usd` and raised as PossiblyBilled; a content refusal raises
        ModerationRefused; other failures end in a redacted XaiApiError."""
        retries = 0
        while True:
            self._check_open(step)
            self.rate_limiter.acquire(kind)
            try:
                return fn()
            except ValueError:
                self._check_open(step)  # "Cannot invoke RPC on closed channel!" after close()
                raise
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    self._check_open(step)
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                details = (exc.details() if callable(getattr(exc, "details", None)) else "") or ""
                verdict = classify(code, details, paid=paid)
                name = code.name if code is not None else "UNKNOWN"
                if verdict is Verdict.RETRY and retries < self.config.max_retries:
                    self._closed.wait(self.config.backoff(retries))  # an interruptible sleep
                    retries += 1
                    tally.retries += 1
                    continue
                if verdict is Verdict.MODERATION:
                    raise ModerationRefused(redact(f"{name}: {details}"), code=name) from None
                if verdict is Verdict.POSSIBLY_BILLED:
                    tally.bill(table_usd, "price_table")
                    tally.possibly_billed += 1
                    why = (
                        f"timed out after {self.config.timeout_s:.0f} s (STORYC_XAI_TIMEOUT)"
                        if code == grpc.StatusCode.DEADLINE_EXCEEDED
                        else f"got an answer over the {_size(self.config.max_message_bytes)} message cap"
                    )
                    message = (
                        f"{step}: the xAI {kind} request {why} ({name}); the service may have done and billed it, "
                        f"so it is not repeated: counted as possibly billed (${table_usd:.4f}); build again to retry"
                    )
                elif verdict is Verdict.OVERSIZED:
                    message = (
                        f"{step}: the xAI {kind} request is over the {_size(self.config.max_message_bytes)} "
                        f"message cap ({name}: {details}); it was not sent (nothing billed) and is not retried"
                    )
                else:
                    hint = ""
                    if verdict is Verdict.RETRY:
                        hint = f" (still failing after {retries} retries)"
                    elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                        hint = " (check XAI_API_KEY)"
                    message = f"{step}: xAI {kind} request failed: {name}: {details}{hint}"
                raise api_error(redact(message), code, verdict) from None

    # ── refusals ───────────────────────────────────────────────────────────
    @staticmethod
    def _step(req: Any, default: str) -> str:
        return str(req.hints.get("step_id") or default) if getattr(req, "hints", None) else default

    @staticmethod
    def _blocked(step: str, what: str, req: Any, how: str) -> ModerationBlocked:
        """One line naming the step, the refused prompt, how it was refused and what the
        author must rewrite (the scene or the character, in story terms)."""
        hints = getattr(req, "hints", None) or {}
        role = PROMPT_ROLES.get(str(hints.get("step", "")), what)
        if hints.get("scene_id") is not None:
            subject = f"scene {hints['scene_id']}"
            fix = f"rewrite scene {hints['scene_id']}'s action, description or mood"
        elif hints.get("name"):
            what_kind = "location" if str(hints.get("step", "")).endswith(("location", "plate")) else "character"
            subject = f"{what_kind} {hints['name']}"
            fix = f"rewrite {hints['name']}'s visual_description"
        elif req is None:  # storyc plan: the author's concept, sent as is (not reworded)
            subject, fix = "the concept", "rewrite the concept"
        else:
            subject, fix = "this step", "rewrite this step's text"
        reworded = "" if req is None else ", and its reworded version too"
        return ModerationBlocked(
            redact(
                f"{step}: xAI moderation refused the {role} prompt of {subject} ({how}){reworded}; {fix} and try again"
            )
        )

    # ── closing ────────────────────────────────────────────────────────────
    def close(self) -> None:
        """Close the channel. Calls still running (a video poll in a worker thread after
        Ctrl-C) stop at their next wait with a BackendError; their jobs stay journaled."""
        self._closed.set()
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _check_open(self, step: str) -> None:
        if self._closed.is_set():
            raise BackendError(
                f"{step}: stopped (the backend was closed); journaled video jobs are re-attached next build"
            )
