"""The network key file (server_stub/network/keys.py): created 0600 and
atomically, one key when processes race, refused when others may read it;
its public half as `ed25519:` text."""
from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.core.config import Settings
from server_stub.network.keys import KeyFileError, load_or_create_network_key, parse_public_key, public_key_text

ROOT = Path(__file__).resolve().parents[3]


def test_created_0600_as_pkcs8_pem_and_reused(tmp_path):
    path = tmp_path / "deep" / "network_key.pem"
    key = load_or_create_network_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes()
    assert text.startswith(b"-----BEGIN PRIVATE KEY-----")   # PKCS8
    again = load_or_create_network_key(path)
    assert public_key_text(again) == public_key_text(key)
    assert path.read_bytes() == text
    assert [p.name for p in path.parent.iterdir()] == ["network_key.pem"]   # no side file left


def test_processes_starting_at_once_end_with_one_key(tmp_path):
    path = tmp_path / "network_key.pem"
    script = ("import sys; from pathlib import Path; from server_stub.network.keys import *; "
              "print(public_key_text(load_or_create_network_key(Path(sys.argv[1]))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(6)]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    assert outputs == {public_key_text(load_or_create_network_key(path))}
    assert [p.name for p in tmp_path.iterdir()] == ["network_key.pem"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_file_others_may_read_is_refused_and_left_alone(tmp_path, mode):
    path = tmp_path / "network_key.pem"
    load_or_create_network_key(path)
    before = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_network_key(path)
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == mode


def test_a_file_that_is_no_ed25519_key_is_refused(tmp_path):
    path = tmp_path / "network_key.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"not a key\n")
    os.close(fd)
    with pytest.raises(KeyFileError, match="cannot be read"):
        load_or_create_network_key(path)
    assert path.read_bytes() == b"not a key\n"


def test_public_key_text_is_base64url_of_the_raw_32_bytes():
    key = Ed25519PrivateKey.generate()
    text = public_key_text(key)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert text == "ed25519:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "=" not in text and len(text) == len("ed25519:") + 43
    assert public_key_text(key.public_key()) == text
    assert public_key_text(parse_public_key(text)) == text


def _canonical_but_last(text: str) -> str:
    """The same 32 bytes with the unused low bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(text[-1])
    return text[:-1] + alphabet[last | 0b11]


@pytest.mark.parametrize("bad", [
    "", "ed25519:", "x25519:" + "A" * 43, "ED25519:" + "A" * 43,
    "ed25519:" + "A" * 42, "ed25519:" + "A" * 44, "ed25519:" + "A" * 42 + "=",
    "ed25519:" + "A" * 42 + "+", "ed25519:" + "A" * 42 + "/", " ed25519:" + "A" * 43,
])
def test_anything_else_is_a_clear_value_error(bad):
    with pytest.raises(ValueError, match="network public key"):
        parse_public_key(bad)


def test_a_non_canonical_last_character_is_refused():
    text = public_key_text(Ed25519PrivateKey.generate())
    altered = _canonical_but_last(text)
    assert altered != text   # canonical text leaves the 2 unused bits clear
    with pytest.raises(ValueError, match="canonically"):
        parse_public_key(altered)


def test_the_network_key_path_setting(tmp_path, monkeypatch):
    assert Settings(data_dir=str(tmp_path)).resolved_network_key_path == tmp_path / "network_key.pem"
    monkeypatch.setenv("TOKENRENT_NETWORK_KEY_PATH", str(tmp_path / "elsewhere.pem"))
    assert Settings.from_env(data_dir=str(tmp_path)).resolved_network_key_path == tmp_path / "elsewhere.pem"
    assert Settings().resolved_signing_key_path != Settings().resolved_network_key_path


def test_a_known_key_reads_as_its_known_text():
    """RFC 9421's test key (B.1.4): its raw public bytes in base64url, as docs/mall.md shows."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    rfc_key = load_pem_public_key(b"-----BEGIN PUBLIC KEY-----\n"
                                  b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
                                  b"-----END PUBLIC KEY-----\n")
    assert public_key_text(rfc_key) == "ed25519:JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
