from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Database integer ids (32-bit everywhere, so a huge id is a 422, not a crash).
MAX_ID = 2_147_483_647
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
TokenCount = Annotated[int, Field(ge=1, le=1_000_000)]


class StrictModel(BaseModel):
    """Request bodies: unknown fields and wrong types are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        # PostgreSQL text cannot hold NUL; refuse it everywhere, on every database
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


# For a request field holding one of a vocabulary's values (server_stub.vocabulary), as
# `Annotated[OfferKind, FROM_JSON]`: JSON carries the value, which a strict model refuses for
# an enum (it wants an instance); lax for that field only, still exactly the enum's values.
FROM_JSON = Field(strict=False)


class ErrorOut(BaseModel):
    detail: str


class HealthOut(BaseModel):
    status: Literal["ok"]
