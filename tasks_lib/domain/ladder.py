"""A model ladder: the models a session may use in turn (`models: [small, large]`), each with its own settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

LoopSetting = Literal["auto", "tools", "edit"]
EditFormatSetting = Literal["auto", "replace", "whole"]
# Where a rung starts: from the workspace the previous model left (continue), or from the files as they were before
# it (fresh: a new sample of the task, with what the previous attempt's check said; the better of the two is kept).
RungStart = Literal["continue", "fresh"]


def rung_shape(value: Any) -> Any:
    """A rung as people write it: a model string, or a mapping with `model` and its own settings."""
    if isinstance(value, str):
        return {"model": value}
    return value


class ModelRung(BaseModel):
    """One model of a ladder and the settings it runs with; a setting left out keeps the agent's."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_reply_tokens: int | None = Field(default=None, ge=16)
    loop: LoopSetting | None = None
    edit_format: EditFormatSetting | None = None
    start: RungStart = "continue"

    def describe(self) -> str:
        """The model and the settings it sets, in one short phrase."""
        extra = [
            f"{k} {v}"
            for k, v in (("temperature", self.temperature), ("loop", self.loop), ("edit format", self.edit_format))
            if v is not None
        ] + (["from the start"] if self.start == "fresh" else [])
        return f"{self.model} ({', '.join(extra)})" if extra else self.model


def ladder_shape(value: Any) -> Any:
    """A ladder as people write it: a list of rungs, or one comma-separated string of model names."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        if not value:
            return None
        return [rung_shape(v) for v in value]
    return value


# The models a session uses in turn: it starts with the first and moves on when one fails (see session/escalation.py).
ModelLadder = Annotated[list[ModelRung] | None, BeforeValidator(ladder_shape)]
