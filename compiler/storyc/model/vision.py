"""The answer schema of a vision check (the seed's ConsistencyScore). No I/O here.

`ConsistencyScore` is what storyc keeps (state.json, the step loops): per_character is a
name → score map, the seed's shape. `ConsistencyAnswer` is the schema SENT to the vision
model: xAI's structured outputs treat `additionalProperties` as false unless it is set to
true explicitly (docs: "JSON Schema support"), so a map would always come back `{}` and a
fix would lose its target. The answer carries a list of {name, score} items instead, and
every object says `additionalProperties: false` itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsistencyScore(BaseModel):
    overall_score: float = Field(ge=0.0, le=1.0, description="0 = completely wrong, 1 = perfect match")
    per_character: dict[str, float] = Field(default_factory=dict, description="Score per character name")
    issues: list[str] = Field(default_factory=list, description="Specific problems: 'hair is brown, should be red'")
    fix_prompt: str | None = Field(default=None, description="Surgical edit prompt to fix issues if any")


class CharacterScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The character's name, exactly as the prompt gives it")
    score: float = Field(ge=0.0, le=1.0, description="How well this character matches its reference")


class ConsistencyAnswer(BaseModel):
    """The wire form of ConsistencyScore (its JSON schema keeps the title ConsistencyScore)."""

    model_config = ConfigDict(extra="forbid", title="ConsistencyScore")

    overall_score: float = Field(ge=0.0, le=1.0, description="0 = completely wrong, 1 = perfect match")
    per_character: list[CharacterScore] = Field(
        default_factory=list, description="One item per character in the image: its name and score"
    )
    issues: list[str] = Field(default_factory=list, description="Specific problems: 'hair is brown, should be red'")
    fix_prompt: str | None = Field(default=None, description="Surgical edit prompt to fix issues if any")

    def to_score(self) -> ConsistencyScore:
        """The seed's shape; a name given twice keeps its lowest score (the stricter)."""
        per: dict[str, float] = {}
        for item in self.per_character:
            per[item.name] = min(item.score, per.get(item.name, item.score))
        return ConsistencyScore(
            overall_score=self.overall_score, per_character=per, issues=list(self.issues), fix_prompt=self.fix_prompt
        )
