"""The local demo servers: `tokenrent` with no server configured starts the demo
mall, `python -m server_stub demo-mall` (the MSP and four vendors, each on its own
SQLite database under the user data dir; DemoMall), and signs in at its home member.
DemoServer, one vendor alone (`serve --demo` on a free port), stays for what wants
only that. Separate processes: desktop_app never imports server_stub.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


class DemoServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoServer:
    def __init__(self, db_path: Path, log_path: Path | None = None):
        self.db_path = Path(db_path)
        self.log_path = log_path or self.db_path.with_suffix(".log")
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return server_command(["serve", "--demo", "--db", f"sqlite:///{self.db_path}", "--port", str(self.port)])

    def launch(self) -> None:
        """Start the process (quick; call on the main thread: on Linux the server is told to
        end when the thread that started it ends, so it never outlives a killed app)."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        command = self.command()
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            preexec_fn=_end_with_parent if sys.platform == "linux" else None)
        except OSError as exc:
            raise DemoServerError(f"Could not start the demo server: {exc}") from exc
        finally:
            log.close()

    def start(self, timeout: float = 60.0) -> str:
        """Launch (if not yet) and wait until it answers. Returns the server URL."""
        if self.process is None:
            self.launch()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Blocking (call from a worker thread)."""
        import requests
        if self.process is None:
            raise DemoServerError("the demo server was not launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoServerError(
                    f"The demo server stopped at start-up (exit code {self.process.returncode}); "
                    f"see {self.log_path}")
            try:
                if requests.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return self.url
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise DemoServerError(f"The demo server did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def server_command(args: list[str]) -> list[str]:
    """`tokenrent-server ARGS` as this storefront can run it."""
    if not getattr(sys, "frozen", False):
        return [sys.executable, "-m", "server_stub", *args]
    # a frozen storefront: the demo server is a separate program, when it was bundled
    import shutil
    for candidate in (Path(sys.executable).with_name("tokenrent-server"),
                      Path(sys.executable).with_name("tokenrent-server.exe")):
        if candidate.exists():
            return [str(candidate), *args]
    found = shutil.which("tokenrent-server")
    if found:
        return [found, *args]
    raise DemoServerError("This installation has no local demo store. "
                          "Enter your store's address in Settings.")


class DemoMall:
    """`tokenrent-server demo-mall --dir DIR` in the background. `wait_ready` reads its one JSON
    line: the MSP, the members, the demo users (the first one is the home user)."""

    def __init__(self, root: Path, log_path: Path | None = None):
        self.root = Path(root)
        self.log_path = log_path or self.root.with_suffix(".log")
        self.process: subprocess.Popen | None = None
        self.info: dict = {}

    @property
    def home_member(self) -> dict:
        home = self.info["users"][0]["member_id"]
        return next(m for m in self.info["members"] if m["member_id"] == home)

    @property
    def home_user(self) -> dict:
        return self.info["users"][0]

    @property
    def url(self) -> str:
        return self.home_member["url"]

    def launch(self) -> None:
        """Start it (quick; on the main thread, as DemoServer.launch says)."""
        self.root.mkdir(parents=True, exist_ok=True)
        command = server_command(["demo-mall", "--dir", str(self.root)])
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                                            stdin=subprocess.DEVNULL, env=env,
                                            preexec_fn=_end_with_parent if sys.platform == "linux" else None)
        except OSError as exc:
            raise DemoServerError(f"Could not start the demo mall: {exc}") from exc
        finally:
            log.close()

    def start(self) -> str:
        if self.process is None:
            self.launch()
        return self.wait_ready()

    def wait_ready(self) -> str:
        """Blocking (call from a worker thread): until every server of the mall answers (demo-mall
        has its own start-up limit). Returns the home member's URL."""
        if self.process is None or self.process.stdout is None:
            raise DemoServerError("the demo mall was not launched")
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise DemoServerError(f"The demo mall stopped at start-up (exit code {code}); see {self.log_path}")
        try:
            self.info = json.loads(line)
            return self.url
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.stop()
            raise DemoServerError(f"The demo mall said something unexpected ({exc}); see {self.log_path}") from exc

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()       # demo-mall stops its servers
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()        # its servers end with it (PR_SET_PDEATHSIG)
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def _end_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent (thread) dies (Linux prctl)."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
