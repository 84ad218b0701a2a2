"""`tokenrent-server admin join-mall | mall-status | refresh-directory |
backup-to-mall | restore-from-mall`: this vendor in a mall network
(docs/mall.md, "Identities and keys" and "FIG 14: backups and restore")."""
from __future__ import annotations

import argparse
import uuid
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from .admin_registry import arg, command
from .core.config import get_settings
from .db import read_session, write_session
from .models.mall import MallOutboxMessage
from .network import outbox
from .network.client import MallClient
from .network.directory import MSP_ID
from .network.keys import parse_public_key, public_key_text
from .network.types import Answer, Unreachable
from .services import mall, mall_backup, mall_saga, pricing, signing_keys
from .services.errors import ApiError, Conflict, Invalid

JOINING_KEY_ID = "joining"


def _client(key_id: str, msp_key: str) -> MallClient:
    try:
        pinned = parse_public_key(msp_key)
    except ValueError as e:
        raise Invalid(f"--msp-key: {e}") from None
    return MallClient(key_id, mall_saga.network_key(), lambda kid: pinned if kid == MSP_ID else None,
                      ca_file=get_settings().ca_file or None)


def _msp_key_of(msp_url: str, pinned: str | None) -> str:
    """The MSP's key: the one given (--msp-key), checked against what the MSP
    publishes; else the published one, trusted on first use (over TLS)."""
    try:
        r = requests.get(msp_url + "/v1/mall/directory", timeout=15,
                         verify=get_settings().ca_file or True)
        published = str(r.json()["msp"]["network_key"])
    except (requests.RequestException, ValueError, KeyError, TypeError) as e:
        raise ApiError(f"the MSP at {msp_url} did not answer with its directory: {e}", 502) from None
    if pinned is not None and pinned != published:
        raise ApiError("the MSP's key is not the one given with --msp-key", 403)
    parse_public_key(published)
    return published


def _send(client: MallClient, method: str, url: str, body: Any = None) -> Any:
    try:
        answer = client.send(method, url, body, idempotency_key=uuid.uuid4().hex if body is not None else None)
    except Unreachable as e:
        raise ApiError(f"the MSP did not answer: {e}", 502) from None
    if answer.status >= 400:
        detail = answer.body.get("detail") if isinstance(answer.body, dict) else answer.body
        raise ApiError(f"the MSP refused: {detail}", answer.status)
    return answer.body


@command("join-mall", "join a mall network with the MSP operator's invitation",
         arg("msp_url"), arg("--invitation", required=True), arg("--name", required=True),
         arg("--base-url", help="this server's public URL (default: TOKENRENT_PUBLIC_URL)"),
         arg("--token-name", default="Tokens"),
         arg("--value-cents", type=int, help="the cash value of one token (default: the token price)"),
         arg("--msp-key", help="the MSP's network key (ed25519:...) to pin, instead of trusting its first answer"))
def _join_mall(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    if mall.membership(db) is not None:
        raise Conflict("this store has already joined a mall")
    msp_url = a.msp_url.rstrip("/")
    if not msp_url.startswith(("http://", "https://")):
        raise Invalid("the MSP URL must start with http:// or https://")
    value = a.value_cents if a.value_cents is not None else pricing.policy(db).token_price_cents
    code_keys = [{"kid": k["kid"], "public_key": k["public_key"]} for k in signing_keys.trusted_keys(db)
                 ] if signing_keys.key_path().exists() else [
                     {"kid": signing_keys.ensure_key(db).kid, "public_key": signing_keys.current_key().public_b64}]
    db.commit()   # (the code key, if new) no transaction stays open while we talk to the MSP
    msp_key = _msp_key_of(msp_url, a.msp_key)
    key = mall_saga.network_key()
    body = {"invitation": a.invitation, "name": a.name, "base_url": (a.base_url or get_settings().public_url).rstrip("/"),
            "network_key": public_key_text(key), "code_keys": code_keys,
            "token": {"name": a.token_name, "value_cents": value}}
    joined = _send(_client(JOINING_KEY_ID, msp_key), "POST", msp_url + "/v1/mall/members", body)
    if joined.get("msp_key") != msp_key:
        raise ApiError("the MSP answered with another key than the one it publishes", 502)
    directory = _send(_client(joined["member_id"], msp_key), "GET", msp_url + "/v1/mall/directory")
    mall.record_membership(db, member_id=joined["member_id"], msp_url=msp_url, msp_key=msp_key, directory=directory)
    return {"member_id": joined["member_id"], "msp_url": msp_url, "msp_key": msp_key,
            "directory_version": directory.get("version")}


def _membership_terms(db: Session) -> tuple[str, str, str]:
    """(member id, MSP URL, MSP key) of this store, with the command's transaction ended:
    what follows calls the MSP, and no transaction stays open across a network call."""
    row = mall.membership(db)
    if row is None:
        raise mall.NotInMall()
    terms = row.member_id, row.msp_url, row.msp_key
    db.rollback()
    return terms


@command("refresh-directory", "read the MSP's directory again now")
def _refresh_directory(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    member_id, msp_url, msp_key = _membership_terms(db)
    raw = _send(_client(member_id, msp_key), "GET", msp_url + "/v1/mall/directory")
    row = mall.membership(db)
    assert row is not None
    d = mall.store_directory(db, row, raw)
    return {"directory_version": d.version, "members": len(d.members)}


@command("mall-status", "this store's membership and its copy of the directory")
def _mall_status(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return mall.mall_view(db)


@command("network-key", "this store's network public key (the key file is made if there is none)")
def _network_key(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return {"network_key": public_key_text(mall_saga.network_key()),
            "path": str(get_settings().resolved_network_key_path)}


@command("backup-to-mall", "FIG 14: send a backup of the customer and token records to the MSP now")
def _backup_to_mall(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    member_id, msp_url, msp_key = _membership_terms(db)   # the snapshot and the outbox take their own transactions
    out = mall_backup.take_backup(read_session, write_session, mall_saga.network_key(), force=True)
    assert out is not None
    client = _client(member_id, msp_key)

    def to_msp(destination: str, method: str, path: str, body: Any, message_id: str) -> Answer:
        if destination != MSP_ID:
            raise Unreachable("this command sends only to the MSP")
        return client.send(method, msp_url + path, body, idempotency_key=message_id)

    # deliver it now (a round of this process's own worker); when the MSP does not
    # answer it stays in the outbox and the server's worker sends it later
    worker = outbox.OutboxWorker(MallOutboxMessage, write_session, to_msp, mall_saga.HANDLERS, senders=1)
    try:
        worker.run_once()
    finally:
        worker.stop()
    with read_session() as rdb:
        sent = rdb.scalar(select(MallOutboxMessage).where(MallOutboxMessage.message_id == out["message_id"]))
        answer = sent.answer if sent is not None else None
        error = sent.last_error if sent is not None else None
    if answer is None:
        return {**out, "delivered": False, "error": error}
    if answer.status >= 400:
        raise ApiError(f"the MSP refused the backup: {answer.detail}", answer.status)
    return {**out, "delivered": True, "msp": answer.body}


@command("restore-from-mall", "FIG 14: rebuild the customer and token records from the MSP's backup "
                              "(into a freshly migrated, empty database only)",
         arg("msp_url"), arg("--member-id", required=True, help="this store's member id (admin mall-status)"),
         arg("--msp-key", required=True, help="the MSP's network key (ed25519:...)"))
def _restore_from_mall(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    mall_backup.require_empty(db)
    db.rollback()   # no transaction stays open while we talk to the MSP
    path = get_settings().resolved_network_key_path
    if not path.exists():
        raise Conflict(f"the network key file {path} is missing: the MSP knows this store by that key, and it "
                       "seals the users' credentials; restore it from the data dir's backup first "
                       "(TOKENRENT_NETWORK_KEY_PATH points elsewhere)", reason="network_key_missing")
    key = mall_saga.network_key()
    msp_url = a.msp_url.rstrip("/")
    client = _client(a.member_id, a.msp_key)
    _msp_key_of(msp_url, a.msp_key)   # another key: said plainly (its signed answers would not verify either)
    directory = _send(client, "GET", msp_url + "/v1/mall/directory")
    answer = _send(client, "GET", msp_url + mall_backup.LATEST_PATH)
    snap = mall_backup.verify_backup(answer, a.member_id, key.public_key())
    if answer.get("pending_movements"):
        raise Conflict(f"{answer['pending_movements']} exchanges of this store are still in flight at the MSP: "
                       "retry the restore once they ended (minutes; the MSP's deadline is 10)",
                       reason="movements_pending")
    return mall_backup.restore(db, answer=answer, snap=snap, directory=directory, msp_url=msp_url,
                               msp_key=a.msp_key, key=key)
