"""Errors on the wire: RFC 9457 problem details (application/problem+json).

- problem_response(): the one renderer; every 4xx/5xx the app sends comes out of it
  (app.py's exception handlers, and stored idempotent answers through api/answers.py answer()).
- problems(401, 404, ...): an operation's `responses=` for the error statuses it
  really returns, each referencing a problem model of schemas/common.py.
- document_problems(): completes /openapi.json: the problem models as components,
  401 on every operation that takes a session, 400 on every one with a JSON body
  (it may not parse), and FastAPI's default 422
  (HTTPValidationError, `detail` a list) replaced by what is sent (ValidationProblem).
"""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..schemas.common import (
    FieldError, LockedProblem, Problem, ShortageProblem, ValidationProblem,
)
from ..services.errors import PROBLEM_MEDIA_TYPE

_DESCRIPTIONS = {
    400: "the body is not JSON",
    401: "no session, or an invalid or expired one (answered with `WWW-Authenticate: Bearer`)",
    402: "payment required",
    403: "not allowed",
    404: "not found (another user's resource does not exist for you)",
    409: "conflicts with the current state",
    413: "too large",
    422: "the request is malformed, or a value is refused (`errors` lists the fields)",
    423: "locked for a while after repeated failures (`locked_until`)",
    429: "too many attempts from this client or for this account: retry after `Retry-After` seconds",
    503: "the vendor signing key is unavailable (a server configuration fault)",
}
_DEFAULT_MODELS: dict[int, type[Problem]] = {402: ShortageProblem, 422: ValidationProblem, 423: LockedProblem}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "the scheme to use: `Bearer`",
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds to wait before trying again", "required": True,
                          "schema": {"type": "integer", "minimum": 1}}},
}
# Every problem model some operation references; document_problems() puts them in components.
_MODELS: set[type[BaseModel]] = {Problem, ValidationProblem, FieldError}


def problems(*entries: int | tuple[int, type[BaseModel], str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for error statuses: each a status (its default model and
    description) or (status, model, description) for a more specific problem
    (a Problem, or a RootModel union of them: anyOf)."""
    out: dict[int | str, dict[str, Any]] = {}
    for entry in entries:
        if isinstance(entry, tuple):
            status, model, description = entry
        else:
            status, model, description = entry, _DEFAULT_MODELS.get(entry, Problem), _DESCRIPTIONS[entry]
        _MODELS.add(model)
        response: dict[str, Any] = {"description": description, "content": {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        out[status] = response
    return out


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in sorted(_MODELS, key=lambda m: m.__name__):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in spec.get("paths", {}).values():
        for op in path_item.values():
            responses = op.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = problems(422)[422]
            if op.get("security") and "401" not in responses:
                responses["401"] = problems(401)[401]
            if "application/json" in op.get("requestBody", {}).get("content", {}) and "400" not in responses:
                responses["400"] = problems(400)[400]
    return spec


# The routers of /v1/admin refuse users: every operation there may answer 403.
ADMINS_ONLY = problems((403, Problem, "admins only"))
