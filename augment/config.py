"""The `augment` section of the run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from augment.sets import SETS


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    set: str = Field("geometric+color", description=f"named augmentation set: {', '.join(SETS)}")
    n_samples: int = Field(32, ge=1, description="leave-one-out training samples to build per task (at least)")
    permute_background: bool = Field(False, description="also permute color 0 (background); MIT-style keeps it fixed")
    allow_single_pair: bool = Field(
        False, description="a task with one train pair trains on it as both context and target (weak signal)"
    )

    @field_validator("set")
    @classmethod
    def _known_set(cls, v: str) -> str:
        if v not in SETS:
            raise ValueError(f"unknown augmentation set {v!r}; choose one of {', '.join(SETS)}")
        return v
