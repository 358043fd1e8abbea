"""The breaker's settings, apart from its SQL so that settings need not import the models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BreakerPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: int = Field(default=5, ge=1)
    cooldown: float = Field(default=15.0, gt=0)
    # How long a probe may take before another worker may probe instead (its worker may die).
    probe_lease: float = Field(default=30.0, gt=0)
