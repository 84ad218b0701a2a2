"""FIG 13 step 5 at the vendor: once this store has joined a mall, every token
sale, free grant, spend and expiry in the store is told to the MSP (with the
counts at the moment of joining as the opening), so that the MSP's token
record equals the store's circulation (claim 14); never on the user's path:
the caller's transaction (the purchase credited, the tokens granted, the
order's hold posted, the lot expired) also writes an outbox message, and the
delivery worker sends it later
(POST /v1/mall/notices at the MSP; server_stub/mall/notifications.py).
A store in no mall writes nothing; the check costs one primary-key read until
it has joined, and nothing after (membership is never undone)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ..db import database_key
from ..logs import log
from ..models.base import utcnow
from ..models.mall import MallMembership, MallOutboxMessage
from ..network import outbox
from ..network.directory import MSP_ID
from ..network.types import Answer

NOTICES_PATH = "/v1/mall/notices"
MEMBERSHIP_ROW = 1


class NoticeKind(StrEnum):
    """The outbox kinds of notices (their answers' handler is `HANDLERS`)."""

    SALE = "notice.sale"
    GRANT = "notice.grant"
    SPEND = "notice.spend"
    EXPIRY = "notice.expiry"
    OPENING = "notice.opening"


_MSP_URL = select(MallMembership.__table__.c.msp_url).where(MallMembership.__table__.c.id == MEMBERSHIP_ROW)
_msp_urls: dict[str, str] = {}   # database -> the MSP its store joined (a membership never changes)


def joined_msp_url(db: Session) -> str | None:
    """The URL of the MSP this store has joined, or None: read once per process and database."""
    key = database_key(db)
    url = _msp_urls.get(key)
    if url is None:
        # Core on the transaction's connection: db.get would flush the caller's pending
        # objects first, and this runs in every sale, spend and expiry of a store in no mall
        url = db.connection().execute(_MSP_URL).scalar()
        if url is None:
            return None
        _msp_urls[key] = url
    return url


def forget_membership(db: Session) -> None:
    """Before a membership is recorded: this database may be a new one at an old URL."""
    _msp_urls.pop(database_key(db), None)


def in_mall(db: Session) -> bool:
    return joined_msp_url(db) is not None


# Set by mall_saga (which imports this module, so this one must not import it back):
# what wakes the process's outbox worker once a notice is committed.
def _no_worker() -> None:
    """Until mall_saga registers the real one (a CLI process has no worker)."""


_waker: Callable[[], None] = _no_worker


def set_waker(waker: Callable[[], None]) -> None:
    global _waker
    _waker = waker


def _wake_worker(_session: Session) -> None:
    _waker()


def _enqueue(db: Session, kind: NoticeKind, message_id: str, body: dict[str, Any]) -> None:
    outbox.enqueue(db, MallOutboxMessage, kind=kind, destination=MSP_ID, method="POST", path=NOTICES_PATH,
                   message_id=message_id, body=body)
    if not event.contains(db, "after_commit", _wake_worker):
        event.listen(db, "after_commit", _wake_worker, once=True)


def sale(db: Session, purchase_id: int, tokens: int, cents: int, at: datetime | None = None) -> None:
    """A token purchase was credited (by card, or off-line when paid or on credit)."""
    if in_mall(db):
        _enqueue(db, NoticeKind.SALE, f"sale:{purchase_id}",
                 {"event": "sale", "tokens": tokens, "cents": cents, "at": (at or utcnow()).isoformat()})


def spend(db: Session, hold_id: int, tokens: int, at: datetime | None = None) -> None:
    """Tokens were spent in the store (an order's hold posted to revenue)."""
    if tokens > 0 and in_mall(db):
        _enqueue(db, NoticeKind.SPEND, f"spend:{hold_id}",
                 {"event": "spend", "tokens": tokens, "at": (at or utcnow()).isoformat()})


def grant(db: Session, transfer_id: int, tokens: int, at: datetime | None = None) -> None:
    """Free tokens were put into a wallet (registration, an operator's grant)."""
    if in_mall(db):
        _enqueue(db, NoticeKind.GRANT, f"grant:{transfer_id}",
                 {"event": "grant", "tokens": tokens, "at": (at or utcnow()).isoformat()})


def expiry(db: Session, transfer_id: int, tokens: int, at: datetime | None = None) -> None:
    """An expired lot went back to the vendor."""
    if in_mall(db):
        _enqueue(db, NoticeKind.EXPIRY, f"expiry:{transfer_id}",
                 {"event": "expiry", "tokens": tokens, "at": (at or utcnow()).isoformat()})


def opening(db: Session, *, issued: int, granted: int, spent: int, expired: int) -> None:
    """The store's counts when it joins (in the joining transaction, where no token moves)."""
    _enqueue(db, NoticeKind.OPENING, "opening",
             {"event": "opening", "issued": issued, "granted": granted, "spent": spent, "expired": expired,
              "at": utcnow().isoformat()})


def _on_notice_answer(_db: Session, message: Any, answer: Answer) -> None:
    """Nothing to do when the MSP took it; a refusal is final, so say so."""
    if answer.status >= 400:
        log("the MSP refused a token notice", logging.ERROR, message_id=message.message_id,
            status=answer.status, detail=answer.detail)


HANDLERS: dict[str, outbox.Handler] = {kind: _on_notice_answer for kind in NoticeKind}
