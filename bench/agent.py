"""Benchmark of the license agent's gate (issue 3).

p50 / p99 of a uses-gate check (one use spent, committed with fsync and anchored)
  - through the daemon (`license-agent serve`, one persistent Unix-socket connection), also
    with a bare JSON-line client (no SDK) and over the loopback TCP transport with its token,
  - through the SDK in-process (license_agent.client.Client(use_daemon=False)),
  - through the CLI (`license-agent check P --json`, a new process each time),
beside the floor measured in the same run on the same disk: one durable single-row
SQLite insert (WAL, synchronous=FULL, the agent's own settings).
Also `license-agent run P -- true` against bare `python -c pass` (the same interpreter).

    .venv/bin/python bench/agent.py [--n 2000] [--cli-n 40]

Uses whatever secret store works here (the file store on a headless box; run it inside
`dbus-run-session -- bash scripts/with-gnome-keyring ...` for the Secret Service).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from license_agent import codes  # noqa: E402
from license_agent.paths import socket_path  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return p50 * 1e3, p99 * 1e3


class Floor:
    """One durable single-row insert with the agent's own SQLite settings, on the same disk."""

    def __init__(self, directory: Path):
        self.conn = sqlite3.connect(directory / "floor.sqlite3", isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, body TEXT)")

    def __call__(self) -> None:
        self.conn.execute("INSERT INTO t (at, body) VALUES (?, ?)", ("2026-11-23T00:00:00Z", '{"n":1}'))


# A reference, not a target: the least any daemon can cost - a bare Unix-socket server whose
# only work per request is the same durable insert, in another process (no verification,
# no JSON parsing beyond reading a line).
BARE_SERVER = """
import socket, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=FULL")
conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, body TEXT)")
server = socket.socket(socket.AF_UNIX); server.bind(sys.argv[2]); server.listen()
print("ready", flush=True)
client, _ = server.accept(); reader = client.makefile("rb")
for line in reader:
    conn.execute("INSERT INTO t (at, body) VALUES (?, ?)", ("2026-11-23T00:00:00Z", '{"n":1}'))
    client.sendall(b'{"ok":true}\\n')
"""


def bare_server_samples(directory: Path, floor, n: int) -> tuple[list[float], list[float]]:
    import socket
    path = directory / "bare.sock"
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(directory / "bare.sqlite3"), str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            reader = sock.makefile("rb")

            def request():
                sock.sendall(b'{"op":"insert"}\n')
                reader.readline()
            for _ in range(50):
                request()
            return interleaved(request, floor, n)
    finally:
        proc.kill()
        proc.wait()


def interleaved(subject, floor, n: int) -> tuple[list[float], list[float]]:
    """Alternates the subject and the floor, so both see the same load on this shared machine."""
    ours, base = [], []
    for _ in range(n):
        for fn, samples in ((subject, ours), (floor, base)):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return ours, base


def agent_cmd() -> list[str]:
    script = Path(sys.executable).parent / "license-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "license_agent"]


def prepare_home(home: Path, env: dict) -> None:
    run = lambda *args, **kw: subprocess.run([*agent_cmd(), *args], env=env, check=True,  # noqa: E731
                                             capture_output=True, text=True, **kw)
    device = json.loads(run("device", "--json").stdout)
    vendor = Ed25519PrivateKey.generate()
    run("trust", base64.b64encode(codes.raw_public_ed25519(vendor)).decode())
    grant = codes.Grant(license_id="bench", serial=1, product_id="4", device_id=device["device_id"], kind="uses",
                        issued_at=datetime.now(UTC), store_url="tokenrent://product/4", uses=10_000_000)
    run("install", codes.issue_code(grant, vendor, base64.b64decode(device["public_key"])))


def floor_sample(floor) -> float:
    started = time.perf_counter()
    floor()
    return time.perf_counter() - started


def timed_processes(command: list[str], env: dict, n: int, expect: int = 0) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        code = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        samples.append(time.perf_counter() - started)
        assert code == expect, (command, code)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="checks for floor, daemon and SDK")
    parser.add_argument("--cli-n", type=int, default=40, help="process starts for CLI and run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        env = dict(os.environ, LICENSE_AGENT_HOME=str(home), PYTHONPATH=str(ROOT))
        os.environ["LICENSE_AGENT_HOME"] = str(home)
        prepare_home(home, env)
        store = (home / "secret-backend").read_text()
        floor = Floor(tmp)
        results = {}

        from license_agent.client import Client, DaemonConnection
        in_process = Client(home, use_daemon=False)
        for _ in range(50):
            in_process.check("4"), floor()
        results["sdk in-process"] = interleaved(lambda: in_process.check("4"), floor, args.n)
        in_process.close()

        daemon = subprocess.Popen([*agent_cmd(), "serve"], env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:  # until it answers: the socket file appears a moment before it listens
                assert daemon.poll() is None and time.monotonic() < deadline, "daemon did not start"
                try:
                    with DaemonConnection(socket_path(home), timeout=5) as probe:
                        if probe.request({"op": "ping"}).get("ok"):
                            break
                except OSError:
                    time.sleep(0.01)
            via_daemon = Client(home)
            assert via_daemon.mode == "daemon"
            for _ in range(50):
                via_daemon.check("4")
            results["daemon (SDK over socket)"] = interleaved(lambda: via_daemon.check("4"), floor, args.n)
            # the transport alone: a ping through the same connection, no state touched
            results["daemon ping (no work)"] = interleaved(lambda: via_daemon._request({"op": "ping"}), floor, args.n)
            via_daemon.close()
            # the protocol without the SDK: one JSON line out, one line back and decoded (any language)
            with DaemonConnection(socket_path(home), timeout=30) as raw:
                line = b'{"id":1,"op":"check","product_id":"4"}\n'

                def raw_check():
                    raw._sock.sendall(line)
                    json.loads(raw._reader.readline())
                results["daemon, raw JSON line client"] = interleaved(raw_check, floor, args.n)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)

        # the loopback TCP transport with its token (the default on Windows)
        daemon = subprocess.Popen([*agent_cmd(), "serve", "--transport", "tcp"], env=env, stderr=subprocess.PIPE,
                                  text=True)
        try:
            assert "serving 127.0.0.1:" in daemon.stderr.readline(), "tcp daemon did not start"
            via_tcp = Client(home)
            assert via_tcp.mode == "daemon" and via_tcp._request({"op": "ping"})["result"]["pid"] == daemon.pid
            for _ in range(50):
                via_tcp.check("4")
            results["daemon over tcp+token (SDK)"] = interleaved(lambda: via_tcp.check("4"), floor, args.n)
            via_tcp.close()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)

        results["reference: bare socket+insert server"] = bare_server_samples(tmp, floor, args.n)

        cli = timed_processes([*agent_cmd(), "check", "4", "--json"], env, args.cli_n)
        results["cli check"] = (cli, [floor_sample(floor) for _ in cli])
        # "bare python3 -c pass": the same interpreter the agent runs on, started directly
        # (a `python3` on PATH may be a version-manager shim that costs more than Python itself).
        python_pass, agent_run = [], []
        for _ in range(args.cli_n):  # interleaved, so both see the same load
            python_pass += timed_processes([sys.executable, "-c", "pass"], env, 1)
            agent_run += timed_processes([*agent_cmd(), "run", "4", "--", "true"], env, 1)

    print(f"secret store: {store}; cpu count {os.cpu_count()}; n={args.n}, process runs={args.cli_n}")
    print(f"{'path':<36}{'p50 ms':>9}{'p99 ms':>9}{'floor p50':>11}{'floor p99':>11}{'p50/floor':>11}{'p99/floor':>11}")
    ratios = {}
    for name, (samples, base) in results.items():
        p50, p99 = percentiles(samples)
        f50, f99 = percentiles(base)
        ratios[name] = p50 / f50
        print(f"{name:<36}{p50:>9.3f}{p99:>9.3f}{f50:>11.3f}{f99:>11.3f}{p50 / f50:>11.2f}{p99 / f99:>11.2f}")
    pass_p50, pass_p99 = percentiles(python_pass)
    run_p50, run_p99 = percentiles(agent_run)
    print(f"{'python -c pass':<36}{pass_p50:>9.1f}{pass_p99:>9.1f}")
    print(f"{'license-agent run P -- true':<36}{run_p50:>9.1f}{run_p99:>9.1f}{'':>22}{run_p50 / pass_p50:>11.2f}"
          f"{run_p99 / pass_p99:>11.2f}   (against python -c pass)")
    daemon_ratio = ratios["daemon (SDK over socket)"]
    print(f"targets: daemon p50 <= 1.5x floor: {'met' if daemon_ratio <= 1.5 else 'NOT met'} ({daemon_ratio:.2f}x); "
          f"run <= 3x python3 -c pass: {'met' if run_p50 / pass_p50 <= 3 else 'NOT met'} ({run_p50 / pass_p50:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
