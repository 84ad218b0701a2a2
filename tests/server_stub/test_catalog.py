"""The catalog (FIG 6, 7, 17): public listing with cash equivalents, admin
edits over HTTP and the CLI, publishing files and signed packages, the demo."""
from __future__ import annotations

import hashlib
import json
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import package_format as pf
from tests.support.store import make_catalog

FIG6 = ["Scanned Document Enhancement", "Document Raster Editing", "Computer Aided Design (CAD)",
        "Engineering Document Management Systems (EDMS)", "Language Translators", "Computer Games"]


def test_demo_catalog_is_fig6_and_fig7(server_factory):
    srv = server_factory(demo=True)
    cats = srv.api("GET", "/v1/categories").json()
    assert [c["name"] for c in cats] == FIG6
    dre = next(c["id"] for c in cats if c["name"] == "Document Raster Editing")
    products = {p["name"]: p for p in srv.api("GET", "/v1/products", params={"category_id": dre}).json()}
    assert set(products) == {"Software A", "Software B", "Software C", "Software D"}
    kinds = {n: sorted(o["kind"] for o in p["offers"]) for n, p in products.items()}
    assert kinds == {"Software A": ["purchase"], "Software B": ["purchase", "rent_time"],
                     "Software C": ["purchase", "rent_uses"], "Software D": ["rent_processings"]}
    a = products["Software A"]["offers"][0]
    assert (a["tokens"], a["cash_cents"]) == (100, 1000)              # FIG 17: tokens and cash
    d = products["Software D"]["offers"][0]
    assert [(t["quantity"], t["tokens"]) for t in d["tiers"]] == [(100, 10), (1000, 80), (10000, 600)]
    # every offer kind and every conversion (time, uses, processings -> permanent) appears
    everything = srv.api("GET", "/v1/products").json()
    all_kinds = {o["kind"] for p in everything for o in p["offers"]}
    assert all_kinds == {"purchase", "rent_time", "rent_uses", "rent_processings", "convert"}
    converted = {next(o["kind"] for o in p["offers"] if o["kind"].startswith("rent_"))
                 for p in everything if any(o["kind"] == "convert" for o in p["offers"])}
    assert converted == {"rent_time", "rent_uses", "rent_processings"}
    assert any(p["on_sale"] for p in everything)
    assert all(p["category_id"] in {c["id"] for c in cats} for p in everything)
    # "a few products in the other categories": each of the five others has at least one, with an offer
    for c in cats:
        listed = srv.api("GET", "/v1/products", params={"category_id": c["id"]}).json()
        assert listed and all(p["offers"] for p in listed), c["name"]
        assert c["product_count"] == len(listed), c["name"]
    # the example programs are published as signed packages for A-D
    every = {p["name"]: p for p in everything}
    for name in ("Software A", "Software B", "Software C", "Software D", "ScanClean Pro", "Pixel Quest", "DocVault"):
        v = every[name]["latest_version"]
        assert v is not None and v["signed_package"] is True, name
    # loading the demo again changes nothing
    before = json.dumps(srv.api("GET", "/v1/products").json(), sort_keys=True)
    srv.stop()
    srv.start()
    assert json.dumps(srv.api("GET", "/v1/products").json(), sort_keys=True) == before
    assert [c["name"] for c in srv.api("GET", "/v1/categories").json()] == FIG6


def test_admin_edits_catalog_over_http(server):
    cat = make_catalog(server)
    admin, user = server.admin(), server.new_user()
    pid = cat.products["proc"]
    assert server.api("POST", "/v1/admin/categories", user, json={"name": "nope"}).status_code == 403
    assert server.api("PATCH", f"/v1/admin/products/{pid}", user, json={"on_sale": True}).status_code == 403
    r = server.api("PATCH", f"/v1/admin/products/{pid}", admin, json={"on_sale": True, "description": "new"})
    assert r.status_code == 200 and r.json()["on_sale"] is True and r.json()["description"] == "new"
    r = server.api("PUT", f"/v1/admin/products/{pid}/offers/rent_processings", admin,
                   json={"tiers": [{"quantity": 50, "tokens": 5}]})
    assert r.status_code == 200 and [t["quantity"] for t in r.json()["tiers"]] == [50]
    p = server.api("GET", f"/v1/products/{pid}").json()
    offer = next(o for o in p["offers"] if o["kind"] == "rent_processings")
    assert offer["tiers"] == [{"quantity": 50, "tokens": 5, "cash_cents": 50}]
    # withdraw an offer: no longer listed, no longer orderable
    assert server.api("DELETE", f"/v1/admin/offers/{offer['id']}", admin).status_code == 200
    p = server.api("GET", f"/v1/products/{pid}").json()
    assert "rent_processings" not in {o["kind"] for o in p["offers"]}
    # deactivate the product: not listed publicly, still listed for the admin
    server.api("PATCH", f"/v1/admin/products/{pid}", admin, json={"active": False})
    assert pid not in {p["id"] for p in server.api("GET", "/v1/products").json()}
    assert server.api("GET", f"/v1/products/{pid}").status_code == 404
    assert pid in {p["id"] for p in server.api("GET", "/v1/admin/products", admin).json()}


@pytest.mark.parametrize("kind,body,words", [
    ("purchase", {"tiers": [{"quantity": 1, "tokens": 1}]}, "no tiers"),
    ("purchase", {}, "price"),
    ("convert", {"tokens": 0}, "tokens"),
    ("rent_time", {"tokens": 10}, "tiers"),
    ("rent_time", {"tiers": [{"quantity": 40000, "tokens": 1}]}, "between"),
    ("rent_uses", {"tiers": [{"quantity": 5, "tokens": 1}, {"quantity": 5, "tokens": 2}]}, "twice"),
    ("rent_uses", {"tiers": [{"quantity": 5, "tokens": 1}], "extra": 1}, "extra"),
])
def test_bad_offers_are_refused_and_change_nothing(server, kind, body, words):
    cat = make_catalog(server)
    admin = server.admin()
    pid = cat.products["time"]
    before = server.api("GET", f"/v1/products/{pid}").json()
    r = server.api("PUT", f"/v1/admin/products/{pid}/offers/{kind}", admin, json=body)
    assert r.status_code == 422, r.text
    assert words in r.text
    assert server.api("GET", f"/v1/products/{pid}").json() == before


def test_bad_catalog_edits(server):
    admin = server.admin()
    cat = make_catalog(server)
    name = server.api("GET", f"/v1/products/{cat.products['perm']}").json()["name"]
    r = server.api("POST", "/v1/admin/products", admin, json={"category_id": cat.category_id, "name": name})
    assert r.status_code == 409
    r = server.api("POST", "/v1/admin/products", admin, json={"category_id": 999999, "name": "x y z"})
    assert r.status_code == 404
    assert server.api("PUT", "/v1/admin/products/999999/offers/purchase", admin, json={"tokens": 5}).status_code == 404
    assert server.api("PUT", f"/v1/admin/products/{cat.products['perm']}/offers/lease", admin,
                      json={"tokens": 5}).status_code == 422
    assert server.api("GET", "/v1/products", params={"category_id": 999999}).status_code == 404


def test_admin_cli_builds_a_catalog(server):
    out = json.loads(server.admin_cli("add-category", "CLI Tools", "--description", "from the CLI").stdout)
    cid = out["id"]
    p = json.loads(server.admin_cli("add-product", "CLI Product", "--category", str(cid), "--publisher", "Me").stdout)
    o = json.loads(server.admin_cli("set-offer", str(p["id"]), "rent_processings", "--tier", "100=10",
                                    "--tier", "1000=80", "--low-threshold", "20").stdout)
    assert [(t["quantity"], t["tokens"]) for t in o["tiers"]] == [(100, 10), (1000, 80)]
    json.loads(server.admin_cli("set-offer", str(p["id"]), "convert", "--tokens", "400").stdout)
    json.loads(server.admin_cli("edit-product", str(p["id"]), "--on-sale").stdout)
    listed = server.api("GET", "/v1/products", params={"category_id": cid}).json()
    assert [x["name"] for x in listed] == ["CLI Product"] and listed[0]["on_sale"] is True
    assert {x["kind"] for x in listed[0]["offers"]} == {"rent_processings", "convert"}
    bad = server.admin_cli("set-offer", str(p["id"]), "rent_uses", "--tier", "ten=1", check=False)
    assert bad.returncode == 2 and "QUANTITY=TOKENS" in bad.stderr
    bad = server.admin_cli("set-offer", str(p["id"]), "purchase", check=False)
    assert bad.returncode == 2 and "price" in bad.stderr
    assert "CLI Product" in server.admin_cli("list-products").stdout


def _package(tmp_path, product_id, version, key) -> str:
    src = tmp_path / f"src-{version}"
    src.mkdir()
    (src / "tool.py").write_text("print('hello')\n")
    out = tmp_path / f"tool-{version}.trpkg"
    pf.build_package(src, out, product_id=str(product_id), version=version, entry="{python} tool.py",
                     signing_key=key, name="Tool")
    return str(out)


def test_publish_signed_package_plain_file_and_refusals(server, tmp_path):
    cat = make_catalog(server)
    pid = cat.products["uses"]
    vendor_key = pf.load_signing_key(server.workdir / "data" / "vendor_signing_key.pem")
    good = _package(tmp_path, pid, "1.2.3", vendor_key)
    out = json.loads(server.admin_cli("publish", good).stdout)
    assert (out["product_id"], out["version"], out["signed_package"]) == (pid, "1.2.3", True)
    assert out["sha256"] == hashlib.sha256(open(good, "rb").read()).hexdigest()
    # the same version again, a stranger's signature, an unknown product: refused
    again = server.admin_cli("publish", good, check=False)
    assert again.returncode == 2 and "already has version" in again.stderr
    forged = _package(tmp_path, pid, "9.9.9", Ed25519PrivateKey.generate())
    r = server.admin_cli("publish", forged, check=False)
    assert r.returncode == 2 and "not a trusted vendor key" in r.stderr
    unknown = _package(tmp_path, 999999, "1.0.0", vendor_key)
    r = server.admin_cli("publish", unknown, check=False)
    assert r.returncode == 2 and "no such product" in r.stderr
    plain = tmp_path / "readme.txt"
    plain.write_text("not a package")
    r = server.admin_cli("publish", str(plain), check=False)
    assert r.returncode == 2 and "product id and a version" in r.stderr
    out = json.loads(server.admin_cli("publish", str(plain), "--product", str(pid), "--version", "1.2.4").stdout)
    assert out["signed_package"] is False and out["size"] == len("not a package")
    versions = server.api("GET", f"/v1/products/{pid}").json()["versions"]
    assert [v["version"] for v in versions] == ["1.2.4", "1.2.3"]


def test_publish_over_http(server, tmp_path):
    cat = make_catalog(server)
    pid = cat.products["time"]
    admin, user = server.admin(), server.new_user()
    vendor_key = pf.load_signing_key(server.workdir / "data" / "vendor_signing_key.pem")
    data = open(_package(tmp_path, pid, "3.0", vendor_key), "rb").read()
    url = f"/v1/admin/products/{pid}/versions"
    hdr = {"Content-Type": "application/octet-stream"}
    assert server.api("POST", url, user, data=data, headers=hdr).status_code == 403
    r = server.api("POST", url + "?file_name=tool-3.0.trpkg", admin, data=data, headers=hdr)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == "3.0" and r.json()["signed_package"] is True
    # a package for another product is refused on this product's URL
    other = open(_package(tmp_path, cat.products["perm"], "3.1", vendor_key), "rb").read()
    r = server.api("POST", url, admin, data=other, headers=hdr)
    assert r.status_code == 422 and "is for product" in r.json()["detail"]
    assert server.api("POST", url + "?version=4.0", admin, data=b"", headers=hdr).status_code == 422
    latest = server.api("GET", f"/v1/products/{pid}").json()["latest_version"]
    assert latest["version"] == "3.0" and latest["size"] == len(data)


def test_admin_edits_a_category_over_http(server):
    admin, user = server.admin(), server.new_user()
    suffix = secrets.token_hex(3)
    a = server.api("POST", "/v1/admin/categories", admin, json={"name": f"Edit Me {suffix}", "position": 90_000})
    b = server.api("POST", "/v1/admin/categories", admin, json={"name": f"Taken {suffix}", "position": 90_001})
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    cid, other = a.json()["id"], b.json()["id"]
    url = f"/v1/admin/categories/{cid}"
    assert server.api("PATCH", url, user, json={"name": "hijacked"}).status_code == 403
    assert server.api("PATCH", url, json={"name": "hijacked"}).status_code == 401
    r = server.api("PATCH", url, admin, json={"name": f"Edited {suffix}", "description": "now described",
                                              "position": 90_002})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": cid, "name": f"Edited {suffix}", "description": "now described", "position": 90_002}
    # only the given fields change
    r = server.api("PATCH", url, admin, json={"description": "again"})
    assert (r.json()["name"], r.json()["description"], r.json()["position"]) == (f"Edited {suffix}", "again", 90_002)
    listed = {c["id"]: c for c in server.api("GET", "/v1/categories").json()}
    assert listed[cid]["name"] == f"Edited {suffix}" and listed[cid]["description"] == "again"
    ids = [c["id"] for c in server.api("GET", "/v1/categories").json()]
    assert ids.index(other) < ids.index(cid)                       # moved after the other one
    before = server.api("GET", "/v1/categories").json()
    for body, status in [({"name": f"Taken {suffix}"}, 409), ({"name": ""}, 422), ({"name": "   "}, 422),
                         ({"position": -1}, 422), ({"position": "3"}, 422), ({"colour": "red"}, 422)]:
        r = server.api("PATCH", url, admin, json=body)
        assert r.status_code == status, (body, r.text)
    assert server.api("PATCH", "/v1/admin/categories/999999", admin, json={"name": "x"}).status_code == 404
    assert server.api("GET", "/v1/categories").json() == before


def test_admin_cli_lists_and_edits_categories(server):
    suffix = secrets.token_hex(3)
    cid = json.loads(server.admin_cli("add-category", f"CLI Cat {suffix}", "--position", "80000").stdout)["id"]
    out = json.loads(server.admin_cli("edit-category", str(cid), "--name", f"CLI Renamed {suffix}",
                                      "--description", "edited", "--position", "80001").stdout)
    assert out == {"id": cid, "name": f"CLI Renamed {suffix}", "description": "edited", "position": 80001}
    out = json.loads(server.admin_cli("edit-category", str(cid), "--description", "only this").stdout)
    assert (out["name"], out["description"], out["position"]) == (f"CLI Renamed {suffix}", "only this", 80001)
    listed = json.loads(server.admin_cli("list-categories").stdout)
    mine = next(c for c in listed if c["id"] == cid)
    assert mine == {**out, "product_count": 0}
    assert listed == server.api("GET", "/v1/categories").json()    # the CLI and the API agree
    bad = server.admin_cli("edit-category", "999999", "--name", "x", check=False)
    assert bad.returncode == 2 and "no such category" in bad.stderr
    taken = listed[0]["name"] if listed[0]["id"] != cid else listed[1]["name"]
    bad = server.admin_cli("edit-category", str(cid), "--name", taken, check=False)
    assert bad.returncode == 2 and "already exists" in bad.stderr
    assert next(c for c in json.loads(server.admin_cli("list-categories").stdout) if c["id"] == cid) == mine
