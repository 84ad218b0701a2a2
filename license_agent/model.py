"""What the journal says, replayed into memory. Only facts live here (what was granted,
spent, reserved); what REMAINS is computed in one place, gate.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def time_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class License:
    license_id: str
    product_id: str
    product_name: str
    kind: str
    serial: int
    store_url: str
    issued_at: datetime
    expires_at: datetime | None
    total: int | None            # uses or processings granted in total
    low_threshold: int | None
    code_digest: str
    grant: dict                  # the payload as opened, for comparing re-issued codes
    installed_seq: int
    installed_at: datetime
    consumed: int = 0            # spent directly or by committed reservations
    history: dict = field(default_factory=dict)   # "YYYY-MM-DD" -> amount spent that day


@dataclass
class Reservation:
    reservation_id: str
    license_id: str
    amount: int
    expires_at: datetime
    state: str = "open"          # open | committed | released


@dataclass
class Model:
    device_id: str = ""
    backend: str = ""
    trusted: dict = field(default_factory=dict)        # kid -> base64 raw Ed25519 public key
    licenses: dict = field(default_factory=dict)       # license_id -> License
    reservations: dict = field(default_factory=dict)   # reservation_id -> Reservation
    max_seen: datetime | None = None                   # the latest wall-clock time ever recorded
    entries: int = 0

    def see_time(self, moment: datetime) -> None:
        if self.max_seen is None or moment > self.max_seen:
            self.max_seen = moment

    def spend(self, license_id: str, amount: int, at: datetime) -> None:
        lic = self.licenses[license_id]
        lic.consumed += amount
        day = at.strftime("%Y-%m-%d")
        lic.history[day] = lic.history.get(day, 0) + amount

    def apply(self, seq: int, at_text: str, kind: str, body: dict) -> None:
        """Replays one verified journal entry. Entries were validated before they were written."""
        at = parse_time(at_text)
        self.see_time(at)
        self.entries = seq
        if kind == "init":
            self.device_id = body["device_id"]
            self.backend = body["backend"]
        elif kind == "trust":
            self.trusted[body["kid"]] = body["public_key"]
        elif kind == "install":
            grant = body["grant"]
            previous = self.licenses.get(grant["license_id"])
            lic = License(
                license_id=grant["license_id"], product_id=grant["product_id"],
                product_name=grant.get("product_name", ""), kind=grant["kind"], serial=grant["serial"],
                store_url=grant["store_url"], issued_at=parse_time(grant["issued_at"]),
                expires_at=parse_time(grant["expires_at"]) if grant.get("expires_at") else None,
                total=grant.get("uses") if grant["kind"] == "uses" else grant.get("processings"),
                low_threshold=grant.get("low_threshold"), code_digest=body["code_digest"], grant=grant,
                installed_seq=previous.installed_seq if previous else seq,
                installed_at=previous.installed_at if previous else at,
                consumed=previous.consumed if previous else 0,
                history=previous.history if previous else {})
            self.licenses[lic.license_id] = lic
            self.see_time(lic.issued_at)
        elif kind == "consume":
            self.spend(body["license_id"], body["n"], at)
        elif kind == "reserve":
            self.reservations[body["reservation_id"]] = Reservation(
                body["reservation_id"], body["license_id"], body["n"], parse_time(body["expires_at"]))
        elif kind == "commit":
            reservation = self.reservations[body["reservation_id"]]
            reservation.state = "committed"
            self.spend(reservation.license_id, body["n"], at)
        elif kind == "release":
            self.reservations[body["reservation_id"]].state = "released"
        elif kind == "clock":
            pass
        else:
            raise ValueError(f"unknown journal entry type {kind!r}")
