"""FIG 14 at the MSP: the MSP and a member back each other up (docs/mall.md,
"FIG 14: backups and restore").

A member sends a signed snapshot of its customer and token records
(POST /v1/mall/backups, through the inbox: applied once, the first answer
final). The MSP keeps the latest one per member (`member_backups`): only a
later snapshot replaces it, by (ledger head, taken_at), so an older one that
arrives late changes nothing. It also keeps its customer records of the
member's own users up to date. A member reads back only its own backup
(GET /v1/mall/backups/latest), with what the MSP knows happened since: its
movements still pending (a restore waits for them) and those that ended after
the snapshot (a restore applies them; the MSP is authoritative for them).

The MSP cannot read the users' credentials in it (sealed by the member to
itself) and cannot change it unnoticed (the member signed its digest)."""
from __future__ import annotations

import base64
from typing import Any

from cryptography.exceptions import InvalidSignature
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..network.keys import parse_public_key
from ..network.outbox import body_digest, canonical_json
from ..services.errors import ApiError, Forbidden, Invalid, NotFound, first_error
from ..vocabulary import Role
from . import records
from .models import CustomerRecord, MemberBackup, Member, Movement, MspOutboxMessage
from .vocabulary import MovementKind, MovementStatus

BACKUPS_PATH = "/v1/mall/backups"
# A backup larger than this is refused (413) before its body is read. A user
# with two lots takes about 830 bytes (measured), so 50 MB holds some 60,000
# users; a larger vendor needs a larger limit here (docs/mall.md).
MAX_BACKUP_BYTES = 50 * 1024 * 1024
SCHEMA_VERSION = 1


class TooLarge(ApiError):
    def __init__(self, size: int) -> None:
        super().__init__(f"a backup is at most {MAX_BACKUP_BYTES} bytes; this one is {size}", 413,
                         limit_bytes=MAX_BACKUP_BYTES)


class _SnapshotHead(BaseModel):
    """The parts of a snapshot the MSP reads (the rest it keeps as it came)."""

    model_config = ConfigDict(extra="allow")
    schema_version: int
    member_id: str
    ledger_head: int = Field(ge=0)
    taken_at: AwareDatetime
    users: list[dict[str, Any]]
    links: list[dict[str, Any]] = []
    exchanges: list[dict[str, Any]] = []


class BackupMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snapshot: dict[str, Any]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(min_length=10, max_length=200)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse(db: Session, sender: str, raw: Any) -> tuple[Member, BackupMessage, _SnapshotHead]:
    try:
        msg = BackupMessage.model_validate(raw)
        head = _SnapshotHead.model_validate(msg.snapshot)
    except ValidationError as e:
        raise Invalid(f"not a backup: {first_error(e)}") from None
    if head.schema_version != SCHEMA_VERSION:
        raise Invalid(f"a backup of schema version {head.schema_version}; this MSP reads {SCHEMA_VERSION}")
    if head.member_id != sender:
        raise Forbidden("a member backs up only its own records")
    member = db.get(Member, sender)
    if member is None:
        raise NotFound(f"no member {sender}")
    if body_digest(msg.snapshot) != msg.sha256:
        raise Invalid("the backup's sha256 is not the digest of its snapshot")
    try:
        parse_public_key(member.network_key).verify(_b64(msg.signature), msg.sha256.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise Invalid("the backup's signature is not the member's") from None
    return member, msg, head


def store_backup(db: Session, sender: str, message_id: str, raw: Any) -> dict[str, Any]:
    """Keep a member's snapshot if it is later than the stored one (inside
    the inbox's transaction: once per message)."""
    member, msg, head = _parse(db, sender, raw)
    current = db.scalar(select(MemberBackup).where(MemberBackup.member_id == member.member_id).with_for_update())
    if current is not None and (head.ledger_head, head.taken_at) <= (current.ledger_head, current.taken_at):
        # an older (or the same) snapshot arriving late: the newer one stays
        return {**_summary(current), "stored": False}
    body = canonical_json(raw)
    known: dict[Any, Any] = {}   # the customers as the stored backup named them: only changes are written
    if current is None:
        current = MemberBackup(member_id=member.member_id)
        db.add(current)
    else:
        known = {u.get("id"): u.get("full_name") for u in
                 BackupMessage.model_validate_json(current.body).snapshot.get("users", [])}
    current.message_id, current.ledger_head, current.taken_at = message_id, head.ledger_head, head.taken_at
    current.received_at, current.sha256, current.size_bytes = utcnow(), msg.sha256, len(body.encode())
    current.users, current.body = len(head.users), body
    linked = {int(link["user_id"]) for link in head.links if "user_id" in link}
    for user in head.users:   # the member's own customers; linked accounts are other members' customers
        if user.get("id") not in linked and user.get("role", Role.USER) == Role.USER \
                and known.get(user.get("id"), object()) != user.get("full_name"):
            records.customer(db, member.member_id, str(user["id"]), str(user.get("full_name", ""))[:100])
    db.flush()
    return {**_summary(current), "stored": True}


def _summary(b: MemberBackup) -> dict[str, Any]:
    return {"member_id": b.member_id, "message_id": b.message_id, "ledger_head": b.ledger_head,
            "taken_at": b.taken_at.isoformat(), "received_at": b.received_at.isoformat(), "sha256": b.sha256,
            "size_bytes": b.size_bytes, "users": b.users}


def _movement_view(db: Session, mv: Movement) -> dict[str, Any]:
    customer = db.get(CustomerRecord, mv.customer_id) if mv.customer_id is not None else None
    issue = db.scalar(select(MspOutboxMessage).where(MspOutboxMessage.message_id == f"{mv.operation_id}:issue"))
    return {"operation_id": mv.operation_id, "kind": mv.kind, "from_member": mv.from_member,
            "to_member": mv.to_member, "tokens_from": mv.tokens_from, "tokens_to": mv.tokens_to,
            "value_cents": mv.value_cents, "status": mv.status,
            "completed_at": mv.completed_at.isoformat() if mv.completed_at else None,
            "customer": None if customer is None else {
                "home_member": customer.home_member_id, "home_user_id": customer.home_user_id,
                "full_name": customer.full_name},
            # the issue as B received it: a restored B stores its digest, as its inbox did
            "issue_body": issue.payload if issue is not None else None}


def latest_backup(db: Session, caller: str, member_id: str | None = None) -> dict[str, Any]:
    """A member's own latest backup, with its movements the snapshot may not
    show: those still pending (counted) and those that ended after it, or that
    were pending in it."""
    if member_id is not None and member_id != caller:
        raise Forbidden("a member reads only its own backup")
    b = db.get(MemberBackup, caller)
    if b is None:
        raise NotFound(f"no backup of {caller} yet")
    message = BackupMessage.model_validate_json(b.body)
    mine = or_(Movement.from_member == caller, Movement.to_member == caller)
    pending = db.scalar(select(func.count()).select_from(Movement)
                        .where(mine, Movement.status == MovementStatus.PENDING))
    in_flight = [str(x.get("id")) for x in message.snapshot.get("exchanges", []) if x.get("status") == MovementStatus.PENDING]
    ended = db.scalars(select(Movement).where(   # exchanges only: open payments' cash is no member's ledger
        mine, Movement.kind == MovementKind.EXCHANGE, Movement.status != MovementStatus.PENDING,
        or_(Movement.completed_at > b.taken_at, Movement.operation_id.in_(in_flight)))
        .order_by(Movement.id)).all()
    return {**_summary(b), "backup": message.model_dump(), "pending_movements": int(pending or 0),
            "movements_since": [_movement_view(db, mv) for mv in ended]}


def all_backups(db: Session) -> list[dict[str, Any]]:
    """`msp admin backups`: each member's latest backup (none: not listed)."""
    names = dict(db.execute(select(Member.member_id, Member.name)).all())
    return [{**_summary(b), "name": names.get(b.member_id, "")}
            for b in db.scalars(select(MemberBackup).order_by(MemberBackup.member_id))]
