"""Customers' sessions at the MSP (POST /v1/sessions with an assertion of the home member,
audience "msp"), against a real `msp serve` and a real vendor joined to it (SQLite and
PostgreSQL): an assertion opens one session once, forged, foreign or replayed ones are
401, a blocked member's are 403, and only the token's SHA-256 is stored."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from server_stub.db import normalize_url
from server_stub.network import open_money
from server_stub.network.keys import load_or_create_network_key
from tests.support.network import TWO_MEMBERS, MallNetwork, start_network
from tests.support.server import Server, TestUser


@dataclass
class Home:
    """The MSP and one member (Mall A) whose network key the test also holds, to sign as it."""

    net: MallNetwork
    key: Ed25519PrivateKey

    @property
    def vendor(self) -> Server:
        return self.net.a

    @property
    def member_id(self) -> str:
        return self.net.a_id

    def user(self) -> TestUser:
        return self.vendor.new_user(tokens=150)   # funded past the minimum: active, so it may have assertions

    def assertion(self, user: TestUser) -> str:
        r = self.vendor.api("POST", "/v1/mall-assertions", user, json={"audience": "msp"})
        assert r.status_code == 201, r.text
        return str(r.json()["assertion"])

    def session(self, user: TestUser) -> str:
        r = self.net.msp.post("/v1/sessions", json={"assertion": self.assertion(user)})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def wallet(self, token: str, path: str = "/v1/open-wallet", **kw: Any) -> requests.Response:
        return self.net.msp.get(path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def redeem(self, token: str, code: str) -> requests.Response:
        return self.net.msp.post("/v1/open-wallet/redeem", json={"code": code},
                                 headers={"Authorization": f"Bearer {token}"})

    def customer(self, user: TestUser) -> dict[str, str]:
        return {"home_member": self.member_id, "home_user_id": str(user.id), "full_name": user.full_name}

    def signed(self, method: str, path: str, body: Any = None, key: str | None = None) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else None
        return self.net.msp.signed(method, path, self.key, self.member_id, body, headers=headers)

    def issue(self, user: TestUser, kind: str, tokens: int, price: int, **more: Any) -> dict[str, Any]:
        body = {"operation_id": str(uuid.uuid4()), "kind": kind, "tokens": tokens, "price_cents": price,
                "customer": self.customer(user), **more}
        r = self.signed("POST", "/v1/mall/open-issues", body, key=body["operation_id"])
        assert r.status_code == 200, r.text
        return dict(r.json())

    def gift_certificate(self, buyer: TestUser, tokens: int, recipient: TestUser | None = None,
                         **more: Any) -> tuple[dict[str, Any], str]:
        """A certificate bought by `buyer`, and its code (as the seller derives it)."""
        op = str(uuid.uuid4())
        code = open_money.gift_code(b"secret of " + self.member_id.encode(), op)
        cert: dict[str, Any] = {"code_sha256": open_money.gift_code_digest(code)}
        if recipient is not None:
            cert["recipient"] = self.customer(recipient)
        body = {"operation_id": op, "kind": "gift_certificate", "tokens": tokens, "price_cents": tokens,
                "customer": self.customer(buyer), "gift_certificate": cert, **more}
        r = self.signed("POST", "/v1/mall/open-issues", body, key=op)
        assert r.status_code == 200, r.text
        return dict(r.json()), code


def start_home(backend: str, workdir: Any) -> tuple[Home, Any]:
    net, cleanup = start_network(backend, workdir, members=TWO_MEMBERS[:1])
    key = load_or_create_network_key(net.a.workdir / "data" / "network_key.pem")
    return Home(net, key), cleanup


@pytest.fixture(scope="module")
def home(backend, tmp_path_factory):
    h, cleanup = start_home(backend, tmp_path_factory.mktemp(f"msp-sessions-{backend}"))
    yield h
    cleanup()


def _forged(home: Home, user: TestUser, key: Ed25519PrivateKey, **claims: Any) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    base = {"iss": home.member_id, "aud": "msp", "sub": str(user.id), "name": user.full_name,
            "jti": secrets.token_hex(16), "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(base, key, algorithm="EdDSA", headers={"typ": "tokenrent-mall-assertion+jwt"})


def test_an_assertion_opens_one_session_once(home):
    user = home.user()
    assertion = home.assertion(user)
    r = home.net.msp.post("/v1/sessions", json={"assertion": assertion})
    assert r.status_code == 200, r.text
    token, expires = r.json()["token"], datetime.fromisoformat(r.json()["expires_at"])
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    wallet = home.wallet(token)
    assert wallet.status_code == 200 and wallet.json()["lots"] == [] and wallet.json()["value_cents"] == 0
    replayed = home.net.msp.post("/v1/sessions", json={"assertion": assertion})
    assert replayed.status_code == 401 and "already used" in replayed.json()["detail"]
    # the MSP keeps the token's SHA-256 only, and the customer record of the home ids
    engine = create_engine(normalize_url(home.net.msp.db_url))
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT token_sha256 FROM msp_sessions")).scalars().all()
            everything = " ".join(str(v) for row in conn.execute(text("SELECT * FROM msp_sessions")) for v in row)
            customer = conn.execute(text("SELECT home_member_id, home_user_id, full_name FROM customer_records "
                                         "WHERE home_user_id = :u"), {"u": str(user.id)}).all()
    finally:
        engine.dispose()
    assert hashlib.sha256(token.encode()).hexdigest() in stored and token not in everything
    assert customer == [(home.member_id, str(user.id), user.full_name)]


def test_forged_foreign_and_malformed_assertions_are_refused(home):
    user = home.user()
    stranger = Ed25519PrivateKey.generate()
    refused = [
        _forged(home, user, stranger),                                   # not the member's key
        _forged(home, user, home.key, aud=home.member_id),               # for a member, not the MSP
        _forged(home, user, home.key, iss="m-zzzzzzzzzz"),               # no such member
        _forged(home, user, home.key, exp=datetime.now(UTC) - timedelta(minutes=2)),
        _forged(home, user, home.key, exp=datetime.now(UTC) + timedelta(hours=1)),   # lives too long
        "not.a.jwt.at.all.but.long.enough",
    ]
    for assertion in refused:
        r = home.net.msp.post("/v1/sessions", json={"assertion": assertion})
        assert r.status_code == 401, (assertion, r.text)
    good = _forged(home, user, home.key)       # the member's own key, as its server signs
    assert home.net.msp.post("/v1/sessions", json={"assertion": good}).status_code == 200
    assert home.net.msp.post("/v1/sessions", json={}).status_code == 422
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        assert home.net.msp.get("/v1/open-wallet", headers=headers).status_code == 401


def test_a_blocked_member_opens_no_session(home):
    user = home.user()
    assertion = home.assertion(user)
    home.net.msp.admin("block", home.member_id, "--reason", "test")
    try:
        r = home.net.msp.post("/v1/sessions", json={"assertion": assertion})
        assert r.status_code == 403 and r.json()["reason"] == "member_blocked"
    finally:
        home.net.msp.admin("unblock", home.member_id)
    assert home.net.msp.post("/v1/sessions", json={"assertion": assertion}).status_code == 200   # not spent by the 403
