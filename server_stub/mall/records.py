"""The MSP's records of what happens between members: customers (FIG 14, 19),
per-member token counts (claim 14), movements (claim 31) and fees (claims 15,
32). Every writer here is idempotent by the key the record is known by (the
customer's home ids, the operation id), so a message delivered twice records
once; a repeat that disagrees with the first is refused and changes nothing.

All of it runs in the caller's write transaction (db.write_session)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, inspect, select, update
from sqlalchemy.orm import Session

from ..db_types import conflict_insert
from ..models.base import utcnow
from ..services.errors import Conflict, Invalid, NotFound
from .models import CustomerRecord, FeeRecord, Movement, TokenRecord
from .vocabulary import FeeKind, MovementKind, MovementStatus

TOKEN_COUNTS = ("issued", "granted", "spent", "exchanged_in", "exchanged_out", "expired")


def _insert_ignoring_conflict(db: Session, model: type, index: list[str], **values: object) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: two processes adding the same row end
    with one. True when this call inserted it."""
    key: ColumnElement[Any] = inspect(model).primary_key[0]
    inserted = db.execute(conflict_insert(db, model).values(**values).on_conflict_do_nothing(index_elements=index)
                          .returning(key)).first()
    return inserted is not None


# ---------------------------------------------------------------- customers

def customer(db: Session, home_member_id: str, home_user_id: str, full_name: str = "") -> CustomerRecord:
    """The customer record of (home member, home user), created on first use;
    a full name given replaces the stored one (people's names change), none keeps it."""
    if not home_user_id or len(home_user_id) > 64 or len(full_name) > 100:
        raise Invalid("a customer needs a home user id of 1-64 characters and a full name of at most 100")
    _insert_ignoring_conflict(db, CustomerRecord, ["home_member_id", "home_user_id"], home_member_id=home_member_id,
                              home_user_id=home_user_id, full_name=full_name, created_at=utcnow())
    record = db.scalars(select(CustomerRecord).where(CustomerRecord.home_member_id == home_member_id,
                                                     CustomerRecord.home_user_id == home_user_id)
                        .execution_options(populate_existing=True)).one()
    if full_name and record.full_name != full_name:
        record.full_name = full_name
        db.flush()
    return record


# ---------------------------------------------------------------- token records (claim 14)

def token_record(db: Session, member_id: str) -> TokenRecord:
    record = db.get(TokenRecord, member_id, populate_existing=True)
    if record is None:
        raise NotFound(f"no token record for {member_id}")
    return record


def count_tokens(db: Session, member_id: str, **counts: int) -> TokenRecord:
    """Add to a member's token counts (issued=, granted=, spent=, exchanged_in=,
    exchanged_out=, expired=; each >= 0), in one UPDATE."""
    unknown = set(counts) - set(TOKEN_COUNTS)
    if unknown:
        raise ValueError(f"not a token count: {sorted(unknown)}")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts.values()):
        raise Invalid("token counts only grow: give integers >= 0")
    changes = {name: getattr(TokenRecord, name) + n for name, n in counts.items() if n}
    if changes:
        done = db.execute(update(TokenRecord).where(TokenRecord.member_id == member_id)
                          .values(**changes, updated_at=utcnow()).returning(TokenRecord.member_id)).first()
        if done is None:
            raise NotFound(f"no token record for {member_id}")
    return token_record(db, member_id)


# ---------------------------------------------------------------- movements (claim 31)

@dataclass(frozen=True)
class MovementTerms:
    operation_id: str
    kind: MovementKind
    from_member: str
    to_member: str
    tokens_from: int
    tokens_to: int
    value_cents: int
    customer_id: int | None = None


def _terms_of(m: Movement) -> MovementTerms:
    return MovementTerms(m.operation_id, MovementKind(m.kind), m.from_member, m.to_member, m.tokens_from,
                         m.tokens_to, m.value_cents, m.customer_id)


def start_movement(db: Session, terms: MovementTerms) -> tuple[Movement, bool]:
    """The pending movement of `terms.operation_id`, and whether this call made
    it. A repeat with the same terms gets the first record; with other terms
    it is refused (422, the operation id is already another movement's)."""
    if min(terms.tokens_from, terms.tokens_to, terms.value_cents) < 0:
        raise Invalid("a movement's amounts are >= 0")
    now = utcnow()
    created = _insert_ignoring_conflict(
        db, Movement, ["operation_id"], operation_id=terms.operation_id, kind=terms.kind,
        from_member=terms.from_member, to_member=terms.to_member, customer_id=terms.customer_id,
        tokens_from=terms.tokens_from, tokens_to=terms.tokens_to, value_cents=terms.value_cents,
        status=MovementStatus.PENDING, created_at=now, updated_at=now)
    movement = db.scalars(select(Movement).where(Movement.operation_id == terms.operation_id)
                          .execution_options(populate_existing=True)).one()
    if _terms_of(movement) != terms:
        raise Invalid(f"operation {terms.operation_id} is already recorded with other terms",
                      code="idempotency_key_reused")
    return movement, created


def completed_movement(db: Session, terms: MovementTerms, value_micro_cents: int) -> bool:
    """A movement that starts and completes in one transaction (an open payment's cash): one
    INSERT. True when this call made it; a repeat must have the same terms and be completed."""
    if min(terms.tokens_from, terms.tokens_to, terms.value_cents, value_micro_cents) < 0:
        raise Invalid("a movement's amounts are >= 0")
    now = utcnow()
    if _insert_ignoring_conflict(
            db, Movement, ["operation_id"], operation_id=terms.operation_id, kind=terms.kind,
            from_member=terms.from_member, to_member=terms.to_member, customer_id=terms.customer_id,
            tokens_from=terms.tokens_from, tokens_to=terms.tokens_to, value_cents=terms.value_cents,
            value_micro_cents=value_micro_cents, status=MovementStatus.COMPLETED, created_at=now, updated_at=now,
            completed_at=now):
        return True
    movement = db.scalars(select(Movement).where(Movement.operation_id == terms.operation_id)
                          .execution_options(populate_existing=True)).one()
    if (_terms_of(movement), movement.value_micro_cents, movement.status) != (
            terms, value_micro_cents, MovementStatus.COMPLETED):
        raise Invalid(f"operation {terms.operation_id} is already recorded with other terms",
                      code="idempotency_key_reused")
    return False


def finish_movement(db: Session, operation_id: str, status: MovementStatus, reason: str | None = None) -> Movement:
    """A pending movement ends `completed` or `failed`, once; finishing it the
    same way again is a no-op, the other way a 409."""
    if status == MovementStatus.PENDING:
        raise ValueError("a movement finishes completed or failed")
    movement = db.scalar(select(Movement).where(Movement.operation_id == operation_id).with_for_update()
                         .execution_options(populate_existing=True))
    if movement is None:
        raise NotFound(f"no movement {operation_id}")
    if movement.status == status:
        return movement
    if movement.status != MovementStatus.PENDING:
        raise Conflict(f"movement {operation_id} is already {movement.status}")
    now = utcnow()
    movement.status, movement.reason, movement.updated_at = status, (reason or None), now
    movement.completed_at = now
    db.flush()
    return movement


# ---------------------------------------------------------------- fees (claims 15, 32)

def add_fee(db: Session, member_id: str, operation_id: str, kind: FeeKind, amount_micro_cents: int) -> FeeRecord:
    """One fee of one operation for one member, in 1/100 cents, recorded once."""
    if isinstance(amount_micro_cents, bool) or not isinstance(amount_micro_cents, int) or amount_micro_cents < 0:
        raise Invalid("a fee is an integer >= 0 of 1/100 cents")
    _insert_ignoring_conflict(db, FeeRecord, ["operation_id", "member_id", "kind"], member_id=member_id,
                              operation_id=operation_id, kind=kind, amount_micro_cents=amount_micro_cents,
                              created_at=utcnow())
    fee = db.scalars(select(FeeRecord).where(FeeRecord.operation_id == operation_id, FeeRecord.member_id == member_id,
                                             FeeRecord.kind == kind)
                     .execution_options(populate_existing=True)).one()
    if fee.amount_micro_cents != amount_micro_cents:
        raise Invalid(f"the {kind} of {member_id} for operation {operation_id} is already {fee.amount_micro_cents}",
                      code="idempotency_key_reused")
    return fee
