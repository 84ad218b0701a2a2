"""The local demo server: `tokenrent` with no server configured starts
`python -m server_stub serve --demo` on a free loopback port, with an embedded
SQLite database in the user data dir. A separate process: desktop_app never
imports server_stub.
"""
from __future__ import annotations

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
        args = ["serve", "--demo", "--db", f"sqlite:///{self.db_path}", "--port", str(self.port)]
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


def _end_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent (thread) dies (Linux prctl)."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
