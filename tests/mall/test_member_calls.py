"""Calls a member signs with its own network key (keyid = its member id),
against a real `msp serve` (SQLite and PostgreSQL): a member updates its own
record (a code-key rotation), and nobody else's; unknown or wrong keys are 401."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.db import write_session
from server_stub.mall import members
from server_stub.mall.directory import verify_entry
from server_stub.mall.schemas import JoinIn
from server_stub.services.errors import ApiError
from tests.support.msp import Msp, code_key, join_body


def joined(msp: Msp, name: str) -> tuple[str, Ed25519PrivateKey, dict]:
    key = Ed25519PrivateKey.generate()
    body = join_body(msp.admin_json("invite", name)["invitation"], key, name=name)
    r = msp.join(body, key)
    assert r.status_code == 201, r.text
    return r.json()["member_id"], key, body


def test_a_member_rotates_its_code_keys_and_the_directory_follows(msp):
    member_id, key, body = joined(msp, "Rotating")
    version = msp.get("/v1/mall/directory").json()["version"]
    keys = [*body["code_keys"], code_key()]   # the old key stays trusted, the new one signs from now on
    r = msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, member_id,
                   {"code_keys": keys, "base_url": "https://rotating.example/store/"})
    assert r.status_code == 200, r.text
    assert r.json()["code_keys"] == keys and r.json()["base_url"] == "https://rotating.example/store/"
    d = msp.get("/v1/mall/directory").json()
    assert d["version"] == version + 1
    assert verify_entry(d["entries"][member_id], msp.msp_public_key())["code_keys"] == keys
    same = msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, member_id, {"code_keys": keys})
    assert same.status_code == 200 and msp.get("/v1/mall/directory").json()["version"] == version + 1


def test_only_the_member_itself_with_its_own_key_may_change_its_record(msp):
    member_id, key, body = joined(msp, "Owner")
    other_id, other_key, _ = joined(msp, "Intruder")
    before = msp.get(f"/v1/mall/members/{member_id}").json()
    change = {"name": "Taken Over"}
    cases = [
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", other_key, other_id, change), 403, None),
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", other_key, member_id, change), 401, "bad_signature"),
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, "m-zzzzzzzzzz", change), 401, "unknown_key"),
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, "joining", change), 401, "unknown_key"),
        (msp.http.patch(f"{msp.base_url}/v1/mall/members/{member_id}", json=change, timeout=30), 401,
         "missing_signature"),
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, member_id, {}), 422, None),
        (msp.signed("PATCH", f"/v1/mall/members/{member_id}", key, member_id,
                    {"code_keys": [body["code_keys"][0]] * 2}), 422, None),
    ]
    for response, status, reason in cases:
        assert response.status_code == status, response.text
        if reason:
            assert response.json()["reason"] == reason
    assert msp.get(f"/v1/mall/members/{member_id}").json() == before


def test_a_blocked_member_starts_no_operation(mall_db):
    with write_session() as db:
        code, _ = members.invite(db, "Blocked")
    with write_session() as db:
        member_id = members.join(db, JoinIn.model_validate(join_body(code, Ed25519PrivateKey.generate()))
                                 ).member.member_id
    with write_session() as db:
        assert members.require_active(db, member_id).member_id == member_id
        members.block(db, member_id, "test")
    with pytest.raises(ApiError) as refused:
        with write_session() as db:
            members.require_active(db, member_id)
    assert refused.value.status_code == 403 and refused.value.extra["reason"] == "member_blocked"
