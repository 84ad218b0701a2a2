"""The FastAPI application factory (uvicorn: server_stub.app:create_app, factory=True)."""
from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .api.main import api_router
from .api.problems import document_problems, problem_response
from .core.config import get_settings
from .logs import AccessLogMiddleware, setup_logging
from .network.signed_routes import SignAnswersMiddleware
from .schemas.common import HealthOut
from .db import read_session, write_session
from .services import mall_backup, mall_saga
from .services.errors import ApiError, problem_body


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for e in exc.errors():
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route of this path answers (the `Allow` of a 405):
    each method is asked of the router (included routers answer for their routes)."""
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in app.router.routes)]


def install_problem_handlers(app: FastAPI) -> None:
    """Every error leaves as problem details (RFC 9457), rendered in one place,
    and /openapi.json documents them. The vendor's app and the MSP's install it."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status_code == 401 else exc.headers
        return problem_response(exc.status_code, exc.body(), headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return problem_response(422, problem_body(422, f"{where}: {first['msg']}", "invalid-request",
                                                  errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # starlette names only the first route matching the path; the path may have more
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return problem_response(exc.status_code, problem_body(exc.status_code, str(exc.detail)), headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        logging.getLogger("tokenrent").error("unhandled error", exc_info=exc,
                                             extra={"fields": {"path": request.url.path}})
        return problem_response(500, problem_body(500, "internal error"))

    published = app.openapi

    def openapi() -> dict:
        # the first call builds and caches the document; complete it once, in place
        return app.openapi_schema or document_problems(published())

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def freeze_start_up_objects() -> None:
    """What start-up made (modules, the app, its routes and models) lives as long as the process:
    moved out of the collector's sight, so that a full collection walks only what requests made
    (docs/performance.md: p99 of a trivial GET under load 140 -> 30 ms)."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    freeze_start_up_objects()
    # the mall's delivery worker: messages left by an earlier run go on at once
    mall_saga.start_worker(only_if_joined=True)
    backups = mall_backup.BackupScheduler(get_settings().mall_backup_seconds, read_session, write_session,
                                          mall_saga.network_key, mall_saga.joined, mall_saga.wake)
    backups.start()   # FIG 14: the records to the MSP when they changed
    yield
    backups.stop()
    mall_saga.stop_worker()


def create_app() -> FastAPI:
    settings = get_settings()
    setup_logging(settings.log_level)
    app = FastAPI(title="TokenRent vendor server", version="0.1.0", lifespan=_lifespan,
                  description="Accounts, the token wallet and the store (see docs/api.md).")
    app.include_router(api_router)

    @app.get("/v1/health", tags=["meta"], response_model=HealthOut)
    async def health() -> HealthOut:   # no I/O: no worker thread
        return HealthOut(status="ok")

    install_problem_handlers(app)
    app.add_middleware(SignAnswersMiddleware, signer=mall_saga.joined)
    app.add_middleware(AccessLogMiddleware)
    return app
