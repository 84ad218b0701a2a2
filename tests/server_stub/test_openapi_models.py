"""Response models in /openapi.json (the foundation: "pydantic models for every
request and response"), read from the real server: every 2xx JSON answer of
every /v1 route has a typed schema, and the store's real answers validate
against it and keep exactly the keys the services build (a key that is
sometimes absent stays absent, never null)."""
from __future__ import annotations

import json

import jsonschema_rs
import pytest

from server_stub.schemas import store as s
from server_stub.schemas.common import ShortageProblem
from tests.support.store import make_catalog, order, register_device

# /v1 routes outside the store whose 2xx answer has no model yet (not the
# store's files). Listed so that they are seen; once typed, drop them here.
KNOWN_UNTYPED: set[tuple[str, str]] = set()


def _typed(schema: dict, components: dict) -> bool:
    """A $ref to a model, an object with properties, or an array of those."""
    if "$ref" in schema:
        target = components[schema["$ref"].rsplit("/", 1)[-1]]
        return "$ref" in target or bool(target.get("properties")) or target.get("type") == "array" \
            and _typed(target.get("items", {}), components)
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}), components)
    if schema.get("type") == "object":
        return bool(schema.get("properties"))
    return False


def test_every_v1_json_answer_has_a_schema(server):
    spec = server.api("GET", "/openapi.json").json()
    components = spec["components"]["schemas"]
    untyped, seen = [], 0
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if not status.startswith("2"):
                    continue
                content = resp.get("content", {})
                if status not in ("204", "206"):
                    assert content, f"{method.upper()} {path} {status} documents no answer"
                if "application/json" in content:
                    seen += 1
                    if not _typed(content["application/json"].get("schema", {}), components):
                        untyped.append((method, path))
    assert seen >= 50
    assert set(untyped) - KNOWN_UNTYPED == set(), sorted(set(untyped) - KNOWN_UNTYPED)
    # a listed exception that got its model must leave the list (so the list stays true)
    assert KNOWN_UNTYPED <= set(untyped), KNOWN_UNTYPED - set(untyped)
    # the downloads are files, not JSON
    dl = spec["paths"]["/v1/products/{product_id}/download"]["get"]["responses"]["200"]["content"]
    assert set(dl) == {"application/octet-stream"}
    # the refusals with extra fields are documented with them
    assert spec["paths"]["/v1/orders"]["post"]["responses"]["402"]["content"]["application/problem+json"][
        "schema"] == {"$ref": "#/components/schemas/OrderShortageProblem"}
    assert components["OrderShortageProblem"]["anyOf"] == [          # the open short, or the closed one
        {"$ref": "#/components/schemas/OpenShortageProblem"}, {"$ref": "#/components/schemas/ShortageProblem"}]


# ---------------------------------------------------------------- real answers

def _as_pydantic_writes(text: str) -> str:
    """POST /v1/orders and POST /v1/devices answer a Response built with
    jsonable_encoder (UTC as "+00:00"); the modelled routes write "Z", as the
    store always did. The same instant either way."""
    return text.replace('+00:00"', 'Z"')


class Checker:
    """Validates an answer against the operation's schema in the published
    document (as schemathesis or a generated client reads it) and against the
    pydantic model; the model's dump must give back the very same JSON."""

    def __init__(self, spec: dict):
        self.spec = spec

    def __call__(self, r, method: str, path: str, model, many: bool = False):
        body = r.json()
        media_type = r.headers["content-type"].split(";")[0]   # application/problem+json for errors
        schema = self.spec["paths"][path][method.lower()]["responses"][str(r.status_code)]["content"][
            media_type]["schema"]
        jsonschema_rs.validator_for({**schema, "components": self.spec["components"]}).validate(body)
        items = body if many else [body]
        for item in items:
            dumped = model.model_validate(item).model_dump(mode="json", exclude_unset=True)
            # same keys, same values, same order: nothing the clients read disappears
            assert json.dumps(dumped) == _as_pydantic_writes(json.dumps(item)), (model.__name__, item)
        return body


OFFER_FIXED = ["id", "product_id", "kind", "active", "low_threshold"]
DELIVERY = ["product_id", "product_name", "license_id", "serial", "kind", "device_id", "kid",
            "authorization_code", "installed"]
DOWNLOAD = ["download_url", "version", "sha256", "size", "file_name"]
RECEIPT = ["id", "status", "created_at", "device_id", "required_tokens", "available_tokens", "remaining_tokens",
           "balance_after", "token_price_cents", "cash_cents", "items", "deliveries", "payment", "paid"]
LICENSE = ["id", "product_id", "product_name", "kind", "serial", "device_id", "device_name", "starts_at",
           "expires_at", "uses", "processings", "low_threshold", "store_url", "active", "created_at", "updated_at"]


@pytest.fixture
def srv(server_factory):
    return server_factory()   # own server: this test rotates the vendor key


def test_store_answers_validate_and_keep_exactly_their_keys(srv):
    check = Checker(srv.api("GET", "/openapi.json").json())
    admin = srv.admin()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=1000)
    perm, time_ = cat.products["perm"], cat.products["time"]
    for pid in (perm, time_):
        r = srv.api("POST", f"/v1/admin/products/{pid}/versions?version=1.0", admin, data=b"program bytes",
                    headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        v = check(r, "POST", "/v1/admin/products/{product_id}/versions", s.VersionOut)
        assert list(v) == ["id", "version", "file_name", "sha256", "size", "signed_package", "published_at"]

    # catalog: a product with purchase, rental and convert offers
    cats = check(srv.api("GET", "/v1/categories"), "GET", "/v1/categories", s.CategoryListed, many=True)
    assert all(list(c) == ["id", "name", "description", "position", "product_count"] for c in cats)
    listed = check(srv.api("GET", "/v1/products", params={"category_id": cat.category_id}), "GET", "/v1/products",
                   s.ProductOut, many=True)
    detail = check(srv.api("GET", f"/v1/products/{time_}"), "GET", "/v1/products/{product_id}", s.ProductDetailOut)
    assert "versions" in detail and all("versions" not in p for p in listed)
    offers = {o["kind"]: o for o in detail["offers"]}
    assert list(offers["purchase"]) == OFFER_FIXED + ["tokens", "cash_cents"]       # no "tiers", no "unit"
    assert list(offers["convert"]) == OFFER_FIXED + ["tokens", "cash_cents"]
    assert list(offers["rent_time"]) == OFFER_FIXED + ["tiers", "unit"]             # no "tokens", no "cash_cents"
    assert offers["rent_time"]["tiers"][0] == {"quantity": 7, "tokens": 15, "cash_cents": 150}
    assert detail["latest_version"]["version"] == "1.0" and detail["versions"][0] == detail["latest_version"]
    assert detail["latest_version"]["published_at"].endswith("Z")              # RFC 3339 UTC, as before
    no_version = next(p for p in listed if p["id"] == cat.products["uses"])
    assert no_version["latest_version"] is None                                     # null, not absent

    # devices: POST is the service's dict as is (no model on the way), PATCH goes through the model
    keys = register_device(srv, user)
    r = srv.api("POST", "/v1/devices", user, json={"public_key": keys.public_b64, "name": "again"})
    assert r.status_code == 200
    raw_device = check(r, "POST", "/v1/devices", s.DeviceOut)
    r = srv.api("PATCH", f"/v1/devices/{keys.device_id}", user, json={"name": "again"})
    check(r, "PATCH", "/v1/devices/{device_id}", s.DeviceOut)
    assert r.text == _as_pydantic_writes(json.dumps(raw_device, separators=(",", ":")))
    devs = check(srv.api("GET", "/v1/devices", user), "GET", "/v1/devices", s.DeviceListed, many=True)
    assert list(devs[0]) == list(raw_device) + ["license_count"]

    # quote
    items = [{"offer_id": cat.offers[("perm", "purchase")]},
             {"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]
    q = check(srv.api("POST", "/v1/quotes", user, json={"items": items}), "POST", "/v1/quotes", s.QuoteOut)
    assert list(q) == ["required_tokens", "available_tokens", "remaining_tokens", "payable", "shortage",
                       "cash_cents", "token_price_cents", "account_status", "exact_actions", "device_id", "items"]
    assert q["items"][0]["license_id"] is None and q["items"][1]["quantity"] == 7

    # an order: perm not installed (download + code), time installed (code only)
    r = order(srv, user, keys, items, installed=[time_])
    assert r.status_code == 201, r.text
    placed = check(r, "POST", "/v1/orders", s.ReceiptOut)
    assert list(placed) == RECEIPT
    by_product = {d["product_id"]: d for d in placed["deliveries"]}
    assert list(by_product[perm]) == DELIVERY + DOWNLOAD and by_product[perm]["installed"] is False
    assert list(by_product[time_]) == DELIVERY and by_product[time_]["installed"] is True   # no "download_url"
    # the receipt read back through the model is byte for byte the answer the order gave
    got = srv.api("GET", f"/v1/orders/{placed['id']}", user)
    check(got, "GET", "/v1/orders/{order_id}", s.ReceiptOut)
    assert got.text == _as_pydantic_writes(r.text)
    placed = got.json()
    mine = check(srv.api("GET", "/v1/orders", user), "GET", "/v1/orders", s.ReceiptOut, many=True)
    assert mine == [placed]
    everyone = check(srv.api("GET", "/v1/admin/orders", admin, params={"username": user.username}),
                     "GET", "/v1/admin/orders", s.AdminReceiptOut, many=True)
    assert everyone == [{**placed, "user_id": user.id}]

    # short of tokens: the 402 has its documented fields
    poor = srv.new_user(tokens=100)   # active (the minimum purchase), short of 115
    poor_keys = register_device(srv, poor)
    r = order(srv, poor, poor_keys, items)
    assert r.status_code == 402
    check(r, "POST", "/v1/orders", ShortageProblem)

    # licenses and codes
    lics = check(srv.api("GET", "/v1/licenses", user), "GET", "/v1/licenses", s.LicenseOut, many=True)
    assert all(list(x) == LICENSE for x in lics)
    rental = next(x for x in lics if x["kind"] == "time")
    assert rental["uses"] is None and rental["expires_at"].endswith("Z")
    one = check(srv.api("GET", f"/v1/licenses/{rental['id']}", user), "GET", "/v1/licenses/{license_id}",
                s.LicenseOut)
    assert one == rental
    code = check(srv.api("GET", f"/v1/licenses/{rental['id']}/code", user, params={"device_id": keys.device_id}),
                 "GET", "/v1/licenses/{license_id}/code", s.LicenseCodeOut)
    assert list(code) == ["license_id", "product_id", "serial", "device_id", "kid", "authorization_code"]

    # the saved order list keeps items exactly as put (quantity only where given)
    r = srv.api("PUT", "/v1/order-list", user, json={"items": items})
    saved = check(r, "PUT", "/v1/order-list", s.OrderListOut)
    assert saved["items"] == items and "quantity" not in saved["items"][0]
    assert check(srv.api("GET", "/v1/order-list", user), "GET", "/v1/order-list", s.OrderListOut) == saved
    assert srv.api("DELETE", "/v1/order-list", user).status_code == 204
    assert check(srv.api("GET", "/v1/order-list", user), "GET", "/v1/order-list", s.OrderListOut) \
        == {"items": [], "updated_at": None}

    # admin: offers, categories, products, sales
    r = srv.api("PUT", f"/v1/admin/products/{perm}/offers/rent_uses", admin,
                json={"tiers": [{"quantity": 5, "tokens": 3}]})
    rent = check(r, "PUT", "/v1/admin/products/{product_id}/offers/{kind}", s.OfferOut)
    assert list(rent) == OFFER_FIXED + ["tiers", "unit"] and rent["unit"] == "uses"
    r = srv.api("DELETE", f"/v1/admin/offers/{cat.offers[('perm', 'purchase')]}", admin)
    gone = check(r, "DELETE", "/v1/admin/offers/{offer_id}", s.OfferOut)
    assert list(gone) == OFFER_FIXED + ["tokens", "cash_cents"] and gone["active"] is False
    r = srv.api("POST", "/v1/admin/categories", admin, json={"name": f"models {user.username}"})
    new_cat = check(r, "POST", "/v1/admin/categories", s.CategoryOut)
    assert list(new_cat) == ["id", "name", "description", "position"]                # no "product_count"
    r = srv.api("POST", "/v1/admin/products", admin, json={"category_id": new_cat["id"], "name": user.username})
    assert check(r, "POST", "/v1/admin/products", s.ProductOut)["offers"] == []
    every = check(srv.api("GET", "/v1/admin/products", admin, params={"category_id": cat.category_id}),
                  "GET", "/v1/admin/products", s.ProductOut, many=True)
    assert any(o["id"] == gone["id"] and not o["active"] for p in every for o in p["offers"])
    sales = check(srv.api("GET", "/v1/admin/sales", admin), "GET", "/v1/admin/sales", s.SalesReportOut)
    assert list(sales["lines"][0]) == ["product_id", "product_name", "kind", "items_sold", "tokens", "cash_cents"]

    # the vendor key: the current one has no "retired_at", a retired one has it
    before = check(srv.api("GET", "/v1/vendor-key"), "GET", "/v1/vendor-key", s.VendorKeyOut)
    assert list(before) == ["kid", "public_key", "keys"] and list(before["keys"][0]) == ["kid", "public_key", "current"]
    rotated = check(srv.api("POST", "/v1/admin/vendor-key/rotate", admin), "POST", "/v1/admin/vendor-key/rotate",
                    s.KeyRotatedOut)
    assert rotated["previous_kid"] == before["kid"]
    after = check(srv.api("GET", "/v1/vendor-key"), "GET", "/v1/vendor-key", s.VendorKeyOut)
    assert list(after["keys"][0]) == ["kid", "public_key", "current"] and after["kid"] == rotated["kid"]
    old = next(k for k in after["keys"] if k["kid"] == before["kid"])
    assert list(old) == ["kid", "public_key", "current", "retired_at"] and old["retired_at"].endswith("Z")


def test_admin_orders_refuses_a_nul_in_the_username(server):
    """Found by the fuzz run: PostgreSQL cannot compare text holding NUL (it was a 500)."""
    r = server.api("GET", "/v1/admin/orders", server.admin(), params={"username": "a\x00b"})
    assert r.status_code == 422, r.text
    assert server.api("GET", "/v1/admin/orders", server.admin(), params={"username": "nobody_x"}).status_code == 404
