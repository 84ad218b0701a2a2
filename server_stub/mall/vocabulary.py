"""The MSP's words on the wire and in its records, in one place (as
server_stub/vocabulary.py is the vendor's). A StrEnum member equals its string,
so stored rows and JSON carry the plain values."""
from __future__ import annotations

from enum import StrEnum

MSP_ID = "msp"                  # the MSP's own id in signatures, directory entries and accounts
JOINING_KEY_ID = "joining"      # keyid of a join request: signed by the key it brings
MEMBER_ID_PREFIX = "m-"
MEMBER_ID_LENGTH = 12           # "m-" + 10 lowercase base32 characters


class MemberStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"     # takes no new operations; those in flight finish


class Accepts(StrEnum):
    """Whose tokens a member accepts (FIG 19 record 2104)."""

    ALL = "all"             # every member's
    LISTED = "listed"       # only the members in its Acceptance rows


class RoyaltyMode(StrEnum):
    """How a member pays the MSP's royalty (FIG 13)."""

    DEPOSIT = "deposit"     # debited at once from its deposit at the MSP
    INVOICE = "invoice"     # invoiced at the end of the period


class MovementKind(StrEnum):
    """A cross-member operation (claim 31)."""

    EXCHANGE = "exchange"           # Token-A into Token-B (FIG 15)
    OPEN_PAYMENT = "open_payment"   # open tokens accepted by a member (FIG 18-20)
    OPEN_REFUND = "open_refund"     # an open payment's cash reversed (same from/to as the payment)


class MovementStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class FeeKind(StrEnum):
    """What a fee record is for (claims 15, 32)."""

    ROYALTY = "royalty"
    SERVICE_CHARGE = "service_charge"
    MESSAGE_FEE = "message_fee"


class PeriodStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class NoticeEvent(StrEnum):
    """What a member tells the MSP about its own tokens (FIG 13 step 5)."""

    SALE = "sale"       # tokens sold to a customer (card, or credited off-line)
    GRANT = "grant"     # free tokens given by the member (registration, an operator's grant)
    SPEND = "spend"     # tokens spent in the member's store
    EXPIRY = "expiry"   # an expired lot went back to the member
    OPENING = "opening"  # the member's counts when it joined the mall


class PayoutDirection(StrEnum):
    PAY = "pay"         # the member is paid its positive net
    DEBIT = "debit"     # the member's account is debited its negative net


class PayoutStatus(StrEnum):
    PENDING = "pending"   # recorded, not yet accepted by the bank
    SENT = "sent"         # the bank accepted it (its reference recorded)


class BookEntryKind(StrEnum):
    """Why a transfer in the MSP's books happened (MallTransfer.kind)."""

    DEPOSIT = "deposit"                 # a member pays cash into its deposit at the MSP
    COMPENSATION = "compensation"       # the member whose tokens left owes the issuing one (claim 1)
    SERVICE_CHARGE = "service_charge"
    ROYALTY = "royalty"
    MESSAGE_FEE = "message_fee"
    OPEN_TOKEN_ISSUE = "open_token_issue"   # open tokens into a customer's account (FIG 18)
    OPEN_PAYMENT = "open_payment"           # open tokens spent at a member (FIG 20)
    OPEN_REFUND = "open_refund"             # a confirmed open payment undone (tokens and cents back)
    SETTLEMENT = "settlement"           # a period's positions cleared (FIG 16)
    PAYOUT = "payout"


# What a book account counts: cents, or one member's token (books.token_asset).
CENT_ASSET = "cent"
TOKEN_ASSET_PREFIX = "token:"
OPEN_ASSET_PREFIX = "open:"     # open tokens (issue 12): network.open_money.asset_name


class OpenPaymentStatus(StrEnum):
    AUTHORIZED = "authorized"   # the tokens are held (pending:<operation>:<lot>)
    CONFIRMED = "confirmed"
    VOIDED = "voided"
    REFUNDED = "refunded"


class PortionKind(StrEnum):
    PORTION = "portion"         # what a lot gave a line
    CHANGE = "change"           # what a gift certificate gives back as universal tokens


class GiftCertificateStatus(StrEnum):
    ACTIVE = "active"
    SPENT = "spent"


class LotMoveReason(StrEnum):
    """Why a lot changed holder (OpenLotMove.why): its tokens stay, its customer changes."""

    REDEEM = "redeem"           # the holder of the code redeemed the certificate
    GIFT = "gift"               # the buyer's home member gave it to another of its customers


class ActivityWhat(StrEnum):
    """What a line of the open wallet's activity was (GET /v1/open-wallet/activity)."""

    ISSUED = "issued"           # bought (or a certificate received at purchase)
    GRANTED = "granted"         # given free by the operator (type 2 of an outside brand)
    CHANGE = "change"           # a gift certificate's unused rest, as universal tokens
    HELD = "held"               # taken for a payment (held until the member confirms or voids)
    RELEASED = "released"       # a held payment's tokens given back (voided)
    REFUNDED = "refunded"       # a confirmed payment's tokens given back
    RECEIVED = "received"       # a lot that came to this customer (a certificate redeemed or given)
    GIVEN = "given"             # a lot that went to another customer
    OTHER = "other"
