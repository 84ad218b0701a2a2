"""The agent against the REAL server (subprocess, real database): the codes the server issues
are installed, counted down, extended with higher serials; re-fetched codes change nothing."""
from __future__ import annotations

import pytest

from tests.support.store import make_catalog, order

from .conftest import AgentHome


@pytest.fixture(scope="module")
def catalog(server):
    return make_catalog(server)


def _delivered(response) -> dict:
    assert response.status_code == 201, response.text
    (delivery,) = response.json()["deliveries"]
    return delivery


class _DeviceOf:
    """The store helpers' device shape, but the keys stay inside the agent."""

    def __init__(self, device_id):
        self.device_id = device_id


def test_server_codes_count_down_and_extend_in_the_agent(server, catalog, tmp_path):
    agent = AgentHome(tmp_path / "home")
    device = agent.device()
    user = server.new_user(tokens=200)
    r = server.api("POST", "/v1/devices", user, json={"public_key": device["public_key"], "name": "agent test"})
    assert r.status_code in (200, 201) and r.json()["device_id"] == device["device_id"], r.text
    for key in server.api("GET", "/v1/vendor-key").json()["keys"]:
        agent.ok("trust", key["public_key"])
    mine = _DeviceOf(device["device_id"])

    first = _delivered(order(server, user, mine, [{"offer_id": catalog.offers[("uses", "rent_uses")], "quantity": 10}]))
    installed = agent.ok("install", "-", "--json", input=first["authorization_code"]).json
    assert installed["status"] == "installed" and installed["license"]["remaining"] == 10
    product = str(first["product_id"])
    for expected in range(9, 1, -1):
        answer = agent.ok("check", product, "--json").json
        assert answer["remaining"] == expected
        assert answer["warning"] == (expected <= 2)          # the vendor's low_threshold travels in the code
    assert answer["store_url"] and product in answer["store_url"]

    extension = _delivered(order(server, user, mine, [{"offer_id": catalog.offers[("uses", "rent_uses")], "quantity": 10,
                                                       "license_id": first["license_id"]}]))
    extended = agent.ok("install", extension["authorization_code"], "--json").json
    assert extended["status"] == "extended" and extended["license"]["remaining"] == 12   # total 20, 8 used

    again = server.api("GET", f"/v1/licenses/{first['license_id']}/code", user,
                       params={"device_id": device["device_id"]})
    assert again.status_code == 200, again.text
    code = again.json().get("authorization_code") or again.json().get("code")
    assert agent.ok("install", code, "--json").json["status"] == "unchanged"
    older = agent.cli("install", first["authorization_code"], "--json")
    assert older.returncode == 4 and older.json["error"] == "older_serial"
    assert agent.ok("check", product, "--json").json["remaining"] == 11
