"""`msp serve` as an operator runs it (SQLite and PostgreSQL): its network key
file, HTTPS with a vendor joining through the mall's signed client, and
several processes on one database."""
from __future__ import annotations

import stat

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.network.client import MallClient
from server_stub.network.keys import load_or_create_network_key, public_key_text
from tests.support.msp import Msp, join_body


def test_the_msp_key_is_a_0600_file_of_its_own_and_survives_a_restart(msp_factory):
    srv = msp_factory()
    path = srv.workdir / "data" / "msp_network_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (srv.workdir / "data" / "network_key.pem").exists()   # a vendor's default, never the MSP's
    published = srv.get("/v1/mall/directory").json()["msp"]["network_key"]
    assert published == public_key_text(load_or_create_network_key(path))
    assert published in srv.log_text()
    srv.stop()
    again = Msp(srv.db_url, srv.workdir, backend=srv.backend).start()
    try:
        assert again.get("/v1/mall/directory").json()["msp"]["network_key"] == published
    finally:
        again.stop()


def test_https_and_a_vendor_joining_through_the_signed_client(msp_factory, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    srv = msp_factory(extra_args=("--tls-cert", str(cert_file), "--tls-key", str(key_file)), ca_file=str(ca_file))
    assert srv.base_url.startswith("https://")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(srv.base_url + "/v1/health", timeout=10)   # the system's CAs do not know ours
    msp_key = srv.msp_public_key()
    code = srv.admin_json("invite", "TLS Vendor")["invitation"]
    vendor_key = Ed25519PrivateKey.generate()
    with MallClient("joining", vendor_key, lambda kid: msp_key if kid == "msp" else None,
                    ca_file=str(ca_file)) as client:
        answer = client.send("POST", srv.base_url + "/v1/mall/members", join_body(code, vendor_key, name="TLS Vendor"))
    assert answer.status == 201 and answer.body["msp_key"] == public_key_text(msp_key)
    listed = {m["member_id"]: m for m in srv.get("/v1/mall/directory").json()["members"]}
    assert listed[answer.body["member_id"]]["network_key"] == public_key_text(vendor_key)


def test_tls_options_go_together(msp_factory):
    with pytest.raises(RuntimeError, match="--tls-cert and --tls-key go together"):
        msp_factory(extra_args=("--tls-cert", "/nonexistent.pem"))


def test_two_processes_on_one_database_serve_the_same_mall(msp_factory):
    first = msp_factory()
    second = Msp(first.db_url, first.workdir, backend=first.backend).start()   # same database, same key file
    try:
        code = first.admin_json("invite", "Shared")["invitation"]
        key = Ed25519PrivateKey.generate()
        joined = first.join(join_body(code, key, name="Shared"), key)
        assert joined.status_code == 201
        seen = second.get("/v1/mall/directory").json()
        assert joined.json()["member_id"] in seen["entries"]
        assert seen["version"] == joined.json()["directory_version"]
        assert second.join(join_body(code, key, name="Shared"), key).json() == joined.json()   # the first answer
        first.admin("block", joined.json()["member_id"], "--reason", "test")
        assert second.get(f"/v1/mall/members/{joined.json()['member_id']}").json()["status"] == "blocked"
    finally:
        second.stop()
