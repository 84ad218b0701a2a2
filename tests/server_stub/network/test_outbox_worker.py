"""The outbox worker (server_stub/network/outbox.py) in this process, on a
real database of each backend, delivering over HTTP to the test receiver
(outbox_receiver.py, a real server process with its own database)."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server_stub.db import read_session, write_session
from server_stub.models.base import utcnow
from server_stub.network.outbox import OutboxStatus, OutboxWorker, enqueue
from server_stub.network.types import Answer, Unreachable
from tests.server_stub.network.outbox_sender import KIND, PATH, add_handler, http_deliver
from tests.server_stub.network.outbox_support import (
    RECEIVER_COUNTERS, SENDER_COUNTERS, Receiver, ReceiverBase, ReceiverCounter, ReceiverHit, ReceiverInbox,
    SenderBase, SenderCounter, SenderOutbox, amount, counters, fresh_database, message_id,
)
from tests.support.server import free_port


@pytest.fixture
def sender_db(backend, tmp_path):
    with fresh_database(backend, tmp_path / "sender", SenderBase, SENDER_COUNTERS) as url:
        yield url


@pytest.fixture
def receiver_db(backend, tmp_path):
    with fresh_database(backend, tmp_path / "receiver", ReceiverBase, RECEIVER_COUNTERS) as url:
        yield url


@pytest.fixture
def receiver(receiver_db, tmp_path):
    r = Receiver(receiver_db, tmp_path).start_and_wait()
    yield r
    r.stop()


def _enqueue(url: str, items: list[tuple[str, dict]]) -> None:
    """Each (message id, body) with its "enqueued" count, one transaction each."""
    from tests.server_stub.network.outbox_support import add

    for key, body in items:
        with write_session(url) as db:
            add(db, SenderCounter, "enqueued", body["n"])
            enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH, body=body,
                    message_id=key)


def _worker(url: str, deliver, handlers=None, **kw) -> OutboxWorker:
    kw.setdefault("poll_seconds", 0.05)
    return OutboxWorker(SenderOutbox, lambda: write_session(url), deliver, handlers or {KIND: add_handler("w1")}, **kw)


def _rows(url: str) -> dict[str, SenderOutbox]:
    with read_session(url) as db:
        return {r.message_id: r for r in db.scalars(select(SenderOutbox))}


def _stored_answers(url: str) -> dict[str, Answer]:
    import json

    with read_session(url) as db:
        return {m: Answer(s, json.loads(b)) for m, s, b in
                db.execute(select(ReceiverInbox.message_id, ReceiverInbox.answer_status, ReceiverInbox.answer_body))}


def _hits(url: str) -> dict[str, int]:
    with read_session(url) as db:
        return dict(db.execute(select(ReceiverHit.message_id, func.count()).group_by(ReceiverHit.message_id)).all())


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _force_due(url: str) -> None:
    """The backoff elapsed (as if time had passed)."""
    with write_session(url) as db:
        db.execute(update(SenderOutbox).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_messages_are_delivered_once_and_answers_recorded_with_their_consequence(sender_db, receiver_db, receiver):
    items = [(message_id(i), {"n": amount(i)}) for i in range(12)] + [("refuse-me", {"n": 5, "refuse": True})]
    _enqueue(sender_db, items)
    worker = _worker(sender_db, http_deliver(receiver.url), batch=5)
    assert worker.pending() == 13
    worker.start()
    worker.wake()
    try:
        _wait_until(lambda: worker.pending() == 0, 30, "delivery")
    finally:
        worker.stop()
    total = sum(amount(i) for i in range(12))
    # the receiver applied each once (the refusal's writes rolled back: 12 applies, not 13) ...
    assert counters(receiver_db, ReceiverCounter) == {"applied": total, "applies": 12}
    assert _hits(receiver_db) == {key: 1 for key, _ in items}
    # ... and the sender recorded each final answer, the receiver's stored one, with its handler's consequence
    stored = _stored_answers(receiver_db)
    rows = _rows(sender_db)
    for key, _body in items:
        row = rows[key]
        assert row.status == OutboxStatus.DELIVERED and row.attempts == 1 and row.claimed_until is None
        assert row.answer == stored[key] and row.delivered_at is not None and row.delivered_by == "w1"
    assert rows["refuse-me"].answer_status == 409
    assert counters(sender_db, SenderCounter) == {"enqueued": total + 5, "confirmed": total, "refused": 1}
    # nothing more to do: a round claims nothing, sends nothing
    assert worker.run_once() == 0 and sum(_hits(receiver_db).values()) == 13


def test_a_receiver_that_is_down_makes_messages_wait_then_they_go(sender_db, receiver_db, tmp_path):
    port = free_port()
    down = Receiver(receiver_db, tmp_path, port=port)
    items = [(message_id(i), {"n": amount(i)}) for i in range(5)]
    _enqueue(sender_db, items)
    worker = _worker(sender_db, http_deliver(down.url), max_backoff_seconds=0.4)
    worker.start()
    try:
        time.sleep(1.5)
        assert worker.pending() == 5
        rows = _rows(sender_db).values()
        assert all(r.attempts >= 2 and r.status == OutboxStatus.PENDING for r in rows), [r.attempts for r in rows]
        assert all(r.last_error and ("unreachable" in r.last_error) for r in rows), [r.last_error for r in rows]
        down.start_and_wait()
        _wait_until(lambda: worker.pending() == 0, 30, "delivery once the receiver is up")
    finally:
        worker.stop()
        down.stop()
    total = sum(amount(i) for i in range(5))
    assert counters(receiver_db, ReceiverCounter) == {"applied": total, "applies": 5}
    assert counters(sender_db, SenderCounter)["confirmed"] == total
    rows = _rows(sender_db).values()
    assert all(r.status == OutboxStatus.DELIVERED and r.attempts >= 3 for r in rows)


def test_backoff_doubles_from_one_second_up_to_the_maximum(sender_db):
    def unreachable(*_args) -> Answer:
        raise Unreachable("connection refused")

    _enqueue(sender_db, [("k-backoff", {"n": 1})])
    worker = _worker(sender_db, unreachable, max_backoff_seconds=8)
    for attempt in range(1, 7):
        _force_due(sender_db)
        before = utcnow()
        assert worker.run_once() == 0
        row = _rows(sender_db)["k-backoff"]
        after = utcnow()
        ceiling = min(8, 2 ** (attempt - 1))
        assert row.attempts == attempt and row.status == OutboxStatus.PENDING and row.claimed_until is None
        assert row.last_error == "unreachable: connection refused"
        wait = (row.next_attempt_at - before).total_seconds()
        assert ceiling / 2 - 0.01 <= wait <= ceiling + (after - before).total_seconds() + 0.01, (attempt, wait)
    # not due: a round leaves it alone
    assert worker.run_once() == 0 and _rows(sender_db)["k-backoff"].attempts == 6


def test_a_handler_that_raises_rolls_back_and_the_resend_gets_the_same_answer(sender_db, receiver_db, receiver):
    failures = []
    real = add_handler("w1")

    def flaky(db: Session, row, answer: Answer) -> None:
        real(db, row, answer)                 # its writes must be rolled back with the failure
        if not failures:
            failures.append(answer)
            raise RuntimeError("the handler failed")

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append   # type: ignore[method-assign]
    logging.getLogger("tokenrent").addHandler(handler)
    try:
        _enqueue(sender_db, [("k-flaky", {"n": 6})])
        worker = _worker(sender_db, http_deliver(receiver.url), {KIND: flaky})
        assert worker.run_once() == 0
        row = _rows(sender_db)["k-flaky"]
        assert row.status == OutboxStatus.PENDING and row.attempts == 1 and row.delivered_by is None
        assert row.last_error == "answer not recorded: RuntimeError('the handler failed')"
        assert counters(sender_db, SenderCounter)["confirmed"] == 0
        assert any(r.getMessage() == "outbox answer not recorded" for r in seen)
        _force_due(sender_db)
        assert worker.run_once() == 1
    finally:
        logging.getLogger("tokenrent").removeHandler(handler)
    row = _rows(sender_db)["k-flaky"]
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 2
    assert row.answer == failures[0] == _stored_answers(receiver_db)["k-flaky"]   # the receiver replayed it
    assert _hits(receiver_db) == {"k-flaky": 2}
    assert counters(receiver_db, ReceiverCounter) == {"applied": 6, "applies": 1}
    assert counters(sender_db, SenderCounter)["confirmed"] == 6


def test_a_deliver_fault_or_an_unknown_kind_is_retried_and_the_worker_goes_on(sender_db, receiver_db, receiver):
    real = http_deliver(receiver.url)

    def deliver(destination, method, path, body, key) -> Answer:
        if body.get("bug"):
            raise KeyError("a bug in the deliver function")
        return real(destination, method, path, body, key)

    _enqueue(sender_db, [("k-bug", {"n": 1, "bug": True}), ("k-ok", {"n": 2})])
    with write_session(sender_db) as db:
        enqueue(db, SenderOutbox, kind="nobody-handles-this", destination="receiver", method="POST", path=PATH,
                body={"n": 3}, message_id="k-orphan")
    worker = _worker(sender_db, deliver)
    assert worker.run_once() == 1
    rows = _rows(sender_db)
    assert rows["k-ok"].status == OutboxStatus.DELIVERED
    assert rows["k-bug"].status == OutboxStatus.PENDING and rows["k-bug"].last_error.startswith("deliver raised KeyError")
    assert rows["k-orphan"].status == OutboxStatus.PENDING
    assert rows["k-orphan"].last_error == "no handler for kind 'nobody-handles-this'"
    assert rows["k-orphan"].next_attempt_at > utcnow()


def test_a_claim_held_by_another_worker_waits_for_its_lease(sender_db, receiver_db, receiver):
    _enqueue(sender_db, [("k-leased", {"n": 2})])
    with write_session(sender_db) as db:   # as a worker killed after claiming leaves it
        db.execute(update(SenderOutbox).values(claimed_until=utcnow() + timedelta(seconds=1), attempts=1))
    worker = _worker(sender_db, http_deliver(receiver.url))
    assert worker.run_once() == 0 and _hits(receiver_db) == {}
    time.sleep(1.1)
    assert worker.run_once() == 1
    assert _rows(sender_db)["k-leased"].attempts == 2 and _hits(receiver_db) == {"k-leased": 1}


def test_two_worker_threads_send_no_message_twice(sender_db, receiver_db, receiver):
    items = [(message_id(i), {"n": amount(i)}) for i in range(60)]
    _enqueue(sender_db, items)
    deliver = http_deliver(receiver.url)
    workers = [_worker(sender_db, deliver, {KIND: add_handler(name)}, batch=3) for name in ("w1", "w2")]
    barrier = threading.Barrier(2)

    def drain(worker: OutboxWorker) -> None:
        barrier.wait()
        while worker.run_once() or worker.pending():
            pass

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert _hits(receiver_db) == {key: 1 for key, _ in items}
    total = sum(amount(i) for i in range(60))
    assert counters(receiver_db, ReceiverCounter) == {"applied": total, "applies": 60}
    assert counters(sender_db, SenderCounter)["confirmed"] == total
    rows = _rows(sender_db).values()
    assert all(r.status == OutboxStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert {r.delivered_by for r in rows} == {"w1", "w2"}


@pytest.mark.parametrize("bad, why", [
    ({"message_id": "has space"}, "message_id"),
    ({"message_id": "x" * 65}, "message_id"),
    ({"kind": ""}, "kind"),
    ({"destination": "d" * 65}, "destination"),
    ({"method": "GET"}, "method"),
    ({"path": "no-slash"}, "path"),
    ({"body": {"n": float("nan")}}, "body"),
    ({"body": {"n": object()}}, "body"),
])
def test_enqueue_refuses_bad_arguments_and_adds_nothing(sender_db, bad, why):
    args = {"kind": KIND, "destination": "receiver", "method": "POST", "path": PATH, "body": {"n": 1},
            "message_id": "k-good", **bad}
    with write_session(sender_db) as db, pytest.raises(ValueError, match=why):
        enqueue(db, SenderOutbox, **args)
    assert _rows(sender_db) == {}


def test_a_message_goes_only_if_its_transaction_commits(sender_db):
    with pytest.raises(RuntimeError), write_session(sender_db) as db:
        key = enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH, body={"n": 1})
        assert len(key) == 32   # a uuid4 hex
        raise RuntimeError("the change that needed the message failed")
    assert _rows(sender_db) == {}
    with write_session(sender_db) as db:
        key = enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH, body={"n": 1})
    assert list(_rows(sender_db)) == [key]


def test_concurrent_claims_never_hand_one_message_to_two_workers(sender_db):
    """Four workers whose deliveries take no time, so their claims overlap all
    the time: each message is still sent exactly once (on PostgreSQL only FOR
    UPDATE SKIP LOCKED in the claim makes this hold)."""
    count = 600
    with write_session(sender_db) as db:
        for i in range(count):
            enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH,
                    body={"n": 1}, message_id=message_id(i))
    sent: list[str] = []
    lock = threading.Lock()

    def deliver(destination, method, path, body, key) -> Answer:
        with lock:
            sent.append(key)
        return Answer(201, {"n": 1})

    def handle(db: Session, row, answer: Answer) -> None:
        row.delivered_by = threading.current_thread().name

    workers = [_worker(sender_db, deliver, {KIND: handle}, batch=4) for _ in range(4)]
    barrier = threading.Barrier(len(workers))

    def drain(worker: OutboxWorker) -> None:
        barrier.wait()
        while worker.run_once() or worker.pending():
            pass

    threads = [threading.Thread(target=drain, args=(w,), name=f"w{n}") for n, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(sent) == sorted(message_id(i) for i in range(count))   # each once
    rows = _rows(sender_db).values()
    assert all(r.status == OutboxStatus.DELIVERED and r.attempts == 1 for r in rows)
    assert len({r.delivered_by for r in rows}) == len(workers)


# ------------------------------------------------------------------ deliver_now

def test_deliver_now_sends_one_message_at_once_and_its_handler_records_the_answer(sender_db, receiver_db, receiver):
    _enqueue(sender_db, [("now-1", {"n": 7}), ("later-1", {"n": 3})])
    with write_session(sender_db) as db:   # not due for a while: deliver_now does not wait for the backoff
        db.execute(update(SenderOutbox).values(next_attempt_at=utcnow() + timedelta(hours=1)))
    worker = _worker(sender_db, http_deliver(receiver.url))
    answer = worker.deliver_now("now-1", timeout=8)
    assert answer is not None and answer.status == 201 and answer.body["n"] == 7
    rows = _rows(sender_db)
    assert rows["now-1"].status == OutboxStatus.DELIVERED and rows["now-1"].attempts == 1
    assert rows["now-1"].delivered_by == "w1" and rows["now-1"].claimed_until is None
    assert rows["later-1"].status == OutboxStatus.PENDING and _hits(receiver_db) == {"now-1": 1}
    assert counters(sender_db, SenderCounter)["confirmed"] == 7
    # again: the recorded answer, nothing sent, the handler not run twice
    again = worker.deliver_now("now-1", timeout=1)
    assert again == answer and _hits(receiver_db) == {"now-1": 1}
    assert counters(sender_db, SenderCounter)["confirmed"] == 7
    assert worker.deliver_now("no-such-message", timeout=0.2) is None


def test_deliver_now_of_a_row_a_worker_claimed_waits_for_the_workers_answer(sender_db, receiver_db, receiver):
    _enqueue(sender_db, [("now-2", {"n": 4})])
    gate = threading.Event()
    http = http_deliver(receiver.url)
    sent: list[str] = []

    def slow(destination, method, path, body, key) -> Answer:
        sent.append(key)
        gate.wait(10)
        return http(destination, method, path, body, key)

    worker = _worker(sender_db, slow, {KIND: add_handler("worker")})
    now_side = _worker(sender_db, slow, {KIND: add_handler("request")})
    t = threading.Thread(target=worker.run_once)
    t.start()
    _wait_until(lambda: sent == ["now-2"], 10, "the worker's claim")
    assert now_side.deliver_now("now-2", timeout=0.3) is None   # the worker holds it and has no answer yet
    gate.set()
    answer = now_side.deliver_now("now-2", timeout=8)            # waits for the worker's answer
    t.join(10)
    assert answer is not None and answer.status == 201
    assert sent == ["now-2"] and _hits(receiver_db) == {"now-2": 1}
    row = _rows(sender_db)["now-2"]
    assert row.delivered_by == "worker" and row.attempts == 1
    assert counters(sender_db, SenderCounter)["confirmed"] == 4


def test_deliver_now_past_its_timeout_records_the_late_answer_once(sender_db, receiver_db, receiver):
    _enqueue(sender_db, [("now-3", {"n": 5})])
    http = http_deliver(receiver.url)

    def slow(destination, method, path, body, key) -> Answer:
        time.sleep(1.0)
        return http(destination, method, path, body, key)

    worker = _worker(sender_db, slow)
    started = time.monotonic()
    assert worker.deliver_now("now-3", timeout=0.2) is None
    assert time.monotonic() - started < 0.9
    # the row stays claimed: a worker round does not send it a second time meanwhile
    assert _worker(sender_db, http).run_once() == 0
    _wait_until(lambda: _rows(sender_db)["now-3"].status == OutboxStatus.DELIVERED, 10, "the late answer")
    assert _hits(receiver_db) == {"now-3": 1} and counters(sender_db, SenderCounter)["confirmed"] == 5
    assert _rows(sender_db)["now-3"].attempts == 1


def test_deliver_now_to_a_receiver_that_is_down_leaves_the_row_to_the_worker(sender_db, receiver_db, tmp_path):
    port = free_port()
    down = Receiver(receiver_db, tmp_path, port=port)
    _enqueue(sender_db, [("now-4", {"n": 6})])
    worker = _worker(sender_db, http_deliver(down.url))
    before = utcnow()
    assert worker.deliver_now("now-4", timeout=3) is None
    row = _rows(sender_db)["now-4"]
    assert row.status == OutboxStatus.PENDING and row.claimed_until is None and row.attempts == 1
    # it waits its backoff (at least half a second after the try) like any unanswered message
    assert row.last_error.startswith("unreachable") and row.next_attempt_at > before + timedelta(seconds=0.5)
    down.start_and_wait()
    try:
        _force_due(sender_db)
        assert worker.run_once() == 1
    finally:
        down.stop()
    assert _hits(receiver_db) == {"now-4": 1} and counters(sender_db, SenderCounter)["confirmed"] == 6
