"""Nobody sees or touches another user's store data.

User B probes every store route (from /openapi.json) with a VALID request
that references user A's real order, license, device and product ids, and
gets the exact answer the contract gives (404 for A's order/license/device,
403 for a download without a license of one's own), never one of A's
secrets, and nothing of A's changes (tokens, licenses and their serials,
devices, saved order list, orders), nor anything of B's. A route without a
probe fails the test, so new routes must be added here."""
from __future__ import annotations

import pytest

from tests.support.store import licenses_of, make_catalog, order, register_device

STORE_PREFIXES = ("/v1/orders", "/v1/order-list", "/v1/licenses", "/v1/devices", "/v1/products", "/v1/quotes")


@pytest.fixture(scope="module")
def victim(server):
    cat = make_catalog(server)
    a = server.new_user(tokens=500, full_name="Store Victim Xiuhcoatl")
    keys = register_device(server, a)
    assert server.api("PATCH", f"/v1/devices/{keys.device_id}", a,
                      json={"name": "Victim Rig Ocelotl"}).status_code == 200
    r = order(server, a, keys, [{"offer_id": cat.offers[("perm", "purchase")]},
                                {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}])
    assert r.status_code == 201, r.text
    body = r.json()
    lic = {d["product_id"]: d["license_id"] for d in body["deliveries"]}
    r = server.api("PUT", "/v1/order-list", a, json={"items": [{"offer_id": cat.offers[("proc", "rent_processings")],
                                                                "quantity": 10000}]})
    assert r.status_code == 200, r.text
    r = server.api("POST", f"/v1/admin/products/{cat.products['perm']}/versions?version=1", server.admin(),
                   data=b"victim's program", headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    ids = {"order_id": body["id"], "perm_license": lic[cat.products["perm"]],
           "uses_license": lic[cat.products["uses"]], "device_id": keys.device_id,
           "product_id": cat.products["perm"], "version_id": r.json()["id"]}
    markers = [keys.device_id, "Victim Rig Ocelotl", *(d["authorization_code"][:40] for d in body["deliveries"])]
    return a, keys, ids, markers, cat


def _snapshot(server, user):
    return {"tokens": server.me(user)["available_tokens"], "licenses": licenses_of(server, user),
            "devices": server.api("GET", "/v1/devices", user).json(),
            "order_list": server.api("GET", "/v1/order-list", user).json(),
            "orders": server.api("GET", "/v1/orders", user).json()}


def test_victim_sees_own_markers(server, victim):
    a, keys, ids, markers, _ = victim
    assert markers[1] in server.api("GET", "/v1/devices", a).text
    assert server.api("GET", f"/v1/orders/{ids['order_id']}", a).status_code == 200
    lid = ids["uses_license"]
    assert server.api("GET", f"/v1/licenses/{lid}", a).status_code == 200
    assert server.api("GET", f"/v1/licenses/{lid}/code", a, params={"device_id": keys.device_id}).status_code == 200


def _probes(ids, cat, b_keys, b_license):
    """(method, openapi path) -> [(url, kwargs, status, words in detail)].
    Every write body is schema-valid; only the ownership of the ids is wrong."""
    dev, lid, perm_lid = ids["device_id"], ids["uses_license"], ids["perm_license"]
    pid, vid, oid = ids["product_id"], ids["version_id"], ids["order_id"]
    rent_uses = {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}
    extend_a = {**rent_uses, "license_id": lid}
    convert_a = {"offer_id": cat.offers[("uses", "convert")], "license_id": lid}
    perm = {"offer_id": cat.offers[("perm", "purchase")]}
    nolic, nodev = "no such license", "no such device"
    dl = f"/v1/products/{pid}/download"
    vdl = f"/v1/products/{pid}/versions/{vid}/download"
    return {
        ("POST", "/v1/quotes"): [
            ("/v1/quotes", {"json": {"items": [extend_a]}}, 404, nolic),
            ("/v1/quotes", {"json": {"items": [convert_a]}}, 404, nolic),
            ("/v1/quotes", {"json": {"items": [rent_uses], "device_id": dev}}, 404, nodev),
            ("/v1/quotes", {"json": {"items": [extend_a], "device_id": b_keys.device_id}}, 404, nolic),
        ],
        ("POST", "/v1/orders"): [
            ("/v1/orders", {"json": {"items": [extend_a], "device_id": b_keys.device_id}}, 404, nolic),
            ("/v1/orders", {"json": {"items": [convert_a], "device_id": b_keys.device_id}}, 404, nolic),
            ("/v1/orders", {"json": {"items": [perm], "device_id": dev}}, 404, nodev),
            ("/v1/orders", {"json": {"items": [extend_a], "device_id": dev}}, 404, None),
        ],
        ("GET", "/v1/orders"): [("/v1/orders", {"params": {"before_id": oid + 1}}, 200, None)],
        ("GET", "/v1/orders/{order_id}"): [(f"/v1/orders/{oid}", {}, 404, "no such order")],
        ("GET", "/v1/order-list"): [("/v1/order-list", {}, 200, None)],
        ("PUT", "/v1/order-list"): [
            ("/v1/order-list", {"json": {"items": [extend_a]}}, 404, nolic),
            ("/v1/order-list", {"json": {"items": [convert_a]}}, 404, nolic),
        ],
        ("DELETE", "/v1/order-list"): [("/v1/order-list", {}, 204, None)],     # B's own list only
        ("GET", "/v1/licenses"): [("/v1/licenses", {}, 200, None)],
        ("GET", "/v1/licenses/{license_id}"): [(f"/v1/licenses/{lid}", {}, 404, nolic),
                                               (f"/v1/licenses/{perm_lid}", {}, 404, nolic)],
        ("GET", "/v1/licenses/{license_id}/code"): [
            (f"/v1/licenses/{lid}/code", {"params": {"device_id": dev}}, 404, nolic),
            (f"/v1/licenses/{lid}/code", {"params": {"device_id": b_keys.device_id}}, 404, nolic),
            # B's own license, A's device
            (f"/v1/licenses/{b_license}/code", {"params": {"device_id": dev}}, 404, nodev),
        ],
        ("GET", "/v1/devices"): [("/v1/devices", {}, 200, None)],
        ("POST", "/v1/devices"): [],    # test_registering_the_same_computer_never_touches_the_others
        ("PATCH", "/v1/devices/{device_id}"): [(f"/v1/devices/{dev}", {"json": {"name": "stolen"}}, 404, nodev)],
        ("DELETE", "/v1/devices/{device_id}"): [(f"/v1/devices/{dev}", {}, 404, nodev)],
        ("GET", "/v1/products"): [("/v1/products", {}, 200, None)],
        ("GET", "/v1/products/{product_id}"): [(f"/v1/products/{pid}", {}, 200, None)],
        ("GET", "/v1/products/{product_id}/download"): [(dl, {}, 403, "license")],
        ("HEAD", "/v1/products/{product_id}/download"): [(dl, {}, 403, None)],
        ("GET", "/v1/products/{product_id}/versions/{version_id}/download"): [(vdl, {}, 403, "license")],
        ("HEAD", "/v1/products/{product_id}/versions/{version_id}/download"): [(vdl, {}, 403, None)],
    }


def _license_ids_in(value) -> set:
    """Every value under a `license_id` key in a JSON value."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "license_id":
                out.add(v)
            out |= _license_ids_in(v)
    elif isinstance(value, list):
        for v in value:
            out |= _license_ids_in(v)
    return out


def _leaked_ids(url: str, body, ids) -> set:
    """A's order and license ids in B's answer (A's device id is a marker)."""
    a_licenses = {ids["perm_license"], ids["uses_license"]}
    found = _license_ids_in(body) & a_licenses
    if url.startswith("/v1/orders") and isinstance(body, list):
        found |= {o["id"] for o in body} & {ids["order_id"]}
    if url.startswith("/v1/licenses") and isinstance(body, list):
        found |= {lic["id"] for lic in body} & a_licenses
    return found


def test_no_store_route_leaks_or_changes_another_users_data(server, victim):
    a, keys, ids, markers, cat = victim
    b = server.new_user(tokens=300)
    b_keys = register_device(server, b)
    r = order(server, b, b_keys, [{"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 100}])
    assert r.status_code == 201, r.text
    b_license = r.json()["deliveries"][0]["license_id"]
    a_before, b_before = _snapshot(server, a), _snapshot(server, b)
    probes = _probes(ids, cat, b_keys, b_license)

    # the probes bodies are valid: the owner gets through with the same quotes
    for _url, kw, _status, _words in probes[("POST", "/v1/quotes")]:
        body = dict(kw["json"])
        if body.get("device_id") == b_keys.device_id:
            body["device_id"] = keys.device_id
        ok = server.api("POST", "/v1/quotes", a, json=body)
        assert ok.status_code == 200, (body, ok.text)

    spec = server.api("GET", "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() if p.startswith(STORE_PREFIXES) for m in ops}
    assert routes == set(probes), ("a store route without a probe (add one):", routes ^ set(probes))
    probed = 0
    for (method, _path), cases in sorted(probes.items()):
        for url, kw, status, words in cases:
            r = server.api(method, url, b, **kw)
            probed += 1
            where = (method, url, kw, r.status_code, r.text[:300])
            assert r.status_code == status, where
            if words is not None:
                assert words in r.json()["detail"], where
            for m in markers:
                assert m not in r.text, where
            if r.status_code == 200 and "/v1/products" not in url:
                assert not _leaked_ids(url, r.json(), ids), where
            if method != "GET" and method != "HEAD":
                assert _snapshot(server, a) == a_before, where
    assert probed >= 25
    # B's own data: only B's, and unchanged by the refused writes
    assert _snapshot(server, b) == b_before
    assert [lic["id"] for lic in licenses_of(server, b)] == [b_license]
    assert [d["device_id"] for d in server.api("GET", "/v1/devices", b).json()] == [b_keys.device_id]
    assert _snapshot(server, a) == a_before
    assert server.ledger_check()["ok"]


def test_registering_the_same_computer_never_touches_the_others(server, victim):
    """POST /v1/devices with A's public key: B gets B's own registration (the
    contract allows two accounts on one computer); A's device, its name and
    its licenses stay A's, and B still cannot use A's licenses through it."""
    a, keys, ids, markers, cat = victim
    a_before = _snapshot(server, a)
    c = server.new_user(tokens=100)
    r = server.api("POST", "/v1/devices", c, json={"public_key": keys.public_b64, "name": "stolen"})
    assert r.status_code == 201, r.text                     # a new registration, not A's device (200)
    assert r.json()["name"] == "stolen" and r.json()["device_id"] == keys.device_id
    assert "Victim Rig Ocelotl" not in r.text
    (mine,) = server.api("GET", "/v1/devices", c).json()
    assert mine["license_count"] == 0 and mine["name"] == "stolen"
    assert server.api("GET", f"/v1/licenses/{ids['uses_license']}/code", c,
                      params={"device_id": keys.device_id}).status_code == 404
    r = server.api("POST", "/v1/orders", c, json={"items": [{"offer_id": cat.offers[("uses", "rent_uses")],
                                                             "quantity": 10, "license_id": ids["uses_license"]}],
                                                  "device_id": keys.device_id})
    assert r.status_code == 404 and "no such license" in r.json()["detail"]
    assert server.api("DELETE", f"/v1/devices/{keys.device_id}", c).status_code == 204   # C's own only
    assert _snapshot(server, a) == a_before
    assert server.me(c)["available_tokens"] == 100
