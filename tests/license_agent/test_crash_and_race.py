"""Crash and concurrency: kill -9 during checks never gives a use back and never locks an
honest user out; two processes racing for the last use: exactly one wins."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest


def consumed_in_journal(agent_home) -> int:
    conn = sqlite3.connect(agent_home.home / "state.sqlite3")
    try:
        return sum(json.loads(body)["n"] for (body,) in
                   conn.execute("SELECT body FROM journal WHERE type = 'consume'"))
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_during_checks_never_gains_a_use(agent_home):
    total = 200
    agent_home.install("4", "uses", uses=total)
    rng = random.Random(1234)
    started = time.monotonic()
    agent_home.ok("check", "4")                     # how long one check takes here (keyring: slower)
    one_check = time.monotonic() - started
    allowed_seen = 1
    last_remaining = total - 1
    killed_mid_way = killed_after_answer = 0
    for round_number in range(40):
        proc = subprocess.Popen(agent_home.command("check", "4", "--json"), env=agent_home.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 1.4) * one_check)  # kills land all over a check, and some after it
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        # Whatever reached stdout counts, killed or not: an "allowed" printed before its use was
        # committed would show up here as a run allowed without a use recorded.
        said_allowed = _says_allowed(out)
        if proc.returncode == 0:                     # it finished before the kill: its answer counts
            assert said_allowed, out
        else:
            assert proc.returncode == -signal.SIGKILL
            killed_mid_way += 1
            killed_after_answer += said_allowed
        allowed_seen += said_allowed
        status = agent_home.cli("status", "--json")
        assert status.returncode == 0, ("an honest crash locked the user out", round_number, status)
        remaining = status.json["licenses"][0]["remaining"]
        used = status.json["licenses"][0]["used"]
        assert remaining <= last_remaining, "a use came back"
        assert remaining == total - used
        assert used >= allowed_seen, "a run was allowed without a use being recorded"
        last_remaining = remaining
    assert killed_mid_way > 5 and allowed_seen > 5, (killed_mid_way, allowed_seen)   # both paths exercised
    print(f"kill -9 loop: {killed_mid_way} killed, {killed_after_answer} of them after answering, "
          f"{allowed_seen} allowed answers seen")
    assert consumed_in_journal(agent_home) == total - last_remaining
    assert agent_home.ok("check", "4", "--json").json["remaining"] == last_remaining - 1


def _says_allowed(out: str) -> bool:
    """True if the (possibly cut-off) stdout of `check --json` carries an allowed answer."""
    text = out.strip()
    if not text:
        return False
    try:
        return json.loads(text)["allowed"] is True
    except ValueError:                                   # cut off mid-line by the kill
        return '"allowed": true' in text


def test_says_allowed_reads_cut_off_output():
    assert _says_allowed('{"product_id": "4", "allowed": true, "rea') is True
    assert _says_allowed('{"product_id": "4", "allowed": false}\n') is False
    assert _says_allowed('{"product_id": "4", "allo') is False and _says_allowed("") is False


def test_state_is_wal_with_synchronous_full(agent_home):
    """The durability the "committed before allowed" promise rests on: WAL recorded in the file,
    and FULL (2) on the connection the agent writes with."""
    agent_home.install("4", "uses", uses=3)
    fresh = sqlite3.connect(agent_home.home / "state.sqlite3")
    try:
        assert fresh.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        fresh.close()
    from license_agent.agent import Agent
    with Agent(agent_home.home) as agent:
        assert agent.state._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert agent.check("4")["allowed"]
        assert agent.state._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_two_processes_race_for_the_last_use(agent_home):
    for attempt in range(3):
        license_id = f"race-{attempt}"
        agent_home.install("4", "uses", uses=1, license_id=license_id)
        procs = [subprocess.Popen(agent_home.command("check", "4", "--json"), env=agent_home.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        codes = sorted(p.wait(timeout=60) for p in procs)
        assert codes == [0, 3], codes
    assert all(row["remaining"] == 0 for row in agent_home.ok("status", "--json").json["licenses"])


def test_many_processes_spend_exactly_what_they_were_told(agent_home):
    agent_home.install("4", "processings", processings=12)
    procs = [subprocess.Popen(agent_home.command("consume", "4", "2", "--json"), env=agent_home.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    codes = [p.wait(timeout=60) for p in procs]
    assert codes.count(0) == 6 and codes.count(3) == 2, codes
    assert agent_home.ok("status", "--json").json["licenses"][0]["remaining"] == 0
    assert consumed_in_journal(agent_home) == 12


@pytest.mark.slow
def test_kill_9_during_first_run_never_locks_out(tmp_path):
    from .conftest import AgentHome
    rng = random.Random(99)
    started = time.monotonic()
    probe = AgentHome(tmp_path / "probe")
    probe.ok("device")
    one_run = time.monotonic() - started
    interrupted = 0
    for round_number in range(15):
        agent_home = AgentHome(tmp_path / f"home-{round_number}")
        proc = subprocess.Popen(agent_home.command("device", "--json"), env=agent_home.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.2, 1.1) * one_run)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        interrupted += proc.returncode != 0
        first = json.loads(out)["device_id"] if proc.returncode == 0 else None
        after = agent_home.cli("device", "--json")
        assert after.returncode == 0, ("an interrupted first run locked the user out", round_number, after)
        if first:
            assert after.json["device_id"] == first
        agent_home.trust()
        agent_home.install("4", "uses", uses=2)
        assert agent_home.ok("check", "4", "--json").json["remaining"] == 1
    assert interrupted >= 3, interrupted


def test_unwritable_home_is_a_clear_error(tmp_path):
    from .conftest import AgentHome
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-dir"
        blocker.write_text("x")
        agent_home = AgentHome(blocker / "home")   # a path that cannot be created, even by root
    else:
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o500)
        agent_home = AgentHome(parent / "home")
    result = agent_home.cli("check", "4", "--json")
    assert result.returncode == 4 and result.json["error"] == "state_unavailable"
    assert "Traceback" not in result.stderr


def test_a_stopped_process_holding_the_lock_does_not_hang_the_gate(agent_home):
    """SIGSTOP a process while it holds the lock: the gate gives up with a clear error (exit 4)
    after LICENSE_AGENT_LOCK_WAIT instead of hanging, and works again once it continues."""
    agent_home.install("4", "uses", uses=5)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, signal, sys; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
        "print('locked', flush=True); os.kill(os.getpid(), signal.SIGSTOP)"), str(agent_home.home / "agent.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = dict(agent_home.env, LICENSE_AGENT_LOCK_WAIT="0.5")
        started = time.monotonic()
        proc = subprocess.run(agent_home.command("check", "4", "--json"), env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 4 and json.loads(proc.stdout)["error"] == "busy", proc
        assert time.monotonic() - started < 10
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.wait(timeout=20)
    assert agent_home.ok("check", "4", "--json").json["remaining"] == 4
