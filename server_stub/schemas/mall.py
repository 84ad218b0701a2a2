"""The mall network as a vendor's users see it (GET /v1/mall, exchanges)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from ..vocabulary import ExchangeStatus
from .common import StrictModel, TokenCount

MemberId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]
QuoteId = Annotated[str, Field(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


class MemberToken(BaseModel):
    name: str
    value_cents: int


class MallMemberOut(BaseModel):
    member_id: str
    name: str
    base_url: str
    token: MemberToken
    status: str


class MallOut(BaseModel):
    member_id: str
    msp_url: str
    directory_version: int
    members: list[MallMemberOut]


class ExchangeQuoteCreate(StrictModel):
    to_member: MemberId
    tokens: TokenCount


class ExchangeQuoteOut(BaseModel):
    quote_id: str
    to_member: str
    tokens_asked: int = Field(description="N: the tokens the user offered")
    tokens_from: int = Field(description="N': the tokens that move (they buy whole tokens of the other member)")
    tokens_to: int = Field(description="M: the other member's tokens the user gets")
    value_from_cents: int
    value_to_cents: int
    value_cents: int = Field(description="M x the other token's value")
    fees_cents: int = Field(description="what the network's fees take of that value (paid by the members)")
    expires_at: datetime


class ExchangeCreate(StrictModel):
    quote_id: QuoteId


class ExchangeOut(BaseModel):
    id: str
    status: ExchangeStatus
    to_member: str
    tokens_from: int
    tokens_to: int
    value_cents: int
    reason: str
    created_at: datetime
    finished_at: datetime | None


class AssertionCreate(StrictModel):
    audience: MemberId = Field(description='a member id, or "msp"')


class AssertionOut(BaseModel):
    assertion: str = Field(description="a JWT (EdDSA) for POST /v1/sessions at the audience; used once")
    expires_at: datetime


# ---- server to server (signed by the MSP; docs/mall.md)

class IssueOut(BaseModel):
    operation_id: str
    user_id: int = Field(description="the linked account that got the tokens")
    tokens: int


class ExchangeResultOut(BaseModel):
    operation_id: str
    status: ExchangeStatus


class AuditExchange(BaseModel):
    operation_id: str
    status: ExchangeStatus
    tokens_from: int
    tokens_to: int
    value_cents: int


class AuditIssue(BaseModel):
    operation_id: str
    tokens: int


class MemberAuditOut(BaseModel):
    member_id: str | None
    ledger_ok: bool
    ledger_totals: dict[str, int]
    outbox_pending: int
    exchanged_out_tokens: int
    exchanged_in_tokens: int
    circulation_tokens: int          # what its users hold: the MSP's token record must agree
    exchanges: list[AuditExchange]
    issues: list[AuditIssue]
