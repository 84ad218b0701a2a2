"""The two small types every part of the network plumbing speaks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A final answer from another server: its status and JSON body (already
    checked to be signed by the server it came from)."""

    status: int
    body: Any

    @property
    def detail(self) -> str:
        """A refusal's `detail` (problem details), or "" when the body has none."""
        return str(self.body.get("detail", "")) if isinstance(self.body, dict) else ""


class Unreachable(Exception):
    """No final answer: the connection failed or timed out, or the answer was a
    5xx, a 401 (our clock, or their copy of the directory), a 429, or carried a
    signature that does not verify. The sender tries again later with the same
    Idempotency-Key."""
