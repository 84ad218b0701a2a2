"""The agent's JSON vocabulary (`check`/`run`/`consume` reasons, `install` outcomes), in one
place: the gate and the install step write these values, the storefront reads them. Imports
nothing, so any start-up may load it."""
from __future__ import annotations

from enum import StrEnum

__all__ = ["GateReason", "InstallOutcome"]


class GateReason(StrEnum):
    """Why the gate allowed or refused a run (`reason` in the answer)."""

    OK = "ok"
    NO_LICENSE = "no_license"
    EXPIRED = "expired"
    USED_UP = "used_up"
    NOT_ENOUGH = "not_enough"
    CLOCK_BEHIND = "clock_behind"


class InstallOutcome(StrEnum):
    """What installing a code did (`status` in the answer)."""

    INSTALLED = "installed"
    EXTENDED = "extended"
    UNCHANGED = "unchanged"
