"""One storefront per user: a second `tokenrent --product ID` (or a clicked
tokenrent://product/ID link, e.g. the agent's "buy more") hands the product to
the window already open instead of starting another app and demo server."""
from __future__ import annotations

import getpass
import hashlib
import json

from desktop_app.paths import AppPaths


def server_name(paths: AppPaths) -> str:
    # per user and per app home, so test runs and several homes never meet
    digest = hashlib.sha256(str(paths.data_dir).encode()).hexdigest()[:12]
    return f"tokenrent-{getpass.getuser()}-{digest}"


def forward_to_running(paths: AppPaths, product: str | None, timeout_ms: int = 500) -> bool:
    """True when a running storefront took the request (then this process may exit)."""
    from PySide6.QtNetwork import QLocalSocket
    sock = QLocalSocket()
    sock.connectToServer(server_name(paths))
    if not sock.waitForConnected(timeout_ms):
        return False
    sock.write((json.dumps({"product": product}) + "\n").encode())
    ok = sock.waitForBytesWritten(timeout_ms)
    sock.disconnectFromServer()
    return ok


class InstanceServer:
    """Listens for forwarded requests; ``on_request(product_or_None)`` runs on the UI thread."""

    def __init__(self, paths: AppPaths, on_request):
        from PySide6.QtNetwork import QLocalServer
        self._on_request = on_request
        self.server = QLocalServer()
        name = server_name(paths)
        QLocalServer.removeServer(name)   # a stale socket left by a crash
        self.listening = self.server.listen(name)
        self.server.newConnection.connect(self._accept)

    def _accept(self):
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(sock.deleteLater)
            if sock.canReadLine():
                self._read(sock)

    def _read(self, sock):
        while sock.canReadLine():
            line = bytes(sock.readLine()).decode("utf-8", "replace").strip()
            try:
                request = json.loads(line)
            except ValueError:
                continue   # not one of ours: ignore
            product = request.get("product") if isinstance(request, dict) else None
            self._on_request(str(product) if product else None)

    def close(self):
        self.server.close()
