from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from ..vocabulary import AccountStatus, Role, TokenKind
from .common import SPACES, StrictModel

Username = Annotated[str, Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
Pin = Annotated[str, Field(min_length=4, max_length=12, pattern=r"^[0-9]+$")]
FullName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
_EMAIL_PART = rf"[^@\x00-\x1f{SPACES}]+"
Email = Annotated[str, Field(min_length=3, max_length=254,
                             pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$")]


class AccountCreate(StrictModel):
    username: Username
    password: Password
    pin: Pin
    full_name: FullName
    email: Email
    address: Annotated[str, Field(max_length=300, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")] | None = None
    phone: Annotated[str, Field(max_length=32, pattern=r"^[0-9+() .-]*$")] | None = None


class CredentialsReset(StrictModel):
    """What an operator sets for a user who cannot sign in (admin reset-credentials)."""

    password: Password
    pin: Pin


class AccountOut(BaseModel):
    id: int
    username: str
    status: AccountStatus


class SessionCreate(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class MallSessionCreate(StrictModel):
    """Sign in at another member of the mall with an assertion from the home
    member (POST /v1/mall-assertions there): no password, no registration here."""

    assertion: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^[A-Za-z0-9_.-]+$")]


class SessionOut(BaseModel):
    token: str
    expires_at: datetime


class ExpiringLot(BaseModel):
    tokens: int
    kind: TokenKind
    expires_at: datetime


class WalletBreakdown(BaseModel):
    standard: int
    incentive: int
    restricted: int
    transferable: int
    held: int
    negative_draw_limit: int
    expiring: list[ExpiringLot]


class MeOut(BaseModel):
    id: int
    username: str
    full_name: str
    email: str
    role: Role
    status: AccountStatus
    preferred: bool
    available_tokens: int
    min_tokens: int
    tokens: WalletBreakdown


class CurrentSessionOut(BaseModel):
    user_id: int
    username: str
    role: Role
