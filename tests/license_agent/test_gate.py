"""The gate (FIG 12) in-process on a real state directory: every kind, every warning,
thresholds, extensions, reservations. The CLI and daemon use the same Agent."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, UTC

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import codes
from license_agent.agent import Agent, exit_code_for
from license_agent.errors import BadInput, InvalidCode


class Vendor:
    def __init__(self, agent: Agent):
        self.key = Ed25519PrivateKey.generate()
        self.agent = agent
        self.device = agent.device()
        agent.trust(base64.b64encode(codes.raw_public_ed25519(self.key)).decode())

    def code(self, product_id="4", kind="uses", license_id=None, serial=1, issued_at=None, **terms) -> str:
        now = datetime.now(UTC)
        grant = codes.Grant(license_id=license_id or f"L-{product_id}-{kind}", serial=serial,
                            product_id=product_id, device_id=self.device["device_id"], kind=kind,
                            issued_at=issued_at or now, store_url=f"tokenrent://product/{product_id}",
                            product_name="Editor", **terms)
        return codes.issue_code(grant, self.key, base64.b64decode(self.device["public_key"]))

    def install(self, *args, **kwargs) -> dict:
        return self.agent.install(self.code(*args, **kwargs))


@pytest.fixture()
def agent(tmp_path):
    with Agent(tmp_path / "home") as agent:
        yield agent


@pytest.fixture()
def vendor(agent):
    return Vendor(agent)


def later(**delta):
    return datetime.now(UTC) + timedelta(**delta)


def test_permanent_runs_without_counting(agent, vendor):
    vendor.install(kind="permanent")
    for _ in range(3):
        answer = agent.check("4")
        assert answer["allowed"] and answer["kind"] == "permanent" and answer["remaining"] is None
        assert not answer["warning"] and not answer["expired"] and not answer["used_up"]
        assert answer["store_url"] == "tokenrent://product/4"
    assert agent.state.head_seq == 3  # init, trust, install: a permanent check writes nothing


def test_uses_spend_one_per_check_and_warn_when_low(agent, vendor):
    vendor.install(kind="uses", uses=4, low_threshold=2)
    seen = [agent.check("4") for _ in range(5)]
    assert [a["remaining"] for a in seen[:4]] == [3, 2, 1, 0]
    assert [a["allowed"] for a in seen] == [True, True, True, True, False]
    assert [a["warning"] for a in seen] == [False, True, True, True, False]     # 1117-1118
    assert seen[3]["used_up"] and seen[4]["used_up"] and seen[4]["reason"] == "used_up"
    assert "buy more" in seen[4]["message"] and seen[4]["store_url"] == "tokenrent://product/4"
    assert [exit_code_for(a) for a in seen] == [0, 0, 0, 0, 3]
    assert agent.status()["licenses"][0]["used"] == 4


def test_the_run_that_spends_the_last_use_warns_but_the_used_up_license_does_not(agent, vendor):
    """The edge of the one low rule (gate.is_low): 0 left warns in the answer to the run
    that spent it, and is "used up", not low, in the status afterwards."""
    vendor.install(kind="uses", uses=1, low_threshold=0)
    last = agent.check("4")
    assert last["allowed"] and last["remaining"] == 0 and last["warning"] and last["used_up"]
    assert "buy more" in last["message"]
    status = agent.status()["licenses"][0]
    assert status["remaining"] == 0 and status["used_up"] and not status["warning"]
    vendor.install(kind="processings", processings=5, low_threshold=2, product_id="5")
    assert not agent.consume("5", 2)["warning"]                     # 3 left, above the threshold
    assert agent.status()["licenses"][1]["warning"] is False
    answer = agent.consume("5", 1)                                  # 2 left: at the threshold
    assert answer["warning"] and agent.status()["licenses"][1]["warning"] is True


def test_processings_check_does_not_spend_consume_does(agent, vendor):
    vendor.install(kind="processings", processings=10, low_threshold=3)
    for _ in range(3):
        assert agent.check("4")["remaining"] == 10                    # 1104: any left?
    answer = agent.consume("4", 6)                                    # 1107
    assert answer["allowed"] and answer["remaining"] == 4 and not answer["warning"] and answer["consumed"] == 6
    answer = agent.consume("4")
    assert answer["remaining"] == 3 and answer["warning"]            # 1105-1106
    denied = agent.consume("4", 4)
    assert not denied["allowed"] and denied["reason"] == "not_enough" and denied["remaining"] == 3
    assert agent.consume("4", 3)["used_up"]
    assert agent.check("4")["allowed"] is False


def test_time_runs_until_expiry_and_warns_near_it(agent, vendor):
    vendor.install(kind="time", expires_at=later(days=10), low_threshold=86400)
    answer = agent.check("4")
    assert answer["allowed"] and not answer["warning"] and 9 * 86400 < answer["remaining"] <= 10 * 86400
    vendor.install(kind="time", expires_at=later(hours=5), low_threshold=86400, license_id="soon", product_id="5")
    answer = agent.check("5")
    assert answer["allowed"] and answer["warning"] and "buy more time" in answer["message"]      # 1112
    vendor.install(kind="time", expires_at=later(seconds=-1), license_id="gone", product_id="6",
                   issued_at=later(days=-1))
    answer = agent.check("6")
    assert not answer["allowed"] and answer["expired"] and answer["reason"] == "expired" and answer["remaining"] == 0
    assert exit_code_for(answer) == 3


@pytest.mark.parametrize("kind,terms,threshold", [
    ("uses", {"uses": 50}, 5), ("uses", {"uses": 3}, 1), ("processings", {"processings": 1000}, 100),
    ("time", {"expires_at": later(days=100)}, 3 * 86400), ("time", {"expires_at": later(hours=2)}, 3600),
])
def test_default_thresholds_when_the_vendor_sets_none(agent, vendor, kind, terms, threshold):
    vendor.install(kind=kind, **terms)
    assert agent.status()["licenses"][0]["low_threshold"] == threshold


def test_no_license_is_denied_with_a_store_url(agent, vendor):
    answer = agent.check("77")
    assert not answer["allowed"] and answer["reason"] == "no_license"
    assert answer["store_url"] == "tokenrent://product/77"


def test_extension_with_higher_serial_keeps_what_was_used(agent, vendor):
    vendor.install(kind="uses", uses=3, serial=1)
    agent.check("4"), agent.check("4")
    assert vendor.install(kind="uses", uses=13, serial=2)["status"] == "extended"
    answer = agent.check("4")
    assert answer["remaining"] == 10 and answer["total"] == 13
    # converted to permanent (e, f, g)
    vendor.install(kind="permanent", serial=3)
    assert agent.check("4")["kind"] == "permanent"


def test_same_code_twice_changes_nothing_and_older_serial_is_refused(agent, vendor):
    text = vendor.code(kind="uses", uses=3, serial=2)
    assert agent.install(text)["status"] == "installed"
    before = agent.state.head_seq
    assert agent.install(text)["status"] == "unchanged"
    assert agent.install(vendor.code(kind="uses", uses=3, serial=2))["status"] == "unchanged"  # re-issued copy
    assert agent.state.head_seq == before
    with pytest.raises(InvalidCode, match="older") as err:
        agent.install(vendor.code(kind="uses", uses=99, serial=1))
    assert err.value.exit_code == 4 and err.value.code == "older_serial"
    with pytest.raises(InvalidCode, match="different terms"):
        agent.install(vendor.code(kind="uses", uses=99, serial=2))
    assert agent.check("4")["remaining"] == 2


def test_code_issued_in_the_future_is_refused(agent, vendor):
    with pytest.raises(InvalidCode, match="future"):
        vendor.install(kind="permanent", issued_at=later(minutes=10))
    vendor.install(kind="permanent", issued_at=later(minutes=4), license_id="ok")  # within tolerance


def test_reserve_commit_release(agent, vendor):
    vendor.install(kind="processings", processings=10, low_threshold=1)
    held = agent.reserve("4", 4)
    assert held["allowed"] and held["remaining"] == 6 and held["reservation_id"].startswith("r-")
    assert agent.check("4")["remaining"] == 6                      # held counts against what is left
    done = agent.commit(held["reservation_id"], 3)
    assert done["committed"] == 3 and done["returned"] == 1 and done["remaining"] == 7
    with pytest.raises(BadInput, match="already committed"):
        agent.commit(held["reservation_id"])
    other = agent.reserve("4", 5)
    assert agent.release(other["reservation_id"])["remaining"] == 7
    too_much = agent.reserve("4", 8)
    assert not too_much["allowed"] and too_much["reservation_id"] is None
    with pytest.raises(BadInput):
        agent.commit("r-0000000000000000")
    with pytest.raises(BadInput):
        agent.commit("../../etc")


def test_reservation_past_its_ttl_counts_as_consumed(agent, vendor):
    vendor.install(kind="processings", processings=5)
    held = agent.reserve("4", 2, ttl=1)
    time.sleep(1.2)
    answer = agent.release(held["reservation_id"])
    assert answer["outcome"] == "lapsed" and not answer["allowed"] and answer["remaining"] == 3
    status = agent.status()["licenses"][0]
    assert status["used"] == 2 and status["reserved"] == 0
    late = agent.reserve("4", 1, ttl=1)
    time.sleep(1.2)
    assert agent.commit(late["reservation_id"], 0)["committed"] == 1  # no refund after the TTL


def test_permanent_reservation_holds_nothing(agent, vendor):
    vendor.install(kind="permanent")
    held = agent.reserve("4", 3)
    assert held["allowed"] and held["reservation_id"] is None


@pytest.mark.parametrize("bad", ["", "a b", "x" * 200, None, 4, "../x"])
def test_bad_product_ids_are_bad_input(agent, bad):
    with pytest.raises(BadInput):
        agent.check(bad)


@pytest.mark.parametrize("n", [0, -1, "x", 1.5, True, 10**12])
def test_bad_amounts_are_bad_input_and_change_nothing(agent, vendor, n):
    vendor.install(kind="processings", processings=5)
    before = agent.state.head_seq
    with pytest.raises(BadInput):
        agent.consume("4", n)
    assert agent.state.head_seq == before


def test_a_permanent_license_is_preferred_over_spending_uses(agent, vendor):
    vendor.install(kind="uses", uses=5)
    vendor.install(kind="permanent", license_id="perm")
    assert agent.check("4")["kind"] == "permanent"
    assert agent.status()["licenses"][0]["remaining"] == 5


def test_status_has_history_for_charts(agent, vendor):
    vendor.install(kind="uses", uses=5)
    agent.check("4"), agent.check("4")
    lic = agent.status()["licenses"][0]
    assert lic["history"] == [{"date": datetime.now(UTC).strftime("%Y-%m-%d"), "used": 2}]
    assert lic["remaining"] == 3 and lic["used"] == 2 and lic["total"] == 5
