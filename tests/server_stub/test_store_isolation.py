"""Nobody sees or touches another user's store data: every store route with
a path id, probed by user B with user A's real order, license, device and
product ids, and every list route, gives B nothing of A's and changes
nothing of A's. Covers new routes automatically (from /openapi.json)."""
from __future__ import annotations

import re

import pytest

from tests.support.store import licenses_of, make_catalog, order, register_device

STORE_PREFIXES = ("/v1/orders", "/v1/order-list", "/v1/licenses", "/v1/devices", "/v1/products", "/v1/quotes")


@pytest.fixture(scope="module")
def victim(server):
    cat = make_catalog(server)
    a = server.new_user(tokens=500, full_name="Store Victim Xiuhcoatl")
    keys = register_device(server, a)
    server.api("PATCH", f"/v1/devices/{keys.device_id}", a, json={"name": "Victim Rig Ocelotl"})
    r = order(server, a, keys, [{"offer_id": cat.offers[("perm", "purchase")]},
                                {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}])
    assert r.status_code == 201
    body = r.json()
    server.api("PUT", "/v1/order-list", a, json={"items": [{"offer_id": cat.offers[("proc", "rent_processings")],
                                                           "quantity": 10000}]})
    server.api("POST", f"/v1/admin/products/{cat.products['perm']}/versions?version=1", server.admin(),
               data=b"victim's program", headers={"Content-Type": "application/octet-stream"})
    ids = {"order_id": [body["id"]], "license_id": [d["license_id"] for d in body["deliveries"]],
           "device_id": [keys.device_id], "product_id": [cat.products["perm"]],
           "version_id": [v["id"] for v in server.api("GET", f"/v1/products/{cat.products['perm']}").json()["versions"]]}
    markers = [keys.device_id, "Victim Rig Ocelotl", *(d["authorization_code"][:40] for d in body["deliveries"])]
    return a, keys, ids, markers, cat


def _snapshot(server, a):
    return (server.me(a)["available_tokens"], licenses_of(server, a),
            server.api("GET", "/v1/devices", a).json(), server.api("GET", "/v1/order-list", a).json(),
            [o["id"] for o in server.api("GET", "/v1/orders", a).json()])


def test_victim_sees_own_markers(server, victim):
    a, keys, ids, markers, _ = victim
    assert markers[1] in server.api("GET", "/v1/devices", a).text
    assert server.api("GET", f"/v1/orders/{ids['order_id'][0]}", a).status_code == 200


def test_no_store_route_leaks_or_changes_another_users_data(server, victim):
    a, keys, ids, markers, cat = victim
    b = server.new_user(tokens=300)
    b_keys = register_device(server, b)
    before = _snapshot(server, a)
    spec = server.api("GET", "/openapi.json").json()
    probed = 0
    for path, ops in spec["paths"].items():
        if not path.startswith(STORE_PREFIXES):
            continue
        names = re.findall(r"\{([a-z_]+)\}", path)
        for method in ops:
            url = path
            for n in names:
                url = url.replace("{" + n + "}", str(ids[n][0]))
            params = {"device_id": keys.device_id} if path.endswith("/code") else None
            body = None
            if method.upper() in ("POST", "PUT", "PATCH"):
                body = {"name": "stolen", "items": [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10,
                                                     "license_id": ids["license_id"][1]}],
                        "device_id": keys.device_id}
            r = server.api(method.upper(), url, b, json=body, params=params)
            probed += 1
            assert r.status_code < 500, (method, url, r.text)
            for m in markers:
                assert m not in r.text, (method, url, r.text)
            if names and not path.startswith("/v1/products") or path in ("/v1/orders", "/v1/quotes"):
                if method.upper() != "GET" or names:
                    assert r.status_code in (403, 404, 405, 422), (method, url, r.status_code, r.text)
    assert probed >= 12
    # B's own lists hold nothing of A's
    assert server.api("GET", "/v1/orders", b).json() == []
    assert licenses_of(server, b) == []
    assert [d["device_id"] for d in server.api("GET", "/v1/devices", b).json()] == [b_keys.device_id]
    assert server.api("GET", "/v1/order-list", b).json()["items"] == []
    # downloads need B's own license
    assert server.api("GET", f"/v1/products/{ids['product_id'][0]}/download", b).status_code == 403
    assert _snapshot(server, a) == before
