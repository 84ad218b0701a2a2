"""Joining the mall and reading its directory, against a real `msp serve`
process (SQLite and PostgreSQL): invite -> signed join -> the directory lists
the member with an entry that verifies with the MSP's key only; every bad
join is refused and creates nothing."""
from __future__ import annotations

import threading

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from server_stub.db import normalize_url
from server_stub.mall.directory import verify_entry
from server_stub.network.keys import public_key_text
from server_stub.network.signatures import verify_response
from tests.support.msp import Msp, code_key, join_body


def count_rows(msp: Msp, table: str) -> int:
    engine = create_engine(normalize_url(msp.db_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def invitation(msp: Msp, name: str = "Vendor") -> str:
    return str(msp.admin_json("invite", name)["invitation"])


def test_invite_join_and_the_directory_lists_the_member_with_a_verifiable_entry(msp):
    key = Ed25519PrivateKey.generate()
    body = join_body(invitation(msp, "Alpha Books"), key, name="Alpha Books", base_url="https://alpha.example/",
                     token_name="Alpha", value_cents=25)
    before = msp.get("/v1/mall/directory").json()["version"]
    r = msp.join(body, key)
    assert r.status_code == 201, r.text
    joined = r.json()
    member_id = joined["member_id"]
    assert member_id.startswith("m-") and len(member_id) == 12
    assert joined["directory_version"] == before + 1
    # the answer is signed by the MSP, bound to this request
    assert verify_response(201, r.headers, r.content, r.request.headers,
                           lambda kid: msp.msp_public_key() if kid == "msp" else None) == "msp"
    assert joined["msp_key"] == public_key_text(msp.msp_public_key())

    d = msp.get("/v1/mall/directory")
    assert d.status_code == 200 and d.headers["ETag"] == f'"{joined["directory_version"]}"'
    directory = d.json()
    assert directory["version"] == joined["directory_version"]
    assert directory["msp"] == {"member_id": "msp", "network_key": joined["msp_key"]}
    (member,) = [m for m in directory["members"] if m["member_id"] == member_id]
    assert member == {
        "member_id": member_id, "name": "Alpha Books", "base_url": "https://alpha.example/",
        "network_key": public_key_text(key), "code_keys": body["code_keys"],
        "token": {"name": "Alpha", "value_cents": 25}, "status": "active", "groups": [], "parent": None,
        "accepts": {"mode": "all", "members": []},
        "fees": {"service_charge_bp": 0, "royalty_bp": 0, "fixed_fee_cents": 0, "royalty_mode": "invoice"},
    }
    claims = verify_entry(directory["entries"][member_id], msp.msp_public_key())
    assert claims["iss"] == "msp" and claims["ver"] == directory["version"]
    assert {k: v for k, v in claims.items() if k not in ("iss", "iat", "ver")} == member
    with pytest.raises(jwt.InvalidSignatureError):
        verify_entry(directory["entries"][member_id], Ed25519PrivateKey.generate().public_key())
    assert msp.get(f"/v1/mall/members/{member_id}").json() == member

    # the same version again is not modified
    again = msp.get("/v1/mall/directory", headers={"If-None-Match": d.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == d.headers["ETag"]
    assert msp.get("/v1/mall/directory", headers={"If-None-Match": '"0"'}).status_code == 200


def test_the_first_answer_to_a_join_is_final(msp):
    key = Ed25519PrivateKey.generate()
    body = join_body(invitation(msp), key)
    first = msp.join(body, key)
    assert first.status_code == 201
    version = msp.get("/v1/mall/directory").json()["version"]
    again = msp.join(body, key)   # the vendor lost the answer and asks again
    assert again.status_code == 201 and again.json() == first.json()
    assert msp.get("/v1/mall/directory").json()["version"] == version


def _refused(msp: Msp, response, status: int, reason: str | None, members_before: int, version_before: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    if reason is not None:
        assert response.json()["reason"] == reason
    assert count_rows(msp, "members") == members_before
    assert msp.get("/v1/mall/directory").json()["version"] == version_before


def test_bad_invitations_are_refused_and_create_nothing(msp):
    used_code = invitation(msp)
    assert msp.join(join_body(used_code, k := Ed25519PrivateKey.generate()), k).status_code == 201
    expired_code = invitation(msp, "Late Vendor")
    engine = create_engine(normalize_url(msp.db_url))
    try:
        with engine.begin() as conn:   # 48 hours later, for this invitation
            conn.execute(text("UPDATE invitations SET expires_at = created_at WHERE name = 'Late Vendor'"))
    finally:
        engine.dispose()
    members, version = count_rows(msp, "members"), msp.get("/v1/mall/directory").json()["version"]
    key = Ed25519PrivateKey.generate()
    _refused(msp, msp.join(join_body(used_code, key), key), 403, "invitation_used", members, version)
    _refused(msp, msp.join(join_body(expired_code, key), key), 403, "invitation_expired", members, version)
    _refused(msp, msp.join(join_body("inv_" + "x" * 32, key), key), 403, "unknown_invitation", members, version)
    assert count_rows(msp, "invitations WHERE used_at IS NOT NULL AND name = 'Late Vendor'") == 0


def test_a_join_signed_by_another_key_than_the_bodys_is_refused(msp):
    code = invitation(msp)
    members, version = count_rows(msp, "members"), msp.get("/v1/mall/directory").json()["version"]
    claimed, signer = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _refused(msp, msp.join(join_body(code, claimed), signer), 401, "bad_signature", members, version)
    _refused(msp, msp.join(join_body(code, claimed), claimed, key_id="m-aaaaaaaaaa"), 401, "unknown_key",
             members, version)
    unsigned = msp.post("/v1/mall/members", json=join_body(code, claimed))
    _refused(msp, unsigned, 401, "missing_signature", members, version)
    # the invitation is still good for the vendor that holds the key
    assert msp.join(join_body(code, claimed), claimed).status_code == 201


@pytest.mark.parametrize("change", [
    {"network_key": "ed25519:short"},
    {"base_url": "ftp://vendor.example/"},
    {"token": {"name": "Coin", "value_cents": 0}},
    {"code_keys": []},
    {"code_keys": [{**code_key(), "kid": "0000000000000000"}]},
    {"name": ""},
    {"surprise": 1},
])
def test_malformed_joins_are_refused_with_422_and_create_nothing(msp, change):
    key = Ed25519PrivateKey.generate()
    body = {**join_body(invitation(msp), key), **change}
    members, version = count_rows(msp, "members"), msp.get("/v1/mall/directory").json()["version"]
    _refused(msp, msp.join(body, key), 422, None, members, version)


def test_a_network_key_joins_once(msp):
    key = Ed25519PrivateKey.generate()
    assert msp.join(join_body(invitation(msp), key), key).status_code == 201
    members, version = count_rows(msp, "members"), msp.get("/v1/mall/directory").json()["version"]
    _refused(msp, msp.join(join_body(invitation(msp), key), key), 409, None, members, version)


def test_unknown_member_and_health(msp):
    assert msp.get("/v1/health").json() == {"status": "ok"}
    r = msp.get("/v1/mall/members/m-zzzzzzzzzz")
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    assert msp.get("/v1/mall/members/not-an-id").status_code == 422


def test_one_invitation_admits_one_vendor_when_several_race(msp):
    code = invitation(msp, "Race")
    members = count_rows(msp, "members")
    keys = [Ed25519PrivateKey.generate() for _ in range(6)]
    start = threading.Barrier(len(keys))
    statuses: list[int] = []

    def attempt(key: Ed25519PrivateKey) -> None:
        racer = Msp(msp.db_url, msp.workdir)   # its own connection
        racer.base_url = msp.base_url
        start.wait()
        statuses.append(racer.join(join_body(code, key, name="Race"), key).status_code)

    threads = [threading.Thread(target=attempt, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [403] * (len(keys) - 1)
    assert count_rows(msp, "members") == members + 1
