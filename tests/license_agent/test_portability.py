"""The paths written for Windows, exercised here on Linux: the loopback TCP transport with its
token file (`serve --transport tcp`, the default on Windows), `run` through a child process
(Windows has no exec), and the one module that knows how to lock a file. Not covered here:
msvcrt locking itself and the Windows keyring backend (no Windows machine in CI)."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from license_agent import client as sdk
from license_agent.paths import read_token_file, socket_path, token_path

ROOT = Path(__file__).resolve().parents[2]


# -- the loopback TCP transport -----------------------------------------------------------

@pytest.fixture()
def tcp_daemon(agent_home):
    proc = subprocess.Popen(agent_home.command("serve", "--transport", "tcp"), env=agent_home.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = token_path(agent_home.home)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "tcp daemon did not start"
        found = read_token_file(path)
        if found:
            try:
                with sdk.DaemonConnection(("127.0.0.1", found[0]), timeout=5, token=found[1]) as connection:
                    if connection.request({"op": "ping"}).get("ok"):
                        break
            except OSError:
                pass
        time.sleep(0.02)
    yield proc, path, found
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def raw_lines(port: int, *lines: bytes) -> list[dict]:
    """Sends the lines, then reads every line the daemon sends until it closes (or 5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(line + b"\n" for line in lines))
        reader = sock.makefile("rb")
        answers = []
        try:
            for line in reader:
                answers.append(json.loads(line))
        except TimeoutError:
            pass
        return answers


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) listening on this port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:   # 0A = LISTEN
                found.add(address)
    return found


def test_tcp_token_file_is_private_and_the_port_is_loopback_only(agent_home, tcp_daemon):
    proc, path, (port, token) = tcp_daemon
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["pid"] == proc.pid and re.fullmatch(r"[0-9a-f]{64}", token)
    assert listening_addresses(port) == {"0100007F"}          # 127.0.0.1, nothing else, no IPv6
    assert not socket_path(agent_home.home).exists()          # the tcp transport made no Unix socket


def test_tcp_refuses_a_missing_or_wrong_token(agent_home, tcp_daemon):
    _proc, _path, (port, token) = tcp_daemon
    agent_home.install("4", "uses", uses=3)
    for first_line in (b'{"id": 1, "op": "check", "product_id": "4"}',     # no token at all
                       json.dumps({"token": "0" * 64}).encode(),            # a wrong one
                       json.dumps({"token": token[:-1]}).encode(),          # almost right
                       json.dumps({"token": 12345}).encode(),
                       b"not json"):
        answers = raw_lines(port, first_line, b'{"id": 2, "op": "check", "product_id": "4"}')
        assert len(answers) == 1, (first_line, answers)             # refused, then closed: no check ran
        assert answers[0]["ok"] is False and answers[0]["error"] == "bad_token" and answers[0]["exit_code"] == 4
    assert agent_home.ok("status", "--json").json["licenses"][0]["remaining"] == 3   # nothing spent
    with pytest.raises(PermissionError):
        sdk.DaemonConnection(("127.0.0.1", port), timeout=5, token="f" * 64)
    answers = raw_lines(port, json.dumps({"token": token}).encode(), b'{"id": 2, "op": "check", "product_id": "4"}')
    assert answers[0] == {"ok": True, "authenticated": True, "protocol": 1}
    assert answers[1]["id"] == 2 and answers[1]["result"]["remaining"] == 2


def test_sdk_finds_the_tcp_daemon_from_the_token_file(agent_home, tcp_daemon):
    proc, path, (port, _token) = tcp_daemon
    agent_home.install("4", "uses", uses=5, low_threshold=1)
    client = sdk.Client(agent_home.home)
    try:
        assert client.mode == "daemon"
        assert client._request({"op": "ping"})["result"]["pid"] == proc.pid      # really answered by the daemon
        assert client.check("4").remaining == 4
        assert agent_home.ok("check", "4", "--json").json["remaining"] == 3      # the CLI shares the state
        assert client.consume("4", 2).remaining == 1
        with pytest.raises(sdk.Denied):
            client.consume("4", 2)
    finally:
        client.close()
    doctor = agent_home.ok("doctor", "--json").json
    assert doctor["daemon_running"] is True and doctor["daemon_address"] == f"127.0.0.1:{port}"
    assert f"running at 127.0.0.1:{port}" in agent_home.ok("doctor").stdout
    second = agent_home.cli("serve", "--transport", "tcp", timeout=30)
    assert second.returncode == 2 and "already" in second.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not path.exists()                                  # the token dies with the daemon
    after = sdk.Client(agent_home.home)
    try:
        assert after.mode == "in-process"
    finally:
        after.close()


def test_a_stale_token_file_is_not_trusted(agent_home):
    """A token file left by a killed daemon: nobody listens there, the SDK works in-process, and a
    new daemon replaces the file with a new port and token."""
    agent_home.install("4", "uses", uses=5)
    from license_agent.daemon import write_token_file
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        stale_port = unused.getsockname()[1]
    write_token_file(token_path(agent_home.home), stale_port, "a" * 64)
    client = sdk.Client(agent_home.home)
    try:
        assert client.mode == "in-process" and client.check("4").remaining == 4
    finally:
        client.close()
    proc = subprocess.Popen(agent_home.command("serve", "--transport", "tcp"), env=agent_home.env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "serving 127.0.0.1:" in proc.stderr.readline()
        port, token = read_token_file(token_path(agent_home.home))
        assert token != "a" * 64
        with sdk.DaemonConnection(("127.0.0.1", port), timeout=5, token=token) as connection:
            assert connection.request({"op": "check", "product_id": "4"})["result"]["remaining"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_a_token_file_pointing_at_a_silent_port_falls_back_quickly(agent_home, monkeypatch):
    """The daemon died and something else that never answers took its port: the SDK gives up on
    the handshake after HANDSHAKE_TIMEOUT (not its 30 s request timeout) and works in-process."""
    agent_home.install("4", "uses", uses=5)
    from license_agent.daemon import write_token_file
    monkeypatch.setattr(sdk, "HANDSHAKE_TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        write_token_file(token_path(agent_home.home), silent.getsockname()[1], "b" * 64)
        client = sdk.Client(agent_home.home)
        try:
            started = time.monotonic()
            assert client.mode == "in-process"
            assert time.monotonic() - started < 5
            assert client.check("4").remaining == 4
        finally:
            client.close()


def test_unknown_transport_and_socket_with_tcp_are_bad_input(agent_home):
    assert agent_home.cli("serve", "--transport", "pipe").returncode == 2
    result = agent_home.cli("serve", "--transport", "tcp", "--socket", str(agent_home.home / "x.sock"))
    assert result.returncode == 2 and "--socket" in result.stderr


# -- `run` through a child process (the Windows path) --------------------------------------

SPAWNING_CLI = ("import sys, license_agent.cli as cli; cli._SPAWN = True; "
                "sys.exit(cli.main(sys.argv[1:]))")


def spawning_run(agent_home, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", SPAWNING_CLI, "run", *args], env=agent_home.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_run_as_a_child_passes_the_exit_code_and_output_through(agent_home):
    agent_home.install("4", "uses", uses=2)
    proc = spawning_run(agent_home, "4", "--", "sh", "-c", "echo hi; echo err >&2; exit 7")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7 and out == "hi\n" and "err" in err and "warning" in err
    proc = spawning_run(agent_home, "4", "--", "true")
    assert proc.wait(timeout=60) == 0                                          # the last use
    proc = spawning_run(agent_home, "4", "--", "sh", "-c", "echo SHOULD-NOT-RUN")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "SHOULD-NOT-RUN" not in out and "buy more" in err
    assert agent_home.ok("status", "--json").json["licenses"][0]["remaining"] == 0


def test_run_as_a_child_waits_for_it_through_ctrl_c(agent_home, tmp_path):
    """Ctrl-C reaches the whole console group on Windows: the agent must not die first and lose
    the program's exit code. Here SIGINT goes to the agent alone; the child's code still comes out."""
    agent_home.install("4", "permanent")
    started = tmp_path / "started"
    proc = spawning_run(agent_home, "4", "--", "sh", "-c", f"touch {started}; sleep 1; exit 5")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 5


def test_run_as_a_child_reports_a_signal_like_a_shell(agent_home):
    agent_home.install("4", "permanent")
    proc = spawning_run(agent_home, "4", "--", "sh", "-c", "kill -TERM $$")
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM


def test_posix_keeps_exec(agent_home):
    """On POSIX `run` replaces itself with the program (same pid), so the program is the exit code."""
    import license_agent.cli as cli
    assert cli._SPAWN is (os.name == "nt")
    agent_home.install("4", "permanent")
    proc = subprocess.Popen(agent_home.command("run", "4", "--", "sh", "-c", "echo $$; exit 9"),
                            env=agent_home.env, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 9 and int(out) == proc.pid


# -- file locking in one place ------------------------------------------------------------

def test_only_filelock_knows_the_platform_lock():
    users = {}
    for path in (ROOT / "license_agent").glob("*.py"):
        text = path.read_text()
        for name, pattern in (("fcntl", r"^\s*(import|from)\s+fcntl\b"), ("msvcrt", r"^\s*(import|from)\s+msvcrt\b"),
                              ("pwrite", r"\.pwrite\(")):
            if re.search(pattern, text, re.MULTILINE):
                users.setdefault(name, set()).add(path.name)
    assert users == {"fcntl": {"filelock.py"}, "msvcrt": {"filelock.py"}, "pwrite": {"filelock.py"}}, users


def test_the_lock_excludes_another_process_and_dies_with_it(tmp_path):
    from license_agent.filelock import try_lock, unlock
    path = tmp_path / "lock"
    path.touch()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time; from license_agent.filelock import try_lock; "
        "fd = os.open(sys.argv[1], os.O_RDWR); assert try_lock(fd); print('locked', flush=True); time.sleep(60)"),
        str(path)], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    fd = os.open(path, os.O_RDWR)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert try_lock(fd) is False
        holder.kill()
        holder.wait(timeout=20)
        assert try_lock(fd) is True                                # released by the holder's death
        other = os.open(path, os.O_RDWR)
        try:
            assert try_lock(other) is False                        # exclusive per open file, also here
            unlock(fd)
            assert try_lock(other) is True
        finally:
            os.close(other)
    finally:
        os.close(fd)
        if holder.poll() is None:
            holder.kill()


def test_every_file_is_opened_binary_and_not_inherited():
    """On Windows os.open defaults to text mode (LF -> CRLF would corrupt the anchor's slots):
    every file the agent opens goes through filelock.OPEN_FLAGS (O_BINARY | O_CLOEXEC)."""
    from license_agent.filelock import OPEN_FLAGS
    assert OPEN_FLAGS & os.O_CLOEXEC
    unflagged = []
    for path in (ROOT / "license_agent").glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "os.open(" in line and "OPEN_FLAGS" not in line and "path.parent" not in line:
                unflagged.append(f"{path.name}:{number}: {line.strip()}")
    assert not unflagged, unflagged
