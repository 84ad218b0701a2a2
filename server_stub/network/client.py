"""The signed client of the mall network: one server calling another under
`/v1/mall/` (docs/mall.md "Signed server-to-server calls").

Every request is JSON (compact), signed with this server's network key; every
answer must carry a signature, bound to that request, by a key `answer_key`
knows. Anything short of a signed final answer is `Unreachable`, and the
caller (the outbox) tries again later with the same Idempotency-Key.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib.request

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .signatures import KeyResolver, SignatureRefused, sign_request, verify_response
from .types import Answer, Unreachable

# Answers that are not final: the sender retries (types.Unreachable).
RETRIED_STATUSES = frozenset({401, 429})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """The URL as the receiver will rebuild it from its Host header: no
    default port (http.client leaves it out of Host), scheme and host lowercase."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if ":" in host:   # an IPv6 literal
        host = f"[{host}]"
    netloc = host if parts.port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{parts.port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body))[:200] if isinstance(body, dict) else str(body)[:200]


class MallClient:
    """Signed JSON calls to other servers. `key_id` is this server's id in
    the network (a callable when it is learnt later, e.g. on joining);
    `answer_key` resolves the key id of an answer (give it only the keys of
    the servers you call). One requests.Session: connections are kept alive
    and reused."""

    def __init__(self, key_id: str | Callable[[], str], key: Ed25519PrivateKey,
                 answer_key: KeyResolver, ca_file: str | None = None, timeout: float = 10.0):
        self._key_id: Callable[[], str] = key_id if callable(key_id) else (lambda: key_id)
        self._key = key
        self._answer_key = answer_key
        self._verify: str | bool = ca_file or True   # the CA bundle, or the system's CAs
        self._timeout = timeout
        self._session = requests.Session()
        # Without proxy variables, reading the environment again on every call (requests' default)
        # only costs time; with them, requests keeps honouring them (and no_proxy).
        self._session.trust_env = bool(urllib.request.getproxies())
        # identity: the answer's Content-Digest is over the bytes sent, which a decoder would change
        self._session.headers.update({"Accept": "application/json", "Accept-Encoding": "identity"})

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> MallClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def send(self, method: str, url: str, body: Any | None = None,
             idempotency_key: str | None = None) -> Answer:
        """One signed call; the checked final answer. Raises Unreachable on a
        connection error, a timeout, a 5xx, 401 or 429, or an answer whose
        signature does not verify."""
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        prepared = self._session.prepare_request(requests.Request(method.upper(), url, headers=headers, data=data))
        prepared.url = canonical_url(str(prepared.url))   # sign exactly what the receiver will see
        sent = {k: v if isinstance(v, str) else v.decode("latin-1") for k, v in prepared.headers.items()}
        signed = sign_request(str(prepared.method), prepared.url, sent, data, self._key_id(), self._key)
        prepared.headers.update(signed)
        sent.update(signed)
        settings = self._session.merge_environment_settings(prepared.url, {}, None, self._verify, None)
        try:
            response = self._session.send(prepared, timeout=self._timeout, allow_redirects=False, **settings)
        except requests.RequestException as e:
            raise Unreachable(f"{method} {url}: {e}") from None
        if response.status_code >= 500 or response.status_code in RETRIED_STATUSES:
            raise Unreachable(f"{method} {url} answered {response.status_code}: {_detail(response)}")
        try:
            verify_response(response.status_code, response.headers, response.content, sent, self._answer_key)
        except SignatureRefused as e:
            raise Unreachable(f"{method} {url}: the answer's signature is not accepted ({e.reason}: {e})") from None
        if not response.content:
            return Answer(response.status_code, None)
        try:
            return Answer(response.status_code, response.json())
        except ValueError:
            raise Unreachable(f"{method} {url} answered {response.status_code} with a body that is not JSON") from None
