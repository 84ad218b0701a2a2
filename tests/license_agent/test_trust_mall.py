"""`license-agent trust --mall MSP_KEY` and `trust ENTRY` through the real CLI: entries signed as
the MSP signs them (server_stub.mall.directory.sign_entry), and a real `msp serve` directory.
A member's code installs only after its entry was trusted; forged entries, another mall's, a
blocked member's, a stale one, or no pinned mall key: refused, nothing trusted."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import codes
from server_stub.mall.directory import sign_entry
from server_stub.mall.schemas import MemberOut
from server_stub.network.keys import public_key_text
from tests.license_agent.conftest import AgentHome
from tests.support.msp import code_key, join_body, start_msp


def member_object(code_keys: list[dict], member_id: str = "m-bbbbbbbbbb", status: str = "active") -> MemberOut:
    return MemberOut.model_validate({
        "member_id": member_id, "name": "Mall B", "base_url": "http://127.0.0.1:9/",
        "network_key": public_key_text(Ed25519PrivateKey.generate()), "code_keys": code_keys,
        "token": {"name": "Token-B", "value_cents": 5}, "status": status, "groups": [], "parent": None,
        "accepts": {"mode": "all", "members": []},
        "fees": {"service_charge_bp": 0, "royalty_bp": 0, "fixed_fee_cents": 0, "royalty_mode": "deposit"}})


def entry_for(msp: Ed25519PrivateKey, member_key: Ed25519PrivateKey, version: int = 3, **kw) -> str:
    return sign_entry(member_object([code_key(member_key)], **kw), version, datetime.now(UTC), msp)


@pytest.fixture()
def fresh(tmp_path, monkeypatch) -> AgentHome:
    """An agent that trusts nothing yet."""
    home = tmp_path / "home"
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(home))
    return AgentHome(home)


def kid_of(key: Ed25519PrivateKey) -> str:
    return codes.kid_for(codes.raw_public_ed25519(key))


def refused(agent: AgentHome, *args: str, exit_code: int, error: str, input: str | None = None) -> dict:
    result = agent.cli(*args, "--json", input=input)
    assert result.returncode == exit_code, result
    assert result.json["error"] == error, result.json
    return result.json


def test_a_members_code_installs_only_after_its_entry_is_trusted(fresh):
    msp, member = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    code = fresh.code("7", "uses", uses=2, signer=member)
    refused(fresh, "install", code, exit_code=4, error="untrusted_signer")

    pinned = fresh.ok("trust", "--mall", public_key_text(msp), "--json").json
    assert pinned == {"msp_key": public_key_text(msp), "added": True, "replaced": None}
    assert fresh.ok("trust", "--mall", public_key_text(msp), "--json").json["added"] is False

    entry = entry_for(msp, member)
    trusted = fresh.ok("trust", entry, "--json").json
    assert trusted["member_id"] == "m-bbbbbbbbbb" and trusted["name"] == "Mall B"
    assert trusted["kids"] == trusted["added"] == [kid_of(member)] and trusted["directory_version"] == 3
    assert fresh.ok("trust", "-", "--json", input=entry + "\n").json["added"] == []   # stdin; idempotent

    installed = fresh.ok("install", code, "--json").json
    assert installed["status"] == "installed" and installed["license"]["remaining"] == 2
    status = fresh.ok("status", "--json").json
    assert status["mall_key"] == public_key_text(msp)
    assert status["trusted_members"] == {kid_of(member): "m-bbbbbbbbbb"}
    assert "Mall B" in fresh.ok("trust", entry).stdout


def test_no_pinned_mall_key_forged_other_mall_blocked_and_stale_are_refused(fresh):
    msp, other_msp, member = (Ed25519PrivateKey.generate() for _ in range(3))
    entry = entry_for(msp, member)
    refused(fresh, "trust", entry, exit_code=4, error="no_mall_key")
    fresh.ok("trust", "--mall", public_key_text(msp))

    refused(fresh, "trust", entry_for(other_msp, member), exit_code=4, error="bad_entry_signature")
    header, claims, signature = entry.split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    body["code_keys"] = [code_key(Ed25519PrivateKey.generate())]          # another key under the MSP's signature
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    refused(fresh, "trust", f"{header}.{forged}.{signature}", exit_code=4, error="bad_entry_signature")
    none_alg = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    refused(fresh, "trust", f"{none_alg}.{claims}.", exit_code=4, error="bad_entry_signature")
    refused(fresh, "trust", entry_for(msp, member, status="blocked"), exit_code=4, error="member_not_active")
    for junk in ("a.b.c", "..", "e30.e30.!!"):
        refused(fresh, "trust", junk, exit_code=2, error="malformed_entry")
    assert fresh.ok("status", "--json").json["trusted_keys"] == []      # nothing trusted by any of them

    fresh.ok("trust", entry_for(msp, member, version=5))
    refused(fresh, "trust", entry_for(msp, Ed25519PrivateKey.generate(), version=4), exit_code=4,
            error="stale_entry")
    assert fresh.ok("status", "--json").json["trusted_keys"] == [kid_of(member)]


def test_a_second_mall_key_needs_replace(fresh):
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    fresh.ok("trust", "--mall", public_key_text(first))
    refused(fresh, "trust", "--mall", public_key_text(second), exit_code=2, error="mall_key_conflict")
    assert fresh.ok("status", "--json").json["mall_key"] == public_key_text(first)
    refused(fresh, "trust", "--replace", fresh.vendor_public_b64, exit_code=2, error="bad_input")
    for bad in ("ed25519:short", base64.b64encode(b"x" * 32).decode(), "ed25519:" + "A" * 42 + "B"):
        refused(fresh, "trust", "--mall", bad, exit_code=2, error="bad_mall_key")
    replaced = fresh.ok("trust", "--mall", "--replace", public_key_text(second), "--json").json
    assert replaced == {"msp_key": public_key_text(second), "added": True, "replaced": public_key_text(first)}
    member = Ed25519PrivateKey.generate()
    refused(fresh, "trust", entry_for(first, member), exit_code=4, error="bad_entry_signature")
    fresh.ok("trust", entry_for(second, member))


def test_the_trust_survives_a_checkpoint_and_the_sdk_speaks_it(fresh, monkeypatch):
    """The journal replays the mall key and the members (also from a checkpoint); the SDK's
    in-process protocol answers as the CLI."""
    from license_agent.agent import Agent
    from license_agent.client import Client
    from license_agent.errors import InvalidCode
    msp, member = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    client = Client(fresh.home, use_daemon=False)
    try:
        assert client.trust_mall(public_key_text(msp))["added"] is True
        with pytest.raises(InvalidCode) as info:
            client.trust_entry(entry_for(Ed25519PrivateKey.generate(), member))
        assert info.value.code == "bad_entry_signature"
        assert client.trust_entry(entry_for(msp, member))["added"] == [kid_of(member)]
    finally:
        client.close()
    with Agent(fresh.home) as agent:
        with agent.state.writing() as append:
            append("checkpoint", agent.model.snapshot())
    with Agent(fresh.home) as agent:
        assert agent.model.msp_key == public_key_text(msp)
        assert agent.model.key_members == {kid_of(member): "m-bbbbbbbbbb"}
    fresh.ok("install", fresh.code("9", "uses", uses=1, signer=member))


@pytest.mark.parametrize("blocked", [False, True], ids=["active", "blocked"])
def test_a_real_msp_directory_entry(backend, tmp_path, fresh, blocked):
    """`msp serve`'s own directory: its msp.network_key pinned, a joined member's entry trusted,
    and a code signed by that member's key installs; once blocked, its entry is refused."""
    msp, cleanup = start_msp(backend, tmp_path / "msp")
    try:
        code_signer, network_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        body = join_body(msp.admin_json("invite", "Mall B")["invitation"], network_key, name="Mall B")
        body["code_keys"] = [code_key(code_signer)]
        joined = msp.join(body, network_key)
        assert joined.status_code == 201, joined.text
        member_id = joined.json()["member_id"]
        if blocked:
            msp.admin("block", member_id, "--reason", "test")
        directory = msp.get("/v1/mall/directory").json()
        fresh.ok("trust", "--mall", directory["msp"]["network_key"])
        code = fresh.code("5", "uses", uses=3, signer=code_signer)
        if blocked:
            refused(fresh, "trust", directory["entries"][member_id], exit_code=4, error="member_not_active")
            refused(fresh, "install", code, exit_code=4, error="untrusted_signer")
        else:
            assert fresh.ok("trust", directory["entries"][member_id], "--json").json["member_id"] == member_id
            assert fresh.ok("install", code, "--json").json["license"]["remaining"] == 3
    finally:
        cleanup()
