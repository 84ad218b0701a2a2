"""`license-agent serve` (real process, real Unix socket) and the SDK license_agent.client,
through the daemon and in-process on the same state."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from license_agent import client as sdk
from license_agent.paths import socket_path


def wait_for_daemon(proc, path) -> None:
    """Until the daemon answers a ping (the socket file appears a moment before it listens)."""
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "daemon did not start"
        try:
            with sdk.DaemonConnection(path, timeout=5) as connection:
                if connection.request({"op": "ping"}).get("ok"):
                    return
        except OSError:
            pass
        time.sleep(0.02)


@pytest.fixture()
def daemon(agent_home):
    proc = subprocess.Popen(agent_home.command("serve"), env=agent_home.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    path = socket_path(agent_home.home)
    wait_for_daemon(proc, path)
    yield proc, path
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def raw_requests(path, *lines: bytes) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(str(path))
        sock.sendall(b"".join(line + b"\n" for line in lines))
        reader = sock.makefile("rb")
        return [json.loads(reader.readline()) for _ in lines]


def test_socket_is_private_and_speaks_json_lines(agent_home, daemon):
    proc, path = daemon
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    agent_home.install("4", "uses", uses=3)
    answers = raw_requests(path, b'{"id": 1, "op": "ping"}', b'{"id": "a", "op": "check", "product_id": "4"}',
                           b'not json', b'{"id": 3, "op": "fly"}', b'{"id": 4, "op": "consume", "product_id": "4", "n": 0}',
                           b'[1, 2]')
    assert answers[0]["ok"] and answers[0]["result"]["pong"] and answers[0]["id"] == 1
    assert answers[1]["id"] == "a" and answers[1]["exit_code"] == 0 and answers[1]["result"]["remaining"] == 2
    assert answers[2]["ok"] is False and answers[2]["error"] == "bad_input"
    assert answers[3]["error"] == "bad_input" and "fly" in answers[3]["message"]
    assert answers[4]["exit_code"] == 2
    assert answers[5]["ok"] is False
    assert proc.poll() is None


def test_sdk_uses_the_daemon_and_shares_state_with_the_cli(agent_home, daemon):
    agent_home.install("4", "uses", uses=10, low_threshold=2)
    client = sdk.Client(agent_home.home)
    try:
        assert client.mode == "daemon"
        assert client.check("4").remaining == 9
        assert agent_home.ok("check", "4", "--json").json["remaining"] == 8       # another process, same state
        answer = client.check("4")
        assert answer.remaining == 7 and answer.allowed and answer.store_url == "tokenrent://product/4"
        for _ in range(5):
            last = client.check("4")
        assert last.warning and last.remaining == 2
        client.check("4"), client.check("4")
        with pytest.raises(sdk.Denied) as denied:
            client.check("4")
        assert denied.value.store_url == "tokenrent://product/4" and denied.value.exit_code == 3
        assert denied.value.answer.used_up
    finally:
        client.close()


def test_two_phase_processing_through_the_daemon(agent_home, daemon):
    agent_home.install("7", "processings", processings=5)
    client = sdk.Client(agent_home.home)
    try:
        with client.processing("7", 2) as held:
            assert held.reservation_id and held.remaining == 3
        assert held.done.outcome == "committed"
        with pytest.raises(RuntimeError):
            with client.processing("7", 2):
                raise RuntimeError("task failed")
        assert client.status().licenses[0]["remaining"] == 3                   # released
        held = client.reserve("7", 3)
        assert held.commit(1).returned == 2
        with pytest.raises(sdk.Denied):
            client.reserve("7", 5)
        with pytest.raises(sdk.BadInput):
            client.commit("r-0123456789abcdef")
    finally:
        client.close()


def test_a_second_daemon_is_refused_and_sigterm_cleans_up(agent_home, daemon):
    proc, path = daemon
    second = agent_home.cli("serve", timeout=30)
    assert second.returncode == 2 and "already" in second.stderr
    assert agent_home.ok("doctor", "--json").json["daemon_running"] is True
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not path.exists()


def test_running_daemon_catches_a_restored_state(agent_home, daemon, tmp_path):
    proc, path = daemon
    agent_home.install("4", "uses", uses=5)
    client = sdk.Client(agent_home.home)
    try:
        client.check("4")
        time.sleep(0.1)
        # Copy the database through SQLite (consistent while the daemon holds it open).
        import sqlite3
        backup = sqlite3.connect(tmp_path / "old.sqlite3")
        live = sqlite3.connect(agent_home.home / "state.sqlite3")
        live.backup(backup)
        live.close(), backup.close()
        client.check("4"), client.check("4")
        live = sqlite3.connect(agent_home.home / "state.sqlite3")
        old = sqlite3.connect(tmp_path / "old.sqlite3")
        old.backup(live)                     # the attacker writes the older copy over the live one
        live.close(), old.close()
        with pytest.raises(sdk.Tampered):
            client.check("4")
        assert agent_home.cli("check", "4").returncode == 4
    finally:
        client.close()


def test_sdk_falls_back_to_in_process(agent_home, monkeypatch):
    agent_home.install("4", "uses", uses=2)
    client = sdk.Client(agent_home.home)
    try:
        assert client.mode == "in-process"
        with client.run("4") as answer:
            assert answer.remaining == 1 and answer.warning
        assert agent_home.ok("check", "4", "--json").json["remaining"] == 0
        with pytest.raises(sdk.Denied):
            client.check("4")
        assert client.check("4", raise_denied=False).allowed is False
    finally:
        client.close()


def test_module_level_functions_use_license_agent_home(agent_home):
    agent_home.install("9", "permanent")
    sdk._default = None
    try:
        assert sdk.check("9").kind == "permanent"
        assert sdk.mode() == "in-process"
        held = sdk.reserve("9", 1)
        assert held.reservation_id is None and held.commit().outcome == "committed"
        assert sdk.device().device_id == agent_home.device()["device_id"]
    finally:
        sdk.default_client().close()
        sdk._default = None


def test_sdk_falls_back_when_the_daemon_is_gone(agent_home, daemon):
    proc, path = daemon
    agent_home.install("4", "uses", uses=5)
    first = sdk.Client(agent_home.home)
    assert first.check("4").remaining == 4 and first.mode == "daemon"
    proc.kill()
    proc.wait()
    with pytest.raises(sdk.AgentError):
        first.check("4")                       # sent but unanswered: never silently retried
    first.close()
    second = sdk.Client(agent_home.home)
    try:
        assert second.mode == "in-process"     # kill -9 left the socket file; nobody answers it
        assert second.check("4").remaining == 3
    finally:
        second.close()


def test_long_home_paths_get_a_short_private_socket(tmp_path, monkeypatch):
    from .conftest import AgentHome
    import tempfile
    home = tmp_path / ("deep-" * 20) / "home"
    runtime = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    agent_home = AgentHome(home)
    agent_home.trust()
    agent_home.install("4", "permanent")
    path = socket_path(home)
    assert len(str(path)) <= 100 and path.parent == runtime
    proc = subprocess.Popen(agent_home.command("serve"), env=agent_home.env,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_daemon(proc, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = sdk.Client(home)
        assert client.mode == "daemon" and client.check("4").kind == "permanent"
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(runtime, ignore_errors=True)


def test_concurrent_clients_daemon_and_cli_never_overspend(agent_home, daemon):
    """Threads through the daemon and CLI processes at once, on one license: every use is
    counted once, nothing is spent beyond the total."""
    import threading
    total = 60
    agent_home.install("4", "uses", uses=total)
    allowed = []
    lock = threading.Lock()

    def worker():
        client = sdk.Client(agent_home.home)
        try:
            for _ in range(20):
                answer = client.check("4", raise_denied=False)
                with lock:
                    allowed.append(answer.allowed)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    cli_procs = [subprocess.Popen(agent_home.command("check", "4", "--json"), env=agent_home.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    cli_allowed = [p.wait(timeout=120) == 0 for p in cli_procs]
    granted = allowed.count(True) + cli_allowed.count(True)
    assert granted == total, (allowed.count(True), cli_allowed.count(True))
    status = agent_home.ok("status", "--json").json["licenses"][0]
    assert status["remaining"] == 0 and status["used"] == total


def test_sdk_raises_the_matching_error_class(agent_home):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    client = sdk.Client(agent_home.home)
    try:
        foreign = agent_home.code("4", "permanent", signer=Ed25519PrivateKey.generate())
        with pytest.raises(sdk.InvalidCode) as err:
            client.install(foreign)
        assert err.value.code == "untrusted_signer" and err.value.exit_code == 4
        with pytest.raises(sdk.BadInput) as err:
            client.install("nonsense")
        assert err.value.exit_code == 2
        assert client.install(agent_home.code("4", "permanent")).status == "installed"
    finally:
        client.close()


# -- consume, and the clock_behind answer, through both SDK paths ------------------------------

def _consume_rules(client, agent_home):
    """Client.consume on each license kind (the same rules through the daemon and in-process)."""
    agent_home.install("6", "processings", processings=10, low_threshold=3)
    agent_home.install("5", "uses", uses=4)
    agent_home.install("9", "permanent")
    answer = client.consume("6", 4)
    assert answer.allowed and answer.consumed == 4 and answer.remaining == 6 and answer.kind == "processings"
    assert not answer.warning
    answer = client.consume("6", 3)
    assert answer.remaining == 3 and answer.warning                  # at the vendor's threshold
    with pytest.raises(sdk.Denied) as denied:
        client.consume("6", 4)                                        # not enough left: nothing spent
    assert denied.value.answer.reason == "not_enough" and denied.value.exit_code == 3
    assert denied.value.store_url == "tokenrent://product/6"
    refused = client.consume("6", 4, raise_denied=False)
    assert refused.allowed is False and refused.consumed == 0
    assert client.consume("6").remaining == 2                         # n defaults to 1
    assert client.consume("5", 3).remaining == 1                      # a uses-only product: N uses
    permanent = client.consume("9", 50)
    assert permanent.allowed and permanent.kind == "permanent" and permanent.consumed == 0
    with pytest.raises(sdk.BadInput):
        client.consume("6", 0)
    with pytest.raises(sdk.Denied):
        client.consume("no-such-product")
    assert agent_home.ok("status", "--json").json["licenses"][0]["remaining"] == 2   # the CLI sees the same


def test_consume_through_the_daemon(agent_home, daemon):
    client = sdk.Client(agent_home.home)
    try:
        assert client.mode == "daemon"
        _consume_rules(client, agent_home)
    finally:
        client.close()


def test_consume_in_process(agent_home):
    client = sdk.Client(agent_home.home, use_daemon=False)
    try:
        assert client.mode == "in-process"
        _consume_rules(client, agent_home)
        sdk._default = None
        assert sdk.consume("6", 1).remaining == 1                     # the module-level function
    finally:
        client.close()
        if sdk._default:
            sdk._default.close()
        sdk._default = None


@pytest.mark.usefixtures("faketime_available")
def test_clock_behind_raises_clock_behind_through_the_daemon(agent_home):
    """A daemon whose clock is a day behind the latest time seen: a time rental raises
    ClockBehind (exit 4, not Denied); uses still work."""
    from .conftest import faketime_env
    agent_home.install("4", "time", days=30)
    agent_home.install("5", "uses", uses=3)
    agent_home.ok("check", "4")                                       # now is the latest time seen
    proc = subprocess.Popen(agent_home.command("serve"), env=faketime_env(agent_home.env, "-1d"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_daemon(proc, socket_path(agent_home.home))
        client = sdk.Client(agent_home.home)
        try:
            assert client.mode == "daemon"
            with pytest.raises(sdk.ClockBehind) as behind:
                client.check("4")
            assert behind.value.exit_code == 4 and behind.value.code == "clock_behind"
            assert behind.value.answer.reason == "clock_behind" and behind.value.store_url == "tokenrent://product/4"
            assert not isinstance(behind.value, sdk.Denied)
            quiet = client.check("4", raise_denied=False)
            assert quiet.allowed is False and quiet.clock_behind is True
            assert client.check("5").remaining == 2
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


IN_PROCESS_CLOCK_BEHIND = """
import json, sys
from license_agent import client
c = client.Client(use_daemon=False)
assert c.mode == "in-process"
try:
    c.check("4")
    print(json.dumps({"raised": None}))
except client.ClockBehind as exc:
    print(json.dumps({"raised": "ClockBehind", "exit_code": exc.exit_code, "reason": exc.answer.reason,
                      "uses": c.check("5").remaining}))
"""


@pytest.mark.usefixtures("faketime_available")
def test_clock_behind_raises_clock_behind_in_process(agent_home):
    """The SDK in-process in a program whose clock is a day behind (libfaketime on that process)."""
    from .conftest import faketime_env
    import sys
    agent_home.install("4", "time", days=30)
    agent_home.install("5", "uses", uses=3)
    agent_home.ok("check", "4")
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS_CLOCK_BEHIND], env=faketime_env(agent_home.env, "-1d"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"raised": "ClockBehind", "exit_code": 4, "reason": "clock_behind", "uses": 2}
