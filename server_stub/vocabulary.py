"""The server's words on the wire, in one place: every closed set of values the
HTTP API sends or accepts (docs/contracts.md, docs/api.md). Models, schemas,
services, the admin CLI and the demo use these; the values never change (a
StrEnum member is equal to its string, so stored rows and JSON stay as they
were). License kinds are the authorization code's: `license_agent.codes.LicenseKind`.
"""
from __future__ import annotations

from enum import StrEnum

from license_agent.codes import LicenseKind


class OfferKind(StrEnum):
    """How a product is sold (FIG 7; with ItemAction, the ten kinds a-j of docs/glossary.md)."""

    PURCHASE = "purchase"                  # a: permanent use
    RENT_TIME = "rent_time"                # b: a rental for a number of days
    RENT_USES = "rent_uses"                # c: ... for a number of runs
    RENT_PROCESSINGS = "rent_processings"  # d: ... for a number of processing tasks
    CONVERT = "convert"                    # e, f, g: a rental made permanent


# Offers priced in tiers of a quantity (the others have one token price).
TIERED_OFFER_KINDS = frozenset({OfferKind.RENT_TIME, OfferKind.RENT_USES, OfferKind.RENT_PROCESSINGS})


class RentalUnit(StrEnum):
    """What a tier's `quantity` counts."""

    DAYS = "days"
    USES = "uses"
    PROCESSINGS = "processings"


UNIT_OF_OFFER = {OfferKind.RENT_TIME: RentalUnit.DAYS, OfferKind.RENT_USES: RentalUnit.USES,
                 OfferKind.RENT_PROCESSINGS: RentalUnit.PROCESSINGS}

# The license an offer starts (convert starts none: it changes one).
LICENSE_KIND_OF_OFFER = {OfferKind.PURCHASE: LicenseKind.PERMANENT, OfferKind.RENT_TIME: LicenseKind.TIME,
                         OfferKind.RENT_USES: LicenseKind.USES,
                         OfferKind.RENT_PROCESSINGS: LicenseKind.PROCESSINGS}


class ItemAction(StrEnum):
    """What an order item does to a license (FIG 9)."""

    NEW = "new"           # a license for a product the user has none of
    EXTEND = "extend"     # h, i, j: more time, uses or processings on a rental
    CONVERT = "convert"   # e, f, g: the rental becomes permanent


class OrderStatus(StrEnum):
    COMPLETED = "completed"   # an order is placed whole or not at all
    PENDING = "pending"       # paid partly in open tokens: waiting for the MSP's authorization
    FAILED = "failed"         # the MSP refused (or a local failure voided it): nothing was taken
    CANCELLED = "cancelled"   # by the operator after completion: tokens back, licenses cancelled


class OrderPayment(StrEnum):
    """What pays an order (issue 12; docs/mall.md "Orders paid with open tokens at a member")."""

    CLOSED = "closed"   # this member's own tokens only (the default, as before)
    OPEN = "open"       # open tokens at the MSP only
    AUTO = "auto"       # this member's tokens first, the rest of each line in open tokens


class OpenOrderStatus(StrEnum):
    """The open part of an order (OrderOpenPayment.status)."""

    AUTHORIZING = "authorizing"   # open.authorize queued or sent, no final answer yet
    CONFIRMED = "confirmed"       # authorized, order completed, open.confirm queued
    REFUSED = "refused"           # the MSP refused the authorization: nothing was held there
    VOIDED = "voided"             # authorized, then voided (local failure, too late, cancelled)
    REFUNDED = "refunded"         # the order was cancelled: open.refund queued


class TokenKind(StrEnum):
    """The kinds of token in a wallet (docs/money.md, spend order)."""

    STANDARD = "standard"       # bought; transferable
    INCENTIVE = "incentive"     # free; spendable here, never transferable
    RESTRICTED = "restricted"   # only buys products on sale


class PaymentMethod(StrEnum):
    """How tokens are paid for (FIG 3, 4)."""

    CARD = "card"
    CHECK = "check"
    MONEY_ORDER = "money_order"
    PURCHASE_ORDER = "purchase_order"


OFFLINE_METHODS = (PaymentMethod.CHECK, PaymentMethod.MONEY_ORDER, PaymentMethod.PURCHASE_ORDER)


class PurchaseStatus(StrEnum):
    """A token purchase's state (docs/money.md)."""

    PENDING = "pending"       # off-line, waiting for payment
    CREDITED = "credited"     # tokens credited before payment: a receivable (FIG 13)
    COMPLETED = "completed"   # tokens credited and paid
    CANCELLED = "cancelled"
    DECLINED = "declined"     # the card was declined


class AccountStatus(StrEnum):
    INACTIVE = "inactive"   # may browse; may not order or transfer (FIG 3)
    ACTIVE = "active"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class HoldStatus(StrEnum):
    """An order's reserved tokens (docs/money.md, holds)."""

    HELD = "held"
    POSTED = "posted"
    VOIDED = "voided"


class TransferKind(StrEnum):
    """Why a ledger transfer happened: the statement's `kind` (GET /v1/ledger)."""

    PURCHASE = "purchase"                  # tokens bought (card, or an off-line purchase credited)
    GRANT = "grant"                        # free tokens from the vendor (registration, admin grant)
    TRANSFER = "transfer"                  # user to user (FIG 11)
    EXPIRY = "expiry"                      # an expired lot goes back to the vendor
    HOLD = "hold"                          # an order reserves its tokens
    RELEASE = "release"                    # a voided hold gives them back
    SPEND = "spend"                        # a posted hold: the tokens went to the vendor
    EXCHANGE_OUT = "exchange_out"          # a completed exchange: the tokens left for another member
    EXCHANGE_IN = "exchange_in"            # tokens issued here for an exchange from another member
    RESTORE = "restore"                    # an opening balance rebuilt from the MSP's backup (FIG 14)
    REFUND = "refund"                      # a cancelled order's tokens back to the lots they came from
    # cents, vendor accounts only (never on a user's statement)
    CARD_PAYMENT = "card_payment"
    OFFLINE_PAYMENT = "offline_payment"
    RECEIVABLE = "receivable"              # tokens credited before payment (FIG 13)
    RECEIVABLE_PAID = "receivable_paid"


class Currency(StrEnum):
    """What a ledger account counts."""

    TOKEN = "token"
    CENT = "cent"


class ExchangeStatus(StrEnum):
    """An exchange between members (docs/mall.md, exchange saga)."""

    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
