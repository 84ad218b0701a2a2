"""The REAL server as a subprocess on a free port, with a real database
(temp SQLite file, or a throw-away PostgreSQL database), and small helpers
to talk to it. Used by every part's tests; see tests/conftest.py.

    def test_x(server):                       # runs on SQLite and PostgreSQL
        alice = server.new_user(tokens=300)   # registered, signed in, funded
        r = server.api("GET", "/v1/me", alice)
        assert r.status_code == 200
"""
from __future__ import annotations

import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("TOKENRENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

_counter = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ PostgreSQL

def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL is reachable, else why not (printed in the skip)."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as e:  # any failure means: skip, with the reason
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(e).__name__}: {e}".strip()


def create_pg_database() -> tuple[str, str]:
    """A fresh database tr_test_<random>; returns (name, SQLAlchemy URL)."""
    import psycopg

    name = "tr_test_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_database(backend: str, tmp_path: Path, **settings):
    """A fresh, migrated database of `backend` ("sqlite" | "postgres") for
    in-process service tests, with these server settings; yields its URL and
    drops it (PostgreSQL) afterwards."""
    from server_stub import migrate
    from server_stub.core.config import Settings, set_settings
    from server_stub.db import dispose_engines

    drop = None
    if backend == "sqlite":
        url = f"sqlite:///{Path(tmp_path) / 'service-test.sqlite3'}"
    else:
        drop, url = create_pg_database()
    set_settings(Settings(db_url=url, **settings))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        dispose_engines()
        set_settings(None)
        if drop:
            drop_pg_database(drop)


# ------------------------------------------------------------------ users

@dataclass
class TestUser:
    __test__ = False  # not a pytest class

    username: str
    password: str
    pin: str
    full_name: str
    id: int = 0
    token: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


# ------------------------------------------------------------------ server

@dataclass(frozen=True)
class TlsFiles:
    """A server certificate chain and key, and the CA bundle clients trust
    (tests/server_stub/network/test_client_tls.py makes them with trustme)."""

    cert: Path
    key: Path
    ca: Path


class ServedProcess:
    """What a served process of ours (`serve`, `msp serve`) is to a test: started on its port
    until /v1/health answers, stopped, killed -9 and started again on the same port and
    database, its log read. Subclasses set port, base_url, log_path, env, proc, http and
    `verify` (given per request: a session's `verify` loses to REQUESTS_CA_BUNDLE)."""

    base_url: str
    log_path: Path
    env: dict
    proc: subprocess.Popen | None
    http: requests.Session
    verify: str | bool

    def _launch(self, cmd: list[str], timeout: float, what: str) -> None:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.base_url + "/v1/health", timeout=1, verify=self.verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{what} did not start in {timeout}s:\n{self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()
        self.http.close()

    def kill(self) -> None:
        """kill -9: no shutdown, no clean-up; `start()` again serves the same port and database."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Server(ServedProcess):
    """A running `python -m server_stub serve` process and helpers."""

    def __init__(self, db_url: str, workdir: Path, env: dict | None = None, demo: bool = False,
                 workers: int = 1, backend: str = "sqlite", tls: TlsFiles | None = None):
        self.db_url = db_url
        self.tls = tls
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.port = free_port()
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"server-{self.port}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "TOKENRENT_DATA_DIR": str(self.workdir / "data"), **(env or {})}
        self.demo, self.workers = demo, workers
        self.proc: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.verify = self.verify = str(tls.ca) if tls else True
        self._admin: TestUser | None = None

    # -- process
    def start(self, timeout: float = 60) -> Server:
        cmd = [sys.executable, "-m", "server_stub", "serve", "--db", self.db_url,
               "--port", str(self.port), "--workers", str(self.workers)]
        if self.demo:
            cmd.append("--demo")
        if self.tls:
            cmd += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        self._launch(cmd, timeout, "server")
        return self

    def wait_for_log(self, needle: str, timeout: float = 10) -> str:
        """The log once it holds `needle`. The access line of a request is written
        after its answer has been sent, so a client can read the log before it."""
        deadline = time.monotonic() + timeout
        while needle not in (text := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text

    # -- HTTP
    def api(self, method: str, path: str, user: TestUser | str | None = None, **kw) -> requests.Response:
        """One request. `user` is a TestUser or a raw token; json=..., headers=... as in requests."""
        headers = dict(kw.pop("headers", {}) or {})
        if isinstance(user, TestUser):
            headers.update(user.headers)
        elif isinstance(user, str):
            headers["Authorization"] = f"Bearer {user}"
        kw.setdefault("timeout", 60)
        kw.setdefault("verify", self.http.verify)   # per request: REQUESTS_CA_BUNDLE would override the Session's
        return self.http.request(method, self.base_url + path, headers=headers, **kw)

    def register(self, username: str | None = None, password: str = "correct horse 1",
                 pin: str = "4321", full_name: str | None = None, sign_in: bool = True,
                 **extra) -> TestUser:
        n = next(_counter)
        username = username or f"u{n}_{secrets.token_hex(3)}"
        full_name = full_name or f"Test User {n}"
        body = {"username": username, "password": password, "pin": pin, "full_name": full_name,
                "email": f"{username}@example.com", **extra}
        r = self.api("POST", "/v1/accounts", json=body)
        assert r.status_code == 201, r.text
        user = TestUser(username, password, pin, full_name, id=r.json()["id"])
        if sign_in:
            self.sign_in(user)
        return user

    def sign_in(self, user: TestUser) -> TestUser:
        r = self.api("POST", "/v1/sessions", json={"username": user.username, "password": user.password})
        assert r.status_code == 200, r.text
        user.token = r.json()["token"]
        return user

    def admin_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`tokenrent-server admin --db URL ARGS...` on this server's database."""
        cmd = [sys.executable, "-m", "server_stub", "admin", "--db", self.db_url, *args]
        res = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"admin {args} failed ({res.returncode}): {res.stdout}\n{res.stderr}")
        return res

    def admin(self) -> TestUser:
        """A signed-in admin, created once per server through the admin CLI."""
        if self._admin is None:
            username = "admin_" + secrets.token_hex(3)
            self.admin_cli("create-admin", "--username", username, "--password", "admin pass 123",
                           "--full-name", "Test Admin", "--email", "admin@example.com")
            self._admin = self.sign_in(TestUser(username, "admin pass 123", "0000", "Test Admin"))
        return self._admin

    def grant(self, user: TestUser | str, tokens: int, kind: str = "standard",
              expires_at: str | None = None) -> dict:
        username = user.username if isinstance(user, TestUser) else user
        body = {"username": username, "tokens": tokens, "kind": kind}
        if expires_at:
            body["expires_at"] = expires_at
        r = self.api("POST", "/v1/admin/grants", self.admin(), json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def new_user(self, tokens: int = 0, **kw) -> TestUser:
        """Registered + signed in; with tokens > 0 also funded (and so active)."""
        user = self.register(**kw)
        if tokens:
            self.grant(user, tokens)
        return user

    def me(self, user: TestUser) -> dict:
        r = self.api("GET", "/v1/me", user)
        assert r.status_code == 200, r.text
        return r.json()

    def ledger_check(self) -> dict:
        r = self.api("GET", "/v1/admin/ledger-check", self.admin())
        assert r.status_code == 200, r.text
        return r.json()


def start_server(backend: str, workdir: Path, env: dict | None = None, demo: bool = False,
                 workers: int = 1, tls: TlsFiles | None = None) -> tuple[Server, callable]:
    """Start a server on a fresh database of `backend` ("sqlite" | "postgres").
    Returns (server, cleanup)."""
    if backend == "sqlite":
        url = f"sqlite:///{Path(workdir) / 'tokenrent.sqlite3'}"
        drop = None
    elif backend == "postgres":
        name, url = create_pg_database()
        drop = name
    else:
        raise ValueError(backend)
    srv = Server(url, workdir, env=env, demo=demo, workers=workers, backend=backend, tls=tls)
    try:
        srv.start()
    except Exception:
        if drop:
            drop_pg_database(drop)
        raise

    def cleanup():
        srv.stop()
        if drop:
            drop_pg_database(drop)

    return srv, cleanup
