"""A real license agent with a temp LICENSE_AGENT_HOME, driven through its CLI, and a test
vendor that issues real authorization codes to it (license_agent.codes). No mocks."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, UTC
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def agent_command() -> list[str]:
    """The non-frozen agent: the console script next to this Python, else `python -m`."""
    script = VENV_BIN / "license-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "license_agent.cli"]


class AgentHome:
    """One device: a temp agent home, trusted to one test vendor key."""

    def __init__(self, home: Path, agent: list[str] | None = None,
                 vendor_key: Ed25519PrivateKey | None = None):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.agent = agent or agent_command()
        self.vendor_key = vendor_key or Ed25519PrivateKey.generate()
        self.serials: dict[str, int] = {}
        self._device: dict | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LICENSE_AGENT_HOME"] = str(self.home)
        # Programs find `license-agent` (the one under test) first on the PATH.
        env["PATH"] = f"{Path(self.agent[0]).parent}{os.pathsep}{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def cli(self, *args: str, input: str | None = None, check: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.agent, *args], capture_output=True, text=True, env=self.env,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"license-agent {' '.join(args)} exit {proc.returncode}: "
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def cli_json(self, *args: str, expect: int | None = 0) -> dict:
        proc = self.cli(*args, "--json")
        if expect is not None:
            assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)

    def device(self) -> dict:
        if self._device is None:
            self._device = self.cli_json("device")
        return self._device

    def trust_vendor(self) -> None:
        raw = self.vendor_key.public_key().public_bytes_raw()
        self.cli("trust", base64.b64encode(raw).decode(), check=True)

    def issue(self, product_id: str, kind: str, *, uses: int | None = None,
              processings: int | None = None, expires_in: timedelta | None = None,
              low_threshold: int | None = None, license_id: str | None = None) -> str:
        from license_agent.codes import Grant, issue_code
        license_id = license_id or f"lic-{product_id}"
        self.serials[license_id] = self.serials.get(license_id, 0) + 1
        now = datetime.now(UTC)
        grant = Grant(license_id=license_id, serial=self.serials[license_id], product_id=str(product_id),
                      device_id=self.device()["device_id"], kind=kind, issued_at=now,
                      store_url=f"tokenrent://product/{product_id}",
                      expires_at=(now + expires_in) if expires_in else None,
                      uses=uses, processings=processings, low_threshold=low_threshold,
                      product_name=f"Product {product_id}")
        device_public = base64.b64decode(self.device()["public_key"])
        return issue_code(grant, self.vendor_key, device_public)

    def grant(self, product_id: str, kind: str, **terms) -> None:
        """Issue a code for this device and install it with the real CLI."""
        code = self.issue(product_id, kind, **terms)
        self.cli("install", "-", input=code, check=True)

    def remaining(self, product_id: str) -> int | None:
        status = self.cli_json("status")
        items = status.get("licenses", status) if isinstance(status, dict) else status
        for item in items:
            if str(item.get("product_id")) == str(product_id):
                return item.get("remaining")
        raise AssertionError(f"product {product_id} not in status: {status}")


def unique_home(base: Path) -> Path:
    return base / f"agent-{uuid.uuid4().hex[:8]}"


def have_agent_cli() -> bool:
    try:
        import license_agent.cli  # noqa: F401
        import license_agent.client  # noqa: F401
    except ImportError:
        return False
    return shutil.which("license-agent", path=str(VENV_BIN)) is not None
