"""Devices: register, list, rename, remove; the device id is derived from the key."""
from __future__ import annotations

import base64

from tests.support.store import DeviceKeys, make_catalog, order, register_device


def test_register_is_derived_and_repeatable(server):
    user = server.new_user()
    keys = DeviceKeys.new("desk")
    r = server.api("POST", "/v1/devices", user, json={"public_key": keys.public_b64, "name": "desk"})
    assert r.status_code == 201 and r.json()["device_id"] == keys.device_id
    again = server.api("POST", "/v1/devices", user, json={"public_key": keys.public_b64, "name": "desk 2"})
    assert again.status_code == 200 and again.json()["device_id"] == keys.device_id
    listed = server.api("GET", "/v1/devices", user).json()
    assert [(d["device_id"], d["name"]) for d in listed] == [(keys.device_id, "desk 2")]


def test_bad_keys_and_names_are_refused(server):
    user = server.new_user()
    for body in ({"public_key": "not base64!!", "name": "x"},
                 {"public_key": base64.b64encode(b"short").decode(), "name": "x"},
                 {"public_key": base64.b64encode(b"\0" * 33).decode(), "name": "x"},
                 {"public_key": DeviceKeys.new().public_b64, "name": ""},
                 {"public_key": DeviceKeys.new().public_b64, "name": "   "},
                 {"public_key": DeviceKeys.new().public_b64, "name": "x", "device_id": "0" * 32}):
        r = server.api("POST", "/v1/devices", user, json=body)
        assert r.status_code == 422, (body, r.text)
    assert server.api("GET", "/v1/devices", user).json() == []
    assert server.api("POST", "/v1/devices", json={"public_key": DeviceKeys.new().public_b64,
                                                   "name": "x"}).status_code == 401


def test_rename_and_remove_own_devices_only(server):
    user, other = server.new_user(), server.new_user()
    keys = register_device(server, user)
    path = f"/v1/devices/{keys.device_id}"
    assert server.api("PATCH", path, other, json={"name": "mine now"}).status_code == 404
    assert server.api("DELETE", path, other).status_code == 404
    r = server.api("PATCH", path, user, json={"name": "renamed"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    assert server.api("GET", "/v1/devices", other).json() == []
    assert server.api("DELETE", path, user).status_code == 204
    assert server.api("GET", "/v1/devices", user).json() == []
    assert server.api("DELETE", path, user).status_code == 404


def test_two_users_may_register_the_same_computer_separately(server):
    a, b = server.new_user(), server.new_user()
    keys = DeviceKeys.new()
    register_device(server, a, keys)
    register_device(server, b, keys)
    assert server.api("DELETE", f"/v1/devices/{keys.device_id}", a).status_code == 204
    assert [d["device_id"] for d in server.api("GET", "/v1/devices", b).json()] == [keys.device_id]


def test_a_device_with_licenses_cannot_be_removed(server):
    cat = make_catalog(server)
    user = server.new_user(tokens=200)
    keys = register_device(server, user)
    assert order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]).status_code == 201
    r = server.api("DELETE", f"/v1/devices/{keys.device_id}", user)
    assert r.status_code == 409 and r.json()["license_count"] == 1
    (d,) = server.api("GET", "/v1/devices", user).json()
    assert d["license_count"] == 1
