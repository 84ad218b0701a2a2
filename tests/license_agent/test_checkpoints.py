"""Checkpoints bound the work of opening the state: the model is written into the journal
every CHECKPOINT_EVERY entries, chained like any entry. Opening starts from the latest one;
doctor still verifies the whole chain."""
from __future__ import annotations

import sqlite3

import pytest

from license_agent.agent import Agent
from license_agent.errors import Tampered
from license_agent.state import CHECKPOINT_EVERY

from .test_gate import Vendor


def _edit(home, sql):
    conn = sqlite3.connect(home / "state.sqlite3")
    conn.execute("DROP TRIGGER IF EXISTS journal_is_append_only_u")
    conn.execute("DROP TRIGGER IF EXISTS journal_is_append_only_d")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.fixture()
def long_history(tmp_path):
    home = tmp_path / "home"
    with Agent(home) as agent:
        vendor = Vendor(agent)
        vendor.install(kind="uses", uses=5000)
        vendor.install(kind="processings", processings=100, product_id="5")
        held = agent.reserve("5", 7, ttl=3600)
        for _ in range(CHECKPOINT_EVERY + 50):
            assert agent.check("4")["allowed"]
        before = agent.status()
    return home, before, held["reservation_id"]


def _checkpoints(home):
    conn = sqlite3.connect(home / "state.sqlite3")
    try:
        return [seq for (seq,) in conn.execute("SELECT seq FROM journal WHERE type = 'checkpoint'")]
    finally:
        conn.close()


def test_state_reopens_from_the_checkpoint_with_the_same_view(long_history):
    home, before, reservation_id = long_history
    assert len(_checkpoints(home)) == 1
    with Agent(home) as agent:
        after = agent.status()
        assert after["licenses"] == before["licenses"]
        assert after["licenses"][0]["remaining"] == 5000 - CHECKPOINT_EVERY - 50
        assert after["licenses"][1]["reserved"] == 7
        assert agent.commit(reservation_id, 2)["remaining"] == 98   # a reservation survives the checkpoint
        assert agent.doctor_facts()["journal"] == "verified"


def test_edit_before_the_checkpoint_is_caught_by_doctor(long_history):
    home, _before, _ = long_history
    _edit(home, "UPDATE journal SET body = replace(body, '\"n\":1', '\"n\":0') WHERE seq = 10")
    with Agent(home) as agent:                  # deciding uses the checkpoint, which is intact
        with pytest.raises(Tampered, match="entry 10 was edited"):
            agent.doctor_facts()


def test_edit_or_removal_of_the_checkpoint_is_caught(long_history):
    home, _before, _ = long_history
    checkpoint = _checkpoints(home)[0]
    _edit(home, f"UPDATE journal SET body = replace(body, '\"consumed\":', '\"consumed\":1') WHERE seq = {checkpoint}")
    with pytest.raises(Tampered, match="edited"):
        Agent(home)


def test_removed_checkpoint_is_caught(long_history):
    home, _before, _ = long_history
    _edit(home, f"DELETE FROM journal WHERE seq = {_checkpoints(home)[0]}")
    with pytest.raises(Tampered, match="missing"):
        Agent(home)
