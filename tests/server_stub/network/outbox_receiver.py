"""A small receiving server of the outbox tests: FastAPI + uvicorn, its own
database, the inbox of server_stub/network/outbox.py (`receive`) over a table
made from InboxColumns. Applying a message adds its `n` to a counter.

    python -m tests.server_stub.network.outbox_receiver --db URL --port P [--apply-delay S]

POST /v1/test/add  (headers X-Sender, Idempotency-Key; body {"n": int, "refuse": bool?})
  201 {"message_id", "n", "applied_total"}; 409 when the body asks to be refused.
Every request is first recorded in `hits` (its own transaction), so a test sees each send.
`--apply-delay` sleeps inside the applying transaction (a wider window for kill -9).
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, Header
from fastapi.responses import JSONResponse
from sqlalchemy import insert
from sqlalchemy.orm import Session

from server_stub.db import write_session
from server_stub.network.outbox import receive
from server_stub.network.types import Answer
from server_stub.services.errors import problem_body
from tests.server_stub.network.outbox_support import ReceiverCounter, ReceiverHit, ReceiverInbox, add


def create_app(db_url: str, apply_delay: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/test/add")
    def add_route(body: dict[str, Any] = Body(), x_sender: str = Header(),
                  idempotency_key: str = Header()) -> JSONResponse:
        with write_session(db_url) as db:
            db.execute(insert(ReceiverHit).values(sender=x_sender, message_id=idempotency_key))

        def apply(db: Session) -> Answer:
            add(db, ReceiverCounter, "applies", 1)
            total = add(db, ReceiverCounter, "applied", body["n"])
            if apply_delay:
                time.sleep(apply_delay)
            if body.get("refuse"):
                return Answer(409, problem_body(409, "refused by the test receiver"))
            return Answer(201, {"message_id": idempotency_key, "n": body["n"], "applied_total": total})

        answer = receive(lambda: write_session(db_url), ReceiverInbox, sender=x_sender, message_id=idempotency_key,
                         body=body, apply=apply)
        return JSONResponse(status_code=answer.status, content=answer.body)

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--apply-delay", type=float, default=0.0)
    args = p.parse_args()
    uvicorn.run(create_app(args.db, args.apply_delay), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
