"""The resumable download engine: Range resume after network loss, pause, restart, SHA-256 check."""
from __future__ import annotations

import hashlib
import os

import pytest

from desktop_app.library.download import ChecksumMismatch, Download, DownloadError, DownloadPaused
from tests.support.desktop_files import FileServer

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)


def test_resumes_after_network_loss(tmp_path):
    with FileServer(PAYLOAD) as srv:
        srv.cut_after = 2_500_000
        d = Download(srv.url, tmp_path / "p.bin", retry_wait=0.01)
        path = d.run()
        assert path.read_bytes() == PAYLOAD
        # the second request asked only for the rest
        assert srv.requests[0] is None and srv.requests[1].startswith("bytes=")
        assert 1_000_000 <= int(srv.requests[1].split("=")[1].rstrip("-")) <= 2_500_000
        assert not d.part.exists() and not d.state_file.exists()


def test_pause_then_resume_in_a_new_process_state(tmp_path):
    """Pause part-way; a NEW Download object (as after an app restart) continues from disk."""
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        seen = []

        def progress(p):
            seen.append(p.received)
            if p.received >= 512 * 1024:
                d.pause()

        d.on_progress = progress
        with pytest.raises(DownloadPaused):
            d.run()
        kept = d.received_bytes()
        assert 512 * 1024 <= kept < len(PAYLOAD)
        again = Download(srv.url, tmp_path / "p.bin")   # restart: nothing in memory survives
        path = again.run()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == srv.sha256
        assert srv.requests[-1] == f"bytes={kept}-"


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    with FileServer(PAYLOAD, honour_range=False) as srv:
        srv.cut_after = 1_700_000
        path = Download(srv.url, tmp_path / "p.bin", retry_wait=0.01).run()
        assert path.read_bytes() == PAYLOAD   # not the first MB twice
        assert srv.requests[1] is not None    # it did try to resume


def test_wrong_checksum_is_refused_and_discarded(tmp_path):
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin", expected_sha256="0" * 64)
        with pytest.raises(ChecksumMismatch):
            d.run()
        assert not (tmp_path / "p.bin").exists() and not d.part.exists()


def test_wrong_size_is_refused(tmp_path):
    with FileServer(PAYLOAD) as srv:
        with pytest.raises(ChecksumMismatch, match="wrong size"):
            Download(srv.url, tmp_path / "p.bin", expected_size=len(PAYLOAD) + 1).run()


def test_no_checksum_no_install(tmp_path):
    with FileServer(PAYLOAD, send_sha256=False) as srv:
        with pytest.raises(DownloadError, match="no SHA-256"):
            Download(srv.url, tmp_path / "p.bin").run()
        assert not (tmp_path / "p.bin").exists()


def test_gives_up_with_a_clear_message_when_offline(tmp_path):
    d = Download("http://127.0.0.1:9/file.bin", tmp_path / "p.bin", retries=1, retry_wait=0.01)
    with pytest.raises(DownloadError, match="cannot be reached"):
        d.run()


def test_changed_file_on_the_server_is_not_spliced(tmp_path):
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        d.on_progress = lambda p: d.pause() if p.received >= 256 * 1024 else None
        with pytest.raises(DownloadPaused):
            d.run()
    new_payload = os.urandom(len(PAYLOAD))
    with FileServer(new_payload) as srv2:
        # same URL path, different port: point the saved state at the new server
        d2 = Download(srv2.url, tmp_path / "p.bin")
        state = (tmp_path / "p.bin.part.json")
        text = state.read_text().replace(srv.url, srv2.url)
        state.write_text(text)
        path = d2.run()   # If-Range with the old ETag -> the server sends the whole new file
        assert path.read_bytes() == new_payload


def test_pause_resume_many_times_same_bytes(tmp_path):
    """Resuming re-hashes the bytes on disk while new bytes arrive: the check must still hold."""
    with FileServer(PAYLOAD) as srv:
        dest = tmp_path / "p.bin"
        for stop in (300_000, 1_100_000, 2_000_000, 2_900_000):
            d = Download(srv.url, dest)
            d.on_progress = lambda p, d=d, stop=stop: d.pause() if p.received >= stop else None
            try:
                d.run()
            except DownloadPaused:
                pass
        assert Download(srv.url, dest).run().read_bytes() == PAYLOAD


def test_pause_and_resume_in_session_keeps_the_hash(tmp_path):
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        d.on_progress = lambda p: d.pause() if p.received >= 1_000_000 else None
        with pytest.raises(DownloadPaused):
            d.run()
        d.on_progress = None
        kept = d.received_bytes()
        assert d._kept is not None and d._kept[1] == kept
        path = d.run()
        assert path.read_bytes() == PAYLOAD
        assert srv.requests[-1] == f"bytes={kept}-"


def test_in_session_resume_notices_a_changed_part_file(tmp_path):
    """If the partial file changed while paused, the kept hash is not trusted."""
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        d.on_progress = lambda p: d.pause() if p.received >= 1_000_000 else None
        with pytest.raises(DownloadPaused):
            d.run()
        d.on_progress = None
        with open(d.part, "ab") as f:     # something appended bytes meanwhile
            f.write(b"x" * 10)
        with pytest.raises(ChecksumMismatch):
            d.run()                       # re-hashed from disk, and the damage is caught


def test_restart_continues_from_the_saved_hash_state(tmp_path):
    """After a restart the hash state saved at the pause is taken up again: only bytes written
    after it are read back (here: bytes a killed app wrote after its last checkpoint)."""
    import json

    from desktop_app.library.download import _SavableSha256
    if not _SavableSha256.available():
        pytest.skip("libcrypto cannot be loaded here: downloads fall back to hashing the part again")
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        d.on_progress = lambda p: d.pause() if p.received >= 1_000_000 else None
        with pytest.raises(DownloadPaused):
            d.run()
        saved = json.loads(d.state_file.read_text())["hash_state"]
        assert saved["bytes"] == d.received_bytes() and saved["ctx"]
        # a killed app had written 300,000 more (correct) bytes after that checkpoint
        kept = d.received_bytes()
        with open(d.part, "ab") as f:
            f.write(PAYLOAD[kept:kept + 300_000])
        again = Download(srv.url, tmp_path / "p.bin")
        hasher = again._resumed_hasher(again._load_state(), again.received_bytes())
        assert hasher._start == kept                     # the saved state is used, not a full re-read
        hasher.abandon()
        assert again.run().read_bytes() == PAYLOAD
        assert srv.requests[-1] == f"bytes={kept + 300_000}-"


def test_a_saved_hash_state_from_elsewhere_is_not_trusted(tmp_path):
    import json
    with FileServer(PAYLOAD) as srv:
        d = Download(srv.url, tmp_path / "p.bin")
        d.on_progress = lambda p: d.pause() if p.received >= 1_000_000 else None
        with pytest.raises(DownloadPaused):
            d.run()
        state = json.loads(d.state_file.read_text())
        if "hash_state" in state:
            state["hash_state"]["openssl"] = "OpenSSL 0.0 (another library)"
            d.state_file.write_text(json.dumps(state))
        again = Download(srv.url, tmp_path / "p.bin")
        hasher = again._resumed_hasher(again._load_state(), again.received_bytes())
        assert hasher._start == 0                        # hashed again from the start
        hasher.abandon()
        assert again.run().read_bytes() == PAYLOAD
