"""The MSP's request and answer models, one family per entity: members
(join and the member object of the directory), the directory, the operator's
invitations and reports. Request models are strict (schemas/common.StrictModel)."""
from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from license_agent.codes import kid_for

from ..schemas.common import FROM_JSON, StrictModel
from ..network.open_money import OpenKind
from .vocabulary import Accepts, ActivityWhat, MemberStatus, RoyaltyMode

MemberId = Annotated[str, Field(pattern=r"^m-[a-z2-7]{10}$", description="`m-` + 10 lowercase base32 characters")]
NetworkKeyText = Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9_-]{43}$",
                                      description="`ed25519:` + base64url (no padding) of the raw 32-byte key")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f]$")]
TokenName = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f]$")]
BaseUrl = Annotated[str, Field(min_length=8, max_length=300, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
                               description="the member server's base URL, http(s), no query or fragment")]
MAX_TOKEN_VALUE_CENTS = 1_000_000
BASIS_POINTS = 10_000   # 100 %


# ---------------------------------------------------------------- members

class CodeKey(StrictModel):
    """One of a member's code-signing public keys (the authorization codes' `kid`)."""

    kid: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", description="license_agent.codes.kid_for of the key")]
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$", description="base64 raw Ed25519")]

    @model_validator(mode="after")
    def _kid_matches(self) -> CodeKey:
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except binascii.Error as e:
            raise ValueError("public_key is not base64") from e
        if kid_for(raw) != self.kid:
            raise ValueError(f"kid {self.kid} is not the kid of this public_key ({kid_for(raw)})")
        return self


def _distinct_kids(keys: list[CodeKey]) -> list[CodeKey]:
    if len({k.kid for k in keys}) != len(keys):
        raise ValueError("a kid is listed twice")
    return keys


CodeKeys = Annotated[list[CodeKey], Field(min_length=1, max_length=20), AfterValidator(_distinct_kids)]


class TokenTerms(StrictModel):
    name: TokenName
    value_cents: Annotated[int, Field(ge=1, le=MAX_TOKEN_VALUE_CENTS, description="one token's cash value")]


class JoinIn(StrictModel):
    """POST /v1/mall/members, signed (RFC 9421, keyid `joining`) by `network_key`."""

    invitation: Annotated[str, Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
    name: Name
    base_url: BaseUrl
    network_key: NetworkKeyText
    code_keys: CodeKeys
    token: TokenTerms


class MemberChange(StrictModel):
    """PATCH /v1/mall/members/{member_id}, signed by that member: the fields given change."""

    name: Name | None = None
    base_url: BaseUrl | None = None
    code_keys: CodeKeys | None = None


class JoinOut(BaseModel):
    member_id: str
    msp_key: str = Field(description="the MSP's network key, to pin")
    directory_version: int


class TokenOut(BaseModel):
    name: str
    value_cents: int


class FeesOut(BaseModel):
    service_charge_bp: int
    royalty_bp: int
    fixed_fee_cents: int
    royalty_mode: RoyaltyMode


class AcceptsOut(BaseModel):
    mode: Accepts
    members: list[str] = Field(description="whose tokens the member accepts when `mode` is listed")


class MemberOut(BaseModel):
    """The member object: in the directory, in its signed entry, at GET /v1/mall/members/{id}."""

    member_id: str
    name: str
    base_url: str
    network_key: str
    code_keys: list[CodeKey]
    token: TokenOut
    status: MemberStatus
    groups: list[str]
    parent: str | None = Field(description="the franchise parent's member id")
    accepts: AcceptsOut
    fees: FeesOut


# ---------------------------------------------------------------- directory

class MspOut(BaseModel):
    member_id: Literal["msp"] = "msp"   # vocabulary.MSP_ID
    network_key: str


class DirectoryOut(BaseModel):
    version: int
    issued_at: datetime = Field(description="when this version came to be")
    msp: MspOut
    members: list[MemberOut]
    entries: dict[str, str] = Field(description="member id -> its member object as a JWT (EdDSA, the MSP's "
                                                "network key; plus iss `msp`, iat, ver)")


# ---------------------------------------------------------------- operator

class InvitationOut(BaseModel):
    invitation: str = Field(description="the one-time code: shown once, only its SHA-256 is kept")
    name: str
    expires_at: datetime


class FeesChange(StrictModel):
    """set-fees: the fields given change, the others stay."""

    service_charge_bp: Annotated[int, Field(ge=0, le=BASIS_POINTS)] | None = None
    royalty_bp: Annotated[int, Field(ge=0, le=BASIS_POINTS)] | None = None
    fixed_fee_cents: Annotated[int, Field(ge=0, le=MAX_TOKEN_VALUE_CENTS)] | None = None
    royalty_mode: Annotated[RoyaltyMode, FROM_JSON] | None = None


class BooksReportOut(BaseModel):
    ok: bool
    totals: dict[str, int]
    mismatched_accounts: list[str]
    negative_accounts: list[str]
    wrong_asset_transfers: list[int]


# ---------------------------------------------------------------- backups (FIG 14, backups.py)

class BackupHeadOut(BaseModel):
    """What the MSP says of the backup it keeps for a member."""

    member_id: str
    message_id: str
    ledger_head: int
    taken_at: datetime
    received_at: datetime
    sha256: str
    size_bytes: int
    users: int


class BackupStoredOut(BackupHeadOut):
    """The MSP's answer to a backup: the one it keeps now (`stored`: this one
    replaced it; false: the stored one is later and stays)."""

    stored: bool


class BackupMovementOut(BaseModel):
    operation_id: str
    kind: str
    from_member: str
    to_member: str
    tokens_from: int
    tokens_to: int
    value_cents: int
    status: str
    completed_at: datetime | None
    customer: dict[str, str] | None
    issue_body: dict[str, Any] | None


class BackupLatestOut(BackupHeadOut):
    """GET /v1/mall/backups/latest: the member's own backup as it sent it, and
    its movements the snapshot may not show (docs/mall.md, FIG 14)."""

    backup: dict[str, Any] = Field(description="the message as the member sent it: snapshot, sha256, signature")
    pending_movements: int = Field(description="movements of this member not ended yet: a restore waits")
    movements_since: list[BackupMovementOut] = Field(description="movements that ended after the snapshot, "
                                                                 "or were pending in it")


# ---------------------------------------------------------------- open payments (issue 12)
# The accepting member's calls (docs/mall.md "Paying with open tokens"): a plan, a held
# payment, its result and its refund. Units are open units (docs/plans: "Units and vocabulary").

OperationId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                                   description="a UUID in its canonical lowercase text form")]
OpenUnits = Annotated[int, Field(ge=1, le=10**12)]
MAX_OPEN_LINES = 100


class PayingCustomer(StrictModel):
    """The customer record at the MSP: its home member and the user id there."""

    home_member: MemberId
    home_user_id: Annotated[str, Field(min_length=1, max_length=64)]
    full_name: Annotated[str, Field(max_length=100)] = ""


class OpenLineIn(StrictModel):
    line: Annotated[int, Field(ge=1, le=MAX_OPEN_LINES)]
    product_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    quantity: Annotated[int, Field(ge=1, le=10**6)]
    units: OpenUnits


class OpenPlanIn(StrictModel):
    customer: PayingCustomer
    lines: Annotated[list[OpenLineIn], Field(min_length=1, max_length=MAX_OPEN_LINES)]


class OpenPaymentIn(OpenPlanIn):
    operation_id: OperationId


class OpenPaymentResultIn(StrictModel):
    operation_id: OperationId
    status: Literal["confirmed", "voided"]
    units: OpenUnits
    reason: Annotated[str, Field(max_length=300)] = ""


class OpenRefundIn(StrictModel):
    refund_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]{1,64}$")]
    operation_id: OperationId
    reason: Annotated[str, Field(max_length=300)] = ""


class OpenPortionOut(BaseModel):
    """What one lot gives one line (`line` 0: a certificate's change, paid back as universal tokens)."""

    line: int
    lot_id: int
    kind: str
    issuer: str | None
    asset: str
    tokens: int


class OpenPlanBody(BaseModel):
    portions: list[OpenPortionOut]
    change: list[OpenPortionOut]
    short_units: int
    helpful_kinds: list[str]


class OpenPlanOut(BaseModel):
    plan: OpenPlanBody
    unit_value_cents: int


class OpenPaymentOut(BaseModel):
    """A held payment (authorized), or its end (confirmed, voided, refunded)."""

    operation_id: str
    status: str
    portions: list[OpenPortionOut]
    change: list[OpenPortionOut]
    units: int
    hold_expires_at: datetime
    reason: str | None = None
    change_lots: list[int] = Field(default_factory=list, description="confirmed: the universal lots of the change")
    balance_after: dict[str, int] = Field(default_factory=dict,
                                          description="the customer's usable open units per asset after this")


class OpenRefundOut(BaseModel):
    refund_id: str
    operation_id: str
    status: str
    units: int


# ---------------------------------------------------------------- open tokens: issuing, catalog, wallet
# (server_stub/mall/open_tokens.py; docs/mall.md "Issuing open tokens"). The member messages are
# validated from the inbox's stored JSON, so they are lax on types (datetimes from text) but take
# no unknown field; the customer's own calls are StrictModels.

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
OpenTokens = Annotated[int, Field(ge=1, le=10**12)]
OpenIssuer = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^:\s]+$")]
BrandId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$",
                               description="1-32 lowercase letters, digits, '.', '_' or '-'")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenCustomerIn(_Message):
    """A customer as its home member knows it (the MSP's customer record is made on first use)."""

    home_member: MemberId
    home_user_id: Annotated[str, Field(min_length=1, max_length=64)]
    full_name: Annotated[str, Field(max_length=100)] = ""


class GiftCertificateIn(_Message):
    code_sha256: Sha256Hex = Field(description="open_money.gift_code_digest of the code the seller derived")
    recipient: OpenCustomerIn | None = None


class OpenIssueIn(_Message):
    """POST /v1/mall/open-issues from the selling member (the customer's home member)."""

    operation_id: OperationId
    kind: OpenKind
    issuer: OpenIssuer | None = None
    tokens: OpenTokens
    price_cents: Annotated[int, Field(ge=0, le=10**13)]
    customer: OpenCustomerIn
    recipient: OpenCustomerIn | None = Field(None, description="a gift certificate's recipient (or in gift_certificate)")
    gift_certificate: GiftCertificateIn | None = None
    expires_at: AwareDatetime | None = None


class OpenGiftIn(_Message):
    """POST /v1/mall/open-gifts from the certificate's seller: give it to another of its customers."""

    operation_id: OperationId = Field(description="the certificate's sale")
    gift_operation_id: OperationId = Field(description="this gift (the Idempotency-Key)")
    from_: OpenCustomerIn = Field(alias="from")
    to: OpenCustomerIn


class OpenLotOut(BaseModel):
    lot_id: int
    kind: OpenKind
    asset: str
    issuer: str | None
    tokens: int
    expires_at: datetime | None


class GiftCertificateRef(BaseModel):
    id: int
    code_hint: str = Field(description="the first 8 hex digits of the code's SHA-256: names the "
                                       "certificate, reveals nothing of its code")


class OpenIssueOut(BaseModel):
    operation_id: str
    lots: list[OpenLotOut]
    gift_certificate: GiftCertificateRef | None = None


class OpenGiftOut(BaseModel):
    operation_id: str
    gift_operation_id: str
    gift_certificate: GiftCertificateRef
    lot: OpenLotOut
    to: dict[str, str]


class OutstandingOut(BaseModel):
    """One asset of the calling member's open tokens not spent yet (its receivable towards the network)."""

    asset: str
    kind: OpenKind
    issuer: str | None
    issued_tokens: int = Field(description="minus the balance of issue:<asset>:<member>: every token it issued")
    tokens: int = Field(description="in its customers' lots now")
    held_tokens: int = Field(description="taken by payments not yet confirmed or voided")
    value_micro_cents: int = Field(description="what it was paid for tokens + held_tokens (face x paid_bp), 1/100 cents")
    value_cents: int = Field(description="value_micro_cents in whole cents (rounded down)")


class BrandOut(BaseModel):
    brand_id: str
    name: str
    member_id: str
    discount_bp: int
    free_cap_units: int


class GroupOfferOut(BaseModel):
    name: str
    members: list[str]
    discount_bp: int


class GiftCertificateTermsOut(BaseModel):
    max_days: int


class OpenCatalogOut(BaseModel):
    unit_value_cents: int
    brands: list[BrandOut]
    groups: list[GroupOfferOut]
    gift_certificate: GiftCertificateTermsOut


class BrandProductOut(BaseModel):
    product_id: int
    brand_id: str


class BrandIn(StrictModel):
    """brands-add: a brand (an outside brand settles through the member named)."""

    brand_id: BrandId
    name: Name
    member_id: MemberId
    discount_bp: Annotated[int, Field(ge=0, le=BASIS_POINTS)] = 0
    free_cap_units: Annotated[int, Field(ge=0, le=10**12)] = 0


class MspSessionIn(StrictModel):
    assertion: Annotated[str, Field(min_length=20, max_length=4000)]


class MspSessionOut(BaseModel):
    token: str = Field(description="bearer token for the open wallet; only its SHA-256 is kept")
    expires_at: datetime


class RedeemIn(StrictModel):
    code: Annotated[str, Field(min_length=1, max_length=64)]


class WalletLotOut(BaseModel):
    lot_id: int
    kind: OpenKind
    issuer: str | None
    issuer_name: str | None
    tokens: int
    value_cents: int
    expires_at: datetime | None
    expired: bool


class WalletCertificateOut(BaseModel):
    id: int
    code_hint: str
    seller_member_id: str
    seller_name: str
    face_units: int
    face_cents: int
    tokens: int = Field(description="what is left in its lot (0 once spent)")
    expires_at: datetime | None
    expired: bool
    held: bool = Field(description="the caller holds it (may spend it)")
    bought: bool = Field(description="the caller bought it")
    recipient_name: str | None
    status: str


class OpenWalletOut(BaseModel):
    unit_value_cents: int
    value_cents: int = Field(description="face value of the lots not expired")
    lots: list[WalletLotOut]
    gift_certificates: list[WalletCertificateOut]


class ActivityOut(BaseModel):
    entry_id: str = Field(description="`before=` this to read on")
    at: datetime
    lot_id: int
    kind: OpenKind
    issuer: str | None
    change: int
    balance_after: int = Field(description="the lot's balance after this line")
    what: ActivityWhat
    member: str | None = Field(description="the member it happened with (seller, accepting member)")


class RedeemOut(BaseModel):
    gift_certificate: GiftCertificateRef
    lot: OpenLotOut
    moved: bool = Field(description="false: the caller held it already")
