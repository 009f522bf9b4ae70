"""Image generation and edits on xAI (`image.sample`), paid for exactly once.

The image is requested as base64 (`image_format="base64"`): its bytes come back inside
the response, so there is no result URL to expire and no download to fail after the
image was paid for. The one way left to lose a paid image is the process dying between
the answer and the atomic write; there is nothing to re-attach to then (no job id).

Best-of-N (`req.candidates`): one `sample_batch(n=N)` request, billed once for its N
images; the candidates that came back are written in order, the ones moderation withheld
skipped (`CallResult.meta["candidates"]` says how many); none at all counts as blocked.

Moderation has three shapes here, each billed or not as the service does it, each
followed by one reworded attempt and then `ModerationBlocked` naming the step:
- the prompt is refused at submission (an RPC error naming moderation; not billed),
- the image comes back without bytes and `respect_moderation=false` (billed),
- the response holds no image at all (billed: the SDK raises IndexError indexing
  `images[0]`, which used to escape storyc's error handling with its cost unrecorded).
"""

from __future__ import annotations

import base64
import binascii
import functools
from pathlib import Path
from typing import Any

from storyc.backends.base import BackendError, CallResult, ImageRequest
from storyc.backends.download import MAX_IMAGE_BYTES, DownloadRefused, sniff_kind
from storyc.backends.xai.errors import ModerationRefused, Tally, spent_on_error
from storyc.backends.xai.inputs import MAX_INLINE_IMAGE_BYTES, inline_image
from storyc.backends.xai.transport import XaiTransport
from storyc.model import prices as pricing
from storyc.model.capabilities import info_of
from storyc.redact import redact
from storyc.store.fsutil import atomic_write_bytes


def save_data_uri_image(value: str, dest: Path, step: str) -> Path:
    """Write a base64 image answer ("data:image/jpeg;base64,..." or bare base64) to `dest`
    atomically, after checking it is a JPEG or PNG of sane size."""
    encoded = value.split("base64,", 1)[1] if "base64," in value else value
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise DownloadRefused(f"{step}: the image in xAI's answer is not valid base64") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise DownloadRefused(f"{step}: the image in xAI's answer is {len(data)} bytes, over the cap")
    kind = sniff_kind(data[:16])
    if kind not in ("jpeg", "png"):
        raise DownloadRefused(f"{step}: the image in xAI's answer is not a JPEG/PNG file")
    atomic_write_bytes(Path(dest), data)
    return Path(dest)


class ImageCalls(XaiTransport):
    """Mixed into XaiBackend (uses XaiTransport's `_rpc`, `_reword`, `_blocked`)."""

    _client: Any

    def generate_image(self, req: ImageRequest) -> CallResult:
        if req.references:
            return self.edit_image(req)
        return self._image(req, self._step(req, "image"))

    def edit_image(self, req: ImageRequest) -> CallResult:
        step = self._step(req, "image-edit")
        if not req.references:
            limit = info_of(req.model, "image").max_edit_images
            raise BackendError(f"{step}: an image edit needs 1-{limit} reference images")
        return self._image(req, step)

    def _image(self, req: ImageRequest, step: str) -> CallResult:
        refs = tuple(req.references)
        model = info_of(req.model, "image")
        if len(refs) > model.max_edit_images:
            raise BackendError(
                f"{step}: an image edit takes at most {model.max_edit_images} references, got {len(refs)}"
            )
        if req.n > model.max_candidates:
            raise BackendError(f"{step}: {req.model} makes at most {model.max_candidates} images per request")
        # The SDK's image resolution is "1k" (~1 MP) or "2k" (~4 MP), not the story's video
        # 720p/480p: 1k already exceeds a 720p frame (0.92 MP), so every story sends 1k.
        kwargs: dict[str, Any] = {"aspect_ratio": req.aspect_ratio, "resolution": "1k", "image_format": "base64"}
        if refs:
            budget = min(MAX_INLINE_IMAGE_BYTES, self.config.inline_budget_bytes // len(refs))
            uris = [inline_image(p, budget, step=step) for p in refs]
            if len(uris) == 1:
                kwargs["image_url"] = uris[0]
            else:
                kwargs["image_urls"] = uris  # slot order: <IMAGE_1>, <IMAGE_2>, <IMAGE_3>
        n = req.n
        tally = Tally(meta={"model": req.model, "n_inputs": len(refs), **({"n": n} if n > 1 else {})})
        table = pricing.image_cost(len(refs), req.model, n=n)
        prompt = req.prompt

        def sample(p: str) -> list[Any]:
            if n > 1:
                return list(self._client.image.sample_batch(prompt=p, model=req.model, n=n, **kwargs))
            return [self._client.image.sample(prompt=p, model=req.model, **kwargs)]

        with spent_on_error(tally):
            for attempt in range(2):
                how = ""
                try:
                    responses = self._rpc(
                        "image", step, tally, functools.partial(sample, prompt), paid=True, table_usd=table
                    )
                except ModerationRefused as exc:
                    how = f"refused at submission: {exc}"
                except IndexError:
                    tally.bill(table, "price_table")  # answered (and billed), but with fewer images than asked
                    how = "answered with no image"
                else:
                    # one request, one bill: the candidates share the response's usage
                    tally.bill(*pricing.reported_or(responses[0].usage, table))
                    saved = self._save_candidates(responses, req, step)
                    if saved:
                        if n > 1:
                            tally.meta["candidates"] = saved
                        return tally.result(req.dest, "image")
                    if any(r.respect_moderation for r in responses):
                        raise BackendError(f"{step}: xAI answered without the image", retryable=True)
                    how = "result blocked"
                if attempt == 0:
                    prompt = self._reword(prompt)
                    tally.retries += 1
                    tally.meta["reworded"] = True
                    continue
                raise self._blocked(step, "image", req, " ".join(redact(how).split())[:200])
            raise AssertionError("unreachable")

    @staticmethod
    def _save_candidates(responses: list[Any], req: ImageRequest, step: str) -> int:
        """Write each image the response holds to the next destination; skip withheld ones."""
        dests = req.candidates or (req.dest,)
        saved = 0
        for response in responses:
            try:
                encoded = response.base64
            except ValueError:  # withheld by moderation, or missing
                continue
            save_data_uri_image(encoded, dests[saved], step)
            saved += 1
            if saved == len(dests):
                break
        return saved
