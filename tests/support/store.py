"""Helpers for the store tests: device keys, a small catalog made through the
admin API, and a real license agent (temp LICENSE_AGENT_HOME, real CLI)."""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from license_agent import codes

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class DeviceKeys:
    """A device's X25519 key pair, held by the test (as the agent would)."""

    private: X25519PrivateKey
    name: str = "test computer"

    @classmethod
    def new(cls, name: str = "test computer") -> DeviceKeys:
        return cls(X25519PrivateKey.generate(), name)

    @property
    def public_raw(self) -> bytes:
        return codes.raw_public_x25519(self.private)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def device_id(self) -> str:
        return codes.device_id_for(self.public_raw)


def register_device(server, user, keys: DeviceKeys | None = None) -> DeviceKeys:
    keys = keys or DeviceKeys.new()
    r = server.api("POST", "/v1/devices", user, json={"public_key": keys.public_b64, "name": keys.name})
    assert r.status_code in (200, 201), r.text
    assert r.json()["device_id"] == keys.device_id
    return keys


def trusted_keys(server) -> dict[str, Ed25519PublicKey]:
    body = server.api("GET", "/v1/vendor-key").json()
    return {k["kid"]: Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"])) for k in body["keys"]}


def open_code(server, keys: DeviceKeys, text: str) -> codes.Grant:
    """Decrypt and verify a code exactly as the agent does, with the server's listed keys."""
    return codes.open_code(text, keys.private, trusted_keys(server))


@dataclass
class Catalog:
    category_id: int
    products: dict        # name -> product id
    offers: dict          # (name, kind) -> offer id


def make_catalog(server, suffix: str | None = None) -> Catalog:
    """One product of every kind, through the admin API (unique names per call)."""
    suffix = suffix or secrets.token_hex(3)
    admin = server.admin()
    r = server.api("POST", "/v1/admin/categories", admin, json={"name": f"Cat {suffix}"})
    assert r.status_code == 201, r.text
    cat = r.json()["id"]
    specs = {
        "perm": {"purchase": {"tokens": 100}},
        "time": {"purchase": {"tokens": 250},
                 "rent_time": {"tiers": [{"quantity": 7, "tokens": 15}, {"quantity": 30, "tokens": 50}],
                               "low_threshold": 86400},
                 "convert": {"tokens": 120}},
        "uses": {"rent_uses": {"tiers": [{"quantity": 10, "tokens": 5}, {"quantity": 50, "tokens": 20}],
                               "low_threshold": 2},
                 "convert": {"tokens": 90}},
        "proc": {"rent_processings": {"tiers": [{"quantity": 100, "tokens": 10}, {"quantity": 1000, "tokens": 80},
                                                {"quantity": 10000, "tokens": 600}], "low_threshold": 10},
                 "convert": {"tokens": 300}},
    }
    products, offers = {}, {}
    for short, kinds in specs.items():
        r = server.api("POST", "/v1/admin/products", admin,
                       json={"category_id": cat, "name": f"{short} {suffix}", "publisher": "Tests"})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        products[short] = pid
        for kind, body in kinds.items():
            r = server.api("PUT", f"/v1/admin/products/{pid}/offers/{kind}", admin, json=body)
            assert r.status_code == 200, r.text
            offers[(short, kind)] = r.json()["id"]
    return Catalog(cat, products, offers)


def order(server, user, keys: DeviceKeys, items: list[dict], installed=(), key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return server.api("POST", "/v1/orders", user, headers=headers,
                      json={"items": items, "device_id": keys.device_id, "installed_product_ids": list(installed)})


def licenses_of(server, user) -> list[dict]:
    r = server.api("GET", "/v1/licenses", user)
    assert r.status_code == 200, r.text
    return r.json()


def available(server, user) -> int:
    return server.me(user)["available_tokens"]


class Agent:
    """The real license agent CLI with its own temp LICENSE_AGENT_HOME."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["LICENSE_AGENT_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "license_agent", *args], capture_output=True, text=True,
                              env=self.env, input=input, timeout=120)

    def json(self, *args: str, expect: int = 0) -> dict:
        p = self.run(*args, "--json")
        assert p.returncode == expect, (args, p.returncode, p.stdout, p.stderr)
        return json.loads(p.stdout)

    def device(self) -> dict:
        return self.json("device")

    def trust(self, public_key_b64: str) -> None:
        p = self.run("trust", public_key_b64)
        assert p.returncode == 0, p.stdout + p.stderr
