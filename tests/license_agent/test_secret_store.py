"""Which secret store the agent really uses. Under scripts/test's second run (gnome-keyring in
dbus-run-session, TOKENRENT_EXPECT_KEYRING=secretservice) it must be the Secret Service; on a
box without a keyring it must be the 0600 file, and doctor must say the protection is weaker."""
from __future__ import annotations

import base64
import stat


from license_agent.paths import home_id
from license_agent.secret_store import KEYRING_SERVICE, open_secret_store

from .conftest import EXPECT_KEYRING


def test_the_expected_backend_is_really_used(agent_home):
    device = agent_home.device()
    doctor = agent_home.ok("doctor", "--json").json
    secrets_file = agent_home.home / "secrets.json"
    if EXPECT_KEYRING == "secretservice":
        assert doctor["secret_store"] == "keyring:SecretService", doctor
        assert doctor["weaker_protection"] is False
        assert not secrets_file.exists() and not (agent_home.home / "anchor").exists()
        # Read the device key back from the Secret Service ourselves, outside the agent.
        import secretstorage
        connection = secretstorage.dbus_init()
        try:
            collection = secretstorage.get_default_collection(connection)
            items = list(collection.search_items({"service": KEYRING_SERVICE,
                                                  "username": f"{home_id(agent_home.home)}/device_key"}))
            assert len(items) == 1
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
            from license_agent.codes import device_id_for, raw_public_x25519
            private = X25519PrivateKey.from_private_bytes(base64.b64decode(items[0].get_secret()))
            assert device_id_for(raw_public_x25519(private)) == device["device_id"]
        finally:
            connection.close()
    else:
        assert not EXPECT_KEYRING, f"unknown TOKENRENT_EXPECT_KEYRING={EXPECT_KEYRING!r}"
        assert doctor["secret_store"] == "file", ("a keyring backend works here; this run expects the fallback", doctor)
        assert doctor["weaker_protection"] is True and "0600 file" in doctor["why_weaker"]
        assert "WARNING: protection is weaker" in agent_home.ok("doctor").stdout
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((agent_home.home / "anchor").stat().st_mode) == 0o600


def test_the_backend_never_changes_silently(agent_home):
    agent_home.device()
    recorded = (agent_home.home / "secret-backend").read_text()
    (agent_home.home / "secret-backend").write_text("keyring:SomethingElse" if recorded == "file" else "file")
    result = agent_home.cli("check", "4")
    assert result.returncode == 4, result


def test_homes_do_not_share_secrets(tmp_path, agent_home):
    other = type(agent_home)(tmp_path / "other-home")
    assert other.device()["device_id"] != agent_home.device()["device_id"]
    store = open_secret_store(agent_home.home)
    assert store.get("device_key") != open_secret_store(other.home).get("device_key")
