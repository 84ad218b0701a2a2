from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Database integer ids (32-bit everywhere, so a huge id is a 422, not a crash).
MAX_ID = 2_147_483_647
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
TokenCount = Annotated[int, Field(ge=1, le=1_000_000)]


class StrictModel(BaseModel):
    """Request bodies: unknown fields and wrong types are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorOut(BaseModel):
    detail: str
