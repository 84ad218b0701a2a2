"""What the outbox tests share: the sender's and the receiver's tables (each
app makes its own from the mixins, as the vendor server and the MSP do), fresh
databases of either backend, and the two test processes (outbox_receiver.py,
outbox_sender.py) started on real ports with real databases."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import MetaData, String, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from server_stub.db import get_engine, read_session, write_session
from server_stub.models.base import NAMING, Amount
from server_stub.network.outbox import InboxColumns, OutboxColumns
from tests.support.server import ROOT, create_pg_database, drop_pg_database, free_port


# ------------------------------------------------------------------ the receiver's tables

class ReceiverBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ReceiverInbox(InboxColumns, ReceiverBase):
    __tablename__ = "inbox_messages"


class ReceiverCounter(ReceiverBase):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Amount, default=0)


class ReceiverHit(ReceiverBase):
    """Every request that reached the receiver, committed before it is handled."""

    __tablename__ = "hits"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(64))


# ------------------------------------------------------------------ the sender's tables

class SenderBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SenderOutbox(OutboxColumns, SenderBase):
    __tablename__ = "outbox_messages"

    delivered_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # set by the test's handler


class SenderCounter(SenderBase):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Amount, default=0)


RECEIVER_COUNTERS = ("applied", "applies")        # the sum of n applied; how many applies ran
SENDER_COUNTERS = ("enqueued", "confirmed", "refused")


def add(db: Session, model: type[ReceiverCounter] | type[SenderCounter], name: str, n: int) -> int:
    """counter += n in the caller's transaction; returns the new value."""
    db.execute(update(model).where(model.name == name).values(value=model.value + n))
    return db.execute(select(model.value).where(model.name == name)).scalar_one()


def counters(url: str, model: type[ReceiverCounter] | type[SenderCounter]) -> dict[str, int]:
    with read_session(url) as db:
        return {name: value for name, value in db.execute(select(model.name, model.value))}


# ------------------------------------------------------------------ databases

@contextmanager
def fresh_database(backend: str, path: Path, base: type[DeclarativeBase], counter_names: tuple[str, ...]) -> Iterator[str]:
    """A new database of `backend` with `base`'s tables and its counters at 0; yields its URL."""
    drop = None
    if backend == "sqlite":
        path.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path / 'db.sqlite3'}"
    else:
        drop, url = create_pg_database()
    engine = get_engine(url)
    try:
        base.metadata.create_all(engine)
        counter = base.metadata.tables["counters"]
        with write_session(url) as db:
            db.execute(counter.insert(), [{"name": n, "value": 0} for n in counter_names])
        yield url
    finally:
        engine.dispose()
        if drop:
            drop_pg_database(drop)


# ------------------------------------------------------------------ processes

class Process:
    """A test process (`python -m MODULE ARGS`) with its log; killed with -9 at will."""

    def __init__(self, module: str, args: list[str], log_path: Path):
        self.module, self.args, self.log_path = module, args, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, *self.args], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Receiver(Process):
    """outbox_receiver.py on a fixed port (kept across restarts)."""

    def __init__(self, db_url: str, workdir: Path, apply_delay: float = 0.0, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("tests.server_stub.network.outbox_receiver",
                         ["--db", db_url, "--port", str(self.port), "--apply-delay", str(apply_delay)],
                         workdir / f"receiver-{self.port}.log")

    def start_and_wait(self, timeout: float = 30) -> Receiver:
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"receiver exited:\n{self.log_text()}")
            try:
                if requests.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"receiver did not start:\n{self.log_text()}")


def sender(db_url: str, receiver_url: str, workdir: Path, *, name: str, count: int, enqueue: bool,
           lease: float = 2.0, batch: int = 10, pause_after_answer: float = 0.0, go_file: Path | None = None) -> Process:
    """outbox_sender.py: enqueues `count` messages (when `enqueue`) and delivers
    until none is pending, then exits 0."""
    args = ["--db", db_url, "--receiver", receiver_url, "--count", str(count), "--name", name,
            "--lease", str(lease), "--batch", str(batch), "--pause-after-answer", str(pause_after_answer)]
    if enqueue:
        args.append("--enqueue")
    if go_file:
        args += ["--go-file", str(go_file)]
    return Process("tests.server_stub.network.outbox_sender", args, workdir / f"sender-{name}.log")


def message_id(i: int) -> str:
    return f"msg-{i:05d}"


def amount(i: int) -> int:
    """What message i adds: 1 to 7."""
    return i % 7 + 1
