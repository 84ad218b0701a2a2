"""A small FastAPI app of the tests (run by uvicorn in a subprocess,
tests/server_stub/network/test_signed_routes.py): signed routes under
/v1/mall/ through signed_caller, answers signed by SignAnswersMiddleware.

Environment: SIGNED_APP_KEY (the server's network key file), SIGNED_APP_CALLERS
(JSON {key id: "ed25519:..."}), SIGNED_APP_UNSIGNED_SWITCH (while this file
exists the signer returns None and answers stay unsigned).

No `from __future__ import annotations`: the routes' Annotated dependency is
local to create_app, and FastAPI must see it as an object, not a string.
"""

import json
import os
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from server_stub.api.problems import problem_response
from server_stub.network.keys import load_or_create_network_key, parse_public_key
from server_stub.network.signed_routes import SignAnswersMiddleware, signed_caller
from server_stub.services.errors import ApiError

SERVER_KEY_ID = "test-server"


class Tokens(BaseModel):
    tokens: int


def create_app() -> FastAPI:
    key = load_or_create_network_key(Path(os.environ["SIGNED_APP_KEY"]))
    callers = {kid: parse_public_key(text) for kid, text in json.loads(os.environ["SIGNED_APP_CALLERS"]).items()}
    switch = Path(os.environ["SIGNED_APP_UNSIGNED_SWITCH"])
    async def lookup(key_id: str):
        return callers.get(key_id)

    caller = signed_caller(lookup)
    Caller = Annotated[str, Depends(caller)]
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return problem_response(exc.status_code, exc.body(), exc.headers or None)

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/v1/mall/echo")
    def echo(body: Tokens, who: Caller, request: Request) -> dict:
        return {"caller": who, "tokens": body.tokens, "idempotency_key": request.headers.get("idempotency-key")}

    @app.get("/v1/mall/whoami")
    def whoami(who: Caller) -> dict:
        return {"caller": who}

    @app.get("/v1/mall/boom")
    def boom(who: Caller) -> dict:
        raise ApiError("the server is having a bad day", 503)

    @app.get("/v1/mall/slow")
    def slow(who: Caller) -> dict:
        time.sleep(3)
        return {"caller": who}

    @app.get("/v1/mall/empty", status_code=204)
    def empty(who: Caller) -> None:
        return None

    app.add_middleware(SignAnswersMiddleware, prefix="/v1/mall/",
                       signer=lambda: None if switch.exists() else (SERVER_KEY_ID, key))
    return app
