"""Signed routes end to end: the test's own FastAPI app (signed_app.py) served
by uvicorn in a subprocess on a real port, called through MallClient and
through plain requests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.network.client import MallClient, canonical_url
from server_stub.network.keys import load_or_create_network_key, public_key_text
from server_stub.network.signatures import sign_request, verify_response
from server_stub.network.types import Answer, Unreachable
from tests.support.server import free_port

from .signed_app import SERVER_KEY_ID

ROOT = Path(__file__).resolve().parents[3]
CALLER = "m-caller0000"


class SignedApp:
    def __init__(self, workdir: Path):
        self.caller_key = Ed25519PrivateKey.generate()
        self.key_path = workdir / "server_key.pem"
        self.server_key = load_or_create_network_key(self.key_path)
        self.switch = workdir / "answers-unsigned"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SIGNED_APP_KEY": str(self.key_path),
               "SIGNED_APP_CALLERS": json.dumps({CALLER: public_key_text(self.caller_key)}),
               "SIGNED_APP_UNSIGNED_SWITCH": str(self.switch)}
        self.log = open(workdir / "app.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.server_stub.network.signed_app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (workdir / "app.log").read_text()
            try:
                if requests.get(self.base_url + "/v1/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the signed test app did not start")

    def client(self, answer_key=None, timeout: float = 10.0) -> MallClient:
        known = {SERVER_KEY_ID: self.server_key.public_key()}
        return MallClient(CALLER, self.caller_key, answer_key or known.get, timeout=timeout)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    running = SignedApp(tmp_path_factory.mktemp("signed-app"))
    yield running
    running.stop()


def test_a_signed_call_reaches_the_route_with_its_caller_and_body(app):
    with app.client() as client:
        answer = client.send("POST", app.base_url + "/v1/mall/echo", {"tokens": 5}, idempotency_key="op-1")
        assert answer == Answer(200, {"caller": CALLER, "tokens": 5, "idempotency_key": "op-1"})
        # keep-alive: the same session again, and a call without a body
        assert client.send("GET", app.base_url + "/v1/mall/whoami") == Answer(200, {"caller": CALLER})
        assert client.send("GET", app.base_url + "/v1/mall/empty") == Answer(204, None)


def test_the_routes_body_model_still_validates(app):
    with app.client() as client:
        answer = client.send("POST", app.base_url + "/v1/mall/echo", {"tokens": "many"})
    assert answer.status == 422   # a signed, final answer: the route's own validation ran


def _problem(response: requests.Response) -> dict:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "signature" not in response.headers   # nothing to bind an answer to, or a refusal of an unsigned call
    return response.json()


def test_an_unsigned_call_is_refused_with_its_reason(app):
    r = requests.post(app.base_url + "/v1/mall/echo", json={"tokens": 5}, timeout=10)
    body = _problem(r)
    assert body["reason"] == "missing_signature" and body["status"] == 401 and body["detail"]


def _signed_headers(app, method, url, body, key=None, key_id=CALLER, now=None):
    headers = {"Content-Type": "application/json"}
    headers.update(sign_request(method, canonical_url(url), headers, body, key_id, key or app.caller_key, now=now))
    return headers


def test_a_replay_outside_the_clock_window_is_refused(app):
    url, body = app.base_url + "/v1/mall/echo", b'{"tokens":7}'
    stale = _signed_headers(app, "POST", url, body, now=datetime.now(UTC) - timedelta(minutes=6))
    r = requests.post(url, data=body, headers=stale, timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "clock_skew"
    # the same call signed now is accepted, and its answer is bound to it
    fresh = _signed_headers(app, "POST", url, body)
    r = requests.post(url, data=body, headers=fresh, timeout=10)
    assert r.status_code == 200 and r.json()["caller"] == CALLER
    keys = {SERVER_KEY_ID: app.server_key.public_key()}
    assert verify_response(200, r.headers, r.content, fresh, keys.get) == SERVER_KEY_ID


def test_an_unknown_caller_and_a_changed_body_are_refused(app):
    url, body = app.base_url + "/v1/mall/echo", b'{"tokens":7}'
    stranger = _signed_headers(app, "POST", url, body, key=Ed25519PrivateKey.generate(), key_id="m-stranger00")
    assert requests.post(url, data=body, headers=stranger, timeout=10).json()["reason"] == "unknown_key"
    r = requests.post(url, data=b'{"tokens":700}', headers=_signed_headers(app, "POST", url, body), timeout=10)
    assert r.status_code == 401 and r.json()["reason"] == "digest_mismatch"
    # the client treats a 401 as "not answered" (our clock, or their copy of the directory)
    client = MallClient("m-stranger00", Ed25519PrivateKey.generate(), {}.get)
    with client, pytest.raises(Unreachable, match="401"):
        client.send("POST", url, {"tokens": 7})


def test_the_client_checks_the_answers_signature(app):
    impostor = Ed25519PrivateKey.generate().public_key()
    with app.client(answer_key={SERVER_KEY_ID: impostor}.get) as client, pytest.raises(Unreachable, match="bad_signature"):
        client.send("GET", app.base_url + "/v1/mall/whoami")
    with app.client(answer_key={}.get) as client, pytest.raises(Unreachable, match="unknown_key"):
        client.send("GET", app.base_url + "/v1/mall/whoami")
    app.switch.touch()   # the server's signer returns None: answers leave unsigned
    try:
        r = requests.get(app.base_url + "/v1/mall/whoami", headers=_signed_headers(app, "GET", app.base_url + "/v1/mall/whoami", b""),
                         timeout=10)
        assert r.status_code == 200 and "signature" not in r.headers
        with app.client() as client, pytest.raises(Unreachable, match="missing_signature"):
            client.send("GET", app.base_url + "/v1/mall/whoami")
    finally:
        app.switch.unlink()
    with app.client() as client:
        assert client.send("GET", app.base_url + "/v1/mall/whoami").status == 200


def test_no_final_answer_is_unreachable(app):
    with app.client(timeout=0.5) as client:
        with pytest.raises(Unreachable, match="503"):
            client.send("GET", app.base_url + "/v1/mall/boom")
        with pytest.raises(Unreachable, match="timed out"):
            client.send("GET", app.base_url + "/v1/mall/slow")
        with pytest.raises(Unreachable):
            client.send("GET", f"http://127.0.0.1:{free_port()}/v1/mall/whoami")   # nobody listens


def test_canonical_url_is_what_the_receiver_rebuilds():
    assert canonical_url("HTTPS://Vendor.Example:443/v1/mall/x?a=1") == "https://vendor.example/v1/mall/x?a=1"
    assert canonical_url("http://127.0.0.1:80") == "http://127.0.0.1/"
    assert canonical_url("http://127.0.0.1:8700/v1/mall/x") == "http://127.0.0.1:8700/v1/mall/x"
    assert canonical_url("https://[::1]:8443/v1/mall/x#frag") == "https://[::1]:8443/v1/mall/x"
