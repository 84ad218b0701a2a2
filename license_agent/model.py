"""What the journal says, replayed into memory. Only facts live here (what was granted,
spent, reserved); what REMAINS is computed in one place, gate.py."""
from __future__ import annotations

from datetime import datetime, UTC

from .code_terms import store_link

# Journal format 2: install, consume and reserve entries may name the license's issuer (a mall
# member). Written once, before the first such entry, so an agent from before issuers refuses
# the state (unknown entry type) instead of spending a member's license as the home one.
FORMAT_ISSUERS = 2


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class License:
    """One license, as the latest code (highest serial) installed for it says."""

    __slots__ = ("license_id", "product_id", "product_name", "kind", "serial", "store_url", "issued_at",
                 "expires_at", "total", "low_threshold", "code_digest", "grant", "installed_seq", "installed_at",
                 "consumed", "history", "issuer", "kid", "key")

    def __init__(self, *, license_id: str, product_id: str, product_name: str, kind: str, serial: int,
                 store_url: str, issued_at: datetime, expires_at: datetime | None, total: int | None,
                 low_threshold: int | None, code_digest: str, grant: dict, installed_seq: int,
                 installed_at: datetime, consumed: int = 0, history: dict | None = None, issuer: str = "",
                 kid: str = ""):
        self.issuer = issuer                # "" : a key pinned by hand (the home scope); else the member id
        self.kid = kid                      # the signing key of the latest code ("" before issuers were kept)
        self.key = (issuer, license_id)     # licenses are numbered per issuer: this is what identifies one
        self.license_id = license_id
        self.product_id = product_id
        self.product_name = product_name
        self.kind = kind
        self.serial = serial
        self.store_url = store_url
        self.issued_at = issued_at
        self.expires_at = expires_at
        self.total = total                  # uses or processings granted in total
        self.low_threshold = low_threshold
        self.code_digest = code_digest
        self.grant = grant                  # the payload as opened, for comparing re-issued codes
        self.installed_seq = installed_seq
        self.installed_at = installed_at
        self.consumed = consumed            # spent directly or by committed reservations
        self.history = history if history is not None else {}   # "YYYY-MM-DD" -> amount spent that day


class Reservation:
    __slots__ = ("reservation_id", "license_key", "amount", "expires_at", "state")

    def __init__(self, reservation_id: str, license_key: tuple[str, str], amount: int, expires_at: datetime):
        self.reservation_id = reservation_id
        self.license_key = license_key      # (issuer, license id)
        self.amount = amount
        self.expires_at = expires_at
        self.state = "open"                 # open | committed | released


class Model:
    """Everything the journal says, replayed. Plain classes, not dataclasses: the gate's
    start-up time is part of every rented program's start-up time."""

    def __init__(self):
        self.device_id = ""
        self.backend = ""
        self.trusted: dict = {}             # kid -> base64 raw Ed25519 public key
        self.msp_key: str | None = None     # the pinned mall key ("ed25519:..."), vouching for members' keys
        self.key_members: dict = {}         # kid -> member id, for keys trusted through a directory entry
        self.member_versions: dict = {}     # member id -> the directory version of its latest trusted entry
        self.hand_pinned: set = set()       # kids pinned by hand (`trust KEY`): their licenses are the home scope
        self.format = 1                     # the journal format in use (FORMAT_ISSUERS once a member's license is)
        self.licenses: dict = {}            # (issuer, license_id) -> License
        self.reservations: dict = {}        # reservation_id -> Reservation
        self.max_seen: datetime | None = None   # the latest wall-clock time ever recorded
        self.entries = 0

    # -- checkpoints: the whole model in one entry, so opening does not replay the full history --
    def snapshot(self) -> dict:
        def license_data(lic: License) -> dict:
            return {"grant": lic.grant, "code_digest": lic.code_digest, "installed_seq": lic.installed_seq,
                    "installed_at": time_text(lic.installed_at), "consumed": lic.consumed, "history": lic.history,
                    "issuer": lic.issuer, "kid": lic.kid}
        return {
            "device_id": self.device_id, "backend": self.backend, "trusted": self.trusted,
            "msp_key": self.msp_key, "key_members": self.key_members, "member_versions": self.member_versions,
            "hand_pinned": sorted(self.hand_pinned), "format": self.format,
            "max_seen": time_text(self.max_seen) if self.max_seen else None,
            "licenses": [license_data(lic) for lic in self.licenses.values()],
            "reservations": [{"reservation_id": r.reservation_id, "license_id": r.license_key[1],
                              "issuer": r.license_key[0], "n": r.amount, "expires_at": time_text(r.expires_at)}
                             for r in self.reservations.values() if r.state == "open"],
        }

    def restore(self, data: dict) -> None:
        self.device_id = data["device_id"]
        self.backend = data["backend"]
        self.trusted = dict(data["trusted"])
        self.msp_key = data.get("msp_key")                  # absent from checkpoints before the mall
        self.key_members = dict(data.get("key_members", {}))
        self.member_versions = dict(data.get("member_versions", {}))
        # checkpoints from before issuers: every key not vouched for by the mall was pinned by hand
        self.hand_pinned = set(data["hand_pinned"]) if "hand_pinned" in data else \
            {kid for kid in self.trusted if kid not in self.key_members}
        self.format = data.get("format", 1)
        self.max_seen = parse_time(data["max_seen"]) if data["max_seen"] else None
        self.licenses = {}
        for item in data["licenses"]:
            lic = _license_from_grant(item["grant"], item["code_digest"], item["installed_seq"],
                                      parse_time(item["installed_at"]), item.get("issuer", ""), item.get("kid", ""))
            lic.consumed = item["consumed"]
            lic.history = dict(item["history"])
            self.licenses[lic.key] = lic
        self.reservations = {r["reservation_id"]: Reservation(r["reservation_id"], (r.get("issuer", ""), r["license_id"]),
                                                              r["n"], parse_time(r["expires_at"]))
                             for r in data["reservations"]}

    def issuer_of(self, kid: str) -> str:
        """Whose licenses a code signed by ``kid`` belongs to: "" (the home scope) for a key pinned
        by hand, even if the mall vouched for it later; else the member the mall vouched for it."""
        return "" if kid in self.hand_pinned else self.key_members.get(kid, "")

    def see_time(self, moment: datetime) -> None:
        if self.max_seen is None or moment > self.max_seen:
            self.max_seen = moment

    def spend(self, license_key: tuple[str, str], amount: int, at: datetime) -> None:
        lic = self.licenses[license_key]
        lic.consumed += amount
        day = at.date().isoformat()
        lic.history[day] = lic.history.get(day, 0) + amount

    def apply(self, seq: int, at_text: str, kind: str, body: dict, at: datetime | None = None) -> None:
        """Replays one verified journal entry. Entries were validated before they were written.
        ``at`` saves parsing ``at_text`` again when the writer already has it."""
        at = at or parse_time(at_text)
        if kind == "checkpoint":
            self.restore(body)
        self.see_time(at)
        self.entries = seq
        if kind == "init":
            self.device_id = body["device_id"]
            self.backend = body["backend"]
        elif kind == "trust":
            self.trusted[body["kid"]] = body["public_key"]
            if "member_id" in body:
                self.key_members[body["kid"]] = body["member_id"]
                self.member_versions[body["member_id"]] = body["ver"]
            else:
                self.hand_pinned.add(body["kid"])
        elif kind == "trust_mall":
            self.msp_key = body["network_key"]
        elif kind == "install":
            grant = body["grant"]
            issuer = body.get("issuer", "")     # absent before issuers: the home scope, as it was
            previous = self.licenses.get((issuer, grant["license_id"]))
            lic = _license_from_grant(grant, body["code_digest"], previous.installed_seq if previous else seq,
                                      previous.installed_at if previous else at, issuer, body.get("kid", ""))
            if previous:
                lic.consumed, lic.history = previous.consumed, previous.history
            self.licenses[lic.key] = lic
            self.see_time(lic.issued_at)
        elif kind == "consume":
            self.spend((body.get("issuer", ""), body["license_id"]), body["n"], at)
        elif kind == "reserve":
            self.reservations[body["reservation_id"]] = Reservation(
                body["reservation_id"], (body.get("issuer", ""), body["license_id"]), body["n"],
                parse_time(body["expires_at"]))
        elif kind == "commit":
            reservation = self.reservations[body["reservation_id"]]
            reservation.state = "committed"
            self.spend(reservation.license_key, body["n"], at)
        elif kind == "release":
            self.reservations[body["reservation_id"]].state = "released"
        elif kind == "format":
            self.format = body["version"]
        elif kind in ("clock", "checkpoint"):
            pass
        else:
            raise ValueError(f"unknown journal entry type {kind!r}")


def issuer_store_url(store_url: str, product_id: str, issuer: str) -> str:
    """A member's plain tokenrent://product/ID link names the member (the issuer the mall vouched
    for), so "buy more" leads to that member's store, not to the home store's product ID."""
    return store_link(product_id, issuer) if issuer and store_url == store_link(product_id) else store_url


def _license_from_grant(grant: dict, code_digest: str, installed_seq: int, installed_at: datetime,
                        issuer: str = "", kid: str = "") -> License:
    return License(
        license_id=grant["license_id"], product_id=grant["product_id"], product_name=grant.get("product_name", ""),
        kind=grant["kind"], serial=grant["serial"],
        store_url=issuer_store_url(grant["store_url"], grant["product_id"], issuer), issuer=issuer, kid=kid,
        issued_at=parse_time(grant["issued_at"]),
        expires_at=parse_time(grant["expires_at"]) if grant.get("expires_at") else None,
        total=grant.get("uses") if grant["kind"] == "uses" else grant.get("processings"),
        low_threshold=grant.get("low_threshold"), code_digest=code_digest, grant=grant,
        installed_seq=installed_seq, installed_at=installed_at)
