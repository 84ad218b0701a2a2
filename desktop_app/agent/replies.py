"""The license agent's `--json` answers as the storefront reads them (docs/agent-protocol.md).

The agent decides what is left of a license, whether it is running low (``warning``) and
whether a program may run; the storefront shows those answers and never works them out
again. Same rules as desktop_app.api.replies: no default = required, later fields ignored.
The agent's ids are text (``license_id``, ``product_id``), as on its command line.
"""
from __future__ import annotations

from datetime import datetime

from desktop_app.wire import Reply
from license_agent.code_terms import LicenseKind
from license_agent.vocabulary import GateReason, InstallOutcome

__all__ = ["AgentDevice", "AgentFailure", "AgentLicense", "AgentStatus", "Clock", "Doctor", "GateAnswer", "GateReason",
           "InstallOutcome", "Installed", "LicenseKind", "Trusted", "UseDay"]


class AgentDevice(Reply):
    """`device --json`."""

    device_id: str
    public_key: str


class Trusted(Reply):
    """`trust KEY --json`."""

    kid: str
    added: bool
    trusted_kids: list[str]


class UseDay(Reply):
    date: str            # YYYY-MM-DD, UTC
    used: int


class AgentLicense(Reply):
    """LICENSE in `status` and `install`: the agent's own view of what remains."""

    license_id: str
    product_id: str
    product_name: str
    kind: LicenseKind
    serial: int
    unit: str | None             # seconds | uses | processings | null (permanent)
    remaining: int | None        # seconds (time), a count (uses, processings), null (permanent)
    total: int | None            # granted total (uses, processings)
    used: int | None
    reserved: int
    expires_at: datetime | None
    issued_at: datetime
    installed_at: datetime
    low_threshold: int
    warning: bool                # running low (FIG 12 steps 1106, 1112, 1118): the agent's rule
    expired: bool
    used_up: bool
    usable: bool
    clock_behind: bool
    store_url: str
    history: list[UseDay]
    issuer: str | None = None    # the mall member whose vouched key signed it; None: the home store
    product_ref: str = ""        # `ISSUER/PRODUCT_ID` (`home/ID`): names this product at its store only


class Installed(Reply):
    """`install CODE --json`."""

    status: InstallOutcome
    license: AgentLicense


class Clock(Reply):
    now: datetime
    latest_seen: datetime | None
    behind: bool


class AgentStatus(Reply):
    """`status --json`."""

    device_id: str
    home: str
    secret_store: str
    licenses: list[AgentLicense]
    trusted_keys: list[str]
    clock: Clock
    journal_entries: int
    mall_key: str | None = None                 # the pinned MSP key ("ed25519:..."), once pinned
    trusted_members: dict[str, str] = {}        # kid -> the member whose MSP entry vouched for it
    public_keys: dict[str, str] = {}            # kid -> base64 raw Ed25519 key, every trusted key

    def member_keys(self, member_id: str) -> dict[str, str]:
        """The code keys the mall vouched for as ``member_id``'s: {kid: base64 key}."""
        return {kid: self.public_keys[kid] for kid, member in self.trusted_members.items()
                if member == member_id and kid in self.public_keys}


class GateAnswer(Reply):
    """ANSWER of `check PRODUCT --json` (the gate before each run)."""

    product_id: str
    product_name: str
    allowed: bool
    reason: GateReason
    kind: LicenseKind | None
    license_id: str | None
    remaining: int | None
    unit: str | None
    total: int | None
    expires_at: datetime | None
    warning: bool
    low_threshold: int | None
    message: str                 # the agent's own sentence: shown as it is
    expired: bool
    used_up: bool
    clock_behind: bool
    store_url: str
    consumed: int
    issuer: str | None = None
    product_ref: str = ""


class AgentFailure(Reply):
    """What `--json` prints on stdout when a command fails (exit 2 or 4)."""

    error: str
    message: str
    exit_code: int


class Doctor(Reply):
    """`doctor --json`: the agent's own health report (Settings shows it)."""

    home: str
    ok: bool
    problems: list[str]
    daemon_running: bool
    daemon_address: str | None
    error: str | None = None             # only when the state cannot be read; then the rest is absent
    secret_store: str | None = None
    weaker_protection: bool = False
    why_weaker: str = ""
    device_id: str | None = None
    journal_entries: int | None = None
    journal: str | None = None
    anchor: str | None = None
    clock_behind: bool = False
    socket: str | None = None
