"""A small sending server of the outbox tests: its own database, an outbox
table made from OutboxColumns and an OutboxWorker delivering to
outbox_receiver.py over plain HTTP.

    python -m tests.server_stub.network.outbox_sender --db URL --receiver URL --count N --name W
        [--enqueue] [--lease S] [--batch B] [--pause-after-answer S] [--go-file F]

--enqueue: message i (outbox_support.message_id(i)) is enqueued in one transaction with
  counter "enqueued" += amount(i); one already there is skipped, so a restart goes on where
  the killed process stopped.
The handler of kind "add", in the transaction that marks a message delivered: counter
"confirmed" += n on a 201, "refused" += 1 on a 409; the row's delivered_by = W.
Exits 0 once everything is enqueued and nothing is pending.
--go-file: wait until F exists before working (two workers start together).
--pause-after-answer sleeps between the answer and its recording (a wider window for kill -9).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from server_stub.db import write_session
from server_stub.network.outbox import Deliver, Handler, OutboxWorker, enqueue
from server_stub.network.types import Answer, Unreachable
from tests.server_stub.network.outbox_support import SenderCounter, SenderOutbox, add, amount, message_id

SENDER_ID = "sender-a"
KIND = "add"
PATH = "/v1/test/add"


def http_deliver(receiver_url: str, pause_after_answer: float = 0.0) -> Deliver:
    """The Deliver of the tests: plain HTTP (the mall's is the signed client)."""
    http = requests.Session()

    def deliver(destination: str, method: str, path: str, body: Any, key: str) -> Answer:
        try:
            r = http.request(method, receiver_url + path, json=body, timeout=5,
                             headers={"Idempotency-Key": key, "X-Sender": SENDER_ID})
        except requests.RequestException as e:
            raise Unreachable(f"{type(e).__name__}") from e
        if r.status_code >= 500:
            raise Unreachable(f"status {r.status_code}")
        if pause_after_answer:
            time.sleep(pause_after_answer)
        return Answer(r.status_code, r.json())

    return deliver


def add_handler(name: str) -> Handler:
    def handle(db: Session, row: SenderOutbox, answer: Answer) -> None:
        if answer.status == 201:
            add(db, SenderCounter, "confirmed", answer.body["n"])
        elif answer.status == 409:
            add(db, SenderCounter, "refused", 1)
        else:
            raise ValueError(f"unexpected answer {answer.status}")
        row.delivered_by = name

    return handle


def enqueue_all(db_url: str, count: int, worker: OutboxWorker) -> None:
    for i in range(count):
        with write_session(db_url) as db:
            if db.execute(select(SenderOutbox.id).where(SenderOutbox.message_id == message_id(i))).first():
                continue
            add(db, SenderCounter, "enqueued", amount(i))
            enqueue(db, SenderOutbox, kind=KIND, destination="receiver", method="POST", path=PATH,
                    body={"n": amount(i)}, message_id=message_id(i))
        worker.wake()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--receiver", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--enqueue", action="store_true")
    p.add_argument("--lease", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--pause-after-answer", type=float, default=0.0)
    p.add_argument("--go-file")
    args = p.parse_args()
    while args.go_file and not Path(args.go_file).exists():
        time.sleep(0.01)
    worker = OutboxWorker(SenderOutbox, lambda: write_session(args.db), http_deliver(args.receiver, args.pause_after_answer),
                          {KIND: add_handler(args.name)}, batch=args.batch, lease_seconds=args.lease,
                          poll_seconds=0.1, max_backoff_seconds=0.5)
    worker.start()
    if args.enqueue:
        enqueue_all(args.db, args.count, worker)
    while worker.pending():
        time.sleep(0.1)
    worker.stop()
    print("done", flush=True)


if __name__ == "__main__":
    main()
