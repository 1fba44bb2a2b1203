"""The base of every study-file model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Closed(BaseModel):
    """Frozen, no unknown keys: a typo in a study file is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
