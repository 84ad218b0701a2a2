"""Errors the services raise; the API turns them into RFC 9457 problem details
(application/problem+json, see docs/api.md "Errors"). Raising one rolls the
transaction back: nothing changes."""
from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tokenrent.example/problems/"

# The problem types more specific than their status (slug: title). Any other
# error is `about:blank`, titled with its status phrase (RFC 9457 section 4.2.1).
PROBLEM_TITLES = {
    "invalid-request": "The request is invalid",
    "insufficient-tokens": "Not enough tokens",
    "card-declined": "The card was declined",
    "locked": "Locked for a while",
    "account-inactive": "The account is not active yet",
    "wrong-pin": "Wrong PIN",
    "rate-limited": "Too many requests",
}
# RFC 9457's own members; an error's extra members must not reuse them.
_RESERVED = frozenset({"type", "title", "status", "detail", "instance"})


def problem_body(status: int, detail: str, problem: str | None = None, **extra) -> dict:
    """The one problem-details body every 4xx/5xx answer carries: `type`,
    `title`, `status`, `detail` (which existing clients read), plus extras."""
    clash = _RESERVED & extra.keys()
    if clash:
        raise ValueError(f"problem extras may not be named {sorted(clash)}")
    if problem is None:
        kind, title = "about:blank", HTTPStatus(status).phrase
    else:
        kind, title = PROBLEM_TYPE_BASE + problem, PROBLEM_TITLES[problem]
    return {"type": kind, "title": title, "status": status, "detail": detail, **extra}


def as_problem(status: int, body: dict) -> dict:
    """A stored idempotent answer's body, as problem details. Bodies stored
    before problem details had only `detail` and extras (a declined card's
    `status: "declined"` among them, which RFC 9457's `status` replaces)."""
    if status < 400 or "type" in body:
        return body
    extras = {k: v for k, v in body.items() if k not in _RESERVED}
    return problem_body(status, str(body.get("detail", "")), None, **extras)


class ApiError(Exception):
    status_code = 400
    problem: str | None = None   # a PROBLEM_TITLES slug, or None for about:blank

    def __init__(self, detail: str, status_code: int | None = None, *, headers: dict[str, str] | None = None,
                 **extra):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}   # sent with the answer (e.g. Content-Range on a 416)
        self.extra = extra

    def body(self) -> dict:
        return problem_body(self.status_code, self.detail, self.problem, **self.extra)


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Forbidden(ApiError):
    status_code = 403


class Locked(ApiError):
    status_code = 423
    problem = "locked"


class Invalid(ApiError):
    status_code = 422
    problem: str | None = "invalid-request"

    def __init__(self, detail: str, status_code: int | None = None, **extra):
        super().__init__(detail, status_code, **extra)
        if self.status_code != 422:   # e.g. 413: the status says it all
            self.problem = None


class InsufficientTokens(ApiError):
    """402 with FIG 8's numbers: required (RT), available (AT), shortage."""

    status_code = 402
    problem = "insufficient-tokens"

    def __init__(self, required: int, available: int, detail: str = "not enough tokens"):
        super().__init__(detail, required_tokens=required, available_tokens=available,
                         shortage=max(0, required - available))
        self.required = required
        self.available = available


class CardDeclined(ApiError):
    """402: the card network said no (stored as the purchase's first answer)."""

    status_code = 402
    problem = "card-declined"


class TooManyRequests(ApiError):
    """429 from a rate limit (services.rate_limits), raised before the request
    ran: nothing happened and nothing is stored under its Idempotency-Key.
    `retry_after` (seconds) is sent as the Retry-After header."""

    status_code = 429
    problem = "rate-limited"

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


def first_error(e: ValidationError) -> str:
    """A schema's refusal in one line naming the field ("tokens: Input should be ...")."""
    error = e.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "value"
    return f"{where}: {error['msg']}"
