"""The answer schema of a vision check (the seed's ConsistencyScore). No I/O here."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ConsistencyScore(BaseModel):
    overall_score: float = Field(ge=0.0, le=1.0, description="0 = completely wrong, 1 = perfect match")
    per_character: dict[str, float] = Field(default_factory=dict, description="Score per character name")
    issues: list[str] = Field(default_factory=list, description="Specific problems: 'hair is brown, should be red'")
    fix_prompt: str | None = Field(default=None, description="Surgical edit prompt to fix issues if any")
