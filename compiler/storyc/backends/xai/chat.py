"""Vision checks and planning on xAI chat with structured outputs, paid for exactly once.

The request carries the JSON schema of the answer (`response_format`) and storyc
validates the answer itself (not `chat.parse`), so an answer that does not validate still
has its response, and its reported usage is what the call is billed at. The vision answer
is sent as `ConsistencyAnswer` (per_character as a list of {name, score}: xAI treats a
map's `additionalProperties` as false, so a map came back empty) and kept as the seed's
`ConsistencyScore`. A vision prompt refused on content grounds at submission gets one
reworded attempt; a planning prompt is the author's own words and is not reworded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import pydantic
from xai_sdk.chat import image as chat_image
from xai_sdk.chat import system, user

from storyc.backends.base import CallResult, JudgeRequest
from storyc.backends.xai.errors import InvalidAnswer, ModerationRefused, Tally, spent_on_error
from storyc.backends.xai.inputs import MAX_INLINE_IMAGE_BYTES, inline_image
from storyc.backends.xai.transport import XaiTransport
from storyc.model import prices as pricing
from storyc.model.story_plan import StoryPlan
from storyc.model.vision import ConsistencyAnswer, ConsistencyScore
from storyc.redact import redact

M = TypeVar("M", bound=pydantic.BaseModel)


class ChatCalls(XaiTransport):
    """Mixed into XaiBackend (uses XaiTransport's `_rpc`, `_reword`, `_blocked`)."""

    _client: Any

    def _ask(self, kind: str, step: str, tally: Tally, model: str, messages: list, shape: type[M], n_images: int) -> M:
        chat = self._client.chat.create(model=model, response_format=shape)
        for message in messages:
            chat.append(message)
        table = pricing.chat_cost(None, n_images=n_images, model=model)
        response = self._rpc(kind, step, tally, chat.sample, paid=True, table_usd=table)
        usd = pricing.chat_cost(response.usage, n_images=n_images, model=model)
        tally.bill(usd, "usage" if pricing.usage_reported_cost(response.usage) is not None else "price_table")
        text = response.content
        try:
            return shape.model_validate_json(text)
        except pydantic.ValidationError as exc:
            first: Mapping[str, Any] = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
            name = shape.model_json_schema().get("title", shape.__name__)
            raise InvalidAnswer(
                redact(f"{step}: the model's answer is not a valid {name} ({where}: {first.get('msg', exc)})"),
                answer=text,
                cost_usd=usd,
            ) from None  # not retried: asking again is a new paid call the rules do not allow

    def judge(self, req: JudgeRequest) -> tuple[ConsistencyScore, CallResult]:
        step = self._step(req, f"judge:{req.kind}")
        images = [req.image, *req.references]  # the image under test first, then references
        budget = min(MAX_INLINE_IMAGE_BYTES, self.config.inline_budget_bytes // len(images))
        uris = [inline_image(p, budget, step=step) for p in images]
        tally = Tally(meta={"model": req.model, "n_images": len(images)})
        prompt = req.prompt
        with spent_on_error(tally):
            for attempt in range(2):
                messages = [user(prompt, *(chat_image(u) for u in uris))]
                try:
                    answer = self._ask("vision", step, tally, req.model, messages, ConsistencyAnswer, len(images))
                except ModerationRefused as exc:
                    if attempt == 0:
                        prompt = self._reword(prompt)
                        tally.retries += 1
                        tally.meta["reworded"] = True
                        continue
                    raise self._blocked(step, "vision check", req, f"refused at submission: {exc}"[:200]) from None
                return answer.to_score(), tally.result(None, "vision")
            raise AssertionError("unreachable")

    def plan(self, system_prompt: str, user_prompt: str, model: str) -> tuple[StoryPlan, CallResult]:
        tally = Tally(meta={"model": model})
        with spent_on_error(tally):
            try:
                story_plan = self._ask(
                    "chat", "plan", tally, model, [system(system_prompt), user(user_prompt)], StoryPlan, 0
                )
            except ModerationRefused as exc:
                raise self._blocked("plan", "planning", None, f"refused at submission: {exc}"[:200]) from None
        return story_plan, tally.result(None, "chat")
