"""The mall's word on a member's code keys: the MSP key pinned once (`trust --mall MSP_KEY`),
then a member's directory entry (`trust ENTRY`), a compact JWT the MSP signed with that key
(server_stub/mall/directory.py). Checked with `cryptography` directly, not PyJWT: the agent
stays light, and only these few rules matter here (EdDSA only, iss "msp", the member active,
each code key's kid its own). Loaded only when trusting, never on the gate's path."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .codes import kid_for
from .errors import BadInput, InvalidCode

MSP_KEY_PREFIX = "ed25519:"
MSP_ISSUER = "msp"                  # server_stub/mall/vocabulary.py MSP_ID
ENTRY_ALGORITHM = "EdDSA"
ACTIVE = "active"                   # server_stub/mall/vocabulary.py MemberStatus.ACTIVE
MAX_ENTRY_CHARS = 64 * 1024
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_MSP_KEY = re.compile(r"^ed25519:[A-Za-z0-9_-]{43}$")
_MEMBER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


@dataclass(frozen=True)
class VouchedKey:
    kid: str
    public_key: str                 # base64 (standard) of the raw Ed25519 key, as the agent journals it


@dataclass(frozen=True)
class MemberEntry:
    member_id: str
    name: str
    version: int                    # the directory version the entry was signed at (`ver`)
    keys: tuple[VouchedKey, ...]    # the code keys whose kid matched
    skipped: tuple[str, ...]        # kids listed that are not the kid of their key


def is_entry(text: str) -> bool:
    """A compact JWT has two dots; a bare base64 key has none."""
    return isinstance(text, str) and text.strip().count(".") == 2


def parse_msp_key(text: Any) -> str:
    """The MSP's network key as its directory writes it (`ed25519:` + base64url, no padding);
    returned in that canonical form."""
    if not isinstance(text, str) or not _MSP_KEY.match(text.strip()):
        raise BadInput("the mall key must be the MSP's network key: 'ed25519:' and 43 base64url characters "
                       "(its directory's msp.network_key)", code="bad_mall_key")
    text = text.strip()
    raw = _b64url(text[len(MSP_KEY_PREFIX):], "the mall key")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise BadInput("the mall key is not a valid Ed25519 key", code="bad_mall_key") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text[len(MSP_KEY_PREFIX):]:
        raise BadInput("the mall key is not written canonically", code="bad_mall_key")
    return text


def verify_entry(entry: str, msp_key: str) -> MemberEntry:
    """The member an entry vouches for, if the pinned MSP key signed it and the member is
    active. BadInput (malformed_entry) for text that is no entry; InvalidCode otherwise."""
    compact = "".join(entry.split()) if isinstance(entry, str) else ""
    if not compact or len(compact) > MAX_ENTRY_CHARS or compact.count(".") != 2:
        raise _malformed("a directory entry is a compact JWT: three base64url parts joined by dots")
    header_b64, claims_b64, signature_b64 = compact.split(".")
    header = _json_part(header_b64, "header")
    claims = _json_part(claims_b64, "claims")
    signature = _b64url(signature_b64, "the entry's signature", malformed=True)
    if header.get("alg") != ENTRY_ALGORITHM:
        raise InvalidCode(f"the directory entry is signed with {header.get('alg')!r}, not {ENTRY_ALGORITHM}",
                          code="bad_entry_signature")
    public = Ed25519PublicKey.from_public_bytes(_b64url(msp_key[len(MSP_KEY_PREFIX):], "the mall key"))
    try:
        public.verify(signature, f"{header_b64}.{claims_b64}".encode("ascii"))
    except InvalidSignature:
        raise InvalidCode("the directory entry was not signed by the pinned mall key (forged, altered, or "
                          "from another mall)", code="bad_entry_signature") from None
    if claims.get("iss") != MSP_ISSUER:
        raise InvalidCode(f"the directory entry's issuer is {claims.get('iss')!r}, not {MSP_ISSUER!r}",
                          code="bad_entry_signature")
    member_id, name, version = claims.get("member_id"), claims.get("name", ""), claims.get("ver")
    if not isinstance(member_id, str) or not _MEMBER_ID.match(member_id):
        raise _malformed("the directory entry has no valid member_id")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise _malformed("the directory entry has no valid ver")
    if claims.get("status") != ACTIVE:
        raise InvalidCode(f"member {member_id} is {claims.get('status')!r} in the mall's directory, not active: "
                          f"its code keys are not trusted", code="member_not_active")
    listed = claims.get("code_keys")
    if not isinstance(listed, list) or not listed:
        raise _malformed("the directory entry lists no code_keys")
    keys, skipped = [], []
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("kid"), str):
            raise _malformed("a code key of the directory entry is not {kid, public_key}")
        raw = _b64std(item.get("public_key"))
        if raw is not None and kid_for(raw) == item["kid"]:
            keys.append(VouchedKey(item["kid"], base64.b64encode(raw).decode()))
        else:
            skipped.append(item["kid"])
    if not keys:
        raise InvalidCode(f"no code key of member {member_id}'s entry matches its kid", code="bad_entry_keys")
    return MemberEntry(member_id, name if isinstance(name, str) else "", version, tuple(keys), tuple(skipped))


def _malformed(message: str) -> BadInput:
    return BadInput(message, code="malformed_entry")


def _b64url(text: str, what: str, malformed: bool = False) -> bytes:
    if not _B64URL.match(text):
        raise (_malformed if malformed else BadInput)(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise (_malformed if malformed else BadInput)(f"{what} is not base64url") from None


def _b64std(text: Any) -> bytes | None:
    """A raw 32-byte Ed25519 key in standard base64, or None."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        return None
    return raw


def _json_part(text: str, what: str) -> dict:
    try:
        value = json.loads(_b64url(text, f"the entry's {what}", malformed=True))
    except (ValueError, UnicodeDecodeError):
        raise _malformed(f"the entry's {what} is not JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"the entry's {what} is not a JSON object")
    return value
