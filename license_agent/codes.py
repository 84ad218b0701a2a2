"""The one implementation of the TokenRent authorization-code format.

Used by the vendor's server (``issue_code``) and by the license agent
(``open_code``). Imports nothing else of ours. The format is described in
docs/authorization-codes.md; in short:

    binary = header || ciphertext || signature
    header = version(1) || kid(8) || device_id(16) || ephemeral_x25519_public(32)
    signature = Ed25519(vendor key, b"TRC1-sig" || header || ciphertext)
    key||nonce = HKDF-SHA256(X25519(ephemeral, device), salt=eph_pub||device_pub, info=b"TRC1-payload")
    ciphertext = AES-256-GCM(key, nonce, canonical JSON payload, aad=header)
    text = "TRC1." + base32(binary || check(4)), whitespace, '-' and case ignored

The signature is checked before anything is decrypted, so a changed byte is
refused without touching the device key.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, UTC
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .code_terms import KINDS, STORE_LINK_PREFIX, LicenseKind, product_of_store_link, store_link

__all__ = [
    "CODE_VERSION", "KINDS", "LicenseKind", "STORE_LINK_PREFIX", "store_link", "product_of_store_link",
    "CodeError", "MalformedCode", "UnsupportedVersion", "UntrustedSigner",
    "BadSignature", "WrongDevice", "DecryptionFailed", "Grant", "CodeHeader", "kid_for",
    "device_id_for", "issue_code", "read_header", "open_code", "code_digest",
    "raw_public_ed25519", "raw_public_x25519",
]

CODE_VERSION = "TRC1"


# LicenseKind and the store link live in code_terms (no cryptography: the storefront
# imports them at start-up); they are part of this format and re-exported here.

_VERSION_BYTE = 1
_KID_LEN = 8
_DEVICE_ID_LEN = 16
_EPHEMERAL_LEN = 32
_HEADER_LEN = 1 + _KID_LEN + _DEVICE_ID_LEN + _EPHEMERAL_LEN
_SIGNATURE_LEN = 64
_TAG_LEN = 16  # AES-GCM authentication tag inside the ciphertext
_CHECK_LEN = 4  # typo check on the text form, so a mistyped code is "malformed", not "untrusted"
_SIG_CONTEXT = b"TRC1-sig"
_HKDF_INFO = b"TRC1-payload"
_MAX_TEXT_LEN = 64 * 1024
_TEXT_NOISE = re.compile(r"[\s\-]+")
_TAG_RE = re.compile(r"^([A-Za-z]{3}\d+)\.(.*)$", re.S)


class CodeError(Exception):
    """Base of every authorization-code error; str(e) is a one-line message."""


class MalformedCode(CodeError):
    pass


class UnsupportedVersion(CodeError):
    pass


class UntrustedSigner(CodeError):
    pass


class BadSignature(CodeError):
    pass


class WrongDevice(CodeError):
    pass


class DecryptionFailed(CodeError):
    pass


def kid_for(ed25519_public_raw: bytes) -> str:
    return hashlib.sha256(bytes(ed25519_public_raw)).digest()[:_KID_LEN].hex()


def device_id_for(x25519_public_raw: bytes) -> str:
    return hashlib.sha256(bytes(x25519_public_raw)).digest()[:_DEVICE_ID_LEN].hex()


def raw_public_ed25519(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_public_x25519(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Grant:
    """The payload of a code. Grants are TOTALS for the license, never deltas."""

    license_id: str
    serial: int
    product_id: str
    device_id: str
    kind: str
    issued_at: datetime
    store_url: str
    expires_at: datetime | None = None
    uses: int | None = None
    processings: int | None = None
    low_threshold: int | None = None
    product_name: str = ""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid grant: {problem}")

    def _problem(self) -> str | None:
        for name in ("license_id", "product_id", "device_id", "kind", "store_url", "product_name"):
            if not isinstance(getattr(self, name), str):
                return f"{name} must be a string"
        if not self.license_id or not self.product_id:
            return "license_id and product_id must not be empty"
        if not re.fullmatch(r"[0-9a-f]{32}", self.device_id):
            return "device_id must be 32 lowercase hex characters"
        if self.kind not in KINDS:
            return f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
        if not _is_int(self.serial) or self.serial < 1:
            return "serial must be an integer >= 1"
        for name in ("issued_at", "expires_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                return f"{name} must be an aware datetime"
        if self.issued_at is None:
            return "issued_at is required"
        wanted = {"time": "expires_at", "uses": "uses", "processings": "processings"}.get(self.kind)
        for name in ("expires_at", "uses", "processings"):
            value = getattr(self, name)
            if name == wanted and value is None:
                return f"a {self.kind} grant needs {name}"
            if name != wanted and value is not None:
                return f"a {self.kind} grant must not carry {name}"
        for name in ("uses", "processings", "low_threshold"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                return f"{name} must be a non-negative integer"
        return None

    def to_payload(self) -> dict:
        data = asdict(self)
        data["issued_at"] = _utc_text(self.issued_at)
        if self.expires_at is not None:
            data["expires_at"] = _utc_text(self.expires_at)
        return data

    @classmethod
    def from_payload(cls, data: Mapping) -> Grant:
        try:
            fields = dict(data)
            unknown = set(fields) - set(cls.__dataclass_fields__)
            for name in unknown:  # newer issuers may add fields; this reader ignores them
                fields.pop(name)
            fields["issued_at"] = _parse_utc(fields["issued_at"])
            if fields.get("expires_at") is not None:
                fields["expires_at"] = _parse_utc(fields["expires_at"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedCode(f"authorization code payload is invalid: {exc}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class CodeHeader:
    version: str
    kid: str
    device_id: str


def _derive(shared: bytes, ephemeral_public: bytes, device_public: bytes) -> tuple[bytes, bytes]:
    # Every code has a fresh ephemeral key, so key and nonce are single-use by construction.
    okm = HKDF(algorithm=hashes.SHA256(), length=32 + 12, salt=ephemeral_public + device_public,
               info=_HKDF_INFO).derive(shared)
    return okm[:32], okm[32:]


def _check(binary: bytes) -> bytes:
    return hashlib.sha256(b"TRC1-check" + binary).digest()[:_CHECK_LEN]


def _to_text(binary: bytes) -> str:
    body = base64.b32encode(binary + _check(binary)).decode("ascii").rstrip("=")
    return f"{CODE_VERSION}.{body}"


def issue_code(grant: Grant, signing_key: Ed25519PrivateKey, device_public_key: bytes, *,
               ephemeral_key: X25519PrivateKey | None = None) -> str:
    """Sign and encrypt ``grant`` to the device. ``ephemeral_key`` is only for test vectors."""
    if not isinstance(grant, Grant):
        raise TypeError("grant must be a Grant")
    device_public_key = bytes(device_public_key)
    if len(device_public_key) != 32:
        raise ValueError("device_public_key must be the raw 32-byte X25519 public key")
    if device_id_for(device_public_key) != grant.device_id:
        raise ValueError("grant.device_id does not belong to device_public_key")
    ephemeral_key = ephemeral_key or X25519PrivateKey.generate()
    ephemeral_public = raw_public_x25519(ephemeral_key)
    shared = ephemeral_key.exchange(X25519PublicKey.from_public_bytes(device_public_key))
    key, nonce = _derive(shared, ephemeral_public, device_public_key)
    header = (bytes([_VERSION_BYTE]) + bytes.fromhex(kid_for(raw_public_ed25519(signing_key)))
              + bytes.fromhex(grant.device_id) + ephemeral_public)
    payload = json.dumps(grant.to_payload(), sort_keys=True, separators=(",", ":")).encode()
    ciphertext = AESGCM(key).encrypt(nonce, payload, header)
    signature = signing_key.sign(_SIG_CONTEXT + header + ciphertext)
    return _to_text(header + ciphertext + signature)


def _decode(text: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedCode("authorization code must be text")
    if len(text) > _MAX_TEXT_LEN:
        raise MalformedCode("authorization code is far too long")
    compact = _TEXT_NOISE.sub("", text)
    if not compact:
        raise MalformedCode("authorization code is empty")
    match = _TAG_RE.match(compact)
    if not match:
        raise MalformedCode(f"not an authorization code: it must start with '{CODE_VERSION}.'")
    tag, body = match.group(1), match.group(2)
    if tag.upper() != CODE_VERSION:
        if tag.upper().startswith("TRC"):
            raise UnsupportedVersion(f"authorization code version {tag} is not supported "
                                     f"(this agent reads {CODE_VERSION}); update the agent")
        raise MalformedCode(f"not an authorization code: it must start with '{CODE_VERSION}.'")
    body = body.upper().rstrip("=")
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise MalformedCode("authorization code contains characters that are not base32 "
                            "(was it cut or mistyped?)") from None
    if len(raw) < _HEADER_LEN + _TAG_LEN + _SIGNATURE_LEN + _CHECK_LEN:
        raise MalformedCode("authorization code is too short (was it cut off?)")
    binary, check = raw[:-_CHECK_LEN], raw[-_CHECK_LEN:]
    if _check(binary) != check:
        raise MalformedCode("authorization code is damaged or mistyped (check digits do not match)")
    if binary[0] != _VERSION_BYTE:
        raise UnsupportedVersion(f"authorization code binary version {binary[0]} is not supported")
    return binary


def _header_of(binary: bytes) -> CodeHeader:
    kid = binary[1:1 + _KID_LEN].hex()
    device_id = binary[1 + _KID_LEN:1 + _KID_LEN + _DEVICE_ID_LEN].hex()
    return CodeHeader(version=CODE_VERSION, kid=kid, device_id=device_id)


def read_header(text: str) -> CodeHeader:
    return _header_of(_decode(text))


def code_digest(text: str) -> str:
    """A stable id of a code (SHA-256 hex of its binary form), the same however it was wrapped."""
    return hashlib.sha256(_decode(text)).hexdigest()


def open_code(text: str, device_private_key: X25519PrivateKey,
              trusted_keys: Mapping[str, Ed25519PublicKey]) -> Grant:
    """Verify the vendor signature, check the device, then decrypt. Raises a CodeError subclass."""
    binary = _decode(text)
    header = _header_of(binary)
    signing_key = trusted_keys.get(header.kid)
    if signing_key is None:
        raise UntrustedSigner(f"authorization code is signed by key {header.kid}, which is not trusted "
                              f"(pin the vendor key with 'license-agent trust')")
    if kid_for(raw_public_ed25519(signing_key)) != header.kid:
        raise UntrustedSigner(f"trusted key stored under kid {header.kid} does not match that kid")
    signed, signature = binary[:-_SIGNATURE_LEN], binary[-_SIGNATURE_LEN:]
    try:
        signing_key.verify(signature, _SIG_CONTEXT + signed)
    except InvalidSignature:
        raise BadSignature("authorization code signature is invalid: the code was altered") from None
    device_public = raw_public_x25519(device_private_key)
    my_device = device_id_for(device_public)
    if header.device_id != my_device:
        raise WrongDevice(f"authorization code is for device {header.device_id}, "
                          f"but this device is {my_device}")
    header_bytes, ciphertext = signed[:_HEADER_LEN], signed[_HEADER_LEN:]
    ephemeral_public = header_bytes[-_EPHEMERAL_LEN:]
    try:
        shared = device_private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        key, nonce = _derive(shared, ephemeral_public, device_public)
        payload = AESGCM(key).decrypt(nonce, ciphertext, header_bytes)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("authorization code could not be decrypted with this device's key") from None
    try:
        data = json.loads(payload)
    except ValueError:
        raise MalformedCode("authorization code payload is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedCode("authorization code payload is not an object")
    grant = Grant.from_payload(data)
    if grant.device_id != header.device_id:
        raise MalformedCode("authorization code payload names another device than its header")
    return grant
