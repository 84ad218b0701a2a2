"""FIG 14 at the vendor: the MSP and this store back each other up
(docs/mall.md, "FIG 14: backups and restore").

- Backup: `snapshot` reads the customer and token records in ONE read
  transaction (PostgreSQL: REPEATABLE READ; SQLite: one transaction sees one
  state), the users' password and PIN hashes sealed to this store itself
  (AES-256-GCM under a key derived from its network key: the MSP keeps a copy
  it cannot read). `enqueue_backup` writes it as an outbox message
  (`backup.snapshot`, signed digest) for POST /v1/mall/backups; the server's
  `BackupScheduler` does so every `mall_backup_seconds` when something
  changed, `admin backup-to-mall` on demand.
- Restore (`admin restore-from-mall`): into a freshly migrated, EMPTY
  database only; the users come back with their ids, every balance as one
  `restore` transfer from `vendor:restored` (per currency; it ends at 0),
  open holds are released, and the exchanges the MSP ended after the
  snapshot are applied as the normal services would have.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..logs import log
from ..models.base import utcnow
from ..models.ledger import HOLD, VENDOR, WALLET, LedgerAccount, LedgerHold, LedgerTransfer
from ..models.mall import Exchange, ExchangeQuote, MallInboxMessage, MallLink, MallOutboxMessage
from ..models.user import User
from ..network import outbox
from ..network.directory import MSP_ID
from ..network.types import Answer
from ..vocabulary import Currency, ExchangeStatus, HoldStatus, TransferKind
from . import ledger, mall
from .errors import Conflict, InsufficientTokens, Invalid

SCHEMA_VERSION = 1
BACKUPS_PATH = "/v1/mall/backups"
LATEST_PATH = "/v1/mall/backups/latest"
CREDENTIALS_INFO = b"tokenrent backup credentials v1"
CREDENTIALS_ALG = "AES-256-GCM/HKDF-SHA256"
# The opening-balance accounts of a restore, one per currency (codes are unique).
RESTORED = {Currency.TOKEN: "vendor:restored", Currency.CENT: "vendor:restored:cent"}


class BackupKind(StrEnum):
    SNAPSHOT = mall.BACKUP_KIND


# ---------------------------------------------------------------- sealing credentials

def _credentials_key(key: Ed25519PrivateKey) -> bytes:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=CREDENTIALS_INFO).derive(raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))


def seal_credentials(key: Ed25519PrivateKey, member_id: str, credentials: dict[str, list[str]]) -> dict[str, str]:
    """The users' hashes, readable only with this store's network key (the member id is bound in)."""
    nonce = os.urandom(12)
    sealed = AESGCM(_credentials_key(key)).encrypt(nonce, outbox.canonical_json(credentials).encode(),
                                                   member_id.encode())
    return {"alg": CREDENTIALS_ALG, "nonce": _b64(nonce), "ciphertext": _b64(sealed)}


def open_credentials(key: Ed25519PrivateKey, member_id: str, sealed: Any) -> dict[str, list[str]] | None:
    """The hashes, or None when this key cannot open them (another key: it was lost)."""
    try:
        plain = AESGCM(_credentials_key(key)).decrypt(_unb64(sealed["nonce"]), _unb64(sealed["ciphertext"]),
                                                      member_id.encode())
    except (InvalidTag, KeyError, TypeError, ValueError):
        return None
    return json.loads(plain)


# ---------------------------------------------------------------- the snapshot

def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _at(raw: Any) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def _balances(db: Session) -> dict[int, int]:
    """Every account's balance from its transfers (vendor balances are not cached)."""
    came = dict(db.execute(select(LedgerTransfer.to_account_id, func.sum(LedgerTransfer.amount))
                           .group_by(LedgerTransfer.to_account_id)).all())
    went = dict(db.execute(select(LedgerTransfer.from_account_id, func.sum(LedgerTransfer.amount))
                           .group_by(LedgerTransfer.from_account_id)).all())
    return {i: int(came.get(i, 0)) - int(went.get(i, 0)) for i in set(came) | set(went)}


def snapshot(db: Session, member_id: str, key: Ed25519PrivateKey) -> tuple[dict[str, Any], str]:
    """The customer and token records as of now, and their fingerprint (the
    same records give the same fingerprint: what the scheduler compares).
    Call it first thing in a fresh read session: it takes the transaction."""
    if db.get_bind().dialect.name == "postgresql":
        db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    taken_at = utcnow()
    users = db.scalars(select(User).order_by(User.id)).all()
    accounts = db.scalars(select(LedgerAccount).order_by(LedgerAccount.id)).all()
    by_id = {a.id: a for a in accounts}
    balances = _balances(db)
    exchanges = db.scalars(select(Exchange).order_by(Exchange.created_at, Exchange.id)).all()
    quotes = {q.id: q for q in db.scalars(select(ExchangeQuote).where(
        ExchangeQuote.id.in_([x.quote_id for x in exchanges])))} if exchanges else {}
    hold_ids = {x.hold_id for x in exchanges}
    holds = db.scalars(select(LedgerHold).where(
        (LedgerHold.status == HoldStatus.HELD) | LedgerHold.id.in_(hold_ids)).order_by(LedgerHold.id)).all()
    open_ids = [h.id for h in holds if h.status == HoldStatus.HELD]
    legs: dict[int, list[dict[str, Any]]] = {}
    if open_ids:
        for t in db.scalars(select(LedgerTransfer).where(LedgerTransfer.hold_id.in_(open_ids),
                                                         LedgerTransfer.kind == TransferKind.HOLD)
                            .order_by(LedgerTransfer.id)):
            lot = by_id[t.from_account_id]
            legs.setdefault(t.hold_id or 0, []).append(
                {"token_kind": lot.token_kind, "expires_at": _iso(lot.expires_at), "amount": t.amount})
    head = db.scalar(select(func.max(LedgerTransfer.id))) or 0
    snap: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "member_id": member_id, "taken_at": taken_at.isoformat(),
        "ledger_head": int(head),
        "users": [{"id": u.id, "username": u.username, "full_name": u.full_name, "email": u.email,
                   "address": u.address, "phone": u.phone, "role": u.role, "status": u.status,
                   "preferred": u.preferred, "negative_limit": u.negative_limit, "created_at": _iso(u.created_at)}
                  for u in users],
        # users' lots and the vendor's own accounts; an open hold's tokens are in its legs
        "accounts": [{"code": a.code, "purpose": a.purpose, "currency": a.currency, "owner_user_id": a.owner_user_id,
                      "token_kind": a.token_kind, "expires_at": _iso(a.expires_at), "balance": balances[a.id]}
                     for a in accounts if balances.get(a.id, 0) != 0 and a.purpose != HOLD],
        "holds": [{"id": h.id, "user_id": h.user_id, "amount": h.amount, "status": h.status,
                   "reference": h.reference, "created_at": _iso(h.created_at), "settled_at": _iso(h.settled_at),
                   "legs": legs.get(h.id, [])} for h in holds],
        "links": [{"user_id": link.user_id, "home_member_id": link.home_member_id,
                   "home_user_id": link.home_user_id, "created_at": _iso(link.created_at)}
                  for link in db.scalars(select(MallLink).order_by(MallLink.id))],
        "exchanges": [{"id": x.id, "user_id": x.user_id, "to_member_id": x.to_member_id,
                       "tokens_from": x.tokens_from, "tokens_to": x.tokens_to, "value_cents": x.value_cents,
                       "hold_id": x.hold_id, "status": x.status, "reason": x.reason,
                       "created_at": _iso(x.created_at), "finished_at": _iso(x.finished_at),
                       "quote": _quote_view(quotes[x.quote_id])} for x in exchanges],
        # what this store answered the MSP: kept, so a message sent again gets the same answer
        "inbox": [{"sender": m.sender, "message_id": m.message_id, "body_digest": m.body_digest,
                   "answer_status": m.answer_status, "answer_body": m.answer_body, "created_at": _iso(m.created_at)}
                  for m in db.scalars(select(MallInboxMessage).order_by(MallInboxMessage.id))],
    }
    credentials = {str(u.id): [u.password_hash, u.pin_hash] for u in users}
    mac = hmac.new(_credentials_key(key), outbox.canonical_json(credentials).encode(), hashlib.sha256).hexdigest()
    fingerprint = outbox.body_digest({**{k: v for k, v in snap.items() if k != "taken_at"}, "credentials": mac})
    snap["credentials"] = seal_credentials(key, member_id, credentials)
    return snap, fingerprint


def _quote_view(q: ExchangeQuote) -> dict[str, Any]:
    return {"id": q.id, "tokens_asked": q.tokens_asked, "value_from_cents": q.value_from_cents,
            "value_to_cents": q.value_to_cents, "fees_cents": q.fees_cents,
            "directory_version": q.directory_version, "created_at": _iso(q.created_at),
            "expires_at": _iso(q.expires_at)}


def signed_message(snap: dict[str, Any], fingerprint: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The message to the MSP: the snapshot, its digest, this store's signature of the digest."""
    digest = outbox.body_digest(snap)
    return {"snapshot": snap, "sha256": digest, "signature": _b64(key.sign(digest.encode("ascii"))),
            "fingerprint": fingerprint}


def message_id(snap: dict[str, Any]) -> str:
    stamp = datetime.fromisoformat(snap["taken_at"]).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"backup:{snap['ledger_head']}:{stamp}"


def _last_fingerprint(db: Session) -> tuple[str | None, bool]:
    """(the fingerprint of the last backup enqueued, whether one is still pending)."""
    row = db.scalar(select(MallOutboxMessage).where(MallOutboxMessage.kind == BackupKind.SNAPSHOT)
                    .order_by(MallOutboxMessage.id.desc()).limit(1))
    if row is None:
        return None, False
    return row.payload.get("fingerprint"), row.status == outbox.OutboxStatus.PENDING


def take_backup(read: Callable[[], Any], write: Callable[[], Any], key: Ed25519PrivateKey,
                force: bool) -> dict[str, Any] | None:
    """Snapshot in one read transaction, enqueue in a short write one. Not
    forced: nothing when the records are as last sent, or while the last one
    still waits for the MSP (it goes when the MSP answers; then the next)."""
    with read() as db:
        row = mall.membership(db)
        if row is None:
            raise mall.NotInMall()
        last, pending = _last_fingerprint(db)
        db.rollback()    # the snapshot takes a fresh transaction of its own
        if not force and pending:
            return None
        snap, fingerprint = snapshot(db, row.member_id, key)
    if not force and fingerprint == last:
        return None
    body = signed_message(snap, fingerprint, key)
    mid = message_id(snap)
    with write() as db:
        outbox.enqueue(db, MallOutboxMessage, kind=BackupKind.SNAPSHOT, destination=MSP_ID, method="POST",
                       path=BACKUPS_PATH, message_id=mid, body=body)
    return {"message_id": mid, "ledger_head": snap["ledger_head"], "taken_at": snap["taken_at"],
            "users": len(snap["users"]), "accounts": len(snap["accounts"]), "holds": len(snap["holds"]),
            "bytes": len(outbox.canonical_json(body).encode()), "sha256": body["sha256"]}


def _on_backup_answer(db: Session, message: Any, answer: Answer) -> None:
    """The MSP kept it (or a later one). Older delivered backups' bodies are
    dropped here: the outbox is not pruned, and each holds every record."""
    if answer.status >= 400:
        log("the MSP refused a backup", logging.ERROR, message_id=message.message_id, status=answer.status,
            detail=answer.detail)
    db.execute(update(MallOutboxMessage).where(
        MallOutboxMessage.kind == BackupKind.SNAPSHOT, MallOutboxMessage.status == outbox.OutboxStatus.DELIVERED,
        MallOutboxMessage.id < message.id).values(body=outbox.canonical_json({"pruned": True})))


HANDLERS: dict[str, outbox.Handler] = {BackupKind.SNAPSHOT: _on_backup_answer}


class BackupScheduler:
    """A daemon thread of the server: every `seconds`, a backup when the
    records changed. It also wakes the delivery worker for a backup that
    `admin backup-to-mall` left in the outbox (a CLI has no worker)."""

    def __init__(self, seconds: int, read: Callable[[], Any], write: Callable[[], Any],
                 key: Callable[[], Ed25519PrivateKey], joined: Callable[[], Any], wake: Callable[[], None]):
        self.seconds = seconds
        self._read, self._write, self._key, self._joined, self._wake = read, write, key, joined, wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="mall-backup", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        last = 0.0
        tick = min(float(self.seconds), 5.0)
        while not self._stop.wait(tick):
            try:
                if self._joined() is None:
                    continue
                with self._read() as db:
                    waiting = db.scalar(select(func.count()).select_from(MallOutboxMessage).where(
                        MallOutboxMessage.kind == BackupKind.SNAPSHOT,
                        MallOutboxMessage.status == outbox.OutboxStatus.PENDING))
                if time.monotonic() - last >= self.seconds:
                    last = time.monotonic()
                    if take_backup(self._read, self._write, self._key(), force=False) is not None:
                        waiting = 1
                if waiting:
                    self._wake()
            except Exception as e:   # a bad round must not end the thread
                log("a backup round failed", logging.ERROR, error=f"{type(e).__name__}: {e}"[:300])


# ---------------------------------------------------------------- restore

def require_empty(db: Session) -> None:
    """Restore only into a freshly migrated, empty database: never merge into a live ledger."""
    users = db.scalar(select(func.count()).select_from(User)) or 0
    transfers = db.scalar(select(func.count()).select_from(LedgerTransfer)) or 0
    if users or transfers or mall.membership(db) is not None:
        raise Conflict(f"this database is not empty ({users} users, {transfers} ledger transfers): a restore "
                       "goes only into a freshly migrated, empty database", reason="not_empty")
    for code in (ledger.ISSUANCE, ledger.EXCHANGED_IN):
        ledger.vendor_account(db, code)   # RuntimeError names the missing migrations


def verify_backup(answer: Any, member_id: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The snapshot in the MSP's answer, once it is this member's, whole and signed by this store."""
    if not isinstance(answer, dict) or not isinstance(answer.get("backup"), dict):
        raise Invalid("the MSP's answer holds no backup")
    message = answer["backup"]
    snap = message.get("snapshot")
    if answer.get("member_id") != member_id or not isinstance(snap, dict) or snap.get("member_id") != member_id:
        raise Conflict(f"the MSP answered with a backup that is not {member_id}'s", reason="wrong_member")
    digest = outbox.body_digest(snap)
    if digest != message.get("sha256") or digest != answer.get("sha256"):
        raise Conflict("the backup's digest does not match its contents: it was changed after this store "
                       "sent it; nothing restored", reason="digest_mismatch")
    try:
        public_key.verify(_unb64(str(message.get("signature", ""))), digest.encode("ascii"))
    except (InvalidSignature, ValueError):
        raise Conflict("the backup is not signed by this store's network key; nothing restored",
                       reason="bad_signature") from None
    if snap.get("schema_version") != SCHEMA_VERSION:
        raise Invalid(f"a backup of schema version {snap.get('schema_version')}; this server reads {SCHEMA_VERSION}")
    return snap


_SEQUENCED = ("users", "ledger_accounts", "ledger_transfers", "ledger_holds", "mall_links", "mall_inbox")


def _fix_sequences(db: Session) -> None:
    """PostgreSQL: rows came with their old ids; the next ones follow them."""
    if db.get_bind().dialect.name != "postgresql":
        return
    for table in _SEQUENCED:
        db.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) FROM {table}) + 1, false)"))


class _Opening:
    """The opening balances, as `restore` transfers with ids after the backup's
    ledger head (a later backup's head is then higher than the restored one's)."""

    def __init__(self, db: Session, head: int) -> None:
        self.db, self.next_id = db, head + 1
        self.source: dict[str, LedgerAccount] = {}
        for currency, code in RESTORED.items():
            acct = db.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
            if acct is None:
                acct = LedgerAccount(code=code, purpose=VENDOR, currency=currency, balance=0)
                db.add(acct)
                db.flush()
            self.source[currency] = acct

    def post(self, acct: LedgerAccount, balance: int, memo: str) -> None:
        if balance == 0:
            return
        src, dst = (self.source[acct.currency], acct) if balance > 0 else (acct, self.source[acct.currency])
        amount = abs(balance)
        conn = self.db.connection()
        for a, change in ((src, -amount), (dst, amount)):
            if a.owner_user_id is not None:
                conn.execute(update(LedgerAccount).where(LedgerAccount.id == a.id)
                             .values(balance=LedgerAccount.balance + change))
                set_committed_value(a, "balance", a.balance + change)
        conn.execute(insert(LedgerTransfer).values(
            id=self.next_id, from_account_id=src.id, to_account_id=dst.id, amount=amount, currency=acct.currency,
            kind=TransferKind.RESTORE, memo=memo[:200], created_at=utcnow(),
            from_wallet_after=_wallet(self.db, src.owner_user_id), to_wallet_after=_wallet(self.db, dst.owner_user_id)))
        self.next_id += 1


def _wallet(db: Session, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    return sum(a.balance for a in ledger.user_accounts(db, user_id) if a.purpose == WALLET)


NOT_RESTORED = [
    "Card numbers: never stored here (only brand and last four digits, with the purchases, which are not restored).",
    "Sessions and devices: every user signs in again and registers the device again.",
    "Orders, licenses and token purchases: not in the backup; the users' licenses on their machines stay valid.",
    "The ledger history before the backup: each balance is one opening `restore` transfer from "
    "vendor:restored (per currency), which ends at zero.",
    "The catalog (categories, products, offers, published files): load it again from the vendor's catalog "
    "source (admin add-category, add-product, set-offer, publish).",
    "Trusted code-signing keys: the current key file (data dir) is recorded again on first use; keys "
    "rotated out before the loss are not trusted here again (the MSP's directory still lists them).",
    "Idempotency records, rate-limit counters and used assertions: a request retried with an "
    "Idempotency-Key from before the loss runs again.",
    "The token policy and bundles: set them again (admin set-policy, admin set-bundle).",
    "Changes after the backup was taken, except the exchanges the MSP ended since (applied).",
]


def restore(db: Session, *, answer: dict[str, Any], snap: dict[str, Any], directory: dict[str, Any],
            msp_url: str, msp_key: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Rebuild the records from a verified snapshot, in the caller's ONE write
    transaction (a refusal or a failure rolls all of it back)."""
    require_empty(db)
    member_id = str(snap["member_id"])
    head = int(snap["ledger_head"])
    credentials = open_credentials(key, member_id, snap.get("credentials"))
    not_restored = list(NOT_RESTORED)
    if credentials is None:
        not_restored.append(
            "Passwords and PINs: the network key that sealed them is not this one; every user needs a new "
            "password and PIN: `tokenrent-server admin reset-credentials USERNAME` gives each one (after "
            "checking who asks).")
    # users, with their ids: lot codes (user:<id>:...) and the MSP's customer records stay valid
    for u in snap["users"]:
        password_hash, pin_hash = (credentials or {}).get(str(u["id"]), ("!" + uuid.uuid4().hex,) * 2)
        db.add(User(id=u["id"], username=u["username"], password_hash=password_hash, pin_hash=pin_hash,
                    full_name=u["full_name"], email=u["email"], address=u.get("address"), phone=u.get("phone"),
                    role=u["role"], status=u["status"], preferred=u["preferred"],
                    negative_limit=u["negative_limit"], created_at=_at(u["created_at"])))
    db.flush()
    mall.record_membership(db, member_id=member_id, msp_url=msp_url, msp_key=msp_key, directory=directory,
                           opening=False)
    for link in snap.get("links", []):
        db.add(MallLink(user_id=link["user_id"], home_member_id=link["home_member_id"],
                        home_user_id=link["home_user_id"], created_at=_at(link["created_at"])))
    for h in snap.get("holds", []):
        db.add(LedgerHold(id=h["id"], user_id=h["user_id"], amount=h["amount"], status=h["status"],
                          reference=h["reference"], created_at=_at(h["created_at"]), settled_at=_at(h["settled_at"])))
    db.flush()
    for x in snap.get("exchanges", []):
        q = x["quote"]
        db.add(ExchangeQuote(id=q["id"], user_id=x["user_id"], to_member_id=x["to_member_id"],
                             tokens_asked=q["tokens_asked"], tokens_from=x["tokens_from"], tokens_to=x["tokens_to"],
                             value_from_cents=q["value_from_cents"], value_to_cents=q["value_to_cents"],
                             value_cents=x["value_cents"], fees_cents=q["fees_cents"],
                             directory_version=q["directory_version"], created_at=_at(q["created_at"]),
                             expires_at=_at(q["expires_at"])))
        db.flush()
        db.add(Exchange(id=x["id"], user_id=x["user_id"], quote_id=q["id"], to_member_id=x["to_member_id"],
                        tokens_from=x["tokens_from"], tokens_to=x["tokens_to"], value_cents=x["value_cents"],
                        hold_id=x["hold_id"], status=x["status"], reason=x["reason"],
                        created_at=_at(x["created_at"]), finished_at=_at(x["finished_at"])))
    for m in snap.get("inbox", []):
        db.add(MallInboxMessage(sender=m["sender"], message_id=m["message_id"], body_digest=m["body_digest"],
                                answer_status=m["answer_status"], answer_body=m["answer_body"],
                                created_at=_at(m["created_at"])))
    db.flush()

    # opening balances: each account's, plus the tokens of open holds back in the lots they came from
    opening = _Opening(db, head)
    restored_accounts = 0
    for a in snap["accounts"]:
        if a["owner_user_id"] is not None:
            if a["purpose"] != WALLET:
                raise Invalid(f"the backup holds an account this server does not know: {a['code']}")
            acct = ledger.wallet_lot(db, a["owner_user_id"], a["token_kind"], _at(a["expires_at"]))
        else:
            found = db.scalar(select(LedgerAccount).where(LedgerAccount.code == a["code"]))
            if found is None:
                found = LedgerAccount(code=a["code"], purpose=a["purpose"], currency=a["currency"], balance=0)
                db.add(found)
                db.flush()
            acct = found
        if acct.code != a["code"] or acct.currency != a["currency"]:
            raise Invalid(f"the backup's account {a['code']} does not fit this server's ledger")
        opening.post(acct, int(a["balance"]), f"restored from the MSP's backup of {snap['taken_at']}")
        restored_accounts += 1
    open_holds = [h for h in snap.get("holds", []) if h["status"] == HoldStatus.HELD]
    for h in open_holds:
        for leg in h["legs"]:
            lot = ledger.wallet_lot(db, h["user_id"], leg["token_kind"], _at(leg["expires_at"]))
            opening.post(lot, int(leg["amount"]), f"restored from the MSP's backup of {snap['taken_at']}")
    db.flush()
    _fix_sequences(db)
    for currency, acct in opening.source.items():
        left = _balances(db).get(acct.id, 0)
        if left != 0:
            raise Conflict(f"the backup's {currency} accounts do not sum to zero ({left} left in {acct.code}); "
                           "nothing restored", reason="unbalanced_backup")

    # open holds: held again as they were, then ended as the services end them
    movements = {mv["operation_id"]: mv for mv in answer.get("movements_since", [])}
    exchange_of_hold = {x["hold_id"]: x for x in snap.get("exchanges", [])}
    released, applied, warnings = [], [], []
    for h in open_holds:
        hold_acct = ledger.hold_account(db, h["user_id"])
        for leg in h["legs"]:
            lot = ledger.wallet_lot(db, h["user_id"], leg["token_kind"], _at(leg["expires_at"]))
            ledger.post_transfer(db, lot, hold_acct, int(leg["amount"]), TransferKind.HOLD,
                                 f"held again for {h['reference']} (restored)", hold_id=h["id"])
        x = exchange_of_hold.get(h["id"])
        if x is not None and x["status"] == ExchangeStatus.PENDING:
            mv = movements.get(x["id"])
            if mv is not None and mv["status"] == ExchangeStatus.COMPLETED:
                mall.finish_exchange(db, x["id"], True, "")
                applied.append({"operation_id": x["id"], "applied": "exchange out completed at the MSP"})
            else:
                why = "failed at the MSP" if mv is not None else "unknown to the MSP"
                mall.finish_exchange(db, x["id"], False, f"{why} (restored)")
                applied.append({"operation_id": x["id"], "applied": f"exchange out {why}: tokens back"})
        else:
            ledger.void_hold(db, h["id"], memo=f"released at restore: {h['reference']} was not restored")
            released.append({"hold_id": h["id"], "user_id": h["user_id"], "tokens": h["amount"],
                             "reference": h["reference"]})

    # exchanges the MSP ended after the snapshot, not in it: the MSP is authoritative
    known_exchanges = {x["id"] for x in snap.get("exchanges", [])}
    issued = {m["message_id"].removesuffix(":issue") for m in snap.get("inbox", []) if m["answer_status"] < 400}
    row, d = mall.directory(db)
    for mv in answer.get("movements_since", []):
        if mv["status"] != ExchangeStatus.COMPLETED:
            continue
        op = mv["operation_id"]
        customer = mv.get("customer") or {}
        if mv["to_member"] == member_id and op not in issued:
            home = d.member(str(customer.get("home_member", "")))
            out = mall.issue_for_exchange(
                db, operation_id=op, home_member_id=str(customer.get("home_member", "")),
                home_user_id=str(customer.get("home_user_id", "")), full_name=str(customer.get("full_name", "")),
                tokens=int(mv["tokens_to"]), from_member_name=home.name if home else str(customer.get("home_member")))
            digest = outbox.body_digest(mv["issue_body"]) if mv.get("issue_body") is not None else "0" * 64
            db.add(MallInboxMessage(sender=MSP_ID, message_id=f"{op}:issue", body_digest=digest, answer_status=200,
                                    answer_body=outbox.canonical_json(out), created_at=utcnow()))
            applied.append({"operation_id": op, "applied": f"issued {mv['tokens_to']} tokens (exchange in)"})
        elif mv["from_member"] == member_id and op not in known_exchanges:
            try:
                _exchange_out_after(db, mv, row.member_id, d)
                applied.append({"operation_id": op, "applied": f"{mv['tokens_from']} tokens out (exchange out)"})
            except (InsufficientTokens, Invalid) as e:
                warnings.append(f"exchange {op} completed at the MSP after the backup, but its "
                                f"{mv['tokens_from']} tokens could not be taken here: {e}")
    db.flush()
    report = ledger.verify_ledger(db)
    if not report.ok:
        raise Conflict("the restored ledger does not balance; nothing restored", reason="unbalanced_restore",
                       report={"totals": report.totals, "mismatched": report.mismatched_accounts,
                               "negative": report.negative_wallets})
    return {
        "restored": {"users": len(snap["users"]), "linked_users": len(snap.get("links", [])),
                     "accounts": restored_accounts, "exchanges": len(snap.get("exchanges", [])),
                     "inbox_messages": len(snap.get("inbox", [])),
                     "credentials": "restored" if credentials is not None else "lost"},
        "totals": _totals(db),
        "backup": {"taken_at": snap["taken_at"], "ledger_head": head, "sha256": answer.get("sha256"),
                   "received_at": answer.get("received_at")},
        "holds_released": released, "applied_after_backup": applied, "warnings": warnings,
        "verify_ledger": {"ok": report.ok, "totals": report.totals},
        "not_restored": not_restored,
    }


def _totals(db: Session) -> dict[str, dict[str, int]]:
    """Per currency: what the users hold and what the vendor's accounts hold (they sum to zero)."""
    out: dict[str, dict[str, int]] = {}
    balances = _balances(db)
    for a in db.scalars(select(LedgerAccount)):
        side = "users" if a.owner_user_id is not None else "vendor"
        t = out.setdefault(a.currency, {"users": 0, "vendor": 0})
        t[side] += balances.get(a.id, 0)
    return out


def _exchange_out_after(db: Session, mv: dict[str, Any], me: str, d: Any) -> None:
    """An exchange out of this store that began after the snapshot and that
    the MSP completed: quote, hold and post, as confirm and finish do."""
    user_id = int(str((mv.get("customer") or {}).get("home_user_id", "0")))
    user = db.get(User, user_id)
    if user is None:
        raise Invalid(f"no user {user_id} in the backup")
    mine, to = d.member(me), d.member(mv["to_member"])
    ledger.lock_wallets(db, user.id)
    now = utcnow()
    quote = ExchangeQuote(id=str(uuid.uuid4()), user_id=user.id, to_member_id=mv["to_member"],
                          tokens_asked=mv["tokens_from"], tokens_from=mv["tokens_from"], tokens_to=mv["tokens_to"],
                          value_from_cents=mine.token_value_cents if mine else 0,
                          value_to_cents=to.token_value_cents if to else 0, value_cents=mv["value_cents"],
                          fees_cents=0, directory_version=d.version, created_at=now, expires_at=now)
    db.add(quote)
    db.flush()
    plan = ledger.plan_transferable(db, user, int(mv["tokens_from"]))
    h = ledger.hold_plan(db, user, plan, reference=f"exchange {mv['operation_id']}",
                         memo=f"exchange into {mv['tokens_to']} tokens at {mv['to_member']} (restored from the MSP)")
    db.add(Exchange(id=mv["operation_id"], user_id=user.id, quote_id=quote.id, to_member_id=mv["to_member"],
                    tokens_from=mv["tokens_from"], tokens_to=mv["tokens_to"], value_cents=mv["value_cents"],
                    hold_id=h.id, status=ExchangeStatus.PENDING, created_at=now))
    db.flush()
    mall.finish_exchange(db, mv["operation_id"], True, "")
