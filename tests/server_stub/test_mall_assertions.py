"""Sign-on at another member with the home member's assertion
(server_stub/services/mall_assertions.py), in-process: this database plays the
audience B, the test holds the home member A's network key."""
from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.db import read_session, write_session
from server_stub.models.base import utcnow
from server_stub.models.mall import MallLink
from server_stub.models.user import User
from server_stub.network.keys import public_key_text
from server_stub.services import accounts, mall, mall_assertions
from server_stub.services.errors import ApiError

B, A, C = "m-bbbbbbbbbb", "m-aaaaaaaaaa", "m-cccccccccc"
MSP_KEY = "ed25519:" + "A" * 43
A_KEY, C_KEY, B_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def member(member_id, key, status="active"):
    return {"member_id": member_id, "name": f"Mall {member_id[-1]}", "base_url": f"http://{member_id}",
            "network_key": public_key_text(key), "code_keys": [], "token": {"name": "T", "value_cents": 10},
            "status": status, "groups": [], "parent": None, "accepts": "all"}


@pytest.fixture()
def db_url(backend, tmp_path):
    from tests.support.server import migrated_database

    with migrated_database(backend, tmp_path, data_dir=str(tmp_path), argon2_memory_kib=8192,
                           argon2_time_cost=1) as url:
        with write_session() as db:
            mall.record_membership(db, member_id=B, msp_url="http://msp", msp_key=MSP_KEY, directory={
                "version": 1, "msp": {"member_id": "msp", "network_key": MSP_KEY},
                "members": [member(A, A_KEY), member(B, B_KEY), member(C, C_KEY, status="blocked")]})
        yield url


def assertion(key=A_KEY, iss=A, aud=B, sub="7", jti="j1", lifetime=300, age=0, typ=mall_assertions.TYPE, **extra):
    now = utcnow().replace(microsecond=0) - timedelta(seconds=age)
    claims = {"iss": iss, "aud": aud, "sub": sub, "name": "Ann Home", "jti": jti, "iat": now,
              "exp": now + timedelta(seconds=lifetime), **extra}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": typ})


def sign_on(token):
    with write_session() as db:
        return mall_assertions.session_from_assertion(db, token)


def refused(token):
    with pytest.raises(ApiError) as e:
        sign_on(token)
    return e.value.status_code


def test_an_assertion_opens_a_session_for_one_linked_account(db_url):
    session_token, _ = sign_on(assertion(jti="first"))
    sign_on(assertion(jti="second"))
    with read_session() as db:
        links = db.query(MallLink).all()
        assert [(x.home_member_id, x.home_user_id) for x in links] == [(A, "7")]
        user = accounts.user_for_token(db, session_token)
        assert user is not None and user.id == links[0].user_id and user.full_name == "Ann Home"


def test_an_assertion_is_used_once(db_url):
    token = assertion(jti="once")
    sign_on(token)
    assert refused(token) == 401


@pytest.mark.parametrize("make", [
    lambda: assertion(key=C_KEY),                       # signed by another key than the issuer's
    lambda: assertion(aud=C),                           # for another audience
    lambda: assertion(iss="m-nobodyhere"),              # issuer not in the mall
    lambda: assertion(iss=B, key=B_KEY),                # from this store itself
    lambda: assertion(age=600),                         # expired (a clock 10 minutes off)
    lambda: assertion(age=-600),                        # from the future
    lambda: assertion(lifetime=3600),                   # lives too long
    lambda: assertion(typ="JWT"),                       # not a mall assertion
    lambda: "not.a.jwt",
    lambda: jwt.encode({"iss": A, "aud": B, "sub": "7", "jti": "h", "iat": utcnow(),
                        "exp": utcnow() + timedelta(minutes=1)}, "s" * 32, algorithm="HS256",
                       headers={"typ": mall_assertions.TYPE}),
])
def test_forged_or_foreign_assertions_are_refused_and_create_nothing(db_url, make):
    assert refused(make()) == 401
    with read_session() as db:
        assert db.query(MallLink).count() == 0


def test_a_blocked_issuer_is_refused(db_url):
    assert refused(assertion(iss=C, key=C_KEY)) == 403


def test_the_home_member_issues_assertions_only_for_active_members(db_url):
    with write_session() as db:
        u = accounts.create_user(db, username="local", password="password 123", pin="1234",
                                 full_name="Local User", email="l@example.com")
        u.status = "active"
        db.flush()
        token, expires = mall_assertions.issue_assertion(db, u, A, B_KEY)
        for bad in (C, B, "m-nobodyhere"):
            with pytest.raises(ApiError):
                mall_assertions.issue_assertion(db, u, bad, B_KEY)
    claims = jwt.decode(token, B_KEY.public_key(), algorithms=["EdDSA"], audience=A)
    assert claims["iss"] == B and claims["sub"] == str(u.id) and claims["exp"] - claims["iat"] == 300
    with read_session() as db:
        assert db.get(User, u.id) is not None
