"""The FastAPI application factory (uvicorn: server_stub.app:create_app, factory=True)."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .api.main import api_router
from .core.config import get_settings
from .logs import AccessLogMiddleware, setup_logging
from .schemas.common import HealthOut
from .services.errors import ApiError, TooManyRequests


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    out = []
    for e in exc.errors():
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))})
    return out


def create_app() -> FastAPI:
    settings = get_settings()
    setup_logging(settings.log_level)
    app = FastAPI(title="TokenRent vendor server", version="0.1.0",
                  description="Accounts, the token wallet and the store (see docs/api.md).")
    app.include_router(api_router)

    @app.get("/v1/health", tags=["meta"], response_model=HealthOut)
    def health() -> HealthOut:
        return HealthOut(status="ok")

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        return JSONResponse(status_code=exc.status_code, content=exc.body(), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(p for p in first["loc"] if p != "body") or "request"
        return JSONResponse(status_code=422, content={"detail": f"{where}: {first['msg']}", "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc.detail)},
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        logging.getLogger("tokenrent").error("unhandled error", exc_info=exc,
                                             extra={"fields": {"path": request.url.path}})
        return JSONResponse(status_code=500, content={"detail": "internal error"})

    app.add_middleware(AccessLogMiddleware)
    return app
