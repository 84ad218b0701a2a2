"""Selling open tokens (POST /v1/mall/open-issues, signed by the selling member) and
what a seller still owes for them (GET /v1/mall/open-outstanding), against a real
`msp serve` on SQLite and PostgreSQL: every kind's rules and price, the inbox's
first answer final (replays, a key reused with another body), the books balanced."""
from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.network import open_money
from tests.mall.test_member_calls import joined
from tests.support.msp import Msp


class Seller:
    """A member that signs its calls to the MSP with its own network key."""

    def __init__(self, msp: Msp, name: str) -> None:
        self.msp = msp
        self.member_id, self.key, _ = joined(msp, name)

    def customer(self, user: str = "", name: str = "Ada Lovelace") -> dict[str, str]:
        return {"home_member": self.member_id, "home_user_id": user or secrets.token_hex(4), "full_name": name}

    def issue(self, body: dict[str, Any], key: str | None = None) -> Any:
        return self.msp.signed("POST", "/v1/mall/open-issues", self.key, self.member_id, body,
                               headers={"Idempotency-Key": key or body["operation_id"]})

    def sale(self, kind: str, tokens: int, price: int, **more: Any) -> dict[str, Any]:
        body = {"operation_id": str(uuid.uuid4()), "kind": kind, "tokens": tokens, "price_cents": price,
                "customer": more.pop("customer", None) or self.customer(), **more}
        return body

    def get(self, path: str) -> Any:
        return self.msp.signed("GET", path, self.key, self.member_id)


def gift(seller: Seller, tokens: int, recipient: dict[str, str] | None = None, **more: Any) -> tuple[dict, str]:
    op = str(uuid.uuid4())
    code = open_money.gift_code(b"seller secret " + seller.member_id.encode(), op)
    cert: dict[str, Any] = {"code_sha256": open_money.gift_code_digest(code)}
    if recipient:
        cert["recipient"] = recipient
    body = seller.sale("gift_certificate", tokens, tokens, gift_certificate=cert, **more)
    body["operation_id"] = op
    return body, code


def later(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.fixture
def network(msp):
    """A seller S in a group, a brand whose member is B, on the module's MSP."""
    s, b = Seller(msp, "Seller"), Seller(msp, "Brand maker")
    tag = secrets.token_hex(3)
    brand, group = f"acme-{tag}", f"north-{tag}"
    msp.admin("brands-add", brand, "Acme", b.member_id, "--discount-bp", "1000", "--free-cap-units", "50")
    msp.admin("group-add", group, s.member_id)
    msp.admin("group-discount", group, "500")
    return s, b, brand, group


def test_each_kind_is_issued_once_and_a_replay_answers_the_same(msp, network):
    s, b, brand, group = network
    bodies = [
        s.sale("universal", 500, 500),
        s.sale("manufacturer", 1000, 900, issuer=brand, expires_at=later(30)),     # 10 % off
        b.sale("manufacturer_free", 200, 0, issuer=brand),                         # given by the brand's member
        s.sale("group", 333, 317, issuer=group),                                   # 5 % off 333, rounded up
        gift(s, 2500, recipient=s.customer(name="Grace Hopper"), expires_at=later(365))[0],
    ]
    sellers = [s, s, b, s, s]
    answers = []
    for seller, body in zip(sellers, bodies, strict=True):
        r = seller.issue(body)
        assert r.status_code == 200, r.text
        answers.append(r.json())
        [lot] = r.json()["lots"]
        assert (lot["kind"], lot["tokens"]) == (body["kind"], body["tokens"])
        issuer = body.get("issuer") or (seller.member_id if body["kind"] == "gift_certificate" else None)
        assert lot["asset"] == open_money.asset_name(open_money.OpenKind(body["kind"]), issuer)
        again = seller.issue(body)
        assert (again.status_code, again.json()) == (200, r.json())
    cert = answers[4]["gift_certificate"]
    assert cert["code_hint"] == bodies[4]["gift_certificate"]["code_sha256"][:8] and cert["id"] > 0
    assert answers[0]["gift_certificate"] is None
    # the same key with another body: refused, and the first answer stays
    other = {**bodies[0], "tokens": 600, "price_cents": 600}
    reused = s.issue(other)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert s.issue(bodies[0]).json() == answers[0]

    owed = {row["asset"]: row for row in s.get("/v1/mall/open-outstanding").json()}
    assert owed["open:universal"]["tokens"] == 500 and owed["open:universal"]["value_cents"] == 500
    assert owed[f"open:manufacturer:{brand}"]["value_cents"] == 900          # what S was paid: 90 %
    assert owed[f"open:manufacturer:{brand}"]["issued_tokens"] == 1000
    assert owed[f"open:group:{group}"]["value_micro_cents"] == 333 * 100 * 9500 // 10000
    assert owed[f"open:gift_certificate:{s.member_id}"]["tokens"] == 2500
    assert f"open:manufacturer_free:{brand}" not in owed                     # B's, and worth nothing
    b_owed = b.get("/v1/mall/open-outstanding").json()
    assert [(x["asset"], x["tokens"], x["value_micro_cents"]) for x in b_owed] == [
        (f"open:manufacturer_free:{brand}", 200, 0)]
    assert msp.admin_json("verify-books")["ok"]


def test_refusals_are_final_and_move_nothing(msp, network):
    s, b, brand, group = network
    other_home = Seller(msp, "Elsewhere")
    before = s.get("/v1/mall/open-outstanding").json()
    cases = [
        (s, s.sale("universal", 500, 499), 422, "wrong_price"),
        (s, s.sale("manufacturer", 1000, 1000, issuer=brand), 422, "wrong_price"),   # the discount is the brand's
        (s, s.sale("manufacturer_free", 100, 0, issuer=brand), 403, "not_brand_member"),
        (b, b.sale("group", 100, 95, issuer=group), 403, "not_in_group"),
        (s, s.sale("manufacturer", 10, 9, issuer="no-such-brand"), 404, "unknown_brand"),
        (s, s.sale("universal", 10, 10, customer=other_home.customer()), 403, "not_home_member"),
        (s, s.sale("universal", 10, 10, expires_at=later(-1)), 422, "bad_expiry"),
        (s, s.sale("universal", 10, 10, expires_at=later(5 * 366 + 2)), 422, "bad_expiry"),
        (s, gift(s, 100, recipient=other_home.customer())[0], 422, "recipient_elsewhere"),
        (s, s.sale("universal", 10, 10, issuer="x"), 422, None),
        (s, s.sale("gift_certificate", 10, 10), 422, None),                     # no code
        (s, s.sale("universal", 0, 0), 422, None),
    ]
    for seller, body, status, reason in cases:
        r = seller.issue(body)
        assert r.status_code == status, (body, r.text)
        if reason:
            assert r.json()["reason"] == reason, r.json()
        again = seller.issue(body)      # a refusal is the first answer too
        assert (again.status_code, again.json()) == (status, r.json())
    wrong = s.sale("universal", 500, 499)
    assert s.issue(wrong).json()["price_cents"] == 500
    # the key is the operation id; an unsigned call or another member's key is no sale
    body = s.sale("universal", 10, 10)
    assert s.issue(body, key=str(uuid.uuid4())).status_code == 422
    assert msp.post("/v1/mall/open-issues", json=body, headers={"Idempotency-Key": body["operation_id"]},
                    timeout=30).status_code == 401
    forged = msp.signed("POST", "/v1/mall/open-issues", Ed25519PrivateKey.generate(), s.member_id, body,
                        headers={"Idempotency-Key": body["operation_id"]})
    assert forged.status_code == 401
    assert s.get("/v1/mall/open-outstanding").json() == before
    assert msp.admin_json("verify-books")["ok"]


# ---------------------------------------------------------------- the catalog, the product list, the operator

def test_the_catalog_and_the_product_list_follow_the_operator(msp, network):
    s, b, brand, group = network
    catalog = msp.get("/v1/mall/open-catalog").json()      # public: no signature
    assert catalog["unit_value_cents"] == 1 and catalog["gift_certificate"] == {"max_days": 5 * 365 + 1}
    assert {"brand_id": brand, "name": "Acme", "member_id": b.member_id, "discount_bp": 1000,
            "free_cap_units": 50} in catalog["brands"]
    assert {"name": group, "members": [s.member_id], "discount_bp": 500} in catalog["groups"]
    out = msp.admin_json("brands-add", brand, "Acme Tools", b.member_id, "--discount-bp", "1500")
    assert (out["name"], out["discount_bp"], out["free_cap_units"]) == ("Acme Tools", 1500, 0)
    assert out in msp.admin_json("brands")
    # a sale after the change takes the new discount
    assert s.issue(s.sale("manufacturer", 100, 85, issuer=brand)).status_code == 200

    assert msp.admin_json("brand-products-add", brand, b.member_id, "7") == {"product_id": 7, "brand_id": brand}
    msp.admin("brand-products-add", brand, b.member_id, "7")           # already so: nothing changes
    msp.admin("brand-products-add", brand, b.member_id, "3")
    listed = b.get(f"/v1/mall/brand-products?member={b.member_id}")
    assert listed.status_code == 200 and listed.json() == [{"product_id": 3, "brand_id": brand},
                                                           {"product_id": 7, "brand_id": brand}]
    assert s.get(f"/v1/mall/brand-products?member={b.member_id}").json() == listed.json()   # any member reads it
    assert s.get("/v1/mall/brand-products").json() == []                                   # the caller's own
    assert msp.get(f"/v1/mall/brand-products?member={b.member_id}").status_code == 401
    assert b.get("/v1/mall/brand-products?member=m-zzzzzzzzzz").status_code == 404
    msp.admin("brand-products-remove", b.member_id, "3")
    assert b.get("/v1/mall/brand-products").json() == [{"product_id": 7, "brand_id": brand}]


OPEN_REFUSALS = [
    (("brands-add", "{brand}", "Acme", "{s}"), "does not change"),
    (("brands-add", "Bad:Id", "X", "{s}"), "brand_id"),
    (("brands-add", "fresh", "X", "{s}", "--discount-bp", "10001"), "discount_bp"),
    (("brands-add", "fresh", "X", "m-zzzzzzzzzz"), "no member"),
    (("brand-products-add", "no-brand", "{s}", "1"), "no brand"),
    (("brand-products-add", "{brand}", "{s}", "0"), "positive"),
    (("brand-products-remove", "{s}", "99"), "on no brand's list"),
    (("group-discount", "no-such-group", "100"), "no group"),
    (("group-discount", "{group}", "10001"), "basis points"),
    (("grant-open", "manufacturer_free", "no-brand", "--customer", "{s}:1", "10"), "no brand"),
    (("grant-open", "manufacturer_free", "{brand}", "--customer", "{s}", "10"), "MEMBER:HOME_USER_ID"),
    (("grant-open", "manufacturer_free", "{brand}", "--customer", "{s}:1", "0"), "1 to"),
    (("grant-open", "manufacturer_free", "{brand}", "--customer", "m-zzzzzzzzzz:1", "10"), "no member"),
    (("open-unit", "0"), "1 to"),
]


def test_open_refusals_exit_2_and_change_nothing(msp, network):
    s, b, brand, group = network
    msp.admin("brand-products-add", brand, b.member_id, "5")
    before = (msp.get("/v1/mall/open-catalog").json(), msp.admin_json("brand-products", s.member_id),
              msp.admin_json("brand-products", b.member_id))
    for args, words in OPEN_REFUSALS:
        res = msp.admin(*(x.format(s=s.member_id, brand=brand, group=group) for x in args), check=False)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert words in res.stderr, (args, res.stderr)
        assert res.stdout == ""
    brand_conflict = msp.admin("brand-products-add", f"{brand}", b.member_id, "5", check=False)
    assert brand_conflict.returncode == 0     # the same entry again is no change
    after = (msp.get("/v1/mall/open-catalog").json(), msp.admin_json("brand-products", s.member_id),
             msp.admin_json("brand-products", b.member_id))
    assert after == before
    assert s.get("/v1/mall/open-outstanding").json() == []


def test_the_operator_grants_free_tokens_once(msp, network):
    s, b, brand, _group = network
    op = str(uuid.uuid4())
    args = ("grant-open", "manufacturer_free", brand, "--customer", f"{s.member_id}:42", "300", "--expires-at",
            later(30), "--full-name", "Ada Lovelace", "--operation-id", op)
    lot = msp.admin_json(*args)
    assert (lot["kind"], lot["issuer"], lot["tokens"]) == ("manufacturer_free", brand, 300)
    assert lot["expires_at"] is not None
    assert msp.admin_json(*args) == lot                    # the same grant again: the same lot, nothing twice
    other = msp.admin(*args[:5], "301", *args[6:], check=False)
    assert other.returncode == 2 and "idempotency_key_reused" in other.stderr
    owed = b.get("/v1/mall/open-outstanding").json()       # the brand's member settles for them
    assert [(x["asset"], x["tokens"], x["issued_tokens"]) for x in owed] == [
        (f"open:manufacturer_free:{brand}", 300, 300)]
    assert msp.admin_json("verify-books")["ok"]


def test_the_open_unit_is_fixed_once_tokens_exist(msp_factory):
    fresh = msp_factory()
    seller = Seller(fresh, "Unit seller")
    assert fresh.admin_json("open-unit", "5") == {"unit_value_cents": 5}
    assert fresh.get("/v1/mall/open-catalog").json()["unit_value_cents"] == 5
    cheap = seller.sale("universal", 100, 100)
    assert seller.issue(cheap).json()["price_cents"] == 500        # 100 units of 5 cents
    r = seller.issue(seller.sale("universal", 100, 500))
    assert r.status_code == 200, r.text
    refused = fresh.admin("open-unit", "1", check=False)
    assert refused.returncode == 2 and "no longer changes" in refused.stderr
    assert fresh.admin_json("open-unit", "5") == {"unit_value_cents": 5}   # what it is already
    assert fresh.get("/v1/mall/open-catalog").json()["unit_value_cents"] == 5
    assert seller.get("/v1/mall/open-outstanding").json()[0]["value_cents"] == 500
