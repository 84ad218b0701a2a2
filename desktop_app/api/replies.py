"""The server's answers as the storefront reads them: one typed reply per answer.

The HTTP contract is docs/api.md (and the server's /openapi.json, which the tests compare
these shapes with). Each shape names the fields the storefront reads, with the server's own
names; a field the server always sends has no default here, so an answer without it is a
ReplyError ("not the contract"), never guessed around. Fields the server adds later are
ignored (desktop_app.wire). There are no aliases and no second spellings.

The storefront never imports server_stub: the vocabulary (offer kinds ...) is spelled here
and checked against the OpenAPI document by the tests; license kinds are the code format's.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from desktop_app.wire import Reply, ReplyError, parse
from license_agent.code_terms import LicenseKind

__all__ = ["AccountStatus", "LicenseKind", "OfferKind", "OpenKind", "GiveStatus", "OpenPurchaseStatus", "OrderAction", "OrderPayment",
           "PurchaseStatus", "Reply", "ReplyError", "parse"]


class OfferKind(StrEnum):
    """How a product can be had (the HTTP API's `kind` of an offer and of an order item)."""

    PURCHASE = "purchase"
    RENT_TIME = "rent_time"
    RENT_USES = "rent_uses"
    RENT_PROCESSINGS = "rent_processings"
    CONVERT = "convert"


# The license a rental offer grants, and back (the Library's "Extend" finds the offer for a license).
RENTAL_LICENSE_KIND = {OfferKind.RENT_TIME: LicenseKind.TIME, OfferKind.RENT_USES: LicenseKind.USES,
                       OfferKind.RENT_PROCESSINGS: LicenseKind.PROCESSINGS}
RENTAL_OFFER_KIND = {lk: ok for ok, lk in RENTAL_LICENSE_KIND.items()}


# Statuses are read as text and compared with these enums (a StrEnum equals its text), so a
# status a later server adds is shown as "not active" instead of failing the whole answer.
class AccountStatus(StrEnum):
    INACTIVE = "inactive"      # until the minimum token purchase (FIG 3)
    ACTIVE = "active"


class PurchaseStatus(StrEnum):
    COMPLETED = "completed"
    PENDING = "pending"        # an off-line method: waits for the payment
    CREDITED = "credited"      # credited before the payment arrived
    DECLINED = "declined"
    CANCELLED = "cancelled"


class OrderAction(StrEnum):
    NEW = "new"
    EXTEND = "extend"
    CONVERT = "convert"


# Open tokens (issue 12): spelled here, as the storefront never imports server_stub;
# tests/desktop_app/open check OpenKind against server_stub.network.open_money.OpenKind. Kinds
# are read as text and compared with it, so a kind a later MSP adds is shown by its name.
class OpenKind(StrEnum):
    UNIVERSAL = "universal"                   # one value at every member
    MANUFACTURER = "manufacturer"             # type 1: only the brand's products
    MANUFACTURER_FREE = "manufacturer_free"   # type 2: given free, pays part of a brand's item
    GROUP = "group"                           # accepted within one group of members
    GIFT_CERTIFICATE = "gift_certificate"     # used whole; the change comes back as universal tokens


class OrderPayment(StrEnum):
    """`payment` of POST /v1/quotes and /v1/orders."""

    CLOSED = "closed"          # the store's own tokens only (as before open tokens)
    AUTO = "auto"              # the store's own tokens first, open tokens for the rest
    OPEN = "open"              # open tokens only


class OpenPurchaseStatus(StrEnum):
    PENDING = "pending"                        # paid; the MSP has not issued yet
    ISSUED = "issued"
    AWAITING_PAYMENT = "awaiting_payment"      # an off-line method: waits for the payment
    CANCELLED = "cancelled"
    FAILED = "failed"                          # the MSP refused after payment: the money is due back
    DECLINED = "declined"                      # the card was declined: nothing was sold


class GiveStatus(StrEnum):
    PENDING = "pending"         # sent to the MSP, no answer yet (202)
    GIVEN = "given"
    REFUSED = "refused"


# ---------------------------------------------------------------- accounts and sessions

class Account(Reply):
    """201 POST /v1/accounts."""

    id: int
    username: str
    status: str                 # AccountStatus


class Session(Reply):
    """POST /v1/sessions."""

    token: str
    expires_at: datetime


class ExpiringLot(Reply):
    tokens: int
    kind: str
    expires_at: datetime


class WalletBreakdown(Reply):
    standard: int
    incentive: int
    restricted: int
    transferable: int
    held: int
    negative_draw_limit: int
    expiring: list[ExpiringLot]


class Me(Reply):
    """GET /v1/me."""

    id: int
    username: str
    full_name: str
    email: str
    role: str
    status: str                 # AccountStatus
    preferred: bool
    available_tokens: int
    min_tokens: int
    tokens: WalletBreakdown

    @property
    def active(self) -> bool:
        return self.status == AccountStatus.ACTIVE


# ---------------------------------------------------------------- tokens

class Bundle(Reply):
    id: int
    name: str
    tokens: int
    discount_percent: float
    price_cents: int
    list_price_cents: int


class TokenOffers(Reply):
    """GET /v1/token-offers."""

    token_price_cents: int
    min_tokens: int
    preferred_discount_percent: float
    your_discount_percent: float
    bundles: list[Bundle]
    payment_methods: list[str]


class TokenPurchase(Reply):
    """POST /v1/token-purchases (201 completed, 202 pending) and GET /v1/token-purchases."""

    id: int
    status: str                 # PurchaseStatus
    tokens: int
    bundle_id: int | None
    method: str
    amount_cents: int
    gross_cents: int
    discount_percent: float
    invoice_number: str | None
    card_brand: str | None
    card_last4: str | None
    created_at: datetime
    user_id: int
    decline_code: str | None = None
    available_tokens: int | None = None     # the wallet after a completed card purchase


class Transfer(Reply):
    """201 POST /v1/transfers (FIG 11)."""

    id: int
    tokens: int
    to_username: str
    available_tokens: int


class LedgerLine(Reply):
    id: int
    at: datetime
    kind: str
    memo: str
    tokens: int                 # change of the spendable wallet (negative: out)
    held_change: int
    token_kind: str | None
    balance_after: int | None   # the spendable balance after this line, as the server counts it


class Ledger(Reply):
    """GET /v1/ledger: the statement, newest first."""

    available_tokens: int
    entries: list[LedgerLine]


# ---------------------------------------------------------------- catalog

class Category(Reply):
    """GET /v1/categories (FIG 6)."""

    id: int
    name: str
    description: str
    position: int
    product_count: int


class Tier(Reply):
    quantity: int               # days, uses or processings granted
    tokens: int
    cash_cents: int


class Offer(Reply):
    """`purchase`/`convert` carry `tokens, cash_cents`; rentals carry `tiers, unit` (the other
    pair is absent, hence the defaults)."""

    id: int
    product_id: int
    kind: OfferKind
    active: bool
    low_threshold: int | None
    tiers: list[Tier] = []      # noqa: RUF012  (each reply gets its own copy: desktop_app.wire.Reply)
    unit: str | None = None     # what a tier's quantity counts: days, uses or processings
    tokens: int | None = None
    cash_cents: int | None = None

    @property
    def price_tokens(self) -> int:
        """The lowest price: the only one, or the cheapest tier."""
        if self.tiers:
            return min(t.tokens for t in self.tiers)
        return self.tokens or 0


class Version(Reply):
    id: int
    version: str
    file_name: str
    sha256: str
    size: int
    signed_package: bool
    published_at: datetime


class Product(Reply):
    """GET /v1/products (FIG 7)."""

    id: int
    name: str
    category_id: int
    description: str
    publisher: str
    on_sale: bool
    active: bool
    store_url: str
    offers: list[Offer]
    latest_version: Version | None
    token_price_cents: int

    def offer_of_kind(self, kind: OfferKind) -> Offer | None:
        return next((o for o in self.offers if o.kind == kind), None)


class VendorKeyEntry(Reply):
    kid: str
    public_key: str
    current: bool
    retired_at: datetime | None = None      # absent on the current key


class VendorKey(Reply):
    """GET /v1/vendor-key: the current key, and every key the agent should trust."""

    kid: str
    public_key: str
    keys: list[VendorKeyEntry]


class Device(Reply):
    """201 POST /v1/devices."""

    id: int
    device_id: str
    name: str
    public_key: str
    created_at: datetime


# ---------------------------------------------------------------- quotes, orders, the saved list

class QuoteItem(Reply):
    offer_id: int
    product_id: int
    product_name: str
    kind: OfferKind
    quantity: int | None
    tokens: int
    cash_cents: int
    action: OrderAction
    license_id: int | None      # the license extended or converted; null for a new one
    on_sale: bool
    open_kinds: list[str] = []  # noqa: RUF012  OpenKind: the kinds that can pay this item here (issue 12)
    split: Split | None = None  # with payment auto/open: closed tokens and open units of this item


class Quote(Reply):
    """POST /v1/quotes (FIG 8). ``payable`` and ``shortage`` are the server's decision, which
    counts what plain RT/AT do not: restricted tokens, the negative-draw limit."""

    required_tokens: int
    available_tokens: int
    remaining_tokens: int
    payable: bool
    shortage: int
    cash_cents: int
    token_price_cents: int
    account_status: str         # AccountStatus
    exact_actions: bool         # the actions are for this device's licenses (a device was given or is the only one)
    device_id: str | None
    items: list[QuoteItem]
    # payment open or auto only (issue 12): the split and the MSP's plan
    payment: str = OrderPayment.CLOSED          # OrderPayment
    closed_tokens: int | None = None            # this store's tokens the order would take
    open_units: int | None = None               # open units it would take; null when the MSP's unit is unknown
    unit_value_cents: int | None = None         # the open unit's cash value
    open_plan: OpenPlan | None = None           # the MSP's plan when open units are needed; null when none
    open_plan_error: str | None = None          # why there is no plan (the MSP did not answer)


class ReceiptItem(Reply):
    offer_id: int
    product_id: int
    product_name: str
    kind: OfferKind
    action: OrderAction
    quantity: int | None
    tokens: int
    cash_cents: int
    license_id: int


class Delivery(Reply):
    """FIG 9: one per license changed; the download fields only for a product not installed."""

    product_id: int
    product_name: str
    license_id: int
    serial: int
    kind: LicenseKind
    device_id: str
    kid: str
    authorization_code: str
    installed: bool
    download_url: str | None = None
    version: str | None = None
    sha256: str | None = None
    size: int | None = None
    file_name: str | None = None


class Receipt(Reply):
    """201 POST /v1/orders, and GET /v1/orders."""

    id: int
    status: str
    created_at: datetime
    device_id: str
    required_tokens: int
    available_tokens: int
    remaining_tokens: int
    balance_after: int
    token_price_cents: int
    cash_cents: int
    items: list[ReceiptItem]
    deliveries: list[Delivery]
    payment: str                                # OrderPayment (issue 12)
    paid: list[PaidPart]                        # what paid: this store's tokens (kind closed), open per kind
    open_balance_after: dict[str, int] | None = None   # open kind -> tokens left, when the MSP told them
    open_units: int | None = None               # open or auto orders that took open tokens
    open_status: str | None = None              # the open part's status at the store
    operation_id: str | None = None             # the MSP's operation of the open part

    @property
    def pending(self) -> bool:
        """202: the MSP has not answered yet; GET /v1/orders/{id}?wait= gives the final status."""
        return self.status == "pending"


class Problem(Reply):
    """An error body: ``detail`` (a sentence) and the members of that error. RFC 9457's
    ``type`` and ``title`` are read when sent; its ``status`` (the HTTP status again) is not
    read: the status line says it, and older servers used that name for a purchase status."""

    detail: str
    type: str = "about:blank"
    title: str = ""


class Shortage(Problem):
    """402 on POST /v1/orders: short of tokens (FIG 10)."""

    required_tokens: int
    available_tokens: int
    shortage: int


class Declined(Problem):
    """402 on POST /v1/token-purchases: the card was declined (final for its key)."""

    decline_code: str
    id: int                                 # the declined purchase
    purchase_status: str | None = None      # PurchaseStatus.DECLINED (with problem details)


class OrderListItem(Reply):
    """A saved item as it was put: `quantity` and `license_id` only when given."""

    offer_id: int
    quantity: int | None = None
    license_id: int | None = None


class OrderList(Reply):
    """GET/PUT /v1/order-list (FIG 10 step 907)."""

    items: list[OrderListItem]
    updated_at: datetime | None


# ---------------------------------------------------------------- licenses

class License(Reply):
    """GET /v1/licenses: a license and the totals granted (what is *left* is the agent's)."""

    id: int
    product_id: int
    product_name: str
    kind: LicenseKind
    serial: int
    device_id: str | None
    device_name: str | None
    starts_at: datetime
    expires_at: datetime | None
    uses: int | None
    processings: int | None
    low_threshold: int | None
    store_url: str
    active: bool
    created_at: datetime
    updated_at: datetime


class LicenseCode(Reply):
    """GET /v1/licenses/{id}/code."""

    license_id: int
    product_id: int
    serial: int
    device_id: str
    kid: str
    authorization_code: str


# ---------------------------------------------------------------- the mall network (docs/mall.md)

class ExchangeStatus(StrEnum):
    """An exchange of this store's tokens into another member's (FIG 15)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class MemberToken(Reply):
    name: str
    value_cents: int            # the cash value of one token, in cents (the MSP's directory)


class MallMember(Reply):
    member_id: str
    name: str
    base_url: str
    token: MemberToken
    status: str                 # "active" or "blocked"

    @property
    def active(self) -> bool:
        return self.status == "active"


class Mall(Reply):
    """GET /v1/mall: the members as the home store last read the MSP's directory."""

    member_id: str              # the home store's own member id
    msp_url: str
    directory_version: int
    members: list[MallMember]

    def member(self, member_id: str) -> MallMember | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    @property
    def home(self) -> MallMember | None:
        return self.member(self.member_id)


class ExchangeQuote(Reply):
    """201 POST /v1/exchange-quotes: N asked, N' move, M arrive; locked until expires_at."""

    quote_id: str
    to_member: str
    tokens_asked: int
    tokens_from: int
    tokens_to: int
    value_from_cents: int
    value_to_cents: int
    value_cents: int
    fees_cents: int
    expires_at: datetime


class Exchange(Reply):
    """201 POST /v1/exchanges, GET /v1/exchanges[/{id}]."""

    id: str
    status: str                 # ExchangeStatus (text: a later status is shown, not fatal)
    to_member: str
    tokens_from: int
    tokens_to: int
    value_cents: int
    reason: str
    created_at: datetime
    finished_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.status == ExchangeStatus.PENDING


class MallAssertion(Reply):
    """201 POST /v1/mall-assertions: a single-use, five-minute assertion for one member."""

    assertion: str
    expires_at: datetime


# ---------------------------------------------------------------- open tokens (issue 12, FIG 18-20)
class OpenLot(Reply):
    """A lot in GET /v1/open-wallet (at the MSP): one kind, issuer and expiry."""

    lot_id: int
    kind: str                   # OpenKind
    issuer: str | None          # brand id, group name or selling member id; null for universal
    issuer_name: str | None
    tokens: int
    value_cents: int            # tokens x the open unit's cash value (the MSP's figure)
    expires_at: datetime | None
    expired: bool


class OpenGiftCertificate(Reply):
    """A gift certificate in GET /v1/open-wallet: one the caller holds or bought."""

    id: int
    code_hint: str              # names the certificate; reveals nothing of its code
    seller_member_id: str
    seller_name: str
    face_units: int
    face_cents: int
    tokens: int                 # what is left in its lot (0 once spent)
    expires_at: datetime | None
    expired: bool
    held: bool                  # the caller holds it (may spend it)
    bought: bool                # the caller bought it
    recipient_name: str | None
    status: str


class OpenWallet(Reply):
    """GET /v1/open-wallet at the MSP: the customer's open account."""

    unit_value_cents: int
    value_cents: int            # the face value of the lots not expired
    lots: list[OpenLot]
    gift_certificates: list[OpenGiftCertificate]


class ActivityWhat(StrEnum):
    """What a line of the open statement was (read as text: a later one is shown by its name)."""

    ISSUED = "issued"
    GRANTED = "granted"
    CHANGE = "change"
    HELD = "held"
    RELEASED = "released"
    REFUNDED = "refunded"
    RECEIVED = "received"
    GIVEN = "given"
    OTHER = "other"


class OpenActivityLine(Reply):
    """GET /v1/open-wallet/activity: one movement of a lot, newest first, gift-card style."""

    entry_id: str               # `before=` this to read on
    at: datetime
    lot_id: int
    kind: str                   # OpenKind
    issuer: str | None
    change: int                 # open units in (+) or out (-)
    balance_after: int          # the lot's balance after this line, as the MSP counts it
    what: str                   # ActivityWhat
    member: str | None          # the member it happened with (seller, accepting member)


class IssuedLot(Reply):
    lot_id: int
    kind: str
    asset: str
    issuer: str | None
    tokens: int
    expires_at: datetime | None


class CertificateRef(Reply):
    id: int
    code_hint: str


class Redeemed(Reply):
    """200 POST /v1/open-wallet/redeem: the certificate and its lot, now the caller's."""

    gift_certificate: CertificateRef
    lot: IssuedLot
    moved: bool                 # false: the caller held it already


class OpenKindOffer(Reply):
    kind: str                   # OpenKind
    issuer: str | None
    issuer_name: str | None
    discount_bp: int
    price_cents_per_1000: int


class GiftCertificateTerms(Reply):
    expires_in_days: int        # the selling store's policy, shown before purchase


class OpenTokenOffers(Reply):
    """GET /v1/open-token-offers at the home store: what it sells and at what price."""

    unit_value_cents: int
    kinds: list[OpenKindOffer]
    gift_certificate: GiftCertificateTerms


class SoldGiftCertificate(Reply):
    value_cents: int
    expires_at: datetime | None
    code: str | None            # the redemption code: to its buyer only, once issued
    id: int | None              # the MSP's certificate id
    give_status: str | None     # GiveStatus, once given
    give_reason: str | None


class PurchaseRecipient(Reply):
    username: str
    full_name: str


class PurchasedLot(Reply):
    lot_id: int
    kind: str                   # OpenKind
    tokens: int


class OpenTokenPurchase(Reply):
    """201 (202 off-line) POST /v1/open-token-purchases, GET /v1/open-token-purchases[/{id}]."""

    id: int
    operation_id: str           # the MSP's operation: names a gift certificate to give it
    kind: str                   # OpenKind
    issuer: str | None
    tokens: int
    price_cents: int
    method: str
    status: str                 # OpenPurchaseStatus
    reason: str
    refund_due: bool            # the MSP refused after payment: the money is owed back
    invoice_number: str | None
    card_brand: str | None
    card_last4: str | None
    decline_code: str | None
    recipient: PurchaseRecipient | None     # a gift certificate bought for someone else
    lots: list[PurchasedLot]                # what the MSP issued, once it has
    created_at: datetime
    issued_at: datetime | None
    user_id: int
    gift_certificate: SoldGiftCertificate | None


class GiftGiven(Reply):
    """200 (202 pending) POST /v1/gift-certificates/{operation_id}/give."""

    operation_id: str
    gift_operation_id: str
    status: str                 # GiveStatus
    to_username: str | None


class PlanPortion(Reply):
    line: int                   # the order line (0 for change)
    lot_id: int
    kind: str                   # OpenKind
    issuer: str | None
    tokens: int


class OpenPlan(Reply):
    """The MSP's plan for the open part of an order (FIG 20A/B), as the quote carries it."""

    portions: list[PlanPortion]
    change: list[PlanPortion]
    short_units: int
    helpful_kinds: list[str]    # OpenKind: when short, the kinds that would pay these lines

    def by_kind(self) -> list[tuple[str, str | None, int]]:
        """(kind, issuer, tokens) in the plan's own order, each kind and issuer once."""
        out: dict[tuple[str, str | None], int] = {}
        for p in self.portions:
            out[(p.kind, p.issuer)] = out.get((p.kind, p.issuer), 0) + p.tokens
        return [(k, i, t) for (k, i), t in out.items()]


class Split(Reply):
    closed_tokens: int          # the store's own tokens for this line
    open_units: int | None      # open units for the rest; null when the MSP's unit is unknown


class PaidPart(Reply):
    """A receipt's `paid`: closed tokens as asset `token:<member>`, kind `closed`."""

    asset: str
    kind: str                   # "closed" or an OpenKind
    issuer: str | None
    tokens: int


class OpenShort(Problem):
    """402 on POST /v1/orders paid in open tokens: the MSP's plan was short."""

    short_units: int
    helpful_kinds: list[str]
    reason: str = "short"
