"""Fixtures for the license-agent tests: a real agent home (temp LICENSE_AGENT_HOME), the real
CLI as a subprocess, and a test vendor issuing real codes with license_agent.codes. No mocks."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent import codes

ROOT = Path(__file__).resolve().parents[2]
EXPECT_KEYRING = os.environ.get("TOKENRENT_EXPECT_KEYRING", "")
FAKETIME_LIB = next((str(p) for pattern in ("/usr/lib/*-linux-gnu/faketime/libfaketime.so.1",
                                            "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1")
                     for p in sorted(Path("/").glob(pattern.lstrip("/")))), None)
# Where libfaketime must be found, a missing one FAILS the clock tests instead of skipping them:
# scripts/test sets TOKENRENT_REQUIRE_FAKETIME=1 where .ci/run installs it (root with apt-get), and a
# machine with the faketime command but no library we can find is a broken lookup, not a choice.
REQUIRE_FAKETIME = os.environ.get("TOKENRENT_REQUIRE_FAKETIME") == "1" or shutil.which("faketime") is not None


def faketime_env(env: dict, shift: str) -> dict:
    """env for a process whose clock (wall time only) is moved by shift, e.g. "-1d"."""
    return dict(env, LD_PRELOAD=FAKETIME_LIB, FAKETIME=shift, FAKETIME_DONT_FAKE_MONOTONIC="1",
                FAKETIME_NO_CACHE="1")


@pytest.fixture()
def faketime_available():
    """Skips with the reason on a developer machine without libfaketime; FAILS where it must be there."""
    if FAKETIME_LIB is None:
        why = "libfaketime is not installed (apt-get install faketime)"
        if REQUIRE_FAKETIME:
            pytest.fail(f"{why}, but this run requires it (TOKENRENT_REQUIRE_FAKETIME=1 or a faketime command "
                        f"whose library was not found)")
        pytest.skip(why)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


@dataclass
class AgentHome:
    """One device: a temp LICENSE_AGENT_HOME, driven through the real CLI, plus a vendor key."""

    home: Path
    vendor: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    serials: dict = field(default_factory=dict)

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["LICENSE_AGENT_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "license_agent", *args]

    def cli(self, *args: str, input: str | None = None, faketime: str | None = None, timeout: float = 60) -> Result:
        env = self.env if faketime is None else faketime_env(self.env, faketime)
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, env=env, input=input,
                              timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kwargs) -> Result:
        result = self.cli(*args, **kwargs)
        assert result.returncode == 0, (args, result)
        return result

    @property
    def vendor_public_b64(self) -> str:
        return base64.b64encode(codes.raw_public_ed25519(self.vendor)).decode()

    def device(self) -> dict:
        return self.ok("device", "--json").json

    def trust(self) -> None:
        self.ok("trust", self.vendor_public_b64)

    def code(self, product_id="4", kind="uses", *, license_id=None, serial=None, signer=None, device=None,
             issued_at=None, **terms) -> str:
        device = device or self.device()
        license_id = license_id or f"lic-{product_id}-{kind}"
        if serial is None:
            serial = self.serials.get(license_id, 0) + 1
        self.serials[license_id] = max(serial, self.serials.get(license_id, 0))
        now = datetime.now(UTC)
        if kind == "time" and "expires_at" not in terms:
            terms["expires_at"] = now + timedelta(days=terms.pop("days", 30))
        terms.pop("days", None)
        grant = codes.Grant(license_id=license_id, serial=serial, product_id=str(product_id),
                            device_id=device["device_id"], kind=kind, issued_at=issued_at or now,
                            store_url=f"tokenrent://product/{product_id}", product_name=f"Product {product_id}",
                            **terms)
        return codes.issue_code(grant, signer or self.vendor, base64.b64decode(device["public_key"]))

    def install(self, *args, **kwargs) -> dict:
        return self.ok("install", self.code(*args, **kwargs), "--json").json

    def db_files(self) -> list[Path]:
        return sorted(self.home.glob("state.sqlite3*"))


@pytest.fixture(autouse=True)
def file_store_unless_a_keyring_is_expected(monkeypatch):
    """The run without TOKENRENT_EXPECT_KEYRING tests the 0600-file fallback, also on a desktop whose
    Secret Service works: keyring is told to use its fail backend, in this process and the CLI's.
    (Scoped to these tests: other suites, e.g. the frozen agent's, look at the real keyring.)"""
    if EXPECT_KEYRING:
        return
    import keyring.core
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)   # re-read the variable at first use


@pytest.fixture()
def agent_home(tmp_path, monkeypatch) -> AgentHome:
    home = tmp_path / "home"
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(home))
    agent = AgentHome(home)
    agent.trust()
    return agent


def issue_grant(device: dict, vendor, **fields) -> str:
    grant = codes.Grant(**fields)
    return codes.issue_code(grant, vendor, base64.b64decode(device["public_key"]))


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
