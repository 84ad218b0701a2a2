"""The FastAPI side of signed server-to-server calls (docs/mall.md "Signed
server-to-server calls"):

- `signed_caller(lookup_key)`: a dependency that verifies the request's
  signature and gives the route the caller's key id; a refusal is a 401
  problem with the machine-readable `reason`.
- `SignAnswersMiddleware`: signs every answer under a path prefix, bound to
  the signed request it answers.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..services.errors import ApiError
from .signatures import SignatureRefused, sign_response, signing_key_id, verify_request

MALL_PREFIX = "/v1/mall/"
Signer = Callable[[], tuple[str, Ed25519PrivateKey] | None]
KeyLookup = Callable[[str], Awaitable[Ed25519PublicKey | None]]   # key id -> key, None if unknown


class SignatureNotAccepted(ApiError):
    """401: the request's signature is missing, unknown, stale or wrong;
    the problem's `reason` is signatures.Refusal's value. Nothing happened."""

    status_code = 401

    def __init__(self, refused: SignatureRefused):
        super().__init__(str(refused), headers={"WWW-Authenticate": "Signature"}, reason=str(refused.reason))
        self.reason = refused.reason


def request_target_uri(scope: Scope) -> str:
    """The absolute URL the client sent the request to, as it signed it: the
    scheme of the connection, the Host header, the path and query exactly as
    they were on the wire (scope["path"] is percent-decoded, raw_path is not)."""
    host = Headers(scope=scope).get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string", b"")
    target = f"{scope.get('scheme', 'http')}://{host}{raw_path.decode('latin-1')}"
    return target + ("?" + query.decode("latin-1") if query else "")


def signed_caller(lookup_key: KeyLookup) -> Callable[[Request], Awaitable[str]]:
    """A FastAPI dependency: the key id that signed this request, or a 401.
    `lookup_key(key_id)` is awaited per request (a member's key may change), with the key id the
    request names; the signature is then checked on the loop: a worker-thread hop costs more than
    the check (docs/performance.md, issue 13). A lookup that fails (the database) is an error,
    not a bad signature. The route's own body model still works (the body is read once, cached)."""

    async def verified_caller(request: Request) -> str:
        body = await request.body()
        target = request_target_uri(request.scope)
        try:
            key_id = signing_key_id(request.headers)
            key = await lookup_key(key_id)
            return verify_request(request.method, target, request.headers, body,
                                  lambda named: key if named == key_id else None)
        except SignatureRefused as e:
            raise SignatureNotAccepted(e) from None

    return verified_caller


class SignAnswersMiddleware:
    """Pure ASGI: every answer under `prefix` to a signed request is signed
    with `signer()`'s (key id, key), covering its status, its body's digest
    and the request's signature. The body is buffered (answers here are
    small JSON). Left unsigned: answers to unsigned requests (nothing to bind
    to) and every answer while `signer()` returns None. `signer` is called
    once per answer: keep it cheap (hold the loaded key)."""

    def __init__(self, app: ASGIApp, prefix: str = MALL_PREFIX, signer: Signer = lambda: None):
        self.app, self.prefix, self.signer = app, prefix, signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        signing = self.signer() if "signature" in request_headers else None
        if signing is None:
            await self.app(scope, receive, send)
            return
        key_id, key = signing
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_signed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(raw=list(start["headers"]))
            try:
                added = sign_response(int(start["status"]), headers, body, request_headers, key_id, key)
            except ValueError:   # the request's Signature holds no signature of ours: nothing to bind to
                added = {}
            for name, value in added.items():
                headers.append(name, value)
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_signed)
