from __future__ import annotations

import re

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

# Database integer ids (32-bit everywhere, so a huge id is a 422, not a crash).
MAX_ID = 2_147_483_647
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
TokenCount = Annotated[int, Field(ge=1, le=1_000_000)]


def _rfc3339_text(value):
    # pydantic would also read "0" or "1700000000" as a Unix time: the schema says date-time
    if isinstance(value, str) and not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]", value):
        raise ValueError("an RFC 3339 date-time with an offset, e.g. 2027-01-01T00:00:00Z")
    return value


# A date-time query parameter: RFC 3339 with an offset, nothing else.
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


NO_NUL = r"^[^\x00]*$"
# The characters str.strip() removes, spelled out for patterns: `\s` means a
# different set in Python, in pydantic's Rust regex and in JSON Schema's ECMA-262.
SPACES = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def state_no_nul(schema: dict) -> None:
    """What _no_nul refuses, in the schema: every text property without a
    pattern of its own gets NO_NUL (the patterns written here exclude NUL)."""
    for prop in schema.get("properties", {}).values():
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string" and not {"pattern", "format", "enum", "const"} & branch.keys():
                branch["pattern"] = NO_NUL


def _takes_int(annotation) -> bool:
    if annotation is int:
        return True
    return any(_takes_int(a) for a in get_args(annotation) if a is not type(None))


_INT_FIELDS: dict[tuple[type, str], bool] = {}   # (model, field): an int, or a list of ints


def _int_field(model: type[BaseModel], name: str) -> bool:
    key = (model, name)
    if key not in _INT_FIELDS:
        _INT_FIELDS[key] = _takes_int(model.model_fields[name].annotation)
    return _INT_FIELDS[key]


class StrictModel(BaseModel):
    """Request bodies: unknown fields and wrong types are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=state_no_nul)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_floats(cls, value, info):
        # JSON Schema counts 3.0 as an integer; strict ints alone would refuse it
        if isinstance(value, (float, list)) and _int_field(cls, info.field_name):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, list):
                return [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
        return value

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


# ---------------------------------------------------------------- answers

def no_default(schema: dict) -> None:
    schema.pop("default", None)


def Absent(description: str):  # noqa: N802  (reads like a type in the models below)
    """A key the service leaves out in some answers: typed, not nullable, no
    `default: null` in the schema; absent from the JSON when not set."""
    return Field(None, description=description, json_schema_extra=no_default)


# ---------------------------------------------------------------- errors
# RFC 9457 problem details: the one shape of every 4xx/5xx answer, sent as
# application/problem+json (built by services/errors.py problem_body; the
# routes reference these through api/problems.py problems()).

class Problem(BaseModel):
    """Problem details (RFC 9457). `detail` says what went wrong in words;
    members beyond the four below belong to the problem's `type`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the kind of problem: "
                                  "`https://tokenrent.example/problems/<slug>` (see docs/api.md), or "
                                  "`about:blank` when the status says it all")
    title: str = Field(description="a short summary of the type (the status phrase for about:blank)")
    status: int = Field(ge=400, le=599, description="the HTTP status code")
    detail: str = Field(description="what went wrong, for this request")


class FieldError(BaseModel):
    loc: list[str] = Field(description="where: body, query, path or header, then the field's path")
    msg: str
    type: str


class ValidationProblem(Problem):
    """422 (`type` .../invalid-request): the request is malformed or a value is
    refused. `errors` lists every field that failed the schema; it is absent
    when the server refused a value the schema cannot judge (a rule that
    depends on stored data, say)."""

    errors: list[FieldError] = Absent("present when the request failed the schema")


class ShortageProblem(Problem):
    """402 (`type` .../insufficient-tokens): FIG 8's numbers."""

    required_tokens: int
    available_tokens: int
    shortage: int


class CardDeclinedProblem(Problem):
    """402 (`type` .../card-declined): the purchase is recorded as declined."""

    decline_code: str
    id: int = Field(description="the declined token purchase")
    purchase_status: Literal["declined"]


class LockedProblem(Problem):
    """423 (`type` .../locked): too many failures; refused until `locked_until`."""

    locked_until: datetime


class HealthOut(BaseModel):
    status: Literal["ok"]
