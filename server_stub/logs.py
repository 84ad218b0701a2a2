"""Structured logs: one JSON object per line on stderr. Never log bodies,
headers, tokens, passwords or PINs: only what is passed explicitly."""
from __future__ import annotations

import json
import logging
import sys
import time

from .db_types import utcnow

logger = logging.getLogger("tokenrent")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": utcnow().isoformat(timespec="milliseconds"), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tokenrent")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def log(msg: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, msg, extra={"fields": fields})


class AccessLogMiddleware:
    """Pure ASGI (cheap): method, path, status, duration. No query string
    (it may carry ids only, but we keep the rule simple: no user input)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            if logger.isEnabledFor(logging.INFO):
                log("request", method=scope["method"], path=scope["path"], status=status["code"],
                    ms=round((time.perf_counter() - start) * 1000, 2))
