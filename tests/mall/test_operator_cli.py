"""`tokenrent-server msp admin ...` on a real MSP's database (SQLite and
PostgreSQL), seen through the running MSP's directory: each change shows
there and bumps the version; each refusal exits 2, says why, and changes nothing."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.msp import Msp, join_body


def new_member(msp: Msp, name: str = "Vendor") -> str:
    code = msp.admin_json("invite", name)["invitation"]
    r = msp.join(join_body(code, key := Ed25519PrivateKey.generate(), name=name), key)
    assert r.status_code == 201, r.text
    return str(r.json()["member_id"])


def listed(msp: Msp, member_id: str) -> tuple[int, dict]:
    d = msp.get("/v1/mall/directory").json()
    return d["version"], next(m for m in d["members"] if m["member_id"] == member_id)


def test_block_and_unblock_change_the_status_and_bump_the_version(msp):
    member = new_member(msp, "Blockable")
    version, before = listed(msp, member)
    assert before["status"] == "active"
    out = msp.admin_json("block", member, "--reason", "unpaid invoices")
    assert out["status"] == "blocked" and out["directory_version"] > version
    version2, now = listed(msp, member)
    assert now["status"] == "blocked" and version2 == out["directory_version"]
    assert msp.get(f"/v1/mall/members/{member}").json()["status"] == "blocked"
    table = msp.admin("members").stdout
    assert member in table and "blocked: unpaid invoices" in table
    rows = {m["member_id"]: m for m in json.loads(msp.admin("members", "--json").stdout)}
    assert rows[member]["blocked_reason"] == "unpaid invoices"
    out = msp.admin_json("unblock", member)
    assert out["status"] == "active" and out["directory_version"] > version2
    assert listed(msp, member)[1]["status"] == "active"


def test_fees_groups_parent_and_acceptance_show_in_the_directory(msp):
    parent, child, other = new_member(msp, "Parent"), new_member(msp, "Child"), new_member(msp, "Other")
    start, _ = listed(msp, child)
    msp.admin("set-fees", child, "--service-charge-bp", "150", "--royalty-bp", "75", "--fixed-cents", "3",
              "--royalty-mode", "deposit")
    msp.admin("set-parent", child, parent)
    msp.admin("group-add", "north", child)
    msp.admin("group-add", "north", other)
    msp.admin("group-add", "books", child)
    msp.admin("accepts", child, "listed", other, parent)
    version, m = listed(msp, child)
    assert version == start + 6
    assert m["fees"] == {"service_charge_bp": 150, "royalty_bp": 75, "fixed_fee_cents": 3, "royalty_mode": "deposit"}
    assert m["parent"] == parent and m["groups"] == ["books", "north"]
    assert m["accepts"] == {"mode": "listed", "members": sorted([other, parent])}
    assert listed(msp, other)[1]["groups"] == ["north"]
    # setting what is already so is not a change: the version stays
    msp.admin("set-fees", child, "--royalty-bp", "75")
    assert listed(msp, child)[0] == version
    # and back
    msp.admin("set-fees", child, "--service-charge-bp", "0")
    msp.admin("set-parent", child, "--none")
    msp.admin("group-remove", "books", child)
    msp.admin("accepts", child, "all")
    version2, m = listed(msp, child)
    assert version2 == version + 4
    assert m["fees"]["service_charge_bp"] == 0 and m["fees"]["royalty_bp"] == 75
    assert m["parent"] is None and m["groups"] == ["north"] and m["accepts"] == {"mode": "all", "members": []}
    printed = msp.admin_json("directory")
    assert printed["version"] == version2 and child in printed["entries"]


REFUSALS = [
    (("block", "{a}", "--reason", "   "), "reason"),
    (("block", "m-zzzzzzzzzz", "--reason", "x"), "no member m-zzzzzzzzzz"),
    (("unblock", "{a}"), "is not blocked"),
    (("set-fees", "{a}"), "at least one"),
    (("set-fees", "{a}", "--royalty-bp", "10001"), "royalty_bp"),
    (("set-fees", "{a}", "--fixed-cents", "-1"), "fixed_fee_cents"),
    (("set-parent", "{a}", "{a}"), "its own parent"),
    (("set-parent", "{a}", "{b}", "--none"), "not both"),
    (("set-parent", "{a}"), "not both"),
    (("set-parent", "{b}", "{a}"), "cycle"),          # {a}'s parent is {b} (set below)
    (("set-parent", "{a}", "m-zzzzzzzzzz"), "no member"),
    (("group-add", "g1", "{a}"), "already in group g1"),
    (("group-add", "bad name!", "{a}"), "group name"),
    (("group-remove", "g1", "{b}"), "is not in group g1"),
    (("group-remove", "nope", "{a}"), "no group nope"),
    (("accepts", "{a}", "all", "{b}"), "takes no member list"),
    (("accepts", "{a}", "listed", "{a}"), "its own tokens"),
    (("accepts", "{a}", "listed", "m-zzzzzzzzzz"), "no member"),
]


def test_refusals_exit_2_say_why_and_change_nothing(msp):
    a, b = new_member(msp, "Refusals A"), new_member(msp, "Refusals B")
    msp.admin("set-parent", a, b)
    msp.admin("group-add", "g1", a)
    before = msp.get("/v1/mall/directory").json()
    for args, words in REFUSALS:
        res = msp.admin(*(x.format(a=a, b=b) for x in args), check=False)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        problem = json.loads(res.stderr.strip().splitlines()[-1])
        assert words in problem["detail"], (args, problem)
        assert res.stdout == ""
    after = msp.get("/v1/mall/directory").json()
    assert after == before


def test_an_invitation_is_printed_once_and_stored_as_its_digest_only(msp):
    import hashlib

    from sqlalchemy import create_engine, text

    from server_stub.db import normalize_url

    out = msp.admin_json("invite", "Digest Vendor")
    assert out["name"] == "Digest Vendor" and out["invitation"].startswith("inv_")
    engine = create_engine(normalize_url(msp.db_url))
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT code_digest FROM invitations WHERE name = 'Digest Vendor'")).scalars().all()
            everything = " ".join(str(v) for row in conn.execute(text("SELECT * FROM invitations")) for v in row)
    finally:
        engine.dispose()
    assert stored == [hashlib.sha256(out["invitation"].encode()).hexdigest()]
    assert out["invitation"] not in everything


@pytest.mark.parametrize("args", [("invite", ""), ("block",), ("set-fees", "m-aaaaaaaaaa", "--royalty-mode", "cash")])
def test_malformed_commands_are_refused_before_anything_runs(msp, args):
    res = msp.admin(*args, check=False)
    assert res.returncode == 2 and res.stdout == ""
