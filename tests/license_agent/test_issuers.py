"""Licenses scoped by their issuer: every store numbers its products and licenses from 1, so the
agent keys a license by (issuer, license id), the issuer being the member the mall vouched for
the code's key (or the home scope for keys pinned by hand). A product is named `ISSUER/ID`
(`home/ID` for the home scope); a bare id that two issuers carry is refused (exit 2). Real CLI,
real codes, entries signed as the MSP signs them; an old state written by the agent from before
issuers (this repository's own history) keeps working."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent.client import Client
from server_stub.network.keys import public_key_text
from tests.license_agent.conftest import ROOT, AgentHome
from tests.license_agent.test_trust_mall import entry_for

B, C = "m-bbbbbbbbbb", "m-cccccccccc"
# The last commit whose agent knew no issuers: the "old install" the migration starts from.
BEFORE_ISSUERS = "6ffabbc"


@pytest.fixture()
def mall_agent(agent_home: AgentHome):
    """The home vendor's key pinned by hand, the mall's key pinned, members B and C trusted."""
    msp, b_key, c_key = (Ed25519PrivateKey.generate() for _ in range(3))
    agent_home.ok("trust", "--mall", public_key_text(msp))
    agent_home.ok("trust", entry_for(msp, b_key, member_id=B))
    agent_home.ok("trust", entry_for(msp, c_key, member_id=C))
    return agent_home, b_key, c_key


def licenses(agent: AgentHome) -> dict:
    return {lic["product_ref"]: lic for lic in agent.ok("status", "--json").json["licenses"]}


def test_product_1_license_1_at_home_and_at_a_member_live_side_by_side(mall_agent):
    agent, b_key, _c_key = mall_agent
    home = agent.install("1", "uses", license_id="1", uses=3)
    member = agent.ok("install", agent.code("1", "uses", license_id="1", uses=5, signer=b_key, serial=1),
                      "--json").json
    assert home["status"] == member["status"] == "installed"     # was conflicting_code before issuers
    assert member["license"]["issuer"] == B and member["license"]["product_ref"] == f"{B}/1"
    held = licenses(agent)
    assert set(held) == {"home/1", f"{B}/1"}
    assert held["home/1"]["issuer"] is None and held["home/1"]["store_url"] == "tokenrent://product/1"
    assert held[f"{B}/1"]["store_url"] == f"tokenrent://product/{B}/1"   # "buy more" leads to B's store

    ambiguous = agent.cli("check", "1", "--json")
    assert ambiguous.returncode == 2 and ambiguous.json["error"] == "ambiguous_product"
    assert "home/1" in ambiguous.json["message"] and f"{B}/1" in ambiguous.json["message"]
    assert agent.cli("run", "1", "--", "true").returncode == 2
    after = licenses(agent)
    assert after["home/1"]["remaining"] == 3 and after[f"{B}/1"]["remaining"] == 5   # nothing spent

    at_b = agent.ok("check", f"{B}/1", "--json").json
    assert at_b["allowed"] and at_b["remaining"] == 4 and at_b["issuer"] == B and at_b["license_id"] == "1"
    assert at_b["product_id"] == "1" and at_b["product_ref"] == f"{B}/1"
    at_home = agent.ok("check", "home/1", "--json").json
    assert at_home["remaining"] == 2 and at_home["issuer"] is None and at_home["product_ref"] == "home/1"
    assert licenses(agent)[f"{B}/1"]["remaining"] == 4

    # B extends its license 1: B's grows, the home one does not move
    extended = agent.ok("install", agent.code("1", "uses", license_id="1", uses=9, signer=b_key, serial=2),
                        "--json").json
    assert extended["status"] == "extended" and extended["license"]["remaining"] == 8
    assert licenses(agent)["home/1"]["remaining"] == 2
    # the home scope's license 1 for another product is still a conflict, within the home scope only
    clash = agent.cli("install", agent.code("2", "uses", license_id="1", uses=1), "--json")
    assert clash.returncode == 4 and clash.json["error"] == "conflicting_code"


def test_warnings_and_denials_name_the_members_store(mall_agent):
    agent, b_key, c_key = mall_agent
    agent.ok("install", agent.code("1", "uses", license_id="1", uses=2, low_threshold=1, signer=b_key))
    low = agent.ok("check", f"{B}/1", "--json").json
    assert low["warning"] and f"tokenrent://product/{B}/1" in low["message"]
    used_up = agent.cli("check", f"{B}/1", "--json")
    assert used_up.returncode == 0 and used_up.json["used_up"]
    denied = agent.cli("check", f"{B}/1", "--json")
    assert denied.returncode == 3 and denied.json["store_url"] == f"tokenrent://product/{B}/1"
    assert f"tokenrent://product/{B}/1" in denied.json["message"]
    nothing = agent.cli("check", f"{C}/1", "--json")      # C sells product 1 too; none bought there
    assert nothing.returncode == 3 and nothing.json["reason"] == "no_license"
    assert nothing.json["store_url"] == f"tokenrent://product/{C}/1" and nothing.json["product_ref"] == f"{C}/1"
    assert agent.cli("check", "home/1", "--json").json["store_url"] == "tokenrent://product/1"
    # a bare id that one store carries works as before (B's 1 only)
    assert agent.cli("check", "1", "--json").json["issuer"] == B


def test_run_hands_the_qualified_product_to_the_program_and_the_sdk_speaks_it(mall_agent, tmp_path):
    agent, b_key, c_key = mall_agent
    agent.install("1", "processings", license_id="1", processings=4)
    agent.ok("install", agent.code("1", "processings", license_id="1", processings=6, signer=b_key))
    agent.ok("install", agent.code("1", "processings", license_id="1", processings=8, signer=c_key))
    out = agent.ok("run", f"{C}/1", "--", sys.executable, "-c",
                   "import os; print(os.environ['TOKENRENT_PRODUCT_ID'])")
    assert out.stdout.strip() == f"{C}/1"
    client = Client(agent.home, use_daemon=False)
    try:
        held = client.reserve(f"{B}/1", 2)
        assert held.answer["issuer"] == B and held.answer["remaining"] == 4
        done = held.commit(1)
        assert done["issuer"] == B and done["product_ref"] == f"{B}/1" and done["remaining"] == 5
        assert client.consume(f"{C}/1", 3).remaining == 5
        with pytest.raises(client_error("BadInput")) as info:
            client.consume("1")
        assert info.value.code == "ambiguous_product"
    finally:
        client.close()
    held = licenses(agent)
    assert (held["home/1"]["remaining"], held[f"{B}/1"]["remaining"], held[f"{C}/1"]["remaining"]) == (4, 5, 5)
    # replayed from a checkpoint as well
    from license_agent.agent import Agent
    with Agent(agent.home) as opened:
        with opened.state.writing() as append:
            append("checkpoint", opened.model.snapshot())
    assert licenses(agent) == held   # the same after a checkpoint
    assert agent.ok("doctor", "--json").json["ok"]


def client_error(name: str):
    from license_agent import client
    return getattr(client, name)


@pytest.mark.parametrize("bad", ["home/", "/1", "a/b/c", "../1", "m-b/../1", "x" * 65 + "/1"])
def test_malformed_references_are_bad_input(mall_agent, bad):
    agent, _b, _c = mall_agent
    result = agent.cli("check", bad, "--json")
    assert result.returncode == 2 and result.json["error"] == "bad_input", result


def test_a_member_called_home_is_refused(agent_home):
    msp, key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    agent_home.ok("trust", "--mall", public_key_text(msp))
    result = agent_home.cli("trust", entry_for(msp, key, member_id="home"), "--json")
    assert result.returncode == 2 and result.json["error"] == "malformed_entry"
    assert agent_home.ok("status", "--json").json["trusted_members"] == {}


def _old_agent(tmp_path: Path) -> Path:
    """The agent's package as it was before issuers, from git."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to take the agent from before issuers")
    tree = tmp_path / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_ISSUERS, "license_agent"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_ISSUERS} is not in this checkout's history")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


class OldAgent(AgentHome):
    old_tree: Path

    @property
    def env(self) -> dict:
        env = super().env
        env["PYTHONPATH"] = str(self.old_tree)
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-P", "-m", "license_agent", *args]   # -P: not this checkout's agent from cwd


def test_an_old_state_keeps_working_and_gains_issuers(tmp_path, monkeypatch):
    old = OldAgent(tmp_path / "home")
    old.old_tree = _old_agent(tmp_path)
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(old.home))
    msp, b_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old.trust()
    old.ok("trust", "--mall", public_key_text(msp))
    old.ok("trust", entry_for(msp, b_key, member_id=B))
    old.install("1", "uses", license_id="1", uses=5)
    old.install("7", "uses", license_id="2", uses=3, signer=b_key)       # B's, before issuers were kept
    old.ok("check", "1")
    old.ok("run", "7", "--", "true")
    b_license_1 = old.code("9", "uses", license_id="1", uses=2, signer=b_key)
    clash = old.cli("install", b_license_1, "--json")             # the bug: B's license 1 "is" the home's
    assert clash.returncode == 4 and clash.json["error"] == "conflicting_code"
    # the old agent also wrote a checkpoint without issuers
    checkpoint = ("from license_agent.agent import Agent\n"
                  "with Agent() as a:\n"
                  "    with a.state.writing() as append:\n"
                  "        append('checkpoint', a.model.snapshot())\n")
    subprocess.run([sys.executable, "-P", "-c", checkpoint], env=old.env, check=True)
    old.ok("check", "1")

    new = AgentHome(old.home, vendor=old.vendor, serials=old.serials)
    assert new.ok("doctor", "--json").json["ok"]                  # the chain and the anchor still verify
    held = licenses(new)
    assert set(held) == {"home/1", "home/7"}                       # what the old agent knew: no issuer
    assert held["home/1"]["remaining"] == 3 and held["home/7"]["remaining"] == 2
    assert new.ok("check", "1", "--json").json["remaining"] == 2    # bare ids work as they did
    assert new.ok("install", b_license_1, "--json").json["license"]["product_ref"] == f"{B}/9"
    # now B's license 1 for its product 1 installs beside the home's (the old agent refused it)
    assert new.ok("install", new.code("1", "uses", license_id="3", uses=4, signer=b_key),
                  "--json").json["license"]["issuer"] == B
    assert new.ok("check", f"{B}/1", "--json").json["remaining"] == 3
    assert new.ok("check", "home/1", "--json").json["remaining"] == 1
    # an agent from before issuers cannot read this state any more rather than miscount it
    downgraded = old.cli("check", "1")
    assert downgraded.returncode == 4, downgraded


def test_store_links_name_the_member():
    from license_agent.code_terms import product_of_store_link, product_ref, split_ref, store_link
    assert store_link(4) == "tokenrent://product/4" and store_link("4", B) == f"tokenrent://product/{B}/4"
    assert product_of_store_link(store_link("4", B)) == f"{B}/4" and product_of_store_link(store_link(4)) == "4"
    assert product_of_store_link("tokenrent://product/a/b/c") is None
    assert product_of_store_link("https://example.com/product/4") is None
    assert split_ref(product_ref("4", B)) == (B, "4") and split_ref("4") == (None, "4")
