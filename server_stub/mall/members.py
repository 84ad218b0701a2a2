"""Members of the mall and what the operator sets about them: invitations,
joining, blocking, fees, franchise parents, groups, acceptance. Every change
that alters the directory bumps its version (`bump_directory`) in the same
transaction. Refusals raise an ApiError before anything is written, and the
caller's transaction rolls back, so a refusal changes nothing.

All of it runs in the caller's write transaction (db.write_session); rows that
decide a change are read FOR UPDATE (a no-op on SQLite, whose write
transactions begin IMMEDIATE)."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..network.keys import parse_public_key
from ..services.errors import Conflict, Forbidden, Invalid, NotFound, first_error
from .models import Acceptance, DirectoryState, Group, GroupMember, Invitation, Member, TokenRecord
from .schemas import (
    MAX_TOKEN_VALUE_CENTS, AcceptsOut, CodeKey, FeesChange, FeesOut, JoinIn, MemberChange, MemberOut, TokenOut,
)
from .vocabulary import MEMBER_ID_PREFIX, Accepts, MemberStatus, RoyaltyMode

M = TypeVar("M", bound=BaseModel)

INVITATION_LIFETIME = timedelta(hours=48)
GROUP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$"


def validated(model: type[M], **values: object) -> M:
    """`model` from values given outside HTTP (the operator CLI): the same
    bounds as on the wire, a refusal as a 422 naming the field."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        raise Invalid(first_error(e)) from None


# ---------------------------------------------------------------- the directory's version

def bump_directory(db: Session, now: datetime | None = None) -> int:
    """The directory changed: its next version (the row lock orders concurrent changes)."""
    return int(db.execute(update(DirectoryState).where(DirectoryState.id == 1)
                          .values(version=DirectoryState.version + 1, changed_at=now or utcnow())
                          .returning(DirectoryState.version)).scalar_one())


def directory_version(db: Session) -> tuple[int, datetime]:
    """(version, when it came to be), read afresh by each call."""
    version, changed_at = db.execute(select(DirectoryState.version, DirectoryState.changed_at)
                                     .where(DirectoryState.id == 1)).one()
    return int(version), changed_at


# ---------------------------------------------------------------- invitations and joining

def invitation_digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def invite(db: Session, name: str, now: datetime | None = None) -> tuple[str, Invitation]:
    """A new one-time invitation; the code is returned once and only its digest is kept."""
    if not name.strip() or len(name) > 100:
        raise Invalid("an invitation's name is 1 to 100 characters")
    code = "inv_" + secrets.token_urlsafe(24)
    now = now or utcnow()
    inv = Invitation(code_digest=invitation_digest(code), name=name.strip(), created_at=now,
                     expires_at=now + INVITATION_LIFETIME)
    db.add(inv)
    db.flush()
    return code, inv


def _new_member_id(db: Session) -> str:
    while True:   # 50 random bits: a collision is rare, and then we draw again
        member_id = MEMBER_ID_PREFIX + base64.b32encode(secrets.token_bytes(7)).decode("ascii").lower()[:10]
        if db.get(Member, member_id) is None:
            return member_id


@dataclass(frozen=True)
class Joined:
    member: Member
    directory_version: int
    replayed: bool   # the same vendor asked again with its used invitation: the first answer


def join(db: Session, body: JoinIn, now: datetime | None = None) -> Joined:
    """Admit a vendor (the caller has verified that the request is signed by
    `body.network_key`). The invitation must be known, unused and unexpired;
    a repeat by the member it admitted (same network key) gets the first answer."""
    now = now or utcnow()
    inv = db.scalar(select(Invitation).where(Invitation.code_digest == invitation_digest(body.invitation))
                    .with_for_update())
    if inv is None:
        raise Forbidden("unknown invitation", reason="unknown_invitation")
    if inv.used_at is not None:
        first = db.get(Member, inv.member_id) if inv.member_id else None
        if first is not None and first.network_key == body.network_key:
            return Joined(first, directory_version(db)[0], replayed=True)
        raise Forbidden("this invitation has been used", reason="invitation_used")
    if inv.expires_at <= now:
        raise Forbidden(f"this invitation expired at {inv.expires_at:%Y-%m-%d %H:%M} UTC", reason="invitation_expired")
    holder = db.scalar(select(Member.member_id).where(Member.network_key == body.network_key))
    if holder is not None:
        raise Conflict(f"this network key already belongs to member {holder}")
    member = Member(member_id=_new_member_id(db), name=body.name, base_url=body.base_url,
                    network_key=body.network_key, code_keys=[k.model_dump() for k in body.code_keys],
                    token_name=body.token.name, token_value_cents=body.token.value_cents,
                    status=MemberStatus.ACTIVE, accepts=Accepts.ALL, joined_at=now)
    db.add(member)
    db.flush()
    db.add(TokenRecord(member_id=member.member_id, updated_at=now))
    inv.used_at, inv.member_id = now, member.member_id
    db.flush()
    return Joined(member, bump_directory(db, now), replayed=False)


# ---------------------------------------------------------------- the operator's changes

def get_member(db: Session, member_id: str, *, lock: bool = False) -> Member:
    q = select(Member).where(Member.member_id == member_id)
    member = db.scalar(q.with_for_update() if lock else q)
    if member is None:
        raise NotFound(f"no member {member_id}")
    return member


def require_active(db: Session, member_id: str) -> Member:
    """The member, if it may start an operation: a blocked one gets 403 (`reason` member_blocked)."""
    member = get_member(db, member_id)
    if member.status == MemberStatus.BLOCKED:
        raise Forbidden(f"{member.name} ({member_id}) is blocked in the mall: it takes no new operations",
                        reason="member_blocked")
    return member


def update_own(db: Session, member_id: str, change: MemberChange) -> Member:
    """A member changes its own name, base URL or code-signing keys (after a
    rotation the vendor sends every key it still trusts). The version moves
    only if a value did."""
    given = change.model_dump(exclude_none=True)
    if not given:
        raise Invalid("give at least one of name, base_url, code_keys")
    member = get_member(db, member_id, lock=True)
    if any(getattr(member, field) != value for field, value in given.items()):
        for field, value in given.items():
            setattr(member, field, value)
        bump_directory(db)
    return member


def block(db: Session, member_id: str, reason: str) -> Member:
    reason = reason.strip()
    if not reason or len(reason) > 300:
        raise Invalid("a block needs a reason of 1 to 300 characters")
    member = get_member(db, member_id, lock=True)
    if member.status == MemberStatus.BLOCKED:
        raise Conflict(f"{member_id} is already blocked ({member.blocked_reason})")
    member.status, member.blocked_reason = MemberStatus.BLOCKED, reason
    bump_directory(db)
    return member


def rekey(db: Session, member_id: str, network_key: str, reason: str) -> Member:
    """FIG 14 after a vendor lost its network key file too: the operator, having checked
    the vendor's identity out of band, records its new network public key. Every message
    signed with the old key is refused from then on (the directory's version moves)."""
    reason = reason.strip()
    if not reason or len(reason) > 300:
        raise Invalid("a new network key needs a reason of 1 to 300 characters")
    try:
        parse_public_key(network_key)
    except ValueError as e:
        raise Invalid(f"not a network public key: {e}") from None
    member = get_member(db, member_id, lock=True)
    if member.network_key == network_key:
        raise Conflict(f"{member_id} already has this network key")
    if db.scalar(select(Member.member_id).where(Member.network_key == network_key)) is not None:
        raise Conflict("another member has this network key")
    member.network_key = network_key
    bump_directory(db)
    return member


def unblock(db: Session, member_id: str) -> Member:
    member = get_member(db, member_id, lock=True)
    if member.status != MemberStatus.BLOCKED:
        raise Conflict(f"{member_id} is not blocked")
    member.status, member.blocked_reason = MemberStatus.ACTIVE, None
    bump_directory(db)
    return member


def set_fees(db: Session, member_id: str, change: FeesChange) -> Member:
    """Change the fields `change` gives; the version moves only if a value did."""
    given = change.model_dump(exclude_none=True)
    if not given:
        raise Invalid("give at least one of service_charge_bp, royalty_bp, fixed_fee_cents, royalty_mode")
    member = get_member(db, member_id, lock=True)
    if any(getattr(member, field) != value for field, value in given.items()):
        for field, value in given.items():
            setattr(member, field, value)
        bump_directory(db)
    return member


def set_parent(db: Session, member_id: str, parent_id: str | None) -> Member:
    """The member's franchise parent (None: none). No member is its own ancestor."""
    member = get_member(db, member_id, lock=True)
    if parent_id is not None:
        if parent_id == member_id:
            raise Invalid("a member cannot be its own parent")
        ancestor: str | None = get_member(db, parent_id).member_id
        seen = set()
        while ancestor is not None and ancestor not in seen:
            if ancestor == member_id:
                raise Invalid(f"{parent_id} is already under {member_id}: that would make a cycle")
            seen.add(ancestor)
            ancestor = db.scalar(select(Member.parent_member_id).where(Member.member_id == ancestor))
    if member.parent_member_id != parent_id:
        member.parent_member_id = parent_id
        bump_directory(db)
    return member


def franchise_value(db: Session, parent_id: str, cents: int) -> list[Member]:
    """FIG 16: the parent sets one token value for all its sub-malls (its direct
    children). Returns the children; the directory's version moves once when a value changed."""
    if not 0 < cents <= MAX_TOKEN_VALUE_CENTS:
        raise Invalid(f"a token value is 1 to {MAX_TOKEN_VALUE_CENTS} cents")
    get_member(db, parent_id)
    children = list(db.scalars(select(Member).where(Member.parent_member_id == parent_id)
                               .order_by(Member.member_id).with_for_update()))
    if not children:
        raise Invalid(f"{parent_id} has no sub-malls (msp admin set-parent CHILD {parent_id} makes one)")
    changed = [c for c in children if c.token_value_cents != cents]
    for child in changed:
        child.token_value_cents = cents
    if changed:
        bump_directory(db)
    return children


def _group(db: Session, name: str) -> Group | None:
    return db.scalar(select(Group).where(Group.name == name).with_for_update())


def group_add(db: Session, group_name: str, member_id: str) -> Member:
    if not re.match(GROUP_NAME_PATTERN, group_name):
        raise Invalid("a group name is 1 to 50 letters, digits, '.', '_' or '-', starting with a letter or digit")
    member = get_member(db, member_id)
    group = _group(db, group_name)
    if group is None:
        group = Group(name=group_name)
        db.add(group)
        db.flush()
    elif db.get(GroupMember, (group.id, member_id)) is not None:
        raise Conflict(f"{member_id} is already in group {group_name}")
    db.add(GroupMember(group_id=group.id, member_id=member_id))
    db.flush()
    bump_directory(db)
    return member


def group_remove(db: Session, group_name: str, member_id: str) -> Member:
    member = get_member(db, member_id)
    group = _group(db, group_name)
    if group is None:
        raise NotFound(f"no group {group_name}")
    row = db.get(GroupMember, (group.id, member_id))
    if row is None:
        raise Conflict(f"{member_id} is not in group {group_name}")
    db.delete(row)
    db.flush()
    if not db.scalar(select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group.id)):
        db.delete(group)   # a group is its members; an empty one is gone
    bump_directory(db)
    return member


def set_accepts(db: Session, member_id: str, mode: Accepts, accepted: Sequence[str]) -> Member:
    """Whose tokens the member accepts: all, or the listed members (its own always)."""
    member = get_member(db, member_id, lock=True)
    wanted = sorted(set(accepted))
    if mode == Accepts.ALL and wanted:
        raise Invalid("`all` takes no member list (use `listed` to name members)")
    if member_id in wanted:
        raise Invalid("a member always accepts its own tokens: leave it out of the list")
    for other in wanted:
        get_member(db, other)
    current = sorted(db.scalars(select(Acceptance.accepted_member_id).where(Acceptance.member_id == member_id)))
    if member.accepts == mode and current == wanted:
        return member
    db.execute(delete(Acceptance).where(Acceptance.member_id == member_id))
    db.add_all(Acceptance(member_id=member_id, accepted_member_id=other) for other in wanted)
    member.accepts = mode
    db.flush()
    bump_directory(db)
    return member


# ---------------------------------------------------------------- the member object

def member_views(db: Session, members: Iterable[Member]) -> list[MemberOut]:
    """The member objects (directory, entries, GET /v1/mall/members/{id}), in three queries."""
    members = list(members)
    ids = [m.member_id for m in members]
    groups: dict[str, list[str]] = {i: [] for i in ids}
    for member_id, name in db.execute(select(GroupMember.member_id, Group.name)
                                      .join(Group, Group.id == GroupMember.group_id)
                                      .where(GroupMember.member_id.in_(ids)).order_by(Group.name)):
        groups[member_id].append(name)
    accepted: dict[str, list[str]] = {i: [] for i in ids}
    for member_id, other in db.execute(select(Acceptance.member_id, Acceptance.accepted_member_id)
                                       .where(Acceptance.member_id.in_(ids))
                                       .order_by(Acceptance.accepted_member_id)):
        accepted[member_id].append(other)
    return [MemberOut(
        member_id=m.member_id, name=m.name, base_url=m.base_url, network_key=m.network_key,
        code_keys=[CodeKey.model_validate(k) for k in m.code_keys],
        token=TokenOut(name=m.token_name, value_cents=m.token_value_cents),
        status=MemberStatus(m.status), groups=groups[m.member_id], parent=m.parent_member_id,
        accepts=AcceptsOut(mode=Accepts(m.accepts), members=accepted[m.member_id]),
        fees=FeesOut(service_charge_bp=m.service_charge_bp, royalty_bp=m.royalty_bp,
                     fixed_fee_cents=m.fixed_fee_cents, royalty_mode=RoyaltyMode(m.royalty_mode)),
    ) for m in members]


def all_members(db: Session) -> list[Member]:
    return list(db.scalars(select(Member).order_by(Member.joined_at, Member.member_id)
                           .execution_options(populate_existing=True)))
