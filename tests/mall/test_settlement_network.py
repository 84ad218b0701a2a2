"""Settlement with real processes on SQLite and PostgreSQL: an MSP and two
vendors joined with invitations; the patent's exchange (100 Token-A at $0.10
-> 200 Token-B at $0.05) through the saga, a card sale told to the MSP, then
the period closed by the operator and by the MSP's own scheduler; statements
read by the members (signed) and by the operator, JSON and CSV."""
from __future__ import annotations

import csv
import io
import time

import pytest

from server_stub.network.keys import load_or_create_network_key
from tests.mall.test_exchange_network import exchange, funded_user, join, wait_for

pytestmark = pytest.mark.timeout(600)
CARD = {"method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"}


def vendor_key(vendor):
    return load_or_create_network_key(vendor.workdir / "data" / "network_key.pem")


def signed_get(msp, vendor, member_id, path):
    return msp.signed("GET", path, vendor_key(vendor), member_id)


def _until(fn, timeout=60):
    deadline = time.monotonic() + timeout
    while not (value := fn()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return value


def test_the_patents_exchange_settles_and_each_member_reads_its_own_statement(msp, server_factory):
    a, b = server_factory(), server_factory()
    a_id = join(msp, a, "Mall A", 10, "Token-A")
    b_id = join(msp, b, "Mall B", 5, "Token-B")
    msp.admin("set-fees", a_id, "--service-charge-bp", "200", "--royalty-bp", "100")
    u = funded_user(a, 150)
    _quote, started = exchange(a, u, b_id, 100)
    assert wait_for(a, u, started["id"])["status"] == "completed"
    closed = msp.admin_json("close-period", "--send")
    rows = {r["member_id"]: r for r in closed["statements"]}
    assert (rows[a_id]["owing_cents"], rows[a_id]["net_cents"], rows[a_id]["payout_status"]) == (1000, -980, "sent")
    assert (rows[b_id]["owed_cents"], rows[b_id]["net_cents"], rows[b_id]["payout_status"]) == (1000, 970, "sent")
    assert sum(r["net_cents"] for r in rows.values()) == 0
    assert msp.admin_json("verify-books")["ok"] is True
    # the member sees its own statements, signed, and not the other's
    mine = signed_get(msp, a, a_id, "/v1/mall/statements")
    assert mine.status_code == 200 and "signature" in {h.lower() for h in mine.headers}
    assert {s["member_id"] for s in mine.json()} == {a_id}
    st_a = next(s for s in mine.json() if s["period_id"] == closed["period_id"])
    assert st_a["net_cents"] == -980 and st_a["bank_reference"].startswith("sim-")
    one = signed_get(msp, a, a_id, f"/v1/mall/statements/{st_a['id']}")
    assert one.json()["id"] == st_a["id"]
    st_b = rows[b_id]["id"]
    assert signed_get(msp, a, a_id, f"/v1/mall/statements/{st_b}").status_code == 404
    as_csv = signed_get(msp, b, b_id, f"/v1/mall/statements/{st_b}?format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.DictReader(io.StringIO(as_csv.text)))[0]["net_cents"] == "970"
    assert msp.get("/v1/mall/statements").status_code == 401          # unsigned: nobody's
    # the operator's CSV has the MSP's line too
    text = msp.admin("statements", "--period", str(closed["period_id"]), "--csv").stdout
    by_member = {r["member_id"]: r for r in csv.DictReader(io.StringIO(text))}
    assert by_member["msp"]["net_cents"] == "10"


def test_the_msps_scheduler_closes_the_period_with_the_royalty_of_a_sale(msp_factory, server_factory):
    msp = msp_factory(env={"TOKENRENT_MSP_SETTLEMENT_SECONDS": "4"})
    vendor = server_factory()
    member_id = join(msp, vendor, "Seller", 10, "Sell")
    msp.admin("set-fees", member_id, "--royalty-bp", "150")
    u = vendor.register()
    r = vendor.api("POST", "/v1/token-purchases", u, json={"tokens": 333, **CARD})
    assert r.status_code == 201, r.text
    cents = r.json()["amount_cents"]
    royalty_units = cents * 100 * 150 // 10_000

    def with_royalty():
        rows = msp.admin_json("statements", "--member", member_id)
        return [s for s in rows if s["details"]["royalty_micro_cents"]]

    found = _until(with_royalty, timeout=90)
    assert found, msp.admin_json("statements")
    st = found[0]
    assert st["details"]["royalty_micro_cents"] == royalty_units
    assert st["net_cents"] * 100 + st["residue_micro_cents"] == -royalty_units
    assert st["payout_status"] in ("sent", None)
    assert _until(lambda: all(s["payout_status"] in ("sent", None)
                              for s in msp.admin_json("statements", "--member", member_id)))
    assert msp.admin_json("verify-books")["ok"] is True
