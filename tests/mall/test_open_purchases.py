"""Open tokens sold at a member (docs/mall.md "Selling open tokens at a member"): a real MSP
and two real vendors (tests/support/network.py), on SQLite and PostgreSQL. The vendor sells,
the MSP issues; what the MSP issued is read from its own database (its books and lots)."""
from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.support.network import THREE_MEMBERS, MallNetwork, funded_user, start_network
from tests.support.server import Server, TestUser

CATALOG_AGE = "TOKENRENT_OPEN_CATALOG_MAX_AGE_SECONDS"
CARD = {"method": "card", "card_number": "4242 4242 4242 4242", "card_expiry": "12/39", "card_cvc": "123"}
DECLINED = {**CARD, "card_number": "4000 0000 0000 0002"}
BRAND, FREE_BRAND, GROUP, B_GROUP, DOOMED_GROUP = "acme", "freebie", "west", "east", "doomed"


@pytest.fixture(scope="module")
def net(backend, tmp_path_factory):
    # the vendors keep the MSP's catalog for the whole module: a test changes the MSP's terms
    # behind a vendor's cached copy (a refusal by the MSP); C reads it only while the MSP is down
    saved = os.environ.get(CATALOG_AGE)
    os.environ[CATALOG_AGE] = "3600"
    try:
        network, cleanup = start_network(backend, tmp_path_factory.mktemp(f"open-sell-{backend}"),
                                         members=THREE_MEMBERS)
    finally:
        if saved is None:
            os.environ.pop(CATALOG_AGE)
        else:
            os.environ[CATALOG_AGE] = saved
    msp = network.msp
    # A's brand at 10 % off, a group of A at 5 % off, one of B only, and a group A is taken out of later
    msp.admin("brands-add", BRAND, "Acme Software", network.a_id, "--discount-bp", "1000")
    msp.admin("brands-add", FREE_BRAND, "Freebie", network.a_id, "--discount-bp", "10000")
    msp.admin("group-add", GROUP, network.a_id)
    msp.admin("group-discount", GROUP, "500")
    msp.admin("group-add", B_GROUP, network.b_id)
    msp.admin("group-add", DOOMED_GROUP, network.a_id)
    yield network
    cleanup()


def msp_lots(net: MallNetwork, member_id: str, user: TestUser) -> list[dict]:
    """The customer's lots at the MSP, read from its database: kind, issuer, balance, origin."""
    engine = sa.create_engine(net.msp.db_url)
    try:
        with engine.connect() as c:
            rows = c.execute(sa.text(
                "SELECT l.kind, l.issuer, a.balance, l.origin, l.expires_at FROM open_lots l "
                "JOIN customer_records r ON r.id = l.customer_id JOIN mall_accounts a ON a.id = l.account_id "
                "WHERE r.home_member_id = :m AND r.home_user_id = :u ORDER BY l.id"),
                {"m": member_id, "u": str(user.id)}).mappings().all()
    finally:
        engine.dispose()
    return [dict(r) for r in rows]


def books_ok(net: MallNetwork) -> None:
    out = net.msp.admin("verify-books")
    assert '"ok": true' in out.stdout, out.stdout


def buy(vendor: Server, user: TestUser, key: str | None = None, pin: str | None = None, **body) -> dict:
    headers = {"Idempotency-Key": key} if key else {}
    r = vendor.api("POST", "/v1/open-token-purchases", user, headers=headers,
                   json={"pin": pin or user.pin, **body})
    return {"status": r.status_code, "body": r.json()}


def wait_status(vendor: Server, user: TestUser, purchase_id: int, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = vendor.api("GET", f"/v1/open-token-purchases/{purchase_id}", user).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_offers_are_the_msp_catalog_at_this_member(net):
    r = net.a.api("GET", "/v1/open-token-offers")
    assert r.status_code == 200, r.text
    offers = r.json()
    assert offers["unit_value_cents"] == 1
    kinds = {(k["kind"], k["issuer"]): k for k in offers["kinds"]}
    assert kinds[("universal", None)]["price_cents_per_1000"] == 1000
    assert kinds[("manufacturer", BRAND)]["price_cents_per_1000"] == 900
    assert kinds[("manufacturer", BRAND)]["issuer_name"] == "Acme Software"
    assert kinds[("group", GROUP)]["price_cents_per_1000"] == 950
    assert offers["gift_certificate"] == {"expires_in_days": 365}
    # A is not in B's group: it does not sell its tokens; tokens at 100 % off are given, not sold
    assert ("group", B_GROUP) not in kinds and ("manufacturer", FREE_BRAND) not in kinds


def test_card_purchase_of_each_kind_is_issued_by_the_msp(net):
    user = funded_user(net.a, 10)
    bought = [buy(net.a, user, kind="universal", tokens=500, **CARD),
              buy(net.a, user, kind="manufacturer", issuer=BRAND, tokens=1000, **CARD),
              buy(net.a, user, kind="group", issuer=GROUP, tokens=200, **CARD),
              buy(net.a, user, kind="gift_certificate", value_cents=2500, **CARD)]
    for b in bought:
        assert b["status"] == 201, b
        assert b["body"]["status"] == "issued", b
        assert b["body"]["refund_due"] is False
    assert [b["body"]["price_cents"] for b in bought] == [500, 900, 190, 2500]
    gift = bought[3]["body"]["gift_certificate"]
    assert gift["value_cents"] == 2500 and gift["expires_at"]
    assert len(gift["code"]) == 19 and gift["code"].count("-") == 3
    lots = msp_lots(net, net.a_id, user)
    assert [(lot["kind"], lot["issuer"], lot["balance"]) for lot in lots] == [
        ("universal", None, 500), ("manufacturer", BRAND, 1000), ("group", GROUP, 200),
        ("gift_certificate", net.a_id, 2500)]
    # the lots the vendor shows are the MSP's answer
    assert bought[0]["body"]["lots"][0]["tokens"] == 500
    listed = net.a.api("GET", "/v1/open-token-purchases", user).json()
    assert [p["id"] for p in listed] == [b["body"]["id"] for b in reversed(bought)]
    assert listed[0]["gift_certificate"]["code"] == gift["code"]   # shown again, the same code
    books_ok(net)


def test_a_replay_answers_the_same_purchase_once(net):
    user = funded_user(net.a, 10)
    key = uuid.uuid4().hex
    first = buy(net.a, user, key=key, kind="universal", tokens=300, **CARD)
    again = buy(net.a, user, key=key, kind="universal", tokens=300, **CARD)
    assert first["status"] == again["status"] == 201
    assert again["body"]["id"] == first["body"]["id"] and again["body"]["status"] == "issued"
    other = buy(net.a, user, key=key, kind="universal", tokens=301, **CARD)
    assert other["status"] == 422 and "different request" in other["body"]["detail"]
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, user)] == [300]   # issued once
    assert len(net.a.api("GET", "/v1/open-token-purchases", user).json()) == 1


def test_off_line_purchase_waits_for_the_operator(net):
    user = funded_user(net.a, 10)
    admin = net.a.admin()
    r = buy(net.a, user, kind="universal", tokens=700, method="check")
    assert r["status"] == 202 and r["body"]["status"] == "awaiting_payment", r
    assert r["body"]["invoice_number"].startswith("OINV-")
    assert msp_lots(net, net.a_id, user) == []          # nothing issued before payment
    pid = r["body"]["id"]
    listed = net.a.api("GET", "/v1/admin/open-token-purchases?status=awaiting_payment", admin).json()
    assert pid in [p["id"] for p in listed]
    key = uuid.uuid4().hex
    done = net.a.api("POST", f"/v1/admin/open-token-purchases/{pid}/confirm", admin,
                     headers={"Idempotency-Key": key})
    assert done.status_code == 200 and done.json()["status"] == "issued", done.text
    again = net.a.api("POST", f"/v1/admin/open-token-purchases/{pid}/confirm", admin,
                      headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["id"] == pid
    twice = net.a.api("POST", f"/v1/admin/open-token-purchases/{pid}/confirm", admin)
    assert twice.status_code == 409
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, user)] == [700]
    # the CLI confirms one too; the running server's worker delivers it
    r2 = buy(net.a, user, kind="gift_certificate", value_cents=1000, method="money_order")
    out = net.a.admin_cli("confirm-open-purchase", str(r2["body"]["id"]))
    assert '"status": "pending"' in out.stdout
    issued = wait_status(net.a, user, r2["body"]["id"], "issued")
    assert issued["status"] == "issued" and issued["gift_certificate"]["code"]
    # an unpaid one is cancelled and never issued; an issued one cannot be
    r3 = buy(net.a, user, kind="universal", tokens=5, method="purchase_order")
    cancelled = net.a.api("POST", f"/v1/admin/open-token-purchases/{r3['body']['id']}/cancel", admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert net.a.admin_cli("cancel-open-purchase", str(pid), check=False).returncode == 2
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, user)] == [700, 1000]


def test_a_declined_card_moves_nothing(net):
    user = funded_user(net.a, 10)
    r = buy(net.a, user, kind="universal", tokens=100, **DECLINED)
    assert r["status"] == 402 and r["body"]["type"].endswith("/card-declined"), r
    assert r["body"]["purchase_status"] == "declined"
    mine = net.a.api("GET", "/v1/open-token-purchases", user).json()
    assert [p["status"] for p in mine] == ["declined"]
    assert msp_lots(net, net.a_id, user) == []


def test_a_wrong_pin_counts_and_locks(net):
    user = funded_user(net.a, 10)
    statuses = [buy(net.a, user, pin="0000", kind="universal", tokens=10, **CARD)["status"] for _ in range(5)]
    assert statuses == [403, 403, 403, 403, 423]
    locked = buy(net.a, user, kind="universal", tokens=10, **CARD)   # even the right PIN, while locked
    assert locked["status"] == 423
    assert net.a.api("GET", "/v1/open-token-purchases", user).json() == []
    assert msp_lots(net, net.a_id, user) == []


def test_another_users_purchase_does_not_exist_for_you(net):
    user, other = funded_user(net.a, 10), funded_user(net.a, 10)
    r = buy(net.a, user, kind="universal", tokens=10, **CARD)
    assert net.a.api("GET", f"/v1/open-token-purchases/{r['body']['id']}", other).status_code == 404
    assert net.a.api("GET", f"/v1/open-token-purchases/{r['body']['id']}", user).status_code == 200


def test_refused_inputs_sell_nothing(net):
    user = funded_user(net.a, 10)
    # type 2 tokens are never sold; a brand that does not exist; a group A is not in
    assert buy(net.a, user, kind="manufacturer_free", issuer=BRAND, tokens=10, **CARD)["status"] == 422
    assert buy(net.a, user, kind="manufacturer", issuer="nobody", tokens=10, **CARD)["status"] == 422
    assert buy(net.a, user, kind="manufacturer", issuer=FREE_BRAND, tokens=10, **CARD)["status"] == 422
    assert buy(net.a, user, kind="group", issuer=B_GROUP, tokens=10, **CARD)["status"] == 403
    # a recipient that is not a user here by that name; tokens for a certificate
    assert buy(net.a, user, kind="gift_certificate", value_cents=500,
               recipient={"username": "nobody", "full_name": "No Body"}, **CARD)["status"] == 404
    assert buy(net.a, user, kind="gift_certificate", tokens=500, **CARD)["status"] == 422
    assert net.a.api("GET", "/v1/open-token-purchases", user).json() == []
    assert msp_lots(net, net.a_id, user) == []


def test_a_gift_certificate_for_a_recipient_and_given_later(net):
    buyer, friend, third = funded_user(net.a, 10), funded_user(net.a, 10), funded_user(net.a, 10)
    to_friend = {"username": friend.username, "full_name": f"  {friend.full_name.upper()} "}
    direct = buy(net.a, buyer, kind="gift_certificate", value_cents=1500, recipient=to_friend, **CARD)
    assert direct["status"] == 201 and direct["body"]["status"] == "issued", direct
    assert direct["body"]["recipient"]["username"] == friend.username
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, friend)] == [1500]
    assert msp_lots(net, net.a_id, buyer) == []
    # bought for oneself, given later by username and full name (FIG 11), with the PIN
    kept = buy(net.a, buyer, kind="gift_certificate", value_cents=800, **CARD)["body"]
    op = kept["operation_id"]
    path = f"/v1/gift-certificates/{op}/give"
    wrong_name = net.a.api("POST", path, buyer, json={"username": third.username, "full_name": "Someone Else",
                                                      "pin": buyer.pin})
    assert wrong_name.status_code == 404
    wrong_pin = net.a.api("POST", path, buyer, json={"username": third.username, "full_name": third.full_name,
                                                     "pin": "0000"})
    assert wrong_pin.status_code == 403
    key = uuid.uuid4().hex
    body = {"username": third.username, "full_name": third.full_name, "pin": buyer.pin}
    given = net.a.api("POST", path, buyer, json=body, headers={"Idempotency-Key": key})
    assert given.status_code == 200 and given.json()["status"] == "given", given.text
    replay = net.a.api("POST", path, buyer, json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json()["operation_id"] == given.json()["operation_id"]
    assert net.a.api("POST", path, buyer, json=body).status_code == 409      # given already
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, third)] == [800]
    assert msp_lots(net, net.a_id, buyer) == []
    # only the buyer gives it
    assert net.a.api("POST", path, third, json={**body, "pin": third.pin}).status_code == 404
    books_ok(net)


def msp_token(net: MallNetwork, vendor: Server, user: TestUser) -> str:
    """A customer session at the MSP, from the user's home member's assertion."""
    a = vendor.api("POST", "/v1/mall-assertions", user, json={"audience": "msp"})
    assert a.status_code == 201, a.text
    r = net.msp.post("/v1/sessions", json={"assertion": a.json()["assertion"]})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_a_certificate_redeemed_by_its_code_cannot_be_given(net):
    """The code the vendor shows its buyer is the one the MSP knows (its digest): redeemed by
    someone else at the MSP, the certificate is theirs, and the buyer's later gift is refused."""
    buyer, friend, third = funded_user(net.a, 10), funded_user(net.a, 100), funded_user(net.a, 10)  # 100: active
    cert = buy(net.a, buyer, kind="gift_certificate", value_cents=1200, **CARD)["body"]
    token = msp_token(net, net.a, friend)
    r = net.msp.post("/v1/open-wallet/redeem", json={"code": cert["gift_certificate"]["code"].lower()},
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, friend)] == [1200]
    give = net.a.api("POST", f"/v1/gift-certificates/{cert['operation_id']}/give", buyer,
                     json={"username": third.username, "full_name": third.full_name, "pin": buyer.pin})
    assert give.status_code == 409 and give.json()["reason"] == "refused", give.text
    assert "refused by the MSP" in give.json()["detail"]
    after = net.a.api("GET", f"/v1/open-token-purchases/{cert['id']}", buyer).json()
    assert after["gift_certificate"]["give_status"] == "refused" and after["recipient"] is None
    assert msp_lots(net, net.a_id, third) == []


def test_a_linked_account_buys_at_its_home_member_only(net):
    user = funded_user(net.a, 100)   # active: it may shop at B
    a = net.a.api("POST", "/v1/mall-assertions", user, json={"audience": net.b_id}).json()["assertion"]
    s = net.b.api("POST", "/v1/sessions", json={"assertion": a})
    assert s.status_code == 200, s.text
    r = net.b.api("POST", "/v1/open-token-purchases", s.json()["token"],
                  json={"kind": "universal", "tokens": 10, "pin": user.pin, **CARD})
    assert r.status_code == 403 and "home member" in r.json()["detail"], r.text
    assert msp_lots(net, net.a_id, user) == []


def test_the_gift_expiry_is_the_vendor_policy(net):
    user = funded_user(net.a, 10)
    net.a.admin_cli("set-gift-certificate-days", "30")
    try:
        assert net.a.api("GET", "/v1/open-token-offers").json()["gift_certificate"] == {"expires_in_days": 30}
        cert = buy(net.a, user, kind="gift_certificate", value_cents=300, **CARD)["body"]
        assert net.a.admin_cli("set-gift-certificate-days", "5000", check=False).returncode == 2
    finally:
        net.a.admin_cli("set-gift-certificate-days", "365")
    expires = datetime.fromisoformat(cert["gift_certificate"]["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    (lot,) = msp_lots(net, net.a_id, user)
    at_msp = lot["expires_at"] if isinstance(lot["expires_at"], datetime) else datetime.fromisoformat(lot["expires_at"])
    assert at_msp.replace(tzinfo=UTC) == expires.replace(tzinfo=UTC)


def test_a_refusal_by_the_msp_fails_the_purchase_with_the_money_due_back(net):
    user = funded_user(net.a, 10)
    assert net.a.api("GET", "/v1/open-token-offers").status_code == 200   # A's catalog has the group
    net.msp.admin("group-remove", DOOMED_GROUP, net.a_id)   # the MSP now refuses A's sale of its tokens
    r = buy(net.a, user, kind="group", issuer=DOOMED_GROUP, tokens=50, **CARD)
    assert r["status"] == 201, r
    assert r["body"]["status"] == "failed" and r["body"]["refund_due"] is True, r
    assert "refused by the MSP" in r["body"]["reason"]
    assert msp_lots(net, net.a_id, user) == []
    admin = net.a.admin()
    closed = net.a.api("POST", f"/v1/admin/open-token-purchases/{r['body']['id']}/cancel", admin)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "cancelled" and closed.json()["refund_due"] is False


def test_msp_down_then_back_issues_once(net):
    """It stops the MSP. C never read the catalog, so its offers are a 503; A's catalog is
    cached: its card sale is paid, pending, and issued once the MSP is back."""
    user = funded_user(net.a, 10)
    assert net.a.api("GET", "/v1/open-token-offers").status_code == 200
    net.msp.kill()
    try:
        down = net.vendors[2].server.api("GET", "/v1/open-token-offers")
        assert down.status_code == 503 and down.json()["reason"] == "msp_unreachable", down.text
        r = buy(net.a, user, key="down-1", kind="universal", tokens=400, **CARD)
        assert r["status"] == 201 and r["body"]["status"] == "pending", r
    finally:
        net.msp.start()
    issued = wait_status(net.a, user, r["body"]["id"], "issued", timeout=30)
    assert issued["status"] == "issued"
    again = buy(net.a, user, key="down-1", kind="universal", tokens=400, **CARD)
    assert again["body"]["id"] == r["body"]["id"] and again["body"]["status"] == "issued"
    assert [lot["balance"] for lot in msp_lots(net, net.a_id, user)] == [400]
    books_ok(net)


def test_not_in_a_mall_nothing_is_sold(server):
    user = server.new_user(tokens=10)
    assert server.api("GET", "/v1/open-token-offers").status_code == 409
    r = server.api("POST", "/v1/open-token-purchases", user, json={"kind": "universal", "tokens": 5, "pin": user.pin,
                                                                    **CARD})
    assert r.status_code == 409
