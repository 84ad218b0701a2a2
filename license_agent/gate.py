"""The gate of FIG 12, and the ONE place where what remains of a license is computed.

Pure functions over the replayed model: they decide and say which journal entries
must be written; they never write themselves (agent.py does, durably, before answering).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from .code_terms import HOME_ISSUER, product_ref, split_ref, store_link
from .errors import BadInput
from .model import License, Model, time_text
from .vocabulary import GateReason

CLOCK_TOLERANCE = timedelta(minutes=5)      # clock may be this much behind the latest time seen
CLOCK_RECORD_STEP = timedelta(minutes=1)    # a time check records the clock when it moved this much
DEFAULT_RESERVATION_TTL = 600               # seconds
MAX_RESERVATION_TTL = 7 * 86400
_DAY = 86400

UNITS = {"permanent": None, "time": "seconds", "uses": "uses", "processings": "processings"}


def clock_is_behind(model: Model, now: datetime) -> bool:
    return model.max_seen is not None and now < model.max_seen - CLOCK_TOLERANCE


def effective_now(model: Model, now: datetime) -> datetime:
    """Never earlier than the latest time seen: moving the clock back cannot extend anything."""
    return max(now, model.max_seen) if model.max_seen else now


def low_threshold(lic: License) -> int:
    """The vendor's threshold from the code; otherwise 10% of the grant (time: of the period the
    code covered, between one hour and three days; counts: at least 1)."""
    if lic.low_threshold is not None:
        return lic.low_threshold
    if lic.kind == "time":
        span = (lic.expires_at - lic.issued_at).total_seconds() if lic.expires_at else 0
        return int(min(3 * _DAY, max(3600, span * 0.10)))
    if lic.kind in ("uses", "processings"):
        return max(1, (lic.total or 0) // 10)
    return 0


def is_low(remaining: int | None, threshold: int, *, just_spent: bool = False) -> bool:
    """The one low-warning rule (FIG 12 steps 1106, 1112, 1118): at most `threshold` left.
    Nothing left is "used up", not low, except in the answer to the run that spent the
    last of it: that run is allowed, and its answer warns and points at the store."""
    if remaining is None:   # permanent
        return False
    return remaining <= threshold and (remaining > 0 or just_spent)


def reserved(model: Model, lic: License, now: datetime) -> tuple[int, int]:
    """(held by live reservations, held by reservations whose time-to-live ran out = consumed)."""
    live = lapsed = 0
    moment = effective_now(model, now)
    for reservation in model.reservations.values():
        if reservation.license_key == lic.key and reservation.state == "open":
            if reservation.expires_at > moment:
                live += reservation.amount
            else:
                lapsed += reservation.amount
    return live, lapsed


class View:
    """A license as the agent sees it at ``now``."""

    __slots__ = ("lic", "remaining", "used", "reserved", "usable", "expired", "used_up", "warning",
                 "clock_behind", "threshold")

    def __init__(self, *, lic: License, remaining: int | None, used: int | None, reserved: int, usable: bool,
                 expired: bool, used_up: bool, warning: bool, clock_behind: bool, threshold: int):
        self.lic = lic
        self.remaining = remaining          # seconds (time), count (uses, processings), None (permanent)
        self.used = used
        self.reserved = reserved
        self.usable = usable
        self.expired = expired
        self.used_up = used_up
        self.warning = warning
        self.clock_behind = clock_behind
        self.threshold = threshold


def view(model: Model, lic: License, now: datetime) -> View:
    behind = False
    used = None
    held = 0
    if lic.kind == "permanent":
        remaining, usable = None, True
    elif lic.kind == "time":
        behind = clock_is_behind(model, now)
        remaining = max(0, math.floor((lic.expires_at - effective_now(model, now)).total_seconds()))
        usable = remaining > 0 and not behind
    else:
        held, lapsed = reserved(model, lic, now)
        used = lic.consumed + lapsed
        remaining = max(0, (lic.total or 0) - used - held)
        usable = remaining > 0
    threshold = low_threshold(lic)
    return View(lic=lic, remaining=remaining, used=used, reserved=held, usable=usable,
                expired=lic.kind == "time" and remaining == 0,
                used_up=lic.kind in ("uses", "processings") and remaining == 0,
                warning=is_low(remaining, threshold),
                clock_behind=behind, threshold=threshold)


def describe_seconds(seconds: int) -> str:
    if seconds >= 2 * _DAY:
        return f"{seconds // _DAY} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


class Decision:
    __slots__ = ("answer", "entries")

    def __init__(self, answer: dict, entries: list | None = None):
        self.answer = answer
        self.entries = entries if entries is not None else []   # (type, body) to commit before answering


# Which kinds can serve each request, best first. A permanent or running time license
# costs nothing, so it is always preferred over spending a counted one.
_PREFERENCE = {
    "check": ("permanent", "time", "uses", "processings"),
    "consume": ("permanent", "time", "processings", "uses"),
    "reserve": ("permanent", "time", "processings", "uses"),
}


def public_issuer(lic: License) -> str | None:
    """The issuer as answers name it: the member id, or null for the home scope (keys pinned by hand)."""
    return lic.issuer or None


def license_ref(lic: License) -> str:
    """The reference that names this license's product and no other issuer's: `ISSUER/PRODUCT_ID`."""
    return product_ref(lic.product_id, lic.issuer or HOME_ISSUER)


def select(model: Model, ref: str) -> tuple[str, str | None, list[License]]:
    """(product id, issuer scope or None, its licenses) for a product reference. A bare id that
    licenses of two issuers carry is refused (exit 2): which program is meant must be said."""
    issuer, product_id = split_ref(ref)
    if issuer is not None:
        scope = "" if issuer == HOME_ISSUER else issuer
        return product_id, scope, [lic for lic in model.licenses.values()
                                   if lic.product_id == product_id and lic.issuer == scope]
    found = [lic for lic in model.licenses.values() if lic.product_id == product_id]
    issuers = sorted({lic.issuer for lic in found})
    if len(issuers) > 1:
        forms = ", ".join(product_ref(product_id, one or HOME_ISSUER) for one in issuers)
        raise BadInput(f"product {product_id} is licensed by {len(issuers)} stores; name the one meant: {forms}",
                       code="ambiguous_product")
    return product_id, issuers[0] if issuers else None, found


def decide(model: Model, ref: str, now: datetime, action: str, amount: int = 1,
           ttl: int = DEFAULT_RESERVATION_TTL, reservation_id: str | None = None) -> Decision:
    """FIG 12. action: "check" (before a run: a uses license spends one, processings are only
    checked), "consume" (before ``amount`` processings), "reserve" (hold ``amount``).
    ``ref``: a product id, or `ISSUER/PRODUCT_ID` (see select)."""
    product_id, scope, found = select(model, ref)
    views = [view(model, lic, now) for lic in found]
    if not views:
        link = store_link(product_id, scope or None)
        answer = _answer(product_id, None, False, GateReason.NO_LICENSE,
                         f"no license for product {product_id} is installed; buy one at {link}")
        answer.update(store_url=link, issuer=scope or None,
                      product_ref=product_ref(product_id, HOME_ISSUER if scope == "" else scope))
        return Decision(answer)
    # Any answer about a time rental records the clock (also a refusal: rolling the clock back
    # after seeing "expired" must be caught).
    clock = ([("clock", {})] if any(v.lic.kind == "time" for v in views)
             and (model.max_seen is None or now > model.max_seen + CLOCK_RECORD_STEP) else [])
    decision = _decide(model, product_id, now, action, amount, ttl, reservation_id, views)
    decision.entries[:0] = clock
    return decision


def _decide(model, product_id, now, action, amount, ttl, reservation_id, views) -> Decision:
    order = _PREFERENCE[action]
    views.sort(key=lambda v: (order.index(v.lic.kind), v.lic.installed_seq))
    wanted = amount if action in ("consume", "reserve") else 1
    for candidate in views:
        if not candidate.usable:
            continue
        kind = candidate.lic.kind
        if kind in ("permanent", "time"):
            return Decision(_answer(product_id, candidate, True, GateReason.OK, _ok_message(candidate, 0)))
        if candidate.remaining < wanted:
            continue
        if action == "check" and kind == "processings":  # 1104-1106: the run only needs some left
            return Decision(_answer(product_id, candidate, True, GateReason.OK, _ok_message(candidate, 0)))
        spent = _after_spending(model, candidate, now, wanted)
        if action == "reserve":
            expires = effective_now(model, now) + timedelta(seconds=ttl)
            entry = ("reserve", {"license_id": candidate.lic.license_id, "reservation_id": reservation_id,
                                 "n": wanted, "expires_at": time_text(expires), **_issuer_field(candidate.lic)})
            answer = _answer(product_id, spent, True, GateReason.OK, _ok_message(spent, wanted, reserved=True))
            answer.update(reservation_id=reservation_id, reserved=wanted, reservation_expires_at=time_text(expires))
        else:
            entry = ("consume", {"license_id": candidate.lic.license_id, "n": wanted, **_issuer_field(candidate.lic)})
            answer = _answer(product_id, spent, True, GateReason.OK, _ok_message(spent, wanted))
        answer["consumed"] = 0 if action == "reserve" else wanted
        return Decision(answer, [entry])
    return Decision(_denial(product_id, views, wanted))


def _issuer_field(lic: License) -> dict:
    """Entries name a member's license by its issuer too; the home scope's look as they always did."""
    return {"issuer": lic.issuer} if lic.issuer else {}


def _after_spending(model: Model, current: View, now: datetime, amount: int) -> View:
    """The view as it will be once ``amount`` more is spent (the entry is not written yet)."""
    remaining = current.remaining - amount
    threshold = current.threshold
    return View(lic=current.lic, remaining=remaining, used=(current.used or 0) + amount, reserved=current.reserved,
                usable=remaining > 0, expired=False, used_up=remaining == 0,
                warning=is_low(remaining, threshold, just_spent=True), clock_behind=False,
                threshold=threshold)


def _denial(product_id: str, views: list[View], wanted: int) -> dict:
    behind = [v for v in views if v.clock_behind]
    if behind and all(v.clock_behind or not v.usable for v in views):
        best = behind[0]
        return _answer(product_id, best, False, GateReason.CLOCK_BEHIND,
                       "the system clock is behind the latest time this agent has seen; time rentals "
                       "are refused until the clock is right")
    best = max(views, key=lambda v: (v.lic.installed_seq))
    unit = UNITS[best.lic.kind]
    if best.expired:
        message = (f"the rental of {_name(best)} expired at {time_text(best.lic.expires_at)}; "
                   f"buy more time at {best.lic.store_url}")
        reason = GateReason.EXPIRED
    elif best.used_up:
        message = f"no {unit} of {_name(best)} are left; buy more at {best.lic.store_url}"
        reason = GateReason.USED_UP
    else:
        message = (f"only {_count(best.remaining, unit)} of {_name(best)} left, {wanted} needed; "
                   f"buy more at {best.lic.store_url}")
        reason = GateReason.NOT_ENOUGH
    return _answer(product_id, best, False, reason, message)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit[:-1] if n == 1 else unit}"


def _name(v: View) -> str:
    return v.lic.product_name or f"product {v.lic.product_id}"


def _ok_message(v: View, spent: int, reserved: bool = False) -> str:
    kind = v.lic.kind
    if kind == "permanent":
        return f"{_name(v)} is licensed permanently"
    if kind == "time":
        text = f"{describe_seconds(v.remaining)} of {_name(v)} left (until {time_text(v.lic.expires_at)})"
        return (f"only {text}; buy more time at {v.lic.store_url}") if v.warning else text
    unit = UNITS[kind]
    done = f"{_count(spent, unit)} {'reserved' if reserved else 'spent'}, " if spent else ""
    if v.warning:
        return f"{done}only {_count(v.remaining, unit)} of {_name(v)} left; buy more at {v.lic.store_url}"
    return f"{done}{_count(v.remaining, unit)} of {_name(v)} left"


def _answer(product_id: str, v: View | None, allowed: bool, reason: GateReason, message: str) -> dict:
    lic = v.lic if v else None
    return {
        "product_id": product_id,
        "product_name": lic.product_name if lic else "",
        "allowed": allowed,
        "reason": reason,
        "kind": lic.kind if lic else None,
        "license_id": lic.license_id if lic else None,
        "remaining": v.remaining if v else 0,
        "unit": UNITS[lic.kind] if lic else None,
        "total": lic.total if lic else None,
        "expires_at": time_text(lic.expires_at) if lic and lic.expires_at else None,
        "warning": bool(v and allowed and v.warning),
        "low_threshold": v.threshold if v else None,
        "message": message,
        "expired": bool(v and v.expired),
        "used_up": bool(v and v.used_up),
        "clock_behind": reason == GateReason.CLOCK_BEHIND,
        "store_url": lic.store_url if lic else store_link(product_id),
        "consumed": 0,
        "issuer": public_issuer(lic) if lic else None,
        "product_ref": license_ref(lic) if lic else product_id,
    }


def license_summary(model: Model, lic: License, now: datetime, history_days: int = 30) -> dict:
    """One license for ``status``: the agent's own view of what remains, plus recent daily use."""
    v = view(model, lic, now)
    since = (effective_now(model, now) - timedelta(days=history_days - 1)).strftime("%Y-%m-%d")
    return {
        "license_id": lic.license_id, "product_id": lic.product_id, "product_name": lic.product_name,
        "kind": lic.kind, "serial": lic.serial, "unit": UNITS[lic.kind],
        "remaining": v.remaining, "total": lic.total, "used": v.used, "reserved": v.reserved,
        "expires_at": time_text(lic.expires_at) if lic.expires_at else None,
        "issued_at": time_text(lic.issued_at), "installed_at": time_text(lic.installed_at),
        "low_threshold": v.threshold, "warning": v.warning, "expired": v.expired, "used_up": v.used_up,
        "usable": v.usable, "clock_behind": v.clock_behind, "store_url": lic.store_url,
        "issuer": public_issuer(lic), "product_ref": license_ref(lic),
        "history": [{"date": day, "used": n} for day, n in sorted(lic.history.items()) if day >= since],
    }
