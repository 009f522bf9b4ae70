"""The xai backend: storyc's calls on the real xai-sdk (this package is the only one
importing it). Nothing is paid for twice, under every failure the service can produce:

- every request on the wire is counted: the SDK channel's hidden UNAVAILABLE retries are
  off for paid methods (config.py), so storyc's own bounded loop sees each attempt, and
  `CallResult` (or a failed call's error: `spent_calls`, `spent_usd`, `spent_retries`,
  `possibly_billed`) carries billed calls, retries and cost to report.json;
- images come back as base64 inside the response (images.py): no download to fail;
- video ids are journaled before polling, and an intent marker before the start
  (video.py): a crash never loses a paid job, a re-attached job is never costed twice;
- a paid call with an unknown outcome (DEADLINE_EXCEEDED) is counted as possibly billed
  and never repeated; a request over the 20 MiB cap is not retried (errors.py);
- every moderation shape gets one reworded attempt, then one line naming the step and
  the refused prompt, its cost recorded;
- every request takes a token of its kind's rate bucket, polls included (transport.py);
- text to speech is REST (tts.py), under the same rules: a line is billed once or not at
  all, a request with an unknown outcome is possibly billed and never repeated.

See docs/xai-faults.md for the fault matrix.
"""

from __future__ import annotations

import os
from typing import Any

from storyc.backends.xai.chat import ChatCalls
from storyc.backends.xai.config import XaiConfig
from storyc.backends.xai.errors import (
    InvalidAnswer,
    PossiblyBilled,
    RequestTooLarge,
    VideoJobFailed,
    XaiApiError,
    XaiRateLimited,
    XaiUnavailable,
)
from storyc.backends.xai.images import ImageCalls
from storyc.backends.xai.inputs import inline_image, inline_video, probe_duration
from storyc.backends.xai.transport import REWORD_NOTE, XaiTransport
from storyc.backends.xai.tts import SpeechCalls
from storyc.backends.xai.video import VideoCalls

__all__ = [
    "REWORD_NOTE",
    "InvalidAnswer",
    "PossiblyBilled",
    "RequestTooLarge",
    "VideoJobFailed",
    "XaiApiError",
    "XaiBackend",
    "XaiConfig",
    "XaiRateLimited",
    "XaiUnavailable",
    "inline_image",
    "inline_video",
    "probe_duration",
]


class XaiBackend(ImageCalls, VideoCalls, ChatCalls, SpeechCalls, XaiTransport):
    """storyc's `Backend` on xai-sdk's synchronous client (thread-safe: one gRPC channel)."""

    name = "xai"

    def __init__(self, config: XaiConfig | None = None, **kwargs: Any):
        XaiTransport.__init__(self, config, **kwargs)
        self._init_video()
        self._init_speech(os.environ)

    @classmethod
    def from_env(cls, **config_overrides: Any) -> XaiBackend:
        return cls(XaiConfig.from_env(**config_overrides))

    def close(self) -> None:
        self._close_speech()
        XaiTransport.close(self)
