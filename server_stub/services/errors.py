"""Errors the services raise; the API turns them into JSON answers.
Raising one rolls the transaction back: nothing changes."""
from __future__ import annotations


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra

    def body(self) -> dict:
        return {"detail": self.detail, **self.extra}


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Forbidden(ApiError):
    status_code = 403


class Locked(ApiError):
    status_code = 423


class Invalid(ApiError):
    status_code = 422


class InsufficientTokens(ApiError):
    """402 with FIG 8's numbers: required (RT), available (AT), shortage."""

    status_code = 402

    def __init__(self, required: int, available: int, detail: str = "not enough tokens"):
        super().__init__(detail, required_tokens=required, available_tokens=available,
                         shortage=max(0, required - available))
        self.required = required
        self.available = available


class TooManyRequests(ApiError):
    """429 from a rate limit (services.rate_limits), raised before the request
    ran: nothing happened and nothing is stored under its Idempotency-Key.
    The error renderer sends `retry_after` as the Retry-After header (seconds)."""

    status_code = 429

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after
