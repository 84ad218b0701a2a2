"""The stack's own floor for a transfer (issue 13): the least a FastAPI + SQLAlchemy Core server
can spend on `POST /v1/transfers`, to set beside ours and beside the SQL floor in one run.

    .venv/bin/python bench/bare_transfer.py DB_URL PORT

One route, `POST /v1/transfers`, on the same database as the real server (after its own
phase), with what any such server needs and nothing else: uvicorn as `serve` runs it
(httptools, uvloop, no access log), a pydantic request model and a response model, the bearer
token's lookup, then in ONE worker-thread hop (as our hot routes) one transaction of the
floor's statements through SQLAlchemy Core `text()` built once: both users locked FOR UPDATE
(the payee by name), the idempotency row inserted, the two balance updates, the transfer row,
the stored answer. No PIN check, no idempotency replay, no problem details, no rate limits, no
lots or token kinds, no logging: it is a floor, not a server. bench/floors.py runs it.
"""
from __future__ import annotations

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import create_engine, text


class TransferIn(BaseModel):
    to_username: str = Field(max_length=64)
    to_full_name: str = Field(max_length=200)
    tokens: int = Field(ge=1)
    pin: str = Field(max_length=32)


class TransferOut(BaseModel):
    id: int
    tokens: int
    status: str


def create_app(db_url: str) -> FastAPI:
    postgres = db_url.startswith("postgresql")
    if postgres:
        engine = create_engine(db_url, pool_size=20, max_overflow=20)
    else:
        engine = create_engine(db_url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=20, max_overflow=20, isolation_level="AUTOCOMMIT")
    lock = " FOR UPDATE" if postgres else ""
    session = text("SELECT s.user_id, s.expires_at, s.revoked_at, u.status FROM user_sessions s "
                   "JOIN users u ON u.id = s.user_id WHERE s.token_digest = :digest")
    users = text(f"SELECT id, username FROM users WHERE id = :payer OR username = :payee ORDER BY id{lock}")
    wallets = text("SELECT owner_user_id, id FROM ledger_accounts WHERE owner_user_id IN (:payer, :payee) "
                   "AND balance > 0 ORDER BY owner_user_id, balance DESC")
    claim = text("INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at) "
                 "VALUES (:payer, :key, :fingerprint, 0, '', CURRENT_TIMESTAMP)")
    debit = text("UPDATE ledger_accounts SET balance = balance - :n WHERE id = :account AND balance >= :n "
                 "RETURNING balance")
    credit = text("UPDATE ledger_accounts SET balance = balance + :n WHERE id = :account RETURNING balance")
    move = text("INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, "
                "created_at) VALUES (:a, :b, :n, 'token', 'transfer', 'bare', CURRENT_TIMESTAMP) RETURNING id")
    answer = text("UPDATE idempotency_records SET status_code = 201, response_json = :answer "
                  "WHERE user_id = :payer AND key = :key")
    pool = ThreadPoolExecutor(max_workers=8)
    app = FastAPI()

    def transfer(token: str, key: str, body: TransferIn) -> dict:
        with engine.connect() as conn:
            if not postgres:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = conn.execute(session, {"digest": sha256(token.encode()).hexdigest()}).first()
            if row is None or row.revoked_at is not None:
                raise HTTPException(401, "invalid session")
            payer = row.user_id
            found = {name: uid for uid, name in conn.execute(users, {"payer": payer, "payee": body.to_username})}
            payee = found.get(body.to_username)
            if payee is None or payee == payer:
                raise HTTPException(404, "no such payee")
            accounts = {}
            for owner, account in conn.execute(wallets, {"payer": payer, "payee": payee}):
                accounts.setdefault(owner, account)
            conn.execute(claim, {"payer": payer, "key": key, "fingerprint": "0" * 64})
            if conn.execute(debit, {"n": body.tokens, "account": accounts[payer]}).first() is None:
                raise HTTPException(402, "not enough tokens")
            conn.execute(credit, {"n": body.tokens, "account": accounts[payee]})
            transfer_id = conn.execute(move, {"a": accounts[payer], "b": accounts[payee], "n": body.tokens}).scalar()
            out = {"id": transfer_id, "tokens": body.tokens, "status": "completed"}
            conn.execute(answer, {"answer": json.dumps(out), "payer": payer, "key": key})
            conn.commit() if postgres else conn.exec_driver_sql("COMMIT")
            return out

    @app.post("/v1/transfers", status_code=201, response_model=TransferOut)
    async def post_transfer(body: TransferIn, authorization: Annotated[str, Header()],
                            idempotency_key: Annotated[str, Header(alias="Idempotency-Key")]):
        token = authorization.removeprefix("Bearer ")
        return await asyncio.get_running_loop().run_in_executor(pool, transfer, token, idempotency_key, body)

    return app


def main() -> None:
    import uvicorn

    db_url, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(create_app(db_url), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                proxy_headers=False)


if __name__ == "__main__":
    main()
