"""Licenses (kinds a-j) and their authorization codes, on both databases.
Codes are opened with the real code module and the keys the server lists."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest

from license_agent import codes
from tests.support.store import (
    Agent, DeviceKeys, available, licenses_of, make_catalog, open_code, order, register_device, trusted_keys,
)


@pytest.fixture(scope="module")
def cat(server):
    return make_catalog(server)


def _only(resp) -> dict:
    assert resp.status_code == 201, resp.text
    (d,) = resp.json()["deliveries"]
    return d


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_purchase_is_permanent(server, cat):                                      # a
    user = server.new_user(tokens=200)
    keys = register_device(server, user)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]))
    g = open_code(server, keys, d["authorization_code"])
    assert (g.kind, g.serial, g.license_id, g.device_id) == ("permanent", 1, str(d["license_id"]), keys.device_id)
    assert g.expires_at is None and g.uses is None and g.processings is None


def test_time_rental_starts_at_the_order_and_extends_from_the_later_end(server, cat):  # b, h
    user = server.new_user(tokens=300)
    keys = register_device(server, user)
    before = datetime.now(UTC)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    g1 = open_code(server, keys, d["authorization_code"])
    assert g1.kind == "time" and g1.serial == 1 and g1.low_threshold == 86400
    assert before + timedelta(days=7) - timedelta(seconds=5) <= g1.expires_at <= datetime.now(UTC) + timedelta(days=7)
    # extension while running: adds to the current end, not to now
    d2 = _only(order(server, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 30,
                                           "license_id": d["license_id"]}]))
    g2 = open_code(server, keys, d2["authorization_code"])
    assert d2["license_id"] == d["license_id"] and g2.serial == 2
    assert g2.expires_at == g1.expires_at + timedelta(days=30)
    # ordering the same rental again without license_id extends the license held on this device
    d3 = _only(order(server, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    assert d3["license_id"] == d["license_id"]
    assert open_code(server, keys, d3["authorization_code"]).expires_at == g2.expires_at + timedelta(days=7)
    assert len(licenses_of(server, user)) == 1


def test_expired_time_rental_extends_from_now(server_factory):
    srv = server_factory()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=300)
    keys = register_device(srv, user)
    d = _only(order(srv, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    # the rental ended a while ago (the vendor's database says so)
    import sqlalchemy as sa
    engine = sa.create_engine(srv.db_url)
    past = datetime.now(UTC) - timedelta(days=3)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE store_licenses SET expires_at = :t WHERE id = :i"),
                  {"t": past if srv.backend == "postgres" else past.replace(tzinfo=None), "i": d["license_id"]})
    engine.dispose()
    assert [row["active"] for row in licenses_of(srv, user)] == [False]
    start = datetime.now(UTC)
    d2 = _only(order(srv, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7,
                                        "license_id": d["license_id"]}]))
    g = open_code(srv, keys, d2["authorization_code"])
    assert start + timedelta(days=7) - timedelta(seconds=5) <= g.expires_at <= datetime.now(UTC) + timedelta(days=7)


@pytest.mark.parametrize("short,kind,field,first,second", [
    ("uses", "rent_uses", "uses", 10, 50),                                         # c, i
    ("proc", "rent_processings", "processings", 100, 10000),                       # d, j
])
def test_counted_rentals_raise_the_total(server, cat, short, kind, field, first, second):
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[(short, kind)], "quantity": first}]))
    g1 = open_code(server, keys, d["authorization_code"])
    assert getattr(g1, field) == first and g1.kind == field and g1.serial == 1
    d2 = _only(order(server, user, keys, [{"offer_id": cat.offers[(short, kind)], "quantity": second,
                                           "license_id": d["license_id"]}]))
    g2 = open_code(server, keys, d2["authorization_code"])
    assert getattr(g2, field) == first + second and g2.serial == 2     # totals, never deltas
    (lic,) = licenses_of(server, user)
    assert lic[field] == first + second and lic["serial"] == 2


@pytest.mark.parametrize("short,kind,quantity,convert_price", [
    ("time", "rent_time", 7, 120),                                                # e
    ("uses", "rent_uses", 10, 90),                                                # f
    ("proc", "rent_processings", 100, 300),                                       # g
])
def test_convert_makes_a_rental_permanent_at_the_convert_price(server, cat, short, kind, quantity, convert_price):
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[(short, kind)], "quantity": quantity}]))
    tokens = available(server, user)
    d2 = _only(order(server, user, keys, [{"offer_id": cat.offers[(short, "convert")],
                                           "license_id": d["license_id"]}]))
    assert available(server, user) == tokens - convert_price
    g = open_code(server, keys, d2["authorization_code"])
    assert (g.kind, g.serial, g.license_id) == ("permanent", 2, str(d["license_id"]))
    assert g.expires_at is None and g.uses is None and g.processings is None
    again = order(server, user, keys, [{"offer_id": cat.offers[(short, "convert")], "license_id": d["license_id"]}])
    assert again.status_code == 409 and available(server, user) == tokens - convert_price


def test_rent_and_extend_in_one_order_issue_one_code_with_the_totals(server, cat):
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)
    r = order(server, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10},
                                   {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 50}])
    (d,) = r.json()["deliveries"]
    g = open_code(server, keys, d["authorization_code"])
    assert g.uses == 60 and g.serial == 1
    assert len(r.json()["items"]) == 2 and r.json()["required_tokens"] == 25


def test_wrong_kind_of_extension_is_refused(server, cat):
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    # a uses offer of another product cannot extend it; a permanent license cannot be extended
    r = order(server, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10,
                                    "license_id": d["license_id"]}])
    assert r.status_code == 422 and "another product" in r.json()["detail"]
    laptop = register_device(server, user, DeviceKeys.new("laptop"))
    p = _only(order(server, user, laptop, [{"offer_id": cat.offers[("time", "purchase")]}]))
    assert p["kind"] == "permanent"
    tokens = available(server, user)
    r = order(server, user, laptop, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7,
                                      "license_id": p["license_id"]}])
    assert r.status_code == 409 and "already permanent" in r.json()["detail"]
    # and the rental on the first device cannot be extended from the laptop
    r = order(server, user, laptop, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7,
                                      "license_id": d["license_id"]}])
    assert r.status_code == 409 and "bound to another" in r.json()["detail"]
    assert available(server, user) == tokens


def test_code_route_owner_only_bound_device_only(server, cat):
    user, other = server.new_user(tokens=300), server.new_user(tokens=300)
    keys, second = register_device(server, user), register_device(server, user, DeviceKeys.new("laptop"))
    other_keys = register_device(server, other)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}]))
    lid = d["license_id"]
    r = server.api("GET", f"/v1/licenses/{lid}/code", user, params={"device_id": keys.device_id})
    assert r.status_code == 200, r.text
    g = open_code(server, keys, r.json()["authorization_code"])
    assert g.serial == 1 and g.uses == 10                      # same serial, same totals: a re-issue
    # another of the owner's devices: refused (one rental must not count twice)
    r = server.api("GET", f"/v1/licenses/{lid}/code", user, params={"device_id": second.device_id})
    assert r.status_code == 409 and r.json()["bound_device_id"] == keys.device_id
    # other users: the license does not exist for them, even for their own device
    assert server.api("GET", f"/v1/licenses/{lid}/code", other,
                      params={"device_id": other_keys.device_id}).status_code == 404
    assert server.api("GET", f"/v1/licenses/{lid}", other).status_code == 404
    assert server.api("GET", f"/v1/licenses/{lid}/code", user, params={"device_id": "0" * 32}).status_code == 404
    assert server.api("GET", f"/v1/licenses/{lid}/code", user, params={"device_id": "xyz"}).status_code == 422
    # a code for one device cannot be opened by another
    with pytest.raises(codes.WrongDevice):
        open_code(server, second, d["authorization_code"])


def test_codes_install_in_the_real_agent_and_extensions_replace_them(server, cat, tmp_path):
    user = server.new_user(tokens=500)
    agent = Agent(tmp_path / "agent")
    dev = agent.device()
    assert server.api("POST", "/v1/devices", user, json={"public_key": dev["public_key"], "name": "pc"}).status_code == 201
    agent.trust(server.api("GET", "/v1/vendor-key").json()["public_key"])
    pid = cat.products["uses"]
    r = server.api("POST", "/v1/orders", user, json={"items": [{"offer_id": cat.offers[("uses", "rent_uses")],
                                                                "quantity": 10}], "device_id": dev["device_id"]})
    d = r.json()["deliveries"][0]
    assert agent.json("install", d["authorization_code"])["status"] == "installed"
    assert agent.json("install", d["authorization_code"])["status"] == "unchanged"
    re_issued = server.api("GET", f"/v1/licenses/{d['license_id']}/code", user,
                           params={"device_id": dev["device_id"]}).json()["authorization_code"]
    assert agent.json("install", re_issued)["status"] == "unchanged"
    for _ in range(3):
        assert agent.json("check", str(pid))["allowed"] is True
    r = server.api("POST", "/v1/orders", user, json={"items": [{"offer_id": cat.offers[("uses", "rent_uses")],
                                                                "quantity": 50, "license_id": d["license_id"]}],
                                                     "device_id": dev["device_id"]})
    d2 = r.json()["deliveries"][0]
    assert agent.json("install", d2["authorization_code"])["status"] == "extended"
    lic = next(row for row in agent.json("status")["licenses"] if row["product_id"] == str(pid))
    assert lic["total"] == 60 and lic["remaining"] == 57          # the agent's own count survives
    # the older code is refused now
    assert agent.run("install", d["authorization_code"]).returncode != 0


def test_vendor_key_rotation(server_factory, tmp_path):
    srv = server_factory()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=500)
    keys = register_device(srv, user)
    key_file = srv.workdir / "data" / "vendor_signing_key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = srv.api("GET", "/v1/vendor-key").json()
    old = _only(order(srv, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}]))
    assert codes.read_header(old["authorization_code"]).kid == first["kid"] == old["kid"]

    assert srv.api("POST", "/v1/admin/vendor-key/rotate", user).status_code == 403
    r = srv.api("POST", "/v1/admin/vendor-key/rotate", srv.admin())
    assert r.status_code == 201, r.text
    assert r.json()["previous_kid"] == first["kid"] and r.json()["kid"] != first["kid"]
    assert key_file.stat().st_mode & 0o777 == 0o600
    now = srv.api("GET", "/v1/vendor-key").json()
    assert now["kid"] == r.json()["kid"]
    assert {k["kid"] for k in now["keys"]} == {first["kid"], now["kid"]}

    new = _only(order(srv, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10,
                                         "license_id": old["license_id"]}]))
    assert codes.read_header(new["authorization_code"]).kid == now["kid"]
    # both verify with the listed keys; the old one also with only the old key
    assert open_code(srv, keys, old["authorization_code"]).serial == 1
    assert open_code(srv, keys, new["authorization_code"]).serial == 2
    only_new = {now["kid"]: trusted_keys(srv)[now["kid"]]}
    with pytest.raises(codes.UntrustedSigner):
        codes.open_code(old["authorization_code"], keys.private, only_new)
    # the CLI rotates too, and lists every key
    out = srv.admin_cli("rotate-key")
    assert f'"previous_kid": "{now["kid"]}"' in out.stdout
    assert len(srv.api("GET", "/v1/vendor-key").json()["keys"]) == 3


def test_licenses_list_is_the_owners_only(server, cat):
    user, other = server.new_user(tokens=300), server.new_user(tokens=300)
    keys = register_device(server, user)
    _only(order(server, user, keys, [{"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 100}]))
    mine = licenses_of(server, user)
    assert len(mine) == 1 and mine[0]["processings"] == 100 and mine[0]["device_id"] == keys.device_id
    assert mine[0]["store_url"] == f"tokenrent://product/{cat.products['proc']}"
    assert licenses_of(server, other) == []
    assert server.api("GET", "/v1/licenses").status_code == 401


def test_rotation_reaches_every_worker_process(server_factory):
    """Two uvicorn workers share one key file: after a rotation through one of
    them, every order (whichever worker answers) is signed with the new key."""
    srv = server_factory(workers=2)
    cat = make_catalog(srv)
    user = srv.new_user(tokens=1000)
    keys = register_device(srv, user)
    first = srv.api("GET", "/v1/vendor-key").json()["kid"]
    assert srv.api("POST", "/v1/admin/vendor-key/rotate", srv.admin()).status_code == 201
    new = srv.api("GET", "/v1/vendor-key").json()["kid"]
    assert new != first
    kids = set()
    for _ in range(12):
        s = __import__("requests").Session()     # a new connection: any worker may answer
        r = s.post(srv.base_url + "/v1/orders", headers=user.headers,
                   json={"items": [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}],
                         "device_id": keys.device_id})
        assert r.status_code == 201, r.text
        kids.add(codes.read_header(r.json()["deliveries"][0]["authorization_code"]).kid)
        s.close()
    assert kids == {new}


def test_a_key_file_readable_by_others_is_refused(server_factory):
    srv = server_factory()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=300)
    keys = register_device(srv, user)
    key_file = srv.workdir / "data" / "vendor_signing_key.pem"
    key_file.chmod(0o644)
    try:
        r = order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
        assert r.status_code == 503 and "chmod 600" in r.json()["detail"]
        assert available(srv, user) == 300 and licenses_of(srv, user) == []
    finally:
        key_file.chmod(0o600)
    assert order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]).status_code == 201


# ---------------------------------------------------------------- rotation is safe (in process, real database)

@pytest.fixture
def key_db(backend, tmp_path):
    """A migrated database of `backend` and a signing key path outside the data dir."""
    from tests.support.server import migrated_database

    key_path = tmp_path / "keys" / "vendor.pem"
    with migrated_database(backend, tmp_path, data_dir=str(tmp_path / "data"), signing_key_path=str(key_path)):
        yield key_path


def _listed(db):
    from sqlalchemy import select

    from server_stub.models.store import VendorKey

    return {r.kid: r.retired_at for r in db.scalars(select(VendorKey))}


def test_rotation_whose_commit_fails_changes_nothing(key_db):
    """The database commit of a rotation fails: the key file is untouched, no
    side file is left, the database lists no new key, the old key signs on;
    a later rotation works and is recorded before it is used."""
    from sqlalchemy import event

    from server_stub.db import new_session, read_session, write_session
    from server_stub.services import signing_keys

    with write_session() as db:
        first = signing_keys.ensure_key(db)
    original = key_db.read_bytes()
    assert key_db.stat().st_mode & 0o777 == 0o600

    class CommitFailed(Exception):
        pass

    db = new_session(True)
    try:
        def fail(_session):
            raise CommitFailed("the database went away")
        event.listen(db, "before_commit", fail)
        with pytest.raises(CommitFailed):
            signing_keys.rotate(db)
        db.rollback()
    finally:
        db.close()
    assert key_db.read_bytes() == original
    assert sorted(p.name for p in key_db.parent.iterdir()) == ["vendor.pem"]     # no side file left
    assert signing_keys.current_key().kid == first.kid
    with read_session() as db:
        assert _listed(db) == {first.kid: None}                                  # not retired, nothing new

    with write_session() as db:
        out = signing_keys.rotate(db)
    assert out["previous_kid"] == first.kid and out["kid"] != first.kid
    assert signing_keys.current_key().kid == out["kid"]
    assert key_db.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in key_db.parent.iterdir()) == ["vendor.pem"]
    with read_session() as db:
        listed = _listed(db)
        assert set(listed) == {first.kid, out["kid"]} and listed[out["kid"]] is None
        assert listed[first.kid] is not None
        assert [k["kid"] for k in signing_keys.trusted_keys(db)] == [out["kid"], first.kid]


def test_rotation_is_committed_before_the_new_key_is_used(key_db):
    """Even inside a caller's transaction that later rolls back, the new key
    that now signs is already listed (rotate commits before it renames)."""
    from server_stub.db import new_session, read_session
    from server_stub.services import signing_keys

    db = new_session(True)
    try:
        out = signing_keys.rotate(db)
        db.rollback()          # whatever the caller does next
    finally:
        db.close()
    assert signing_keys.current_key().kid == out["kid"]
    with read_session() as db:
        assert out["kid"] in _listed(db)


# ---------------------------------------------------------------- the key path is configurable

def _serve_with_key(backend, workdir, key_path, via):
    """A real server whose signing key lives at key_path, given by the
    --signing-key flag or by TOKENRENT_SIGNING_KEY_PATH. Returns (server, cleanup)."""
    import subprocess
    import sys
    import time

    import requests

    from tests.support.server import ROOT, Server, create_pg_database, drop_pg_database

    drop = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'tokenrent.sqlite3'}"
    else:
        drop, url = create_pg_database()
    env = {"TOKENRENT_SIGNING_KEY_PATH": str(key_path)} if via == "env" else {}
    srv = Server(url, workdir, env=env, backend=backend)
    cmd = [sys.executable, "-m", "server_stub", "serve", "--db", url, "--port", str(srv.port)]
    if via == "flag":
        cmd += ["--signing-key", str(key_path)]
    srv._log = open(srv.log_path, "ab")
    srv.proc = subprocess.Popen(cmd, cwd=ROOT, env=srv.env, stdout=srv._log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log_text()
        try:
            if requests.get(srv.base_url + "/v1/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)

    def cleanup():
        srv.stop()
        if drop:
            drop_pg_database(drop)
    return srv, cleanup


@pytest.mark.parametrize("via", ["flag", "env"])
def test_signing_key_path_is_configurable(backend, tmp_path, via):
    import base64

    from license_agent import package_format as pf
    from server_stub.services.signing_keys import public_raw

    key_path = tmp_path / "secrets" / "nested" / "vendor.pem"
    srv, cleanup = _serve_with_key(backend, tmp_path / "srv", key_path, via)
    try:
        assert key_path.is_file() and key_path.stat().st_mode & 0o777 == 0o600
        assert not (srv.workdir / "data" / "vendor_signing_key.pem").exists()     # not the default path
        private = pf.load_signing_key(key_path)
        kid = codes.kid_for(public_raw(private))
        listed = srv.api("GET", "/v1/vendor-key").json()
        assert listed["kid"] == kid
        assert base64.b64decode(listed["public_key"]) == public_raw(private)
        # codes are signed with that key
        cat = make_catalog(srv)
        user = srv.new_user(tokens=300)
        keys = register_device(srv, user)
        d = _only(order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]))
        assert codes.read_header(d["authorization_code"]).kid == kid
        grant = codes.open_code(d["authorization_code"], keys.private, {kid: private.public_key()})
        assert grant.kind == "permanent"
        # a rotation replaces the key there, still 0600, still not at the default path
        r = srv.api("POST", "/v1/admin/vendor-key/rotate", srv.admin())
        assert r.status_code == 201, r.text
        assert codes.kid_for(public_raw(pf.load_signing_key(key_path))) == r.json()["kid"] != kid
        assert key_path.stat().st_mode & 0o777 == 0o600
        assert not (srv.workdir / "data" / "vendor_signing_key.pem").exists()
        assert sorted(p.name for p in key_path.parent.iterdir()) == ["vendor.pem"]
    finally:
        cleanup()


# ---------------------------------------------------------------- buying outright while renting

def test_purchase_over_a_rental_converts_it_at_the_purchase_price(server, cat):
    """A `purchase` offer ordered on a device that rents the product makes that
    rental permanent at the purchase price (action `convert`), on the same
    license with the next serial; it does not create a second license."""
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)
    d = _only(order(server, user, keys, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    tokens = available(server, user)
    item = {"offer_id": cat.offers[("time", "purchase")]}
    q = server.api("POST", "/v1/quotes", user, json={"items": [item], "device_id": keys.device_id}).json()
    assert (q["items"][0]["action"], q["items"][0]["license_id"], q["required_tokens"]) == ("convert", d["license_id"], 250)
    r = order(server, user, keys, [item])
    d2 = _only(r)
    assert r.json()["items"][0]["action"] == "convert" and r.json()["items"][0]["tokens"] == 250
    assert d2["license_id"] == d["license_id"] and d2["kind"] == "permanent"
    assert available(server, user) == tokens - 250                   # the purchase price, not convert's 120
    g = open_code(server, keys, d2["authorization_code"])
    assert (g.kind, g.serial, g.expires_at) == ("permanent", 2, None)
    (lic,) = licenses_of(server, user)
    assert lic["kind"] == "permanent" and lic["serial"] == 2
    # the same with the license named explicitly, on another device's rental
    laptop = register_device(server, user, DeviceKeys.new("laptop"))
    d3 = _only(order(server, user, laptop, [{"offer_id": cat.offers[("time", "rent_time")], "quantity": 7}]))
    r = order(server, user, laptop, [{**item, "license_id": d3["license_id"]}])
    assert _only(r)["kind"] == "permanent" and r.json()["items"][0]["action"] == "convert"
    # and buying again once permanent is refused
    again = order(server, user, keys, [item])
    assert again.status_code == 409 and "already permanent" in again.json()["detail"]
