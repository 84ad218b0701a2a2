"""The admin's path: `tokenrent-package build` with the server's own key file, then
`tokenrent-server admin publish`; damaged or foreign packages are refused at publish time."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from installers.demo_packages import PROGRAMS_DIR
from tests.support.server import ROOT, start_server


@pytest.fixture
def server(tmp_path):
    srv, cleanup = start_server("sqlite", tmp_path / "server", demo=True)
    yield srv
    cleanup()


def package_tool(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "installers.package", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_build_with_the_server_key_publish_and_refusals(server, tmp_path):
    products = {p["name"]: p for p in server.api("GET", "/v1/products").json()}
    pid = str(products["DraftCAD Lite"]["id"])        # a demo product with no program yet
    key_file = server.workdir / "data" / "vendor_signing_key.pem"
    assert key_file.exists()

    good = tmp_path / "wc-1.0.trpkg"
    r = package_tool("build", str(PROGRAMS_DIR / "shell_wordcount"), "--product", pid, "--version", "1.0",
                     "--entry", "wordcount.sh", "-o", str(good), "--key", str(key_file), "--json")
    assert r.returncode == 0, r.stderr
    published = server.admin_cli("publish", str(good))
    answer = json.loads(published.stdout)
    assert (str(answer["product_id"]), answer["version"], answer["signed_package"]) == (pid, "1.0", True)

    # Truncated: refused, even though a plain file with --product/--version would be accepted.
    truncated = tmp_path / "wc-1.1.trpkg"
    r = package_tool("build", str(PROGRAMS_DIR / "shell_wordcount"), "--product", pid, "--version", "1.1",
                     "--entry", "wordcount.sh", "-o", str(truncated), "--key", str(key_file))
    assert r.returncode == 0, r.stderr
    truncated.write_bytes(truncated.read_bytes()[:-150])
    refused = server.admin_cli("publish", str(truncated), "--product", pid, "--version", "1.1", check=False)
    assert refused.returncode == 2 and "not a complete TokenRent package" in refused.stderr

    # Signed by someone else: refused.
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    foreign = tmp_path / "wc-1.2.trpkg"
    assert package_tool("build", str(PROGRAMS_DIR / "shell_wordcount"), "--product", pid, "--version", "1.2",
                        "--entry", "wordcount.sh", "-o", str(foreign), "--key", str(stranger)).returncode == 0
    refused = server.admin_cli("publish", str(foreign), check=False)
    assert refused.returncode == 2 and "not a trusted vendor key" in refused.stderr

    versions = [v["version"] for v in server.api("GET", f"/v1/products/{pid}").json().get("versions", [])]
    assert versions == ["1.0"]
