"""The one way a route sends an Outcome of `run_idempotent`: a first answer
and its replay are the same response (status and body), refusals included."""
from __future__ import annotations

from fastapi.responses import JSONResponse

from ..network.types import Answer
from ..services.errors import as_problem
from ..services.idempotency import Outcome
from .problems import problem_response


def answer(outcome: Outcome) -> JSONResponse:
    # The stored (or replayed) body as is: the route's response_model documents
    # it; FastAPI does not re-validate a Response. A refusal (status >= 400) is
    # problem details (application/problem+json), as the app's ApiError handler sends it.
    if outcome.status_code >= 400:
        return problem_response(outcome.status_code, as_problem(outcome.status_code, outcome.body))
    return JSONResponse(status_code=outcome.status_code, content=outcome.body)


def sent(message_answer: Answer) -> JSONResponse:
    """The answer to a server-to-server message (the inbox's), as a response:
    problem details for a refusal, as answer() sends a stored refusal."""
    if message_answer.status >= 400:
        return problem_response(message_answer.status, message_answer.body)
    return JSONResponse(status_code=message_answer.status, content=message_answer.body)
