"""Making the backend a command uses (its default name is storyc.backend_name's). The
backends are imported only when made (Pillow, xai-sdk and gRPC are heavy)."""

from __future__ import annotations

from storyc.backends.base import Backend, BackendError
from storyc.prompts.promptset import PromptSet


def make_backend(name: str, prompts: PromptSet | None = None) -> Backend:
    """The named backend. `prompts` supplies the moderation rewording template (xai).
    Raises BackendError (a bad environment setting) or ValueError (an unknown name)."""
    if name == "offline":
        from storyc.backends.offline.backend import OfflineBackend

        try:
            return OfflineBackend()
        except ValueError as exc:  # a malformed STORYC_OFFLINE_FAULTS / STORYC_OFFLINE_LATENCY
            raise BackendError(str(exc)) from None
    if name == "xai":
        from storyc.backends.xai.backend import XaiBackend

        # The executor throttles each step call; the backend's own buckets (STORYC_RATE_LIMITS)
        # pace every request it puts on the wire: retries and the polls of all video jobs,
        # which share the video limit. The backend owns the one reworded attempt after a
        # moderation refusal, through the story's `reword` template.
        return XaiBackend(reword=prompts.reword if prompts is not None else None)
    raise ValueError(f"unknown backend {name!r}: expected offline or xai")
