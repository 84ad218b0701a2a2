"""`license-agent serve`: the agent as a daemon on a Unix socket only this user can open
(mode 0600 in a 0700 home, and the peer's uid is checked). One JSON object per line in
each direction; see docs/agent-protocol.md. Programs in any language can speak it."""
from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
from pathlib import Path

from .errors import EXIT_BAD_INPUT, EXIT_OK, BadInput
from .paths import agent_home, socket_path

from .protocol import dispatch

MAX_LINE = 1 << 20


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        if not _same_user(self.request):
            return
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return
            if len(line) > MAX_LINE:
                self._send({"id": None, "ok": False, "error": "bad_input", "message": "request line too long",
                            "exit_code": EXIT_BAD_INPUT})
                return
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                response = {"id": None, "ok": False, "error": "bad_input", "message": "request is not valid JSON",
                            "exit_code": EXIT_BAD_INPUT}
            else:
                response = dispatch(self.server.agent, request)
            self._send(response)

    def _send(self, response: dict) -> None:
        self.wfile.write(json.dumps(response).encode() + b"\n")
        self.wfile.flush()


def _same_user(sock) -> bool:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):  # not Linux: the 0600 socket file is the guard
        return True
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(socket: str | None = None, ready: threading.Event | None = None) -> int:
    from .agent import Agent
    from .client import DaemonConnection
    home = agent_home()
    path = Path(socket) if socket else socket_path(home)
    agent = Agent(home)  # verifies the state before listening
    try:
        if path.exists():
            try:
                with DaemonConnection(path, timeout=1) as other:
                    other.request({"op": "ping"})
                raise BadInput(f"an agent daemon already serves {path}")
            except OSError:
                path.unlink()  # left over by a daemon that did not shut down
        old_umask = os.umask(0o177)
        try:
            server = _Server(str(path), _Handler)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        server.agent = agent

        def stop(signum, frame):
            threading.Thread(target=server.shutdown, daemon=True).start()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        print(f"license-agent: serving {path} (device {agent.model.device_id}, secrets: {agent.state.store.name})",
              file=sys.stderr, flush=True)
        if ready:
            ready.set()
        try:
            server.serve_forever(poll_interval=0.5)
        finally:
            server.server_close()
            path.unlink(missing_ok=True)
    finally:
        agent.close()
    return EXIT_OK
