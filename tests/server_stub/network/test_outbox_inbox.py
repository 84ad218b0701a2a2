"""The inbox (server_stub/network/outbox.py `receive`) on a real database of
each backend: a message is applied once, its first answer is final (refusals
included), another body under the same id is refused, and of concurrent
duplicates exactly one applies."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from server_stub.db import get_engine, read_session, write_session
from server_stub.network.outbox import InboxRefusal, body_digest, receive
from server_stub.network.types import Answer
from server_stub.services.errors import problem_body
from tests.server_stub.network.outbox_support import (
    RECEIVER_COUNTERS, ReceiverBase, ReceiverCounter, ReceiverInbox, add, counters, fresh_database,
)


@pytest.fixture
def db_url(backend, tmp_path):
    with fresh_database(backend, tmp_path / "receiver", ReceiverBase, RECEIVER_COUNTERS) as url:
        yield url


def _receive(url: str, message_id: str, body: dict, apply) -> Answer:
    return receive(lambda: write_session(url), ReceiverInbox, sender="m-sender", message_id=message_id,
                   body=body, apply=apply)


def _adder(n: int, status: int = 201, delay: float = 0.0):
    calls = []

    def apply(db: Session) -> Answer:
        calls.append(1)
        total = add(db, ReceiverCounter, "applied", n)
        time.sleep(delay)
        if status >= 400:
            return Answer(status, problem_body(status, "refused"))
        return Answer(status, {"total": total})

    return apply, calls


def _inbox_rows(url: str) -> list[tuple[str, str, int]]:
    with read_session(url) as db:
        return [tuple(r) for r in db.execute(select(ReceiverInbox.sender, ReceiverInbox.message_id,
                                                    ReceiverInbox.answer_status).order_by(ReceiverInbox.id))]


def test_a_message_is_applied_once_and_its_answer_replayed(db_url):
    apply, calls = _adder(5)
    first = _receive(db_url, "k1", {"n": 5}, apply)
    assert first == Answer(201, {"total": 5})
    again = _receive(db_url, "k1", {"n": 5}, apply)
    assert again == first and len(calls) == 1
    assert counters(db_url, ReceiverCounter)["applied"] == 5
    assert _inbox_rows(db_url) == [("m-sender", "k1", 201)]
    with read_session(db_url) as db:
        assert db.execute(select(ReceiverInbox.body_digest)).scalar_one() == body_digest({"n": 5})
    # the same id from another sender is another message
    other = receive(lambda: write_session(db_url), ReceiverInbox, sender="m-other", message_id="k1",
                    body={"n": 5}, apply=apply)
    assert other == Answer(201, {"total": 10}) and len(calls) == 2


def test_a_refusal_is_final_stored_and_changes_nothing(db_url):
    refuse, refused_calls = _adder(7, status=409)
    first = _receive(db_url, "k-refused", {"n": 7}, refuse)
    assert first.status == 409 and first.body["detail"] == "refused"
    # the refusal's own write (the counter) was rolled back ...
    assert counters(db_url, ReceiverCounter)["applied"] == 0
    # ... and a repeat that would now succeed gets the stored refusal, applying nothing
    accept, accept_calls = _adder(7)
    assert _receive(db_url, "k-refused", {"n": 7}, accept) == first
    assert accept_calls == [] and len(refused_calls) == 1
    assert counters(db_url, ReceiverCounter)["applied"] == 0
    assert _inbox_rows(db_url) == [("m-sender", "k-refused", 409)]


def test_another_body_under_the_same_id_is_refused_and_changes_nothing(db_url):
    apply, calls = _adder(3)
    first = _receive(db_url, "k2", {"n": 3}, apply)
    reused = _receive(db_url, "k2", {"n": 4}, apply)
    assert reused.status == 422
    assert reused.body["code"] == InboxRefusal.IDEMPOTENCY_KEY_REUSED and reused.body["status"] == 422
    assert len(calls) == 1 and counters(db_url, ReceiverCounter)["applied"] == 3
    # the stored answer is still the first one (the 422 is not stored)
    assert _receive(db_url, "k2", {"n": 3}, apply) == first
    assert _inbox_rows(db_url) == [("m-sender", "k2", 201)]


def test_key_order_in_the_body_does_not_make_another_body(db_url):
    apply, calls = _adder(1)
    first = _receive(db_url, "k3", {"n": 1, "note": "x"}, apply)
    assert _receive(db_url, "k3", {"note": "x", "n": 1}, apply) == first and len(calls) == 1


def test_apply_raising_stores_nothing_and_a_retry_applies(db_url):
    def crash(db: Session) -> Answer:
        add(db, ReceiverCounter, "applied", 9)
        raise RuntimeError("the receiver failed half way")

    with pytest.raises(RuntimeError):
        _receive(db_url, "k4", {"n": 9}, crash)
    assert _inbox_rows(db_url) == [] and counters(db_url, ReceiverCounter)["applied"] == 0
    apply, calls = _adder(9)
    assert _receive(db_url, "k4", {"n": 9}, apply) == Answer(201, {"total": 9}) and len(calls) == 1


@pytest.mark.parametrize("message_id", ["", "has space", "x" * 65, "tab\t"])
def test_a_malformed_message_id_is_refused_and_changes_nothing(db_url, message_id):
    apply, calls = _adder(1)
    answer = _receive(db_url, message_id, {"n": 1}, apply)
    assert answer.status == 422 and answer.body["code"] == InboxRefusal.INVALID_MESSAGE_ID
    assert calls == [] and _inbox_rows(db_url) == []


def test_a_body_that_is_not_plain_json_is_refused_and_changes_nothing(db_url):
    apply, calls = _adder(1)
    answer = _receive(db_url, "k-nan", {"n": float("nan")}, apply)   # json.loads accepts NaN; we do not
    assert answer.status == 422 and answer.body["code"] == InboxRefusal.INVALID_BODY
    assert calls == [] and _inbox_rows(db_url) == []


def test_concurrent_duplicates_apply_once(db_url, backend):
    """Eight threads deliver one message at the same moment: one applies, all
    get its answer. On PostgreSQL the others wait on the inbox row's unique key
    and replay; on SQLite BEGIN IMMEDIATE lets one writer in at a time."""
    apply, calls = _adder(4, delay=0.2)
    barrier = threading.Barrier(8)
    answers: list[Answer] = []
    errors: list[BaseException] = []

    def one() -> None:
        barrier.wait()
        try:
            answers.append(_receive(db_url, "k-dup", {"n": 4}, apply))
        except BaseException as e:
            errors.append(e)

    inserts: list[int] = []   # rows each INSERT of the inbox row made (0: it met another's key)

    def after(conn, cursor, statement, params, context, executemany) -> None:
        if statement.startswith("INSERT INTO inbox_messages"):
            inserts.append(cursor.rowcount)

    engine = get_engine(db_url)
    event.listen(engine, "after_cursor_execute", after)
    threads = [threading.Thread(target=one) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        event.remove(engine, "after_cursor_execute", after)
    assert errors == []
    if backend == "postgres":   # the path under test was taken: firsts waited on the unique key, inserted nothing
        assert inserts.count(1) == 1 and inserts.count(0) >= 1, inserts
    assert answers == [Answer(201, {"total": 4})] * 8
    assert len(calls) == 1
    assert counters(db_url, ReceiverCounter)["applied"] == 4
    with read_session(db_url) as db:
        assert db.execute(select(func.count()).select_from(ReceiverInbox)).scalar_one() == 1
