"""Downloads: license holders only; Range, If-Range and ETag so that a
download resumes; large files are streamed."""
from __future__ import annotations

import hashlib
import os

import pytest

from tests.support.store import make_catalog, order, register_device

SIZE = 24 * 1024 * 1024 + 123     # bigger than any buffer on the way


@pytest.fixture(scope="module")
def published(server, tmp_path_factory):
    cat = make_catalog(server)
    path = tmp_path_factory.mktemp("dl") / "big.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(SIZE))
    data = path.read_bytes()
    server.admin_cli("publish", str(path), "--product", str(cat.products["perm"]), "--version", "2.0")
    holder = server.new_user(tokens=200)
    keys = register_device(server, holder)
    d = order(server, holder, keys, [{"offer_id": cat.offers[("perm", "purchase")]}]).json()["deliveries"][0]
    return cat, holder, d, data


def _path(server, d) -> str:
    return d["download_url"].replace(server.base_url, "")


def test_holder_downloads_the_whole_file(server, published):
    cat, holder, d, data = published
    assert d["size"] == SIZE and d["sha256"] == hashlib.sha256(data).hexdigest() and d["version"] == "2.0"
    r = server.api("GET", _path(server, d), holder)
    assert r.status_code == 200
    assert r.headers["ETag"] == f'"{d["sha256"]}"' and r.headers["Accept-Ranges"] == "bytes"
    assert int(r.headers["Content-Length"]) == SIZE
    assert hashlib.sha256(r.content).hexdigest() == d["sha256"]


def test_only_license_holders_may_download(server, published):
    cat, holder, d, data = published
    stranger = server.new_user(tokens=200)
    assert server.api("GET", _path(server, d), stranger).status_code == 403
    assert server.api("GET", _path(server, d)).status_code == 401
    # a holder of another product's license gets nothing either
    keys = register_device(server, stranger)
    assert order(server, stranger, keys, [{"offer_id": cat.offers[("uses", "rent_uses")],
                                           "quantity": 10}]).status_code == 201
    assert server.api("GET", _path(server, d), stranger).status_code == 403
    # a product without a published version
    assert server.api("GET", f"/v1/products/{cat.products['uses']}/download", stranger).status_code == 404


def test_range_resumes_and_if_range_guards_a_changed_file(server, published):
    cat, holder, d, data = published
    etag = f'"{d["sha256"]}"'
    start = SIZE - 1000
    r = server.api("GET", _path(server, d), holder, headers={"Range": f"bytes={start}-"})
    assert r.status_code == 206 and r.content == data[start:]
    assert r.headers["Content-Range"] == f"bytes {start}-{SIZE - 1}/{SIZE}"
    r = server.api("GET", _path(server, d), holder, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[10:20]
    # the client's copy is of another file: it gets the whole file, not a wrong piece
    r = server.api("GET", _path(server, d), holder, headers={"Range": "bytes=10-19", "If-Range": '"stale"'})
    assert r.status_code == 200 and len(r.content) == SIZE
    r = server.api("GET", _path(server, d), holder, headers={"Range": f"bytes={SIZE + 5}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{SIZE}"
    assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 416
    r = server.api("GET", _path(server, d), holder, headers={"Range": "pages=1-2"})
    assert r.status_code == 400 and r.json()["detail"] == "bad Range header: Only support bytes range"
    r = server.api("GET", _path(server, d), holder, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    r = server.api("HEAD", _path(server, d), holder)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == SIZE and r.content == b""


def test_specific_version_download(server, published):
    cat, holder, d, data = published
    pid = cat.products["perm"]
    versions = server.api("GET", f"/v1/products/{pid}").json()["versions"]
    vid = next(v["id"] for v in versions if v["version"] == "2.0")
    r = server.api("GET", f"/v1/products/{pid}/versions/{vid}/download", holder, headers={"Range": "bytes=0-3"})
    assert r.status_code == 206 and r.content == data[:4]
    other_pid = cat.products["uses"]
    assert server.api("GET", f"/v1/products/{other_pid}/versions/{vid}/download", holder).status_code in (403, 404)


def test_streaming_keeps_server_memory_flat(server, published):
    """Five parallel full downloads of a 24 MiB file must not grow the server
    by anything like 5 x 24 MiB (the file is streamed in chunks)."""
    import concurrent.futures

    cat, holder, d, data = published
    pid = server.proc.pid

    def rss_kib() -> int:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    server.api("GET", _path(server, d), holder)     # warm up
    before = rss_kib()

    def fetch(_):
        r = server.api("GET", _path(server, d), holder, stream=True)
        n = 0
        for chunk in r.iter_content(256 * 1024):
            n += len(chunk)
        return n

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        sizes = list(pool.map(fetch, range(5)))
    assert sizes == [SIZE] * 5
    grown_mib = (rss_kib() - before) / 1024
    assert grown_mib < 40, f"server grew by {grown_mib:.0f} MiB while streaming"


@pytest.mark.parametrize("header,status", [
    ('"{sha}"', 304),
    ('W/"{sha}"', 304),                          # If-None-Match compares weakly (RFC 9110 13.1.2)
    ('"other", W/"{sha}"', 304),                 # a list of tags
    ('"a", "{sha}" , "b"', 304),
    ("*", 304),                                  # any current representation
    ('"other"', 200),
    ('W/"other", "also-other"', 200),
    ('{sha}', 200),                              # not a quoted entity tag
    ('"{sha}x"', 200),
])
def test_if_none_match_weak_lists_and_star(server, published, header, status):
    cat, holder, d, data = published
    for method in ("GET", "HEAD"):
        r = server.api(method, _path(server, d), holder, headers={"If-None-Match": header.format(sha=d["sha256"])})
        assert r.status_code == status, (method, header, r.status_code)
        assert r.headers["ETag"] == f'"{d["sha256"]}"'
        if status == 304:
            assert r.content == b""
        elif method == "GET":
            assert len(r.content) == SIZE


def test_if_range_compares_strongly(server, published):
    """A weak validator never resumes a range (RFC 9110 13.1.5): the whole file."""
    cat, holder, d, data = published
    r = server.api("GET", _path(server, d), holder,
                   headers={"Range": "bytes=10-19", "If-Range": f'W/"{d["sha256"]}"'})
    assert r.status_code == 200 and len(r.content) == SIZE
