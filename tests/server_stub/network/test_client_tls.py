"""TLS: `tokenrent-server serve --tls-cert --tls-key` with a certificate from
a local CA (trustme), reached by clients that trust that CA (MallClient's
ca_file, plain requests, the storefront's TOKENRENT_CA_FILE) and refused by
clients that do not. The real server, on SQLite and PostgreSQL; and the
signed test app under uvicorn with TLS for a full signed round trip."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from desktop_app.api.client import ApiClient, NetworkError
from desktop_app.library.download import Download
from server_stub.network.client import MallClient
from server_stub.network.keys import load_or_create_network_key, public_key_text
from server_stub.network.types import Answer, Unreachable
from tests.support.server import TlsFiles, free_port, start_server
from tests.support.store import make_catalog, order, register_device

from .signed_app import SERVER_KEY_ID

ROOT = Path(__file__).resolve().parents[3]


def _tls_files(directory: Path, ca: trustme.CA) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(cert=directory / "server.pem", key=directory / "server.key", ca=directory / "ca.pem")
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, issued.private_key_pem.bytes())
    os.close(fd)
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TlsFiles:
    return _tls_files(tmp_path_factory.mktemp("tls"), trustme.CA())


@pytest.fixture(scope="module")
def tls_server(backend, tmp_path_factory, tls):
    srv, cleanup = start_server(backend, tmp_path_factory.mktemp(f"tls-server-{backend}"), tls=tls)
    yield srv
    cleanup()


def test_the_server_serves_https_to_clients_of_its_ca(tls_server, tls):
    assert tls_server.base_url.startswith("https://127.0.0.1:")
    r = requests.get(tls_server.base_url + "/v1/health", verify=str(tls.ca), timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    user = tls_server.new_user(tokens=30)   # the whole API over TLS, on this backend's database
    assert tls_server.me(user)["username"] == user.username


def test_a_client_without_the_ca_is_refused(tls_server):
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(tls_server.base_url + "/v1/health", timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):   # and plain HTTP gets no answer from a TLS port
        requests.get(tls_server.base_url.replace("https://", "http://") + "/v1/health", timeout=10)


def test_mall_client_verifies_the_certificate_against_its_ca_file(tls_server, tls):
    key = Ed25519PrivateKey.generate()
    url = tls_server.base_url + "/v1/health"   # no mall routes here: the answer is unsigned
    with MallClient("m-tlsclient0", key, {}.get, ca_file=str(tls.ca)) as client, \
            pytest.raises(Unreachable, match="missing_signature"):   # TLS passed; the signature check did its job
        client.send("GET", url)
    with MallClient("m-tlsclient0", key, {}.get) as client, pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        client.send("GET", url)


def test_the_public_url_defaults_to_https_and_the_storefront_trusts_the_ca_file(tls_server, tls, tmp_path,
                                                                             monkeypatch):
    cat = make_catalog(tls_server)
    tls_server.admin_cli("publish", str(_program(tmp_path)), "--product", str(cat.products["perm"]),
                         "--version", "1.0")
    user = tls_server.new_user(tokens=200)
    keys = register_device(tls_server, user)
    delivery = order(tls_server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]).json()["deliveries"][0]
    assert delivery["download_url"].startswith(tls_server.base_url + "/")   # https, from `serve`'s default public URL

    monkeypatch.delenv("TOKENRENT_CA_FILE", raising=False)
    with pytest.raises(NetworkError):
        ApiClient(tls_server.base_url).request("GET", "/v1/health")
    monkeypatch.setenv("TOKENRENT_CA_FILE", str(tls.ca))
    assert ApiClient(tls_server.base_url).request("GET", "/v1/health") == {"status": "ok"}
    download = Download(delivery["download_url"], tmp_path / "program.bin", headers=user.headers,
                        expected_sha256=delivery["sha256"], retries=0)
    download.run()
    assert (tmp_path / "program.bin").read_bytes() == _program(tmp_path).read_bytes()


def _program(tmp_path: Path) -> Path:
    path = tmp_path / "program-src.bin"
    if not path.exists():
        path.write_bytes(b"a program served over TLS\n" * 100)
    return path


def test_serve_refuses_a_key_that_does_not_match_the_certificate(tmp_path, tls):
    other = _tls_files(tmp_path / "other", trustme.CA())
    for args, needle in [(["--tls-cert", str(tls.cert), "--tls-key", str(other.key)], "cannot use the TLS certificate"),
                         (["--tls-cert", str(tls.cert)], "go together"),
                         (["--tls-cert", str(tmp_path / "absent.pem"), "--tls-key", str(tls.key)], "not found")]:
        res = subprocess.run([sys.executable, "-m", "server_stub", "serve", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                              "--port", str(free_port()), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "TOKENRENT_DATA_DIR": str(tmp_path / "data")})
        assert res.returncode == 2 and needle in res.stderr, res.stderr
    assert not (tmp_path / "x.db").exists()   # refused before anything was created


# ------------------------------------------------------------------ a signed round trip over TLS

def test_a_signed_call_over_tls(tmp_path, tls):
    caller_key = Ed25519PrivateKey.generate()
    server_key = load_or_create_network_key(tmp_path / "server_key.pem")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SIGNED_APP_KEY": str(tmp_path / "server_key.pem"),
           "SIGNED_APP_CALLERS": json.dumps({"m-tlscaller0": public_key_text(caller_key)}),
           "SIGNED_APP_UNSIGNED_SWITCH": str(tmp_path / "never")}
    with open(tmp_path / "app.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.server_stub.network.signed_app:create_app",
                                 "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                 "--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()
            try:
                requests.get(base + "/v1/health", verify=str(tls.ca), timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "the TLS test app did not start"
                time.sleep(0.1)
        answer_key = {SERVER_KEY_ID: server_key.public_key()}.get
        with MallClient("m-tlscaller0", caller_key, answer_key, ca_file=str(tls.ca)) as client:
            answer = client.send("POST", base + "/v1/mall/echo", {"tokens": 3}, idempotency_key="op-tls")
        assert answer == Answer(200, {"caller": "m-tlscaller0", "tokens": 3, "idempotency_key": "op-tls"})
        with MallClient("m-tlscaller0", caller_key, answer_key) as client, pytest.raises(Unreachable, match="CERTIFICATE"):
            client.send("POST", base + "/v1/mall/echo", {"tokens": 3})
    finally:
        proc.terminate()
        proc.wait(timeout=15)
