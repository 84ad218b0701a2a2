"""HTTP Message Signatures (RFC 9421, `ed25519`) on every server-to-server
request and answer of the mall network (docs/mall.md "Signed server-to-server
calls"). The library `http-message-signatures` builds and checks the
signature base and the Content-Digest (RFC 9530); this module only chooses
the components, the parameters and the keys, and says why a signature is
refused.

- A request covers `@method`, `@target-uri`, `content-digest` (sha-256, also
  for an empty body) and `idempotency-key` when the request carries one, with
  `created`, `keyid`, a random `nonce` and `alg`.
- An answer covers `@status`, `content-digest` and the request's own signature
  (`"signature";req;key="mall"`, RFC 9421 section 2.4), so an answer cannot be
  moved to another request.
- `created` must be within MAX_SKEW_SECONDS of the verifier's clock, both ways.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    VerifyResult,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException

MAX_SKEW_SECONDS = 300
KeyResolver = Callable[[str], Ed25519PublicKey | None]   # key id -> key, None if unknown

SIGNATURE_LABEL = "mall"   # the label of our signatures in Signature-Input / Signature
REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
IDEMPOTENCY_COMPONENT = "idempotency-key"
# the request's signature, as a member of its Signature dictionary (RFC 9421 section 2.4)
REQUEST_SIGNATURE_COMPONENT = f'"signature";req;key="{SIGNATURE_LABEL}"'
ANSWER_COMPONENTS = ("@status", "content-digest", REQUEST_SIGNATURE_COMPONENT)
# A dummy request line for an answer's verifier: only the request's Signature
# field is covered, but the library resolves the request as a whole.
_ANSWERED_REQUEST_METHOD, _ANSWERED_REQUEST_URL = "POST", "http://answered.request.invalid/"


class Refusal(StrEnum):
    """Why a signature is not accepted (SignatureRefused.reason, the 401's `reason`)."""

    MISSING_SIGNATURE = "missing_signature"   # no Signature / Signature-Input at all
    UNKNOWN_KEY = "unknown_key"               # the key id names no key we know
    BAD_SIGNATURE = "bad_signature"           # malformed, wrong coverage, or does not verify
    CLOCK_SKEW = "clock_skew"                 # `created` more than MAX_SKEW_SECONDS off
    EXPIRED = "expired"                       # an `expires` in the past
    DIGEST_MISMATCH = "digest_mismatch"       # the body is not the one the Content-Digest names


class SignatureRefused(Exception):
    """A signature that is not accepted; `reason` is machine-readable, str()
    says it for people."""

    def __init__(self, reason: Refusal, message: str):
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------ messages the library reads

class _Fields:
    """A read-only view of header fields: every field line in order (a
    repeated field is combined by the library, as RFC 9421 section 2.1 says)."""

    def __init__(self, headers: Mapping[str, str]):
        self._items = [(str(k), str(v)) for k, v in headers.items()]

    def items(self) -> Iterable[tuple[str, str]]:
        return self._items

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self._items)


@dataclass
class _Request:
    method: str
    url: str
    headers: Any


@dataclass
class _Response:
    status_code: int
    headers: Any
    request: _Request


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, key: Ed25519PrivateKey):
        self.key_id, self.key = key_id, key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        if key_id != self.key_id:
            raise KeyError(key_id)
        return self.key


class _Lookup(HTTPSignatureKeyResolver):
    """The caller's resolver, remembering whether it knew the key id (the
    library only says "unable to resolve") and any error it raised (a
    database failure is not a bad signature)."""

    def __init__(self, resolve_key: KeyResolver):
        self.resolve_key = resolve_key
        self.unknown: str | None = None
        self.error: BaseException | None = None

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        try:
            key = self.resolve_key(key_id)
        except Exception as e:
            self.error = e
            return None
        if key is None:
            self.unknown = key_id
        return key


class _Verifier(HTTPMessageVerifier):
    """The library's verifier with our clock rule: `created` within
    MAX_SKEW_SECONDS of `now`, both ways (its own rule has a 5 s skew and a
    maximum age, and reads the system clock)."""

    def __init__(self, resolver: _Lookup, now: datetime):
        super().__init__(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
        self.now = now.timestamp()

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        created = sig_input.params.get("created")
        if type(created) is not int:
            raise SignatureRefused(Refusal.BAD_SIGNATURE, 'the signature has no integer "created" time')
        off = created - self.now
        if abs(off) > MAX_SKEW_SECONDS:
            raise SignatureRefused(Refusal.CLOCK_SKEW,
                                   f"the signature was created {abs(off):.0f} s {'after' if off > 0 else 'before'} "
                                   f"this server's clock (at most {MAX_SKEW_SECONDS} s either way); check both clocks")
        expires = sig_input.params.get("expires")
        if expires is not None and (type(expires) is not int or expires < self.now):
            raise SignatureRefused(Refusal.EXPIRED, "the signature has expired")


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("`now` must be an aware datetime")
    return now


def _has_field(headers: Mapping[str, str], name: str) -> bool:
    return any(k.lower() == name for k in headers)


# ------------------------------------------------------------------ digests

def content_digest(body: bytes) -> str:
    """The Content-Digest field of `body` (RFC 9530, sha-256)."""
    return ContentDigest.create(body)


def check_content_digest(value: str, body: bytes) -> None:
    """SignatureRefused(digest_mismatch) unless the Content-Digest `value`
    (sha-256 or sha-512 members) matches `body`."""
    try:
        ContentDigest.verify(value, body)
    except InvalidSignature as e:
        raise SignatureRefused(Refusal.DIGEST_MISMATCH, f"the body does not match its Content-Digest: {e}") from None


# ------------------------------------------------------------------ signing

def _sign(message: _Request | _Response, body: bytes, components: Iterable[str], key_id: str,
          key: Ed25519PrivateKey, now: datetime | None) -> dict[str, str]:
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key_id, key))
    try:
        signer.sign(message, key_id=key_id, created=_utc(now), nonce=secrets.token_urlsafe(16),
                    label=SIGNATURE_LABEL, include_alg=True, covered_component_ids=tuple(components),
                    body=body)
    except HTTPMessageSignaturesException as e:
        raise ValueError(f"cannot sign this message: {e}") from None
    return {name: message.headers[name] for name in ("Content-Digest", "Signature-Input", "Signature")}


def sign_request(method: str, url: str, headers: Mapping[str, str], body: bytes,
                 key_id: str, key: Ed25519PrivateKey, now: datetime | None = None) -> dict[str, str]:
    """The headers to ADD to a request: Content-Digest, Signature-Input,
    Signature. `url` is the absolute URL exactly as it will be sent."""
    components = REQUEST_COMPONENTS + ((IDEMPOTENCY_COMPONENT,) if _has_field(headers, IDEMPOTENCY_COMPONENT) else ())
    return _sign(_Request(method.upper(), url, dict(headers)), body, components, key_id, key, now)


def sign_response(status: int, headers: Mapping[str, str], body: bytes, request_headers: Mapping[str, str],
                  key_id: str, key: Ed25519PrivateKey, now: datetime | None = None) -> dict[str, str]:
    """The headers to ADD to an answer, bound to the request's signature.
    ValueError when the request carries no signature of ours to bind to."""
    if not _has_field(request_headers, "signature"):
        raise ValueError("the request carries no signature to bind the answer to")
    request = _Request(_ANSWERED_REQUEST_METHOD, _ANSWERED_REQUEST_URL, _Fields(request_headers))
    return _sign(_Response(status, dict(headers), request), body, ANSWER_COMPONENTS, key_id, key, now)


# ------------------------------------------------------------------ verifying

def _verified_signature(message: _Request | _Response, resolve_key: KeyResolver, required: Iterable[str],
                        now: datetime | None) -> VerifyResult:
    """The one signature of `message`, checked: clock, key, coverage of
    `required`, the signature itself. Raises SignatureRefused."""
    if not (_has_field(message.headers, "signature") and _has_field(message.headers, "signature-input")):
        raise SignatureRefused(Refusal.MISSING_SIGNATURE, "the message is not signed (no Signature and Signature-Input)")
    lookup = _Lookup(resolve_key)
    verifier = _Verifier(lookup, _utc(now))
    try:
        (result,) = verifier.verify(message, max_age=None, require_components=tuple(required))
    except SignatureRefused:
        raise
    except HTTPMessageSignaturesException as e:
        if lookup.error is not None:
            raise lookup.error from None
        if lookup.unknown is not None:
            raise SignatureRefused(Refusal.UNKNOWN_KEY, f"the key id {lookup.unknown!r} is not known here") from None
        raise SignatureRefused(Refusal.BAD_SIGNATURE,
                               f"the signature does not verify: {e or 'it does not match the message'}") from None
    return result


def _check_body(result: VerifyResult, body: bytes) -> None:
    """The covered Content-Digest must match `body`."""
    try:
        covered = ContentDigest.verify_components(result.covered_components, body)
    except InvalidSignature as e:
        raise SignatureRefused(Refusal.DIGEST_MISMATCH, f"the body does not match its Content-Digest: {e}") from None
    if not covered:   # unreachable: every verify requires content-digest; kept so a change cannot skip it
        raise SignatureRefused(Refusal.BAD_SIGNATURE, "the signature does not cover the Content-Digest")


def signing_key_id(headers: Mapping[str, str]) -> str:
    """The key id a message's one signature names in its Signature-Input, so that the key can
    be looked up before the signature is checked (on the event loop, without a thread: see
    signed_routes). It proves nothing by itself; raises SignatureRefused."""
    if not (_has_field(headers, "signature") and _has_field(headers, "signature-input")):
        raise SignatureRefused(Refusal.MISSING_SIGNATURE, "the message is not signed (no Signature and Signature-Input)")
    field = ", ".join(v for k, v in _Fields(headers).items() if k.lower() == "signature-input")
    try:
        inputs = http_sf.parse(field.encode("latin-1"), tltype="dictionary")
    except Exception:   # the parser's errors have no common class of their own
        raise SignatureRefused(Refusal.BAD_SIGNATURE, "the Signature-Input field is not a structured dictionary") from None
    members: list[Any] = list(inputs.values()) if isinstance(inputs, dict) else []
    if len(members) != 1 or not isinstance(members[0], tuple) or len(members[0]) != 2:
        raise SignatureRefused(Refusal.BAD_SIGNATURE, "exactly one signature is expected")
    params = members[0][1]
    key_id = params.get("keyid") if isinstance(params, dict) else None
    if not isinstance(key_id, str) or not key_id:
        raise SignatureRefused(Refusal.BAD_SIGNATURE, "the signature names no key id")
    return key_id


def verify_request(method: str, url: str, headers: Mapping[str, str], body: bytes,
                   resolve_key: KeyResolver, now: datetime | None = None) -> str:
    """The key id that signed this request; raises SignatureRefused.
    `url` is the absolute URL the request was sent to."""
    required = REQUEST_COMPONENTS + ((IDEMPOTENCY_COMPONENT,) if _has_field(headers, IDEMPOTENCY_COMPONENT) else ())
    result = _verified_signature(_Request(method.upper(), url, _Fields(headers)), resolve_key, required, now)
    _check_body(result, body)
    return str(result.parameters["keyid"])


def verify_response(status: int, headers: Mapping[str, str], body: bytes, request_headers: Mapping[str, str],
                    resolve_key: KeyResolver, now: datetime | None = None) -> str:
    """The key id that signed this answer to the request whose headers are
    `request_headers` (as sent, signature included); raises SignatureRefused."""
    request = _Request(_ANSWERED_REQUEST_METHOD, _ANSWERED_REQUEST_URL, _Fields(request_headers))
    result = _verified_signature(_Response(status, _Fields(headers), request), resolve_key, ANSWER_COMPONENTS, now)
    _check_body(result, body)
    return str(result.parameters["keyid"])
