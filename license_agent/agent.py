"""The license agent's operations on one state directory. Used in-process by the CLI and the
SDK fallback, and by the daemon. Every method is safe to call from several threads; several
processes may use the same home at once (writers are serialised by the state's file lock)."""
from __future__ import annotations

import base64
import binascii
import re
import os
from pathlib import Path

from . import gate
from .errors import EXIT_DENIED, EXIT_INVALID, EXIT_OK, BadInput, InvalidCode, Tampered
from .code_terms import HOME_ISSUER
from .model import FORMAT_ISSUERS, time_text
from .paths import agent_home, socket_path
from .state import DEVICE_KEY, State, utc_now
from .vocabulary import InstallOutcome

_PRODUCT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_ISSUER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")   # a member id, or home
_RESERVATION_ID = re.compile(r"^r-[0-9a-f]{16}$")
MAX_AMOUNT = 1_000_000_000


def exit_code_for(answer: dict) -> int:
    """0 allowed, 3 denied, 4 refused because the clock was moved back (the state is not trusted)."""
    if answer.get("allowed"):
        return EXIT_OK
    return EXIT_INVALID if answer.get("clock_behind") else EXIT_DENIED


def valid_product_id(product_id) -> str:
    """A product id, or a reference `ISSUER/PRODUCT_ID` naming the store that issued its license
    (a member id, or `home` for keys pinned by hand)."""
    if isinstance(product_id, str) and product_id.count("/") == 1:
        issuer, _, bare = product_id.partition("/")
        if _ISSUER.match(issuer) and _PRODUCT_ID.match(bare):
            return product_id
    if not isinstance(product_id, str) or not _PRODUCT_ID.match(product_id):
        raise BadInput(f"product id {product_id!r} is not valid (1-128 letters, digits, '.', '_', ':' or '-', "
                       f"optionally after a store: MEMBER_ID/PRODUCT_ID)")
    return product_id


def valid_amount(n, name: str = "N", minimum: int = 1) -> int:
    if isinstance(n, str) and n.strip().isdigit():
        n = int(n)
    if not isinstance(n, int) or isinstance(n, bool) or not minimum <= n <= MAX_AMOUNT:
        raise BadInput(f"{name} must be a whole number from {minimum} to {MAX_AMOUNT}, not {n!r}")
    return n


class Agent:
    def __init__(self, home: str | Path | None = None):
        self.home = agent_home(home)
        self.state = State.open(self.home)
        self._lock = self.state._thread_lock

    def close(self) -> None:
        self.state.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def model(self):
        return self.state.model

    # -- device and trust ------------------------------------------------------------------
    def _device_private_key(self):
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
        return X25519PrivateKey.from_private_bytes(self.state.secret(DEVICE_KEY))

    def device(self) -> dict:
        from .codes import device_id_for, raw_public_x25519
        with self._lock:
            public = raw_public_x25519(self._device_private_key())
            device_id = device_id_for(public)
            if device_id != self.model.device_id:
                raise Tampered("the device key in the secret store does not match this state's device")
            return {"device_id": device_id, "public_key": base64.b64encode(public).decode()}

    def trust(self, public_key_b64: str) -> dict:
        """A vendor key pinned by hand, or (text with two dots) a member's MSP-signed directory entry."""
        if isinstance(public_key_b64, str) and public_key_b64.strip().count(".") == 2:
            return self.trust_entry(public_key_b64)
        from .codes import kid_for
        key = _decode_public_key(public_key_b64)
        kid = kid_for(key)
        with self.state.writing() as append:
            added = kid not in self.model.trusted
            if added:
                append("trust", {"kid": kid, "public_key": base64.b64encode(key).decode()})
        return {"kid": kid, "added": added, "trusted_kids": sorted(self.model.trusted)}

    def trust_mall(self, msp_key: str, replace: bool = False) -> dict:
        """Pins the MSP's network key: it vouches for members' code keys from then on. One mall
        per agent; another key only with ``replace`` (keys it vouched for before stay trusted)."""
        from .mall_trust import parse_msp_key
        key = parse_msp_key(msp_key)
        with self.state.writing() as append:
            pinned = self.model.msp_key
            if pinned is not None and pinned != key and not replace:
                raise BadInput(f"another mall key is pinned ({pinned}); use --replace to pin {key} instead",
                               code="mall_key_conflict")
            added = pinned != key
            if added:
                append("trust_mall", {"network_key": key, "replaces": pinned})
        return {"msp_key": key, "added": added, "replaced": pinned if added else None}

    def trust_entry(self, entry: str) -> dict:
        """Trusts the code keys a member's directory entry lists, if the pinned MSP key signed it
        and the member is active; each key is journalled with the member's id."""
        from .mall_trust import verify_entry
        with self.state.writing() as append:
            msp_key = self.model.msp_key
            if msp_key is None:
                raise InvalidCode("no mall key is pinned: run  license-agent trust --mall MSP_KEY  first",
                                  code="no_mall_key")
            member = verify_entry(entry, msp_key)
            if member.member_id == HOME_ISSUER:   # the name of the home scope in product references
                raise BadInput(f"a member may not be called {HOME_ISSUER!r}", code="malformed_entry")
            seen = self.model.member_versions.get(member.member_id)
            if seen is not None and member.version < seen:
                raise InvalidCode(f"this entry of member {member.member_id} is from directory version "
                                  f"{member.version}, older than version {seen} already trusted", code="stale_entry")
            for key in member.keys:
                owner = self.model.key_members.get(key.kid)
                if owner is not None and owner != member.member_id:
                    raise InvalidCode(f"code key {key.kid} is already trusted for member {owner}, "
                                      f"not {member.member_id}", code="conflicting_entry")
            added = [key.kid for key in member.keys if self.model.key_members.get(key.kid) != member.member_id]
            for key in member.keys:
                if key.kid in added:
                    append("trust", {"kid": key.kid, "public_key": key.public_key, "member_id": member.member_id,
                                     "ver": member.version})
        return {"member_id": member.member_id, "name": member.name, "directory_version": member.version,
                "kids": [key.kid for key in member.keys], "added": added, "skipped": list(member.skipped),
                "trusted_kids": sorted(self.model.trusted)}

    def _trusted_keys(self) -> dict:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        return {kid: Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))
                for kid, raw in self.model.trusted.items()}

    # -- codes -----------------------------------------------------------------------------
    def install(self, text: str) -> dict:
        from . import codes
        if not isinstance(text, str) or not text.strip():
            raise BadInput("no authorization code given")
        try:
            digest = codes.code_digest(text)
        except codes.MalformedCode as exc:
            raise BadInput(str(exc), code="malformed_code") from None
        except codes.CodeError as exc:
            raise InvalidCode(str(exc), code=_error_code(exc)) from None
        kid = codes.read_header(text).kid
        with self.state.writing() as append:
            try:
                grant = codes.open_code(text, self._device_private_key(), self._trusted_keys())
            except codes.MalformedCode as exc:
                raise BadInput(str(exc), code="malformed_code") from None
            except codes.CodeError as exc:
                raise InvalidCode(str(exc), code=_error_code(exc)) from None
            now = utc_now()
            if grant.issued_at > now + gate.CLOCK_TOLERANCE:
                raise InvalidCode(f"the code was issued at {time_text(grant.issued_at)}, in the future "
                                  f"(this machine says {time_text(now)}); check the clock", code="issued_in_future")
            payload = grant.to_payload()
            # Every store numbers its licenses from 1: a license is its issuer's (the member the
            # mall vouched for the code's key, or the home scope for keys pinned by hand).
            issuer = self.model.issuer_of(kid)
            existing = self.model.licenses.get((issuer, grant.license_id))
            outcome = InstallOutcome.INSTALLED
            if existing is not None:
                if existing.product_id != grant.product_id:
                    raise InvalidCode(f"license {grant.license_id} belongs to product {existing.product_id}, "
                                      f"the code says {grant.product_id}", code="conflicting_code")
                if grant.serial < existing.serial:
                    raise InvalidCode(f"this code for license {grant.license_id} has serial {grant.serial}, older "
                                      f"than serial {existing.serial} already installed", code="older_serial")
                if grant.serial == existing.serial:
                    if _same_terms(existing.grant, payload):
                        outcome = InstallOutcome.UNCHANGED
                    else:
                        raise InvalidCode(f"license {grant.license_id} serial {grant.serial} is already installed "
                                          f"with different terms", code="conflicting_code")
                else:
                    outcome = InstallOutcome.EXTENDED
            if outcome != InstallOutcome.UNCHANGED:
                if issuer and self.model.format < FORMAT_ISSUERS:
                    append("format", {"version": FORMAT_ISSUERS})
                append("install", {"grant": payload, "code_digest": digest, "kid": kid,
                                   **({"issuer": issuer} if issuer else {})})
        lic = self.model.licenses[(issuer, grant.license_id)]
        return {"status": outcome, "license": gate.license_summary(self.model, lic, utc_now())}

    # -- the gate --------------------------------------------------------------------------
    def _decide(self, product_id: str, action: str, **kwargs) -> dict:
        with self.state.writing() as append:
            decision = gate.decide(self.model, product_id, utc_now(), action, **kwargs)
            for kind, body in decision.entries:
                append(kind, body)
        return decision.answer

    def check(self, product_id: str) -> dict:
        return self._decide(valid_product_id(product_id), "check")

    def consume(self, product_id: str, n: int = 1) -> dict:
        return self._decide(valid_product_id(product_id), "consume", amount=valid_amount(n))

    def reserve(self, product_id: str, n: int = 1, ttl: int = gate.DEFAULT_RESERVATION_TTL) -> dict:
        ttl = valid_amount(ttl, "ttl", 1)
        if ttl > gate.MAX_RESERVATION_TTL:
            raise BadInput(f"ttl must be at most {gate.MAX_RESERVATION_TTL} seconds")
        answer = self._decide(valid_product_id(product_id), "reserve", amount=valid_amount(n), ttl=ttl,
                              reservation_id="r-" + os.urandom(8).hex())
        answer.setdefault("reservation_id", None)  # permanent and time licenses hold nothing
        return answer

    def _reservation(self, reservation_id):
        if not isinstance(reservation_id, str) or not _RESERVATION_ID.match(reservation_id):
            raise BadInput(f"reservation id {reservation_id!r} is not valid")
        reservation = self.model.reservations.get(reservation_id)
        if reservation is None:
            raise BadInput(f"no reservation {reservation_id}")
        if reservation.state != "open":
            raise BadInput(f"reservation {reservation_id} was already {reservation.state}")
        return reservation

    def commit(self, reservation_id: str, n: int | None = None) -> dict:
        with self.state.writing() as append:
            reservation = self._reservation(reservation_id)
            lapsed = reservation.expires_at <= gate.effective_now(self.model, utc_now())
            amount = reservation.amount if n is None or lapsed else valid_amount(n, "n", 0)
            if amount > reservation.amount:
                raise BadInput(f"cannot commit {amount}: reservation {reservation_id} holds {reservation.amount}")
            append("commit", {"reservation_id": reservation_id, "n": amount})
        return self._after_reservation(reservation, "committed", amount, lapsed)

    def release(self, reservation_id: str) -> dict:
        with self.state.writing() as append:
            reservation = self._reservation(reservation_id)
            lapsed = reservation.expires_at <= gate.effective_now(self.model, utc_now())
            if not lapsed:
                append("release", {"reservation_id": reservation_id})
        return self._after_reservation(reservation, "released", 0, lapsed)

    def _after_reservation(self, reservation, outcome: str, committed: int, lapsed: bool) -> dict:
        lic = self.model.licenses[reservation.license_key]
        summary = gate.license_summary(self.model, lic, utc_now(), history_days=0)
        returned = 0 if lapsed else reservation.amount - committed
        if lapsed:
            message = (f"reservation {reservation.reservation_id} ran past its time-to-live: all "
                       f"{reservation.amount} counted as consumed")
        else:
            message = f"reservation {reservation.reservation_id} {outcome}: {committed} consumed, {returned} returned"
        return {"reservation_id": reservation.reservation_id, "outcome": "lapsed" if lapsed else outcome,
                "allowed": not (lapsed and outcome == "released"), "committed": committed, "returned": returned,
                "product_id": lic.product_id, "license_id": lic.license_id, "remaining": summary["remaining"],
                "message": message, "store_url": lic.store_url, "issuer": summary["issuer"],
                "product_ref": summary["product_ref"]}

    # -- reports ---------------------------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            self.state.refresh()
            now = utc_now()
            model = self.model
            return {
                "device_id": model.device_id,
                "home": str(self.home),
                "secret_store": self.state.store.name,
                "licenses": [gate.license_summary(model, lic, now)
                             for lic in sorted(model.licenses.values(), key=lambda one: one.installed_seq)],
                "trusted_keys": sorted(model.trusted),
                "mall_key": model.msp_key,
                "trusted_members": dict(sorted(model.key_members.items())),
                # the keys themselves (base64 raw Ed25519), so a member's program packages can be
                # checked against the code keys the mall vouched for (the storefront does)
                "public_keys": dict(sorted(model.trusted.items())),
                "clock": {"now": time_text(now), "latest_seen": time_text(model.max_seen) if model.max_seen else None,
                          "behind": gate.clock_is_behind(model, now)},
                "journal_entries": self.state.head_seq,
            }

    def doctor_facts(self) -> dict:
        with self._lock:
            self.state.refresh()
            self.state.verify_everything()   # also the history before the latest checkpoint
            store = self.state.store
            return {"secret_store": store.name, "weaker_protection": store.weaker,
                    "why_weaker": store.reason if store.weaker else "", "device_id": self.model.device_id,
                    "journal_entries": self.state.head_seq, "journal": "verified",
                    "anchor": self.state.anchor_status,
                    "clock_behind": gate.clock_is_behind(self.model, utc_now()),
                    "socket": str(socket_path(self.home))}


def _same_terms(old: dict, new: dict) -> bool:
    """A re-issued code for the same serial must grant the same; only issued_at may differ."""
    strip = lambda grant: {k: v for k, v in grant.items() if k != "issued_at"}  # noqa: E731
    return strip(old) == strip(new)


def _error_code(exc) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _decode_public_key(text) -> bytes:
    if not isinstance(text, str):
        raise BadInput("the vendor public key must be base64 text")
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=b"-_" if "-" in compact or "_" in compact else None,
                               validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("the vendor public key is not valid base64") from None
    if len(raw) != 32:
        raise BadInput(f"the vendor public key must be a raw 32-byte Ed25519 key, this one has {len(raw)} bytes")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise BadInput("the vendor public key is not a valid Ed25519 key") from None
    return raw
