"""The MSP's side of the network's messages: what members send it (the
inbox: each message applied once, its first answer final) and what it sends
them (the outbox and its delivery worker, one per MSP process)."""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import read_session, single_statement, write_session
from ..logs import log
from ..loop_reads import first_row
from ..network import outbox
from ..network.client import MallClient
from ..network.keys import parse_public_key
from ..network.types import Answer, Unreachable
from . import exchanges
from .identity import msp_key
from .models import Member, MspInboxMessage, MspOutboxMessage
from .vocabulary import MSP_ID


MEMBER_KEY = select(Member.network_key).where(Member.member_id == bindparam("member_id"))


@functools.lru_cache(maxsize=1024)
def _parsed_key(text: str) -> Ed25519PublicKey:
    return parse_public_key(text)   # immutable: one object per key text


def member_key(key_id: str) -> Ed25519PublicKey | None:
    """A member's network key (blocked members too: their operations in
    flight finish; what they may start is the services' decision)."""
    with single_statement() as conn:
        text = conn.execute(MEMBER_KEY, {"member_id": key_id}).scalar()
    return None if text is None else _parsed_key(text)


async def member_key_on_loop(key_id: str) -> Ed25519PublicKey | None:
    """member_key for signed_caller: one read on the event loop (loop_reads), no thread."""
    row = await first_row(MEMBER_KEY, {"member_id": key_id})
    return None if row is None else _parsed_key(row[0])


def receive_exchange(sender: str, message_id: str, body: Any) -> Answer:
    answer = outbox.receive(write_session, MspInboxMessage, sender=sender, message_id=message_id, body=body,
                            apply=outbox.applied(lambda db: exchanges.accept_exchange(db, sender, body), 202))
    wake()
    return answer


def _on_issue_answer(db: Session, message: Any, answer: Answer) -> None:
    operation_id = message.payload["operation_id"]
    if answer.status < 400:
        exchanges.complete(db, operation_id)
    else:
        exchanges.fail(db, operation_id, f"{message.destination} refused the issue: {answer.detail}")


def _on_result_answer(_db: Session, message: Any, answer: Answer) -> None:
    if answer.status >= 400:   # final at the member; nothing more the MSP can do but say so
        log("a member refused an exchange result", logging.ERROR, member=message.destination,
            message_id=message.message_id, status=answer.status, detail=answer.detail)


HANDLERS: dict[str, outbox.Handler] = {exchanges.MessageKind.ISSUE: _on_issue_answer,
                                       exchanges.MessageKind.RESULT: _on_result_answer}


def _base_url(member_id: str) -> str:
    with read_session() as db:
        m = db.get(Member, member_id)
        if m is None:
            raise Unreachable(f"no member {member_id}")
        return m.base_url.rstrip("/")


_client: MallClient | None = None


def client() -> MallClient:
    global _client
    if _client is None:
        _client = MallClient(MSP_ID, msp_key(), member_key, ca_file=get_settings().ca_file or None)
    return _client


def _deliver(destination: str, method: str, path: str, body: Any, message_id: str) -> Answer:
    return client().send(method, _base_url(destination) + path, body, idempotency_key=message_id)


_worker: outbox.OutboxWorker | None = None
_lock = threading.Lock()


def start_worker() -> None:
    global _worker
    with _lock:
        if _worker is None:
            _worker = outbox.OutboxWorker(MspOutboxMessage, write_session, _deliver, HANDLERS)
            _worker.start()


def stop_worker() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


def wake() -> None:
    if _worker is not None:
        _worker.wake()
