"""The REAL MSP server (`python -m server_stub msp serve`) as a subprocess on a
free port with a real database (temp SQLite file, or a throw-away PostgreSQL
database), its operator CLI, and an in-process migrated MSP database for
service tests. See tests/mall/conftest.py for the fixtures.

    def test_x(msp):                                  # SQLite and PostgreSQL
        code = msp.admin_json("invite", "Vendor A")["invitation"]
        r = msp.get("/v1/mall/directory")
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.support.server import ROOT, create_pg_database, drop_pg_database, free_port


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


class Msp:
    """A running `python -m server_stub msp serve` process and helpers."""

    def __init__(self, db_url: str, workdir: Path, env: dict[str, str] | None = None, backend: str = "sqlite",
                 extra_args: tuple[str, ...] = ()):
        self.db_url = db_url
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / f"msp-{self.port}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "TOKENRENT_DATA_DIR": str(self.workdir / "data"), **(env or {})}
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()

    # -- process
    def start(self, timeout: float = 60) -> Msp:
        cmd = [sys.executable, "-m", "server_stub", "msp", "serve", "--db", self.db_url,
               "--port", str(self.port), *self.extra_args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"msp exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                if requests.get(self.base_url + "/v1/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"msp did not start in {timeout}s:\n{self.log_text()}")

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

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- HTTP
    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.get(self.base_url + path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.post(self.base_url + path, **kw)

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
              extra_args: tuple[str, ...] = ()) -> tuple[Msp, Callable[[], None]]:
    """Start an MSP on a fresh database of `backend`. Returns (msp, cleanup)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    url, drop = database_url(backend, workdir)
    msp = Msp(url, workdir, env=env, backend=backend, extra_args=extra_args)
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
