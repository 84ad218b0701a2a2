"""`msp admin rekey`: a member that lost its network key file is given its new key by the
operator; the old key signs nothing any more, a bad or taken key changes nothing."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.db import read_session, write_session
from server_stub.mall import members
from server_stub.mall.models import Member
from server_stub.network.keys import public_key_text
from server_stub.services.errors import ApiError
from tests.mall.test_notifications import add_member
from tests.support.msp import join_body
from tests.support.server import ROOT


def test_a_new_key_replaces_the_old_one_and_moves_the_directory(mall_db):
    with write_session() as db:
        m = add_member(db, "Lost", 10)
        before = members.directory_version(db)[0]
    new = public_key_text(Ed25519PrivateKey.generate().public_key())
    with write_session() as db:
        members.rekey(db, m, new, "the vendor lost its disk; checked by phone")
    with read_session() as db:
        assert db.get(Member, m).network_key == new
        assert members.directory_version(db)[0] == before + 1


@pytest.mark.parametrize("key, reason, status", [
    ("ed25519:nope", "lost", 422),
    (None, "", 422),
    ("same", "lost", 409),
    ("other's", "lost", 409),
])
def test_a_bad_taken_or_unchanged_key_changes_nothing(mall_db, key, reason, status):
    with write_session() as db:
        m = add_member(db, "Careful", 10)
        other = add_member(db, "Other", 5)
        keys = {mid: db.get(Member, mid).network_key for mid in (m, other)}
        version = members.directory_version(db)[0]
    key = {"same": keys[m], "other's": keys[other]}.get(key, key) if key else \
        public_key_text(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ApiError) as e, write_session() as db:
        members.rekey(db, m, key, reason)
    assert e.value.status_code == status
    with read_session() as db:
        assert {mid: db.get(Member, mid).network_key for mid in (m, other)} == keys
        assert members.directory_version(db)[0] == version


def test_the_old_key_signs_nothing_after_a_rekey(msp):
    old = Ed25519PrivateKey.generate()
    code = msp.admin_json("invite", "Rekeyed")["invitation"]
    member_id = msp.join(join_body(code, old, name="Rekeyed"), old).json()["member_id"]
    new = Ed25519PrivateKey.generate()
    new_text = public_key_text(new.public_key())
    msp_key_before = msp.msp_public_key()
    out = msp.admin_json("rekey", member_id, new_text, "--reason", "lost its key file")
    assert out["member_id"] == member_id
    # the member's key is an argument, never taken for the path of the MSP's own key file
    assert not (ROOT / new_text).exists() and msp.msp_public_key() == msp_key_before
    body = {"event": "grant", "tokens": 5, "at": "2026-12-01T12:00:00+00:00"}
    refused = msp.signed("POST", "/v1/mall/notices", old, member_id, body, headers={"Idempotency-Key": "grant:1"})
    taken = msp.signed("POST", "/v1/mall/notices", new, member_id, body, headers={"Idempotency-Key": "grant:1"})
    assert refused.status_code == 401 and taken.status_code == 200, (refused.text, taken.text)


def test_the_vendor_prints_its_network_key_for_the_operator(server):
    out = json.loads(server.admin_cli("network-key").stdout)
    again = json.loads(server.admin_cli("network-key").stdout)
    assert out == again and out["network_key"].startswith("ed25519:") and len(out["network_key"]) == 51
