"""This vendor's steps in the network's sagas, carried by the outbox and the
inbox (docs/mall.md, "Exchange saga"):

- as the home member A: confirming an exchange writes the hold, the exchange
  and the message to the MSP in one transaction; a refusal by the MSP fails
  the exchange at once; the MSP's result (a message to us) posts or voids it;
- as the receiving member B: the MSP's issue message credits the linked
  account, once, unless it arrives after its deadline.

The delivery worker runs in every server process (started by the app).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import read_session, write_session
from ..api.worker import in_worker
from ..logs import log
from ..models.base import utcnow
from ..models.mall import MallInboxMessage, MallOutboxMessage
from ..models.user import User
from ..network import outbox
from ..network.client import MallClient
from ..network.directory import MSP_ID
from ..network.keys import load_or_create_network_key, parse_public_key
from ..network.types import Answer, Unreachable
from . import mall, mall_backup, mall_notices, open_orders, open_tokens
from .errors import Conflict, Invalid
from .idempotency import Outcome
from .mall import UnknownMember

T = TypeVar("T")


class MessageKind(StrEnum):
    """What this vendor sends (the outbox's `kind` picks the answer's handler)."""

    EXCHANGE_REQUEST = "exchange.request"


EXCHANGES_PATH = "/v1/mall/exchanges"


# ---------------------------------------------------------------- as the home member

def start_exchange(db: Session, user_id: int, quote_id: str) -> Outcome:
    x, quote = mall.confirm_exchange(db, user_id, quote_id)
    row = mall.membership(db)
    assert row is not None
    user = db.get(User, user_id)
    assert user is not None
    outbox.enqueue(db, MallOutboxMessage, kind=MessageKind.EXCHANGE_REQUEST, destination=MSP_ID, method="POST",
                   path=EXCHANGES_PATH, message_id=x.id, body={
                       "operation_id": x.id, "from_member": row.member_id, "to_member": x.to_member_id,
                       "customer": {"home_member": row.member_id, "home_user_id": str(user.id),
                                    "full_name": user.full_name},
                       "tokens_from": x.tokens_from, "tokens_to": x.tokens_to,
                       "value_from_cents": quote.value_from_cents, "value_to_cents": quote.value_to_cents,
                       "value_cents": x.value_cents, "quote_expires_at": quote.expires_at.isoformat()})
    return mall.confirmed(x)


def _on_exchange_request_answer(db: Session, message: Any, answer: Answer) -> None:
    """The MSP took the exchange (its result comes later as a message), or
    refused it: then it failed and the tokens are back at once."""
    if answer.status < 400:
        return
    mall.finish_exchange(db, message.message_id, completed=False, reason=f"refused by the MSP: {answer.detail}")


HANDLERS: dict[str, outbox.Handler] = {MessageKind.EXCHANGE_REQUEST: _on_exchange_request_answer,
                                       **mall_notices.HANDLERS, **mall_backup.HANDLERS, **open_tokens.HANDLERS,
                                       **open_orders.HANDLERS}


def receive_exchange_result(sender: str, message_id: str, body: dict[str, Any]) -> Answer:
    def finish(db: Session) -> dict[str, Any]:
        status = body.get("status")
        if status not in ("completed", "failed"):
            raise Invalid("status must be completed or failed")
        x = mall.finish_exchange(db, str(body.get("operation_id", "")), status == "completed",
                                 str(body.get("reason", "")))
        return {"operation_id": x.id, "status": x.status}
    return outbox.receive(write_session, MallInboxMessage, sender=sender, message_id=message_id, body=body,
                          apply=outbox.applied(finish))


# ---------------------------------------------------------------- as the receiving member

def receive_issue(sender: str, message_id: str, body: dict[str, Any]) -> Answer:
    def issue(db: Session) -> dict[str, Any]:
        try:
            not_after = datetime.fromisoformat(str(body["not_after"]))
            customer = body["customer"]
            tokens = int(body["tokens"])
        except (KeyError, TypeError, ValueError):
            raise Invalid("an issue needs not_after, customer and tokens") from None
        if not_after.tzinfo is None:
            raise Invalid("not_after needs a time-zone offset")
        if utcnow() > not_after:
            # after its deadline the MSP may have failed the operation: never issue late
            raise Conflict("the issue arrived after its deadline", reason="past_deadline")
        _, d = mall.directory(db)
        home = d.member(str(customer.get("home_member", "")))
        return mall.issue_for_exchange(
            db, operation_id=str(body.get("operation_id", message_id)),
            home_member_id=str(customer.get("home_member", "")), home_user_id=str(customer.get("home_user_id", "")),
            full_name=str(customer.get("full_name", "")), tokens=tokens,
            from_member_name=home.name if home else str(customer.get("home_member", "")))
    return outbox.receive(write_session, MallInboxMessage, sender=sender, message_id=message_id, body=body,
                          apply=outbox.applied(issue))


# ---------------------------------------------------------------- keys, the client and the worker

def network_key():
    return load_or_create_network_key(get_settings().resolved_network_key_path)


def msp_key_resolver(key_id: str):
    """Only the MSP signs what it sends us, with the key pinned at joining."""
    if key_id != MSP_ID:
        return None
    global _msp_key
    if _msp_key is None:
        with read_session() as db:
            row = mall.membership(db)
        if row is not None:
            _msp_key = parse_public_key(row.msp_key)
    return _msp_key


async def msp_key_on_loop(key_id: str):
    """msp_key_resolver for signed_caller: the pinned key once read, without a thread."""
    if key_id == MSP_ID and _msp_key is not None:
        return _msp_key
    return await in_worker(msp_key_resolver, key_id)


def _destination_url(destination: str, path: str) -> str:
    with read_session() as db:
        if destination == MSP_ID and (url := mall_notices.joined_msp_url(db)) is not None:
            return url + path
        row, d = mall.directory(db)
    if destination == MSP_ID:
        return row.msp_url + path
    member = d.member(destination)
    if member is None:
        raise Unreachable(f"no member {destination} in the directory")
    return member.base_url + path


_joined: tuple[str, Any] | None = None
_msp_key: Any = None   # the MSP's public key pinned at joining, read once per process


def joined() -> tuple[str, Any] | None:
    """(this store's member id, its network key) once it has joined a mall: the signer of
    our answers; read once per process (a membership does not change once made)."""
    global _joined
    if _joined is None:
        with read_session() as db:
            row = mall.membership(db)
        if row is not None:
            _joined = (row.member_id, network_key())
    return _joined


def _member_id() -> str:
    me = joined()
    if me is None:
        raise Unreachable("this store has not joined a mall")
    return me[0]


_client: MallClient | None = None


def client() -> MallClient:
    global _client
    if _client is None:
        _client = MallClient(_member_id, network_key(), msp_key_resolver, ca_file=get_settings().ca_file or None)
    return _client


def _deliver(destination: str, method: str, path: str, body: Any, message_id: str) -> Answer:
    return client().send(method, _destination_url(destination, path), body, idempotency_key=message_id)


DIRECTORY_MAX_AGE = timedelta(seconds=60)


def refresh_directory(force: bool = False) -> None:
    """Read the MSP's directory again when our copy is older than a minute
    (or now: an unknown member). If the MSP does not answer, the copy stays."""
    with read_session() as db:
        row = mall.membership(db)
    if row is None:
        return
    if not force and row.directory_fetched_at is not None and utcnow() - row.directory_fetched_at < DIRECTORY_MAX_AGE:
        return
    try:
        answer = client().send("GET", row.msp_url + "/v1/mall/directory")
    except Unreachable as e:
        log("the MSP's directory could not be read", logging.WARNING, error=str(e)[:300])
        return
    if answer.status == 200:
        with write_session() as db:
            current = mall.membership(db)
            assert current is not None
            mall.store_directory(db, current, answer.body)


def with_fresh_directory(operation: Callable[[], T]) -> T:
    """Run `operation` on a copy of the directory at most a minute old; if it
    meets a member we do not know, read the directory now and run it again."""
    refresh_directory()
    try:
        return operation()
    except UnknownMember:
        refresh_directory(force=True)
        return operation()


_worker: outbox.OutboxWorker | None = None
_worker_lock = threading.Lock()
_serving = False   # this process is a server (its app started): it may start the worker later
_join_watch: threading.Event | None = None
JOIN_POLL_SECONDS = 5.0


def _watch_for_joining(stop: threading.Event) -> None:
    """A server started before its operator ran join-mall (in another process) starts its
    worker once the membership is there: the notices the CLI queued must not wait for the
    store's next sale. One primary-key read every few seconds until then, nothing after."""
    while not stop.wait(JOIN_POLL_SECONDS):
        try:
            if joined() is not None:
                start_worker()
                return
        except Exception as e:   # a database hiccup: look again next time
            log("could not read the mall membership", logging.WARNING, error=str(e)[:300])


def start_worker(only_if_joined: bool = False) -> None:
    """At start-up (only_if_joined: an idle store polls nothing but its membership), and
    on the first message a process sends."""
    global _worker, _serving, _join_watch
    _serving = _serving or only_if_joined
    if only_if_joined and joined() is None:
        with _worker_lock:
            if _join_watch is None:
                _join_watch = threading.Event()
                threading.Thread(target=_watch_for_joining, args=(_join_watch,), name="mall-join-watch",
                                 daemon=True).start()
        return
    with _worker_lock:
        if _worker is None:
            _worker = outbox.OutboxWorker(MallOutboxMessage, write_session, _deliver, HANDLERS,
                                          read_session=read_session)
            _worker.start()
            log("mall outbox worker started")


def stop_worker() -> None:
    global _worker, _join_watch
    with _worker_lock:
        if _join_watch is not None:
            _join_watch.set()
            _join_watch = None
        if _worker is not None:
            _worker.stop()
            _worker = None


def deliver_now(message_id: str, timeout: float) -> Answer | None:
    """Deliver one queued message from the request that committed it, and its final
    answer (recorded by its handler), or None after `timeout` (the worker goes on)."""
    if _worker is None:
        start_worker()
    assert _worker is not None
    return _worker.deliver_now(message_id, timeout)


def send_leased(claimed: outbox.Claimed, timeout: float) -> Answer | None:
    """deliver_now for a message its request enqueued leased (outbox.enqueue_leased)."""
    if _worker is None:
        start_worker()
    assert _worker is not None
    return _worker.send_leased(claimed, timeout)


def wake_if_serving() -> None:
    """After a commit that enqueued a message outside the saga's routes (a
    token notice): a server delivers it now; a CLI leaves it to the server's worker."""
    if _serving:
        wake()


def wake() -> None:
    if _worker is None:
        start_worker()
    assert _worker is not None
    _worker.wake()


mall_notices.set_waker(wake_if_serving)
open_tokens.connect(open_tokens.Network(client, network_key, deliver_now))
open_orders.connect(open_orders.Saga(_member_id, msp_key_resolver, network_key, wake, deliver_now, send_leased))
