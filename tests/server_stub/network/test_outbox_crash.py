"""Exactly once across two real server processes with their own databases,
each killed with -9 at random moments many times and restarted, and two
workers sharing one outbox (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN
IMMEDIATE on SQLite). The sender (outbox_sender.py) enqueues each message in
one transaction with a local counter; the receiver (outbox_receiver.py)
applies it with the inbox. At the end nothing is lost, nothing applied twice,
and each sender row holds the receiver's stored answer."""
from __future__ import annotations

import json
import random
import time

import pytest
from sqlalchemy import func, select

from server_stub.db import read_session, write_session
from server_stub.network.outbox import OutboxStatus, enqueue
from tests.server_stub.network.outbox_sender import KIND, PATH
from tests.server_stub.network.outbox_support import (
    RECEIVER_COUNTERS, SENDER_COUNTERS, Receiver, ReceiverBase, ReceiverCounter, ReceiverHit, ReceiverInbox,
    SenderBase, SenderCounter, SenderOutbox, add, amount, counters, fresh_database, message_id, sender,
)

pytestmark = pytest.mark.slow


def _pending(url: str) -> int:
    with read_session(url) as db:
        return db.execute(select(func.count()).select_from(SenderOutbox)
                          .where(SenderOutbox.status == OutboxStatus.PENDING)).scalar_one()


def _hits(url: str) -> dict[str, int]:
    with read_session(url) as db:
        return dict(db.execute(select(ReceiverHit.message_id, func.count()).group_by(ReceiverHit.message_id)).all())


def _assert_exactly_once(sender_url: str, receiver_url: str, count: int) -> dict[str, int]:
    """Every message enqueued once, applied once, delivered with the receiver's
    stored answer and confirmed once by the sender's handler. Returns the hits."""
    keys = {message_id(i) for i in range(count)}
    total = sum(amount(i) for i in range(count))
    with read_session(receiver_url) as db:
        stored = {m: (s, json.loads(b)) for m, s, b in db.execute(
            select(ReceiverInbox.message_id, ReceiverInbox.answer_status, ReceiverInbox.answer_body))}
    assert set(stored) == keys
    assert counters(receiver_url, ReceiverCounter) == {"applied": total, "applies": count}
    with read_session(sender_url) as db:
        rows = list(db.scalars(select(SenderOutbox)))
    assert sorted(r.message_id for r in rows) == sorted(keys)   # none lost, none enqueued twice
    for r in rows:
        assert r.status == OutboxStatus.DELIVERED and r.claimed_until is None and r.delivered_at is not None
        assert (r.answer_status, r.payload["n"]) == (201, stored[r.message_id][1]["n"])
        assert r.answer is not None and (r.answer.status, r.answer.body) == stored[r.message_id]
    assert counters(sender_url, SenderCounter) == {"enqueued": total, "confirmed": total, "refused": 0}
    hits = _hits(receiver_url)
    assert set(hits) == keys
    return hits


def test_kill_9_of_sender_and_receiver_at_random_moments_delivers_each_message_exactly_once(backend, tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    count = 400
    print(f"seed {seed}")
    with fresh_database(backend, tmp_path / "sender", SenderBase, SENDER_COUNTERS) as sender_url, \
            fresh_database(backend, tmp_path / "receiver", ReceiverBase, RECEIVER_COUNTERS) as receiver_url:
        receiver = Receiver(receiver_url, tmp_path, apply_delay=0.02).start_and_wait()
        snd = sender(sender_url, receiver.url, tmp_path, name="s", count=count, enqueue=True, lease=1.0, batch=5,
                     pause_after_answer=0.01).start()
        kills = {"sender": 0, "receiver": 0}
        sender_killed_mid_work = 0
        try:
            for _round in range(14):
                time.sleep(rng.uniform(0.2, 1.5))
                if not snd.running():
                    assert snd.wait(0) == 0, snd.log_text()
                    break   # it finished: nothing is left to interrupt
                victims = rng.choice([("sender",), ("receiver",), ("sender", "receiver")])
                if "sender" in victims:
                    snd.kill9()
                    kills["sender"] += 1
                    with read_session(sender_url) as db:
                        enqueued = db.execute(select(func.count()).select_from(SenderOutbox)).scalar_one()
                    sender_killed_mid_work += enqueued < count or _pending(sender_url) > 0
                if "receiver" in victims:
                    receiver.kill9()
                    kills["receiver"] += 1
                    receiver.start_and_wait()
                if not snd.running():
                    snd.start()
            if not snd.running() and snd.wait(0) != 0:
                snd.start()
            assert snd.wait(240) == 0, snd.log_text()
        finally:
            snd.kill9()
            receiver.stop()
        print(f"kills {kills}, sender killed with work left {sender_killed_mid_work}")
        assert kills["sender"] >= 3 and kills["receiver"] >= 3 and sender_killed_mid_work >= 3, (seed, kills)
        hits = _assert_exactly_once(sender_url, receiver_url, count)
        print(f"sends {sum(hits.values())} for {count} messages")
        # kills landed between a send and its recording: those messages went again and were replayed
        assert sum(hits.values()) > count


def test_two_worker_processes_on_one_outbox_send_no_message_twice(backend, tmp_path):
    count = 120
    with fresh_database(backend, tmp_path / "sender", SenderBase, SENDER_COUNTERS) as sender_url, \
            fresh_database(backend, tmp_path / "receiver", ReceiverBase, RECEIVER_COUNTERS) as receiver_url:
        for i in range(count):
            with write_session(sender_url) as db:
                add(db, SenderCounter, "enqueued", amount(i))
                enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH,
                        body={"n": amount(i)}, message_id=message_id(i))
        receiver = Receiver(receiver_url, tmp_path, apply_delay=0.01).start_and_wait()
        go = tmp_path / "go"
        workers = [sender(sender_url, receiver.url, tmp_path, name=name, count=count, enqueue=False, batch=3,
                          go_file=go).start() for name in ("w1", "w2")]
        try:
            time.sleep(2)   # both imported and waiting
            go.touch()
            for w in workers:
                assert w.wait(120) == 0, w.log_text()
        finally:
            for w in workers:
                w.kill9()
            receiver.stop()
        hits = _assert_exactly_once(sender_url, receiver_url, count)
        assert set(hits.values()) == {1}   # each message sent once: no two workers held it
        with read_session(sender_url) as db:
            by = dict(db.execute(select(SenderOutbox.delivered_by, func.count()).group_by(SenderOutbox.delivered_by)).all())
        assert set(by) == {"w1", "w2"} and sum(by.values()) == count, by
