"""The tamper suite, on the real CLI: every attack must be caught (exit 4, clear message),
and an honest crash between commit and anchor must not lock the user out."""
from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from datetime import datetime, timedelta, UTC

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from license_agent import codes
from license_agent.secret_store import open_secret_store

from .conftest import EXPECT_KEYRING


def remaining(agent_home, product="4"):
    return {row["product_id"]: row["remaining"] for row in agent_home.ok("status", "--json").json["licenses"]}[product]


def assert_tampered(result, *words):
    assert result.returncode == 4, result
    text = (result.stdout + result.stderr).lower()
    for word in words:
        assert word in text, (word, result)


# -- codes --------------------------------------------------------------------------------

def test_flipped_byte_in_a_code(agent_home):
    text = agent_home.code("4", "uses", uses=5)
    body = text.split(".", 1)[1]
    raw = bytearray(base64.b32decode(body + "=" * (-len(body) % 8))[:-4])
    raw[100] ^= 0x20                                   # inside the ciphertext
    forged = codes._to_text(bytes(raw))                 # check digits recomputed, as an attacker would
    assert_tampered(agent_home.cli("install", forged), "altered")
    typo = text[:30] + ("B" if text[30] != "B" else "C") + text[31:]
    result = agent_home.cli("install", typo)
    assert result.returncode == 2 and "mistyped" in result.stderr
    assert agent_home.ok("status", "--json").json["licenses"] == []


def test_code_for_another_device(agent_home):
    other = X25519PrivateKey.generate()
    other_public = codes.raw_public_x25519(other)
    device = {"device_id": codes.device_id_for(other_public), "public_key": base64.b64encode(other_public).decode()}
    result = agent_home.cli("install", agent_home.code("4", "uses", uses=5, device=device))
    assert_tampered(result, "for device " + device["device_id"], agent_home.device()["device_id"])


def test_untrusted_signer(agent_home):
    result = agent_home.cli("install", agent_home.code("4", "permanent", signer=Ed25519PrivateKey.generate()),
                            "--json")
    assert result.returncode == 4 and result.json["error"] == "untrusted_signer" and "not trusted" in result.json["message"]


def test_older_serial(agent_home):
    old = agent_home.code("4", "uses", uses=5, serial=1)
    agent_home.install("4", "uses", uses=10, serial=2)
    result = agent_home.cli("install", old, "--json")
    assert result.returncode == 4 and result.json["error"] == "older_serial"
    assert remaining(agent_home) == 10


def test_code_issued_in_the_future(agent_home):
    result = agent_home.cli("install", agent_home.code("4", "permanent",
                                                         issued_at=datetime.now(UTC) + timedelta(hours=1)))
    assert_tampered(result, "future")


# -- the state ----------------------------------------------------------------------------

def _edit(agent_home, sql, *params):
    conn = sqlite3.connect(agent_home.home / "state.sqlite3")
    conn.execute("DROP TRIGGER IF EXISTS journal_is_append_only_u")
    conn.execute("DROP TRIGGER IF EXISTS journal_is_append_only_d")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_edited_journal_entry(agent_home):
    agent_home.install("4", "uses", uses=5)
    agent_home.ok("check", "4")
    _edit(agent_home, "UPDATE journal SET body = replace(body, '\"n\":1', '\"n\":0') WHERE type = 'consume'")
    assert_tampered(agent_home.cli("check", "4"), "edited")
    assert_tampered(agent_home.cli("status"), "edited")


def test_edited_grant_total(agent_home):
    agent_home.install("4", "uses", uses=5)
    _edit(agent_home, "UPDATE journal SET body = replace(body, '\"uses\":5', '\"uses\":500') WHERE type = 'install'")
    assert_tampered(agent_home.cli("check", "4"), "edited")


def test_deleted_journal_entries(agent_home):
    agent_home.install("4", "uses", uses=5)
    for _ in range(3):
        agent_home.ok("check", "4")
    _edit(agent_home, "DELETE FROM journal WHERE seq = (SELECT MIN(seq) FROM journal WHERE type = 'consume')")
    assert_tampered(agent_home.cli("check", "4"), "missing")
    _edit(agent_home, "DELETE FROM journal WHERE type = 'consume'")  # cut the tail: behind the anchor
    assert_tampered(agent_home.cli("check", "4"), "older copy")


def copy_state(agent_home, backup):
    """A backup of the agent's database files (what a user's backup tool keeps)."""
    backup.mkdir()
    for path in agent_home.db_files():
        shutil.copy2(path, backup / path.name)
    return backup


def restore_state(agent_home, backup) -> None:
    for path in agent_home.db_files():
        path.unlink()
    for path in backup.iterdir():
        shutil.copy2(path, agent_home.home / path.name)


def test_restored_older_state(agent_home, tmp_path):
    agent_home.install("4", "uses", uses=5)
    agent_home.ok("check", "4")
    backup = copy_state(agent_home, tmp_path / "backup")
    agent_home.ok("check", "4")
    agent_home.ok("check", "4")
    restore_state(agent_home, backup)
    assert_tampered(agent_home.cli("check", "4"), "older copy")
    assert_tampered(agent_home.cli("doctor"), "older copy")


def test_restored_whole_home_is_caught_with_a_keyring(agent_home, tmp_path):
    """With a keyring: caught. With the file store the anchor is restored with the home, so the
    rollback WORKS - the documented limit (docs/agent-protocol.md, Limits), asserted so it is known."""
    agent_home.install("4", "uses", uses=5)
    shutil.copytree(agent_home.home, tmp_path / "backup")
    agent_home.ok("check", "4")
    shutil.rmtree(agent_home.home)
    shutil.copytree(tmp_path / "backup", agent_home.home)
    if EXPECT_KEYRING:
        assert_tampered(agent_home.cli("check", "4"), "older copy")
    else:
        assert agent_home.ok("check", "4", "--json").json["remaining"] == 4       # the spent use came back
        assert agent_home.ok("doctor", "--json").json["weaker_protection"] is True


def test_whoever_writes_the_anchor_can_roll_back(agent_home, tmp_path):
    """The limit in docs/agent-protocol.md: the journal restored TOGETHER with its anchor (the owner
    can write both, in the file store or in their own keyring) is not detectable."""
    agent_home.install("4", "uses", uses=5)
    backup = copy_state(agent_home, tmp_path / "db")
    saved_anchor = open_secret_store(agent_home.home).get_anchor()
    agent_home.ok("check", "4")
    agent_home.ok("check", "4")
    restore_state(agent_home, backup)
    store = open_secret_store(agent_home.home)
    if store.name == "file":
        (agent_home.home / "anchor").unlink()       # both slots, then only the saved one
    store.set_anchor(saved_anchor)
    assert agent_home.ok("check", "4", "--json").json["remaining"] == 4            # 2 uses came back


def test_deleted_state(agent_home):
    agent_home.install("4", "uses", uses=5)
    agent_home.ok("check", "4")
    for path in agent_home.db_files():
        path.unlink()
    for command in (("check", "4"), ("status",), ("device",)):
        assert_tampered(agent_home.cli(*command), "deleted")


def test_deleted_home_is_caught_with_a_keyring(agent_home):
    if not EXPECT_KEYRING:
        pytest.skip("with the file store the anchor is inside the home, so deleting the whole home starts a new "
                    "device (old codes then fail as 'for another device'); only a keyring can remember the home")
    agent_home.install("4", "uses", uses=5)
    shutil.rmtree(agent_home.home)
    assert_tampered(agent_home.cli("check", "4"), "deleted")


def test_deleted_anchor(agent_home):
    agent_home.install("4", "uses", uses=5)
    store = open_secret_store(agent_home.home)
    if store.name == "file":
        (agent_home.home / "anchor").unlink()
    else:
        store.delete("anchor")
    assert_tampered(agent_home.cli("check", "4"), "anchor")


def test_missing_keys(agent_home):
    agent_home.install("4", "uses", uses=5)
    store = open_secret_store(agent_home.home)
    store.delete("journal_key")
    assert_tampered(agent_home.cli("check", "4"), "keys are missing")


def test_anchor_behind_after_a_crash_is_accepted_and_caught_up(agent_home):
    """The crash window between commit and anchor update: the journal is ahead of its anchor."""
    agent_home.install("4", "uses", uses=5)
    store = open_secret_store(agent_home.home)
    old_anchor, anchor_file = store.get_anchor(), agent_home.home / "anchor"
    old_bytes = anchor_file.read_bytes() if store.name == "file" else None
    agent_home.ok("check", "4")
    if old_bytes is not None:                      # as if the process died before writing the anchor
        anchor_file.write_bytes(old_bytes)
    else:
        open_secret_store(agent_home.home).set_anchor(old_anchor)
    assert open_secret_store(agent_home.home).get_anchor()["seq"] < len(list(_rows(agent_home)))
    doctor = agent_home.ok("doctor", "--json").json
    assert "caught up" in doctor["anchor"]
    assert agent_home.ok("check", "4", "--json").json["remaining"] == 3
    assert open_secret_store(agent_home.home).get_anchor()["seq"] == len(list(_rows(agent_home)))


def test_anchor_cannot_be_rewound_to_set_up(agent_home):
    agent_home.install("4", "uses", uses=5)
    store = open_secret_store(agent_home.home)
    if store.name == "file":
        (agent_home.home / "anchor").unlink()      # both slots gone, then only the forged one
    store.set_anchor({"seq": 0, "mac": ""})
    assert open_secret_store(agent_home.home).get_anchor()["seq"] == 0
    assert_tampered(agent_home.cli("check", "4"), "anchor")


def _rows(agent_home):
    conn = sqlite3.connect(agent_home.home / "state.sqlite3")
    try:
        return conn.execute("SELECT seq FROM journal").fetchall()
    finally:
        conn.close()


def test_garbage_database(agent_home):
    agent_home.install("4", "uses", uses=5)
    for path in agent_home.db_files():
        path.unlink()
    (agent_home.home / "state.sqlite3").write_bytes(b"this is not sqlite" * 100)
    assert agent_home.cli("check", "4").returncode == 4


# -- the clock (libfaketime on the real CLI process) ----------------------------------------

needs_faketime = pytest.mark.usefixtures("faketime_available")


@needs_faketime
def test_faketime_really_moves_the_agents_clock(agent_home):
    """Without this, a libfaketime that loads but does nothing would make the clock tests pass vacuously."""
    agent_home.install("4", "permanent")
    now = datetime.now(UTC)
    for shift, expected in (("-1d", now - timedelta(days=1)), ("+3d", now + timedelta(days=3))):
        seen = datetime.fromisoformat(agent_home.ok("status", "--json", faketime=shift).json["clock"]["now"]
                                      .replace("Z", "+00:00"))
        assert abs((seen - expected).total_seconds()) < 120, (shift, seen, expected)


@needs_faketime
def test_clock_moved_back_does_not_touch_uses_processings_or_permanent(agent_home):
    agent_home.install("4", "time", days=30)
    agent_home.install("5", "uses", uses=5)
    agent_home.install("6", "processings", processings=10)
    agent_home.install("7", "permanent")
    agent_home.ok("check", "4")                                   # the latest time seen: now
    back = dict(faketime="-2d")
    assert agent_home.cli("check", "4", "--json", **back).json["clock_behind"] is True   # time rentals: refused
    uses = agent_home.cli("check", "5", "--json", **back)
    assert uses.returncode == 0 and uses.json["allowed"] and uses.json["remaining"] == 4
    assert uses.json["clock_behind"] is False
    processing = agent_home.cli("consume", "6", "3", "--json", **back)
    assert processing.returncode == 0 and processing.json["remaining"] == 7 and processing.json["clock_behind"] is False
    assert agent_home.cli("check", "6", "--json", **back).returncode == 0
    permanent = agent_home.cli("check", "7", "--json", **back)
    assert permanent.returncode == 0 and permanent.json["allowed"] and permanent.json["clock_behind"] is False
    status = agent_home.cli("status", "--json", **back).json
    assert status["clock"]["behind"] is True
    usable = {row["product_id"]: row["usable"] for row in status["licenses"]}
    assert usable["5"] and usable["6"] and usable["7"], usable
    assert agent_home.cli("check", "4", "--json").returncode == 0   # the clock right again: the rental runs


@needs_faketime
def test_clock_moved_back_refuses_time_rentals_only(agent_home):
    agent_home.install("4", "time", days=30)
    agent_home.install("5", "uses", uses=5)
    agent_home.ok("check", "4")
    back = agent_home.cli("check", "4", "--json", faketime="-1d")
    assert back.returncode == 4 and back.json["clock_behind"] and back.json["reason"] == "clock_behind"
    assert "clock" in back.json["message"]
    assert agent_home.cli("check", "5", "--json", faketime="-1d").json["allowed"] is True   # uses unaffected
    assert agent_home.cli("check", "4", faketime="-4m").returncode == 0                      # within 5 minutes
    doctor = agent_home.cli("doctor", "--json", faketime="-1d")
    assert doctor.returncode == 4 and doctor.json["clock_behind"]
    assert agent_home.cli("check", "4").returncode == 0                                       # clock right again


@needs_faketime
def test_clock_moved_back_after_expiry_is_caught(agent_home):
    agent_home.install("4", "time", expires_at=datetime.now(UTC) + timedelta(days=2))
    expired = agent_home.cli("check", "4", "--json", faketime="+3d")   # the day after expiry
    assert expired.returncode == 3 and expired.json["expired"]
    assert agent_home.cli("check", "4", faketime="+1d").returncode == 4   # "back" to before expiry: refused


@needs_faketime
def test_code_from_the_future_under_a_slow_clock(agent_home):
    code = agent_home.code("4", "permanent")
    assert_tampered(agent_home.cli("install", code, faketime="-1h"), "future")


def test_time_zone_changes_are_never_flagged(agent_home):
    agent_home.install("4", "time", days=30)
    assert agent_home.cli("check", "4").returncode == 0
    import subprocess
    # the furthest-ahead zone first, then the furthest behind (a 26-hour jump in local time)
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "America/New_York"):
        env = dict(agent_home.env, TZ=zone)
        proc = subprocess.run(agent_home.command("check", "4", "--json"), env=env, capture_output=True, text=True)
        assert proc.returncode == 0 and json.loads(proc.stdout)["clock_behind"] is False, (zone, proc.stderr)
