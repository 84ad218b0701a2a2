"""The REAL MSP server (`python -m server_stub msp serve`) as a subprocess on a
free port with a real database (temp SQLite file, or a throw-away PostgreSQL
database), its operator CLI, and an in-process migrated MSP database for
service tests. See tests/mall/conftest.py for the fixtures.

    def test_x(msp):                                  # SQLite and PostgreSQL
        code = msp.admin_json("invite", "Vendor A")["invitation"]
        r = msp.get("/v1/mall/directory")
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.server import ROOT, ServedProcess, create_pg_database, drop_pg_database, free_port


def code_key(key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    """A code-signing key entry {kid, public_key} as a vendor publishes it."""
    from license_agent.codes import kid_for, raw_public_ed25519

    raw = raw_public_ed25519(key or Ed25519PrivateKey.generate())
    return {"kid": kid_for(raw), "public_key": base64.b64encode(raw).decode("ascii")}


def join_body(invitation: str, network_key: Ed25519PrivateKey, name: str = "Vendor",
              base_url: str = "http://127.0.0.1:9/", token_name: str = "Coin", value_cents: int = 10) -> dict[str, Any]:
    """The body of POST /v1/mall/members for a vendor whose network key is `network_key`."""
    from server_stub.network.keys import public_key_text

    return {"invitation": invitation, "name": name, "base_url": base_url,
            "network_key": public_key_text(network_key), "code_keys": [code_key()],
            "token": {"name": token_name, "value_cents": value_cents}}


def database_url(backend: str, workdir: Path) -> tuple[str, str | None]:
    """(url, name of the PostgreSQL database to drop afterwards or None)."""
    if backend == "sqlite":
        return f"sqlite:///{Path(workdir) / 'mall.db'}", None
    if backend == "postgres":
        name, url = create_pg_database()
        return url, name
    raise ValueError(backend)


@contextmanager
def migrated_mall_database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh MSP database of `backend`, migrated to head, for in-process
    tests (server_stub.db sessions take its URL); dropped afterwards."""
    from server_stub.core.config import Settings, set_settings
    from server_stub.db import dispose_engines
    from server_stub.mall import migrate

    Path(workdir).mkdir(parents=True, exist_ok=True)
    url, drop = database_url(backend, workdir)
    set_settings(Settings(db_url=url, data_dir=str(workdir)))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        dispose_engines()
        set_settings(None)   # the next get_settings() reads the environment again
        if drop:
            drop_pg_database(drop)


class Msp(ServedProcess):
    """A running `python -m server_stub msp serve` process and helpers."""

    def __init__(self, db_url: str, workdir: Path, env: dict[str, str] | None = None, backend: str = "sqlite",
                 extra_args: tuple[str, ...] = (), ca_file: str | None = None):
        self.db_url = db_url
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.port = free_port()
        # with --tls-cert among extra_args: HTTPS, checked against ca_file
        self.base_url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"msp-{self.port}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "TOKENRENT_DATA_DIR": str(self.workdir / "data"), **(env or {})}
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        # per request: a session's `verify` loses to REQUESTS_CA_BUNDLE in the environment
        self.verify: str | bool = ca_file or True

    # -- process
    def start(self, timeout: float = 60) -> Msp:
        cmd = [sys.executable, "-m", "server_stub", "msp", "serve", "--db", self.db_url,
               "--port", str(self.port), *self.extra_args]
        self._launch(cmd, timeout, "msp")
        return self

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.get(self.base_url + path, verify=self.verify, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.post(self.base_url + path, verify=self.verify, **kw)

    def signed(self, method: str, path: str, key: Ed25519PrivateKey, key_id: str, body: Any = None,
               headers: dict[str, str] | None = None) -> requests.Response:
        """A request signed as the mall network signs them (RFC 9421), by `key` as `key_id`."""
        from server_stub.network.signatures import sign_request

        url = self.base_url + path
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        sent = {"Content-Type": "application/json", **(headers or {})}
        sent.update(sign_request(method, url, sent, data, key_id, key))
        return self.http.request(method, url, data=data, headers=sent, timeout=30, verify=self.verify)

    def join(self, body: dict[str, Any], key: Ed25519PrivateKey, key_id: str = "joining") -> requests.Response:
        return self.signed("POST", "/v1/mall/members", key, key_id, body)

    def msp_public_key(self) -> Any:
        """The MSP's network public key, from its directory."""
        from server_stub.network.keys import parse_public_key

        return parse_public_key(self.get("/v1/mall/directory").json()["msp"]["network_key"])

    # -- operator CLI
    def admin(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`tokenrent-server msp admin --db URL ARGS...` on this MSP's database."""
        cmd = [sys.executable, "-m", "server_stub", "msp", "admin", "--db", self.db_url, *args]
        res = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"msp admin {args} failed ({res.returncode}): {res.stdout}\n{res.stderr}")
        return res

    def admin_json(self, *args: str) -> Any:
        return json.loads(self.admin(*args).stdout)


def start_msp(backend: str, workdir: Path, env: dict[str, str] | None = None,
              extra_args: tuple[str, ...] = (), ca_file: str | None = None) -> tuple[Msp, Callable[[], None]]:
    """Start an MSP on a fresh database of `backend`. Returns (msp, cleanup)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    url, drop = database_url(backend, workdir)
    msp = Msp(url, workdir, env=env, backend=backend, extra_args=extra_args, ca_file=ca_file)
    try:
        msp.start()
    except Exception:
        if drop:
            drop_pg_database(drop)
        raise

    def cleanup() -> None:
        msp.stop()
        if drop:
            drop_pg_database(drop)

    return msp, cleanup
