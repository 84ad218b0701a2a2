"""A small loopback HTTP file server with Range support that can drop the
connection part-way, to test resumable downloads (network loss) and to give
the download benchmark its raw floor. Not a stand-in for our server: it plays
"the network"."""
from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, payload: bytes, *, send_sha256: bool = True, honour_range: bool = True,
                 bytes_per_second: int | None = None):
        self.payload = payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        self.etag = '"' + self.sha256[:16] + '"'
        self.send_sha256 = send_sha256
        self.honour_range = honour_range
        self.bytes_per_second = bytes_per_second   # a slow network, so a test can pause part-way
        self.cut_after: int | None = None     # drop the connection after this many body bytes (once)
        self.requests: list[str | None] = []  # the Range header of each request
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                data = outer.payload
                start = 0
                if rng and outer.honour_range and (self.headers.get("If-Range") in (None, outer.etag)):
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = memoryview(data)[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", outer.etag)
                self.send_header("Accept-Ranges", "bytes")
                if outer.send_sha256:
                    self.send_header("X-Checksum-SHA256", outer.sha256)
                self.end_headers()
                cut = outer.cut_after
                if cut is not None:
                    outer.cut_after = None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                step = 1 << 20 if outer.bytes_per_second is None else 64 * 1024
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    if outer.bytes_per_second:
                        time.sleep(step / outer.bytes_per_second)

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass   # a client that stops reading (pause) is normal here

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/file.bin"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
