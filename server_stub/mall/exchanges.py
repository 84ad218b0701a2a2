"""The MSP's part of an exchange (FIG 15, claims 1, 4, 20, 31; docs/mall.md
"Exchange saga"): take the home member's request, have the other member issue
its tokens, then record what moved and tell the home member. Every function
runs inside the caller's transaction (the inbox's, or the outbox worker's)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..models.base import utcnow
from ..network import outbox
from ..network.money import ExchangeRefused, FeeSchedule, exchange_amounts, split_value
from ..services.errors import Conflict, Forbidden, Invalid, NotFound
from . import books, members, records
from .models import Acceptance, Member, MspOutboxMessage, Movement
from .vocabulary import (
    CENT_ASSET, Accepts, BookEntryKind, FeeKind, MovementKind, MovementStatus,
)

# A quote's locked rate is honoured this long after it expired, for a request
# the home member's outbox could not deliver at once (the MSP was down).
QUOTE_GRACE = timedelta(minutes=10)
ISSUES_PATH = "/v1/mall/issues"
RESULTS_PATH = "/v1/mall/exchange-results"


class MessageKind:
    ISSUE = "exchange.issue"
    RESULT = "exchange.result"


Count = Annotated[int, Field(ge=1, le=10**12)]
Cents = Annotated[int, Field(ge=1, le=10**9)]


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    home_member: Annotated[str, Field(min_length=1, max_length=16)]
    home_user_id: Annotated[str, Field(min_length=1, max_length=64)]
    full_name: Annotated[str, Field(max_length=100)] = ""


class ExchangeRequest(BaseModel):
    """What the home member sends (services/mall_saga.start_exchange)."""

    model_config = ConfigDict(extra="forbid")
    operation_id: Annotated[str, Field(min_length=36, max_length=36)]
    from_member: Annotated[str, Field(min_length=1, max_length=16)]
    to_member: Annotated[str, Field(min_length=1, max_length=16)]
    customer: Customer
    tokens_from: Count
    tokens_to: Count
    value_from_cents: Cents
    value_to_cents: Cents
    value_cents: Annotated[int, Field(ge=1)]
    quote_expires_at: AwareDatetime


def _accepts(db: Session, receiver: Member, sender_id: str) -> bool:
    if receiver.accepts == Accepts.ALL:
        return True
    return db.scalar(select(Acceptance).where(Acceptance.member_id == receiver.member_id,
                                              Acceptance.accepted_member_id == sender_id)) is not None


def _schedule(m: Member) -> FeeSchedule:
    return FeeSchedule(m.service_charge_bp, m.royalty_bp, m.fixed_fee_cents)


def accept_exchange(db: Session, sender: str, raw: Any, now: datetime | None = None) -> dict[str, Any]:
    """Step 2: check the request against the directory, record the movement
    (pending) and send the issue to the other member with a deadline."""
    now = now or utcnow()
    try:
        req = ExchangeRequest.model_validate(raw)
    except ValidationError as e:
        raise Invalid(f"not an exchange request: {e.errors()[0]['msg']}") from None
    if req.from_member != sender or req.customer.home_member != sender:
        raise Forbidden("a member asks exchanges only for its own users")
    if req.from_member == req.to_member:
        raise Invalid("an exchange goes to another member")
    home, other = members.require_active(db, req.from_member), members.require_active(db, req.to_member)
    if not _accepts(db, other, home.member_id):
        raise Forbidden(f"{other.name} does not accept {home.token_name}")
    locked = now <= req.quote_expires_at
    if now > req.quote_expires_at + QUOTE_GRACE:
        raise Conflict("the quote expired before the exchange reached the MSP", reason="quote_expired")
    current = (home.token_value_cents, other.token_value_cents)
    if not locked and (req.value_from_cents, req.value_to_cents) != current:
        raise Conflict("a token value changed since the quote", reason="rate_changed")
    try:
        x = exchange_amounts(req.tokens_from, req.value_from_cents, req.value_to_cents)
    except ExchangeRefused as e:
        raise Invalid(str(e)) from None
    # the request must be what the money rules give for its N' (the quote's N may have been larger)
    if (x.tokens_to, x.tokens_from, x.value_cents) != (req.tokens_to, req.tokens_from, req.value_cents):
        raise Invalid("the amounts do not follow the exchange rule (docs/mall.md)")
    customer = records.customer(db, req.customer.home_member, req.customer.home_user_id, req.customer.full_name)
    movement, created = records.start_movement(db, records.MovementTerms(
        req.operation_id, MovementKind.EXCHANGE, home.member_id, other.member_id, req.tokens_from, req.tokens_to,
        req.value_cents, customer.id))
    if not created:   # recorded already (sent again under another message id): its state, nothing twice
        return {"operation_id": req.operation_id, "status": movement.status}
    not_after = now + timedelta(seconds=get_settings().mall_issue_deadline_seconds)
    outbox.enqueue(db, MspOutboxMessage, kind=MessageKind.ISSUE, destination=other.member_id, method="POST",
                   path=ISSUES_PATH, message_id=f"{req.operation_id}:issue", body={
                       "operation_id": req.operation_id, "kind": MovementKind.EXCHANGE,
                       "customer": req.customer.model_dump(), "tokens": req.tokens_to,
                       "not_after": not_after.isoformat()})
    db.flush()
    return {"operation_id": req.operation_id, "status": MovementStatus.PENDING}


def _movement(db: Session, operation_id: str) -> Movement:
    mv = db.scalar(select(Movement).where(Movement.operation_id == operation_id).with_for_update())
    if mv is None:
        raise NotFound(f"no movement {operation_id}")
    return mv


def _tell_home(db: Session, mv: Movement, reason: str = "") -> None:
    outbox.enqueue(db, MspOutboxMessage, kind=MessageKind.RESULT, destination=mv.from_member, method="POST",
                   path=RESULTS_PATH, message_id=f"{mv.operation_id}:result",
                   body={"operation_id": mv.operation_id, "status": mv.status, "reason": reason})


def complete(db: Session, operation_id: str) -> Movement:
    """Step 4: the other member issued. Claim 1: the home member owes the
    issuing member the value of the tokens issued; the fees of the home
    member's schedule accrue (1/100 cents) for the period's statement."""
    mv = _movement(db, operation_id)
    if mv.status != MovementStatus.PENDING:
        return mv
    home, other = members.get_member(db, mv.from_member), members.get_member(db, mv.to_member)
    counts = {home.member_id: {"exchanged_out": mv.tokens_from}, other.member_id: {"exchanged_in": mv.tokens_to}}
    for member_id in sorted(counts):   # one order of row locks for every operation: no deadlock
        records.count_tokens(db, member_id, **counts[member_id])
    payer = books.account(db, f"member:{home.member_id}:position", CENT_ASSET, owner_member_id=home.member_id,
                          negative_allowed=True)
    payee = books.account(db, f"member:{other.member_id}:position", CENT_ASSET, owner_member_id=other.member_id,
                          negative_allowed=True)
    books.post(db, payer, payee, mv.value_cents, kind=BookEntryKind.COMPENSATION, operation_id=operation_id)
    split = split_value(mv.value_cents, _schedule(home))
    # the receiving member pays them out of the value: the service charge to the home member, the rest to the MSP
    for kind, units in ((FeeKind.SERVICE_CHARGE, split.service_charge_units), (FeeKind.ROYALTY, split.royalty_units),
                        (FeeKind.MESSAGE_FEE, split.fixed_fee_units)):
        if units:
            records.add_fee(db, other.member_id, operation_id, kind, units)
    mv = records.finish_movement(db, operation_id, MovementStatus.COMPLETED)
    _tell_home(db, mv)
    db.flush()
    return mv


def fail(db: Session, operation_id: str, reason: str) -> Movement:
    """The other member refused the issue (blocked, past the deadline, ...):
    nothing moved; the home member gives the held tokens back."""
    mv = _movement(db, operation_id)
    if mv.status != MovementStatus.PENDING:
        return mv
    mv = records.finish_movement(db, operation_id, MovementStatus.FAILED, reason[:300])
    _tell_home(db, mv, reason[:300])
    db.flush()
    return mv
