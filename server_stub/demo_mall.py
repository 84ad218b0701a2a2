"""`tokenrent-server demo-mall [--dir D] [--port P]`: a whole mall network on this machine.

The MSP and four vendors as separate processes, each with its own SQLite database and data dir
under D: the franchisor "Mall A" with its two franchise sub-malls "Mall A1" and "Mall A2" (FIG 16:
A sets one token value for both) and the independent "Mall B". Each vendor has its own demo
catalog and users; the home demo user (`demo`, with tokens) is at Mall A1.

First start: prepare each vendor's data, start everything, invite and join the vendors, set the
franchise parent and value. A restart on the same D finds the members at the MSP and the data in
place and does nothing twice. When every server answers, ONE JSON line goes to stdout:
{"msp", "members": [{"member_id", "name", "url"}], "users": [{"member_id", "username", "password",
"pin"}]} (the first user is the home demo user). SIGTERM or SIGINT stops every process; the
children also end when demo-mall itself is killed (Linux: PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "demo-mall.json"
DEFAULT_PORT = 8800
FRANCHISE_VALUE_CENTS = 10        # FIG 16: Mall A's one token value for A1 and A2
START_TIMEOUT = 120.0
# settings that name one server's files or address: each child gets its own, never the caller's
PER_SERVER_ENV = ("DB_URL", "DATA_DIR", "SIGNING_KEY_PATH", "NETWORK_KEY_PATH", "PIN_PEPPER_PATH",
                  "PUBLIC_URL", "TLS_CERT_FILE", "TLS_KEY_FILE")


@dataclass(frozen=True)
class Vendor:
    key: str                 # its folder under D, and its catalog in demo_store.MALL_PRODUCTS
    name: str
    token_name: str
    value_cents: int
    parent: str | None       # the key of its franchise parent
    user: dict[str, str]


def _user(username: str) -> dict[str, str]:
    return {"username": username, "password": "demo-pass-1", "pin": "1234",
            "full_name": f"Demo User ({username})", "email": f"{username}@tokenrent.example"}


# The home member first: its user is the one the storefront signs in as.
VENDORS = (
    Vendor("a1", "Mall A1", "Token-A1", FRANCHISE_VALUE_CENTS, "a", _user("demo")),
    Vendor("a", "Mall A", "Token-A", 10, None, _user("demo-a")),
    Vendor("a2", "Mall A2", "Token-A2", FRANCHISE_VALUE_CENTS, "a", _user("demo-a2")),
    Vendor("b", "Mall B", "Token-B", 5, None, _user("demo-b")),
)
USER_TOKENS = 200   # each member's demo user (the home user at A1 has the single-vendor demo's 500)


class DemoMallError(RuntimeError):
    pass


# ---------------------------------------------------------------- one vendor's demo data

def prepare_vendor(key: str) -> list[str]:
    """In a child process whose settings name this vendor's database: migrate and load its demo
    data (idempotent). Mall A1 gets the single-vendor demo (server_stub/demo.py) whole."""
    from . import demo, migrate
    from .core.config import get_settings
    from .core.security import pin_pepper
    from .db import write_session
    from .demo_store import MALL_PRODUCTS, load_store_demo
    from .services import accounts, signing_keys, wallet
    from .vocabulary import Role

    vendor = next(v for v in VENDORS if v.key == key)
    migrate.upgrade(get_settings().resolved_db_url)
    pin_pepper()
    with write_session() as db:
        signing_keys.ensure_key(db)
    with write_session() as db:
        if key == "a1":
            return demo.load(db)
        notes = []
        if accounts.find_user(db, demo.DEMO_ADMIN["username"]) is None:
            wallet.update_policy(db, token_price_cents=vendor.value_cents, min_tokens=100)
            wallet.upsert_bundle(db, "Silver", 100, 5)
            accounts.create_user(db, **demo.DEMO_ADMIN, role=Role.ADMIN)
            notes.append("created admin")
        if accounts.find_user(db, vendor.user["username"]) is None:
            accounts.create_user(db, **vendor.user)
            wallet.grant_tokens(db, vendor.user["username"], USER_TOKENS, memo="demo tokens")
            notes.append(f"created {vendor.user['username']}")
        return notes + load_store_demo(db, MALL_PRODUCTS[key])


# ---------------------------------------------------------------- processes

def _end_with_parent() -> None:
    """In the child, before exec: SIGTERM when demo-mall (the thread that started it) dies."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.removeprefix("TOKENRENT_") not in PER_SERVER_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENRENT_MALL_BACKUP_SECONDS", "60")   # FIG 14: the demo backs up every minute
    return env


def _server_args(folder: Path) -> list[str]:
    return ["--db", f"sqlite:///{folder / 'server.sqlite3'}", "--data-dir", str(folder)]


def _popen(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "server_stub", *args], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_child_env(),
                                preexec_fn=_end_with_parent if sys.platform == "linux" else None)


def _run(args: Sequence[str], log: Path) -> str:
    """A `tokenrent-server ...` command to its end; its stdout (its stderr goes to `log`)."""
    with open(log, "ab") as err:
        res = subprocess.run([sys.executable, "-m", "server_stub", *args], stdout=subprocess.PIPE,
                             stderr=err, stdin=subprocess.DEVNULL, env=_child_env(), timeout=300,
                             preexec_fn=_end_with_parent if sys.platform == "linux" else None)
    if res.returncode != 0:
        raise DemoMallError(f"`tokenrent-server {' '.join(args[:2])}` failed ({res.returncode}); see {log}")
    return res.stdout.decode()


def _port_free(port: int) -> bool:
    """Free for a server to listen on: with SO_REUSEADDR, as uvicorn binds, so connections
    the last run closed (TIME_WAIT for a minute) do not make a port look taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose_ports(recorded: dict[str, int], first: int) -> dict[str, int]:
    """The MSP's and each vendor's port: those recorded in D (their URLs are in the members'
    records, so they must stay), else `first` and the next ones, else free ones."""
    names = ["msp", *(v.key for v in VENDORS)]
    if recorded:
        busy = [f"{n} {recorded[n]}" for n in names if not _port_free(recorded[n])]
        if busy:
            raise DemoMallError(f"the demo mall's recorded ports are in use ({', '.join(busy)}): "
                                "is it already running? Stop it, or use another --dir")
        return {n: recorded[n] for n in names}
    ports: dict[str, int] = {}
    for i, n in enumerate(names):
        wanted = first + i
        ports[n] = wanted if 0 < wanted < 65536 and _port_free(wanted) else _free_port()
    return ports


def _wait_until_answering(procs: dict[str, subprocess.Popen[bytes]], urls: dict[str, str],
                          logs: dict[str, Path], deadline: float) -> None:
    import requests

    waiting = dict(urls)
    while waiting:
        for name, url in list(waiting.items()):
            if procs[name].poll() is not None:
                raise DemoMallError(f"{name} stopped at start-up (exit {procs[name].returncode}); see {logs[name]}")
            try:
                if requests.get(url + "/v1/health", timeout=1).status_code == 200:
                    del waiting[name]
            except requests.RequestException:
                pass
        if time.monotonic() > deadline:
            raise DemoMallError(f"not answering after {START_TIMEOUT:.0f} s: {', '.join(waiting)}")
        if waiting:
            time.sleep(0.1)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    side = path.with_name(path.name + ".new")
    side.write_text(json.dumps(state, indent=1))
    os.replace(side, path)


# ---------------------------------------------------------------- the MSP operator's part

def _msp_members(msp_db: str) -> dict[str, Any]:
    from .db import read_session
    from .mall import members

    with read_session(msp_db) as db:
        return {m.name: (m.member_id, m.parent_member_id) for m in members.all_members(db)}


def _invite(msp_db: str, name: str) -> str:
    from .db import write_session
    from .mall import members

    with write_session(msp_db) as db:
        return members.invite(db, name)[0]


def _franchise(msp_db: str, ids: dict[str, str]) -> None:
    """Each sub-mall under its parent, and the parents' one token value for them (FIG 16)."""
    from .db import write_session
    from .mall import members

    with write_session(msp_db) as db:
        for v in VENDORS:
            if v.parent is not None:
                members.set_parent(db, ids[v.key], ids[v.parent])
        for parent in {v.parent for v in VENDORS if v.parent is not None}:
            members.franchise_value(db, ids[parent], FRANCHISE_VALUE_CENTS)


# Open tokens (FIG 18-20): a brand with its products at Mall B, the franchise as a group with a
# discount, and the home demo user's open tokens bought at home by card, as a user buys them.
OPEN_BRAND = ("arcade-west", "Arcade West", "b", 1000, 300)   # id, name, member key, discount bp, type 2 cap
OPEN_BRAND_PRODUCTS = ("Star Harbor", "Word Forge")           # at Mall B
OPEN_GROUP = ("franchise", ("a", "a1", "a2"), 500)
DEMO_CARD = {"method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"}
DEMO_OPEN_PURCHASES: tuple[tuple[str, dict[str, Any]], ...] = (     # (idempotency key, body): a replay after a restart buys nothing twice
    ("00000000-0000-4000-8000-0000000000d1", {"kind": "universal", "tokens": 3000}),
    ("00000000-0000-4000-8000-0000000000d2", {"kind": "group", "issuer": "franchise", "tokens": 2000}),
    ("00000000-0000-4000-8000-0000000000d3", {"kind": "gift_certificate", "value_cents": 1000}),
)


def _open_tokens_terms(msp_db: str, ids: dict[str, str], urls: dict[str, str]) -> None:
    """The MSP operator's part: the brand, its products (read from Mall B's catalog), the group's discount."""
    import requests

    from .db import write_session
    from .mall import members, open_tokens
    from .mall.schemas import BrandIn

    brand_id, name, member_key, discount_bp, cap = OPEN_BRAND
    products = requests.get(f"{urls[member_key]}/v1/products", timeout=10).json()
    product_ids = [p["id"] for p in products if p["name"] in OPEN_BRAND_PRODUCTS]
    group, group_members, group_bp = OPEN_GROUP
    with write_session(msp_db) as db:
        open_tokens.add_brand(db, members.validated(BrandIn, brand_id=brand_id, name=name, member_id=ids[member_key],
                                                    discount_bp=discount_bp, free_cap_units=cap))
        for pid in product_ids:
            open_tokens.add_brand_product(db, brand_id, ids[member_key], pid)
        for key in group_members:
            members.group_add(db, group, ids[key])
        open_tokens.set_group_discount(db, group, group_bp)


def _demo_open_purchases(url: str, user: dict[str, str]) -> None:
    """The home demo user buys open tokens and a gift certificate at home, by card (the real calls)."""
    import requests

    with requests.Session() as http:
        r = http.post(f"{url}/v1/sessions", json={"username": user["username"], "password": user["password"]},
                      timeout=10)
        r.raise_for_status()
        headers = {"Authorization": f"Bearer {r.json()['token']}"}
        for key, body in DEMO_OPEN_PURCHASES:
            r = http.post(f"{url}/v1/open-token-purchases", json={**body, **DEMO_CARD, "pin": user["pin"]},
                          headers={**headers, "Idempotency-Key": key}, timeout=30)
            if r.status_code >= 300:
                raise DemoMallError(f"the demo's open-token purchase {body} was refused: {r.status_code} {r.text[:200]}")


# ---------------------------------------------------------------- the whole network

class DemoMall:
    def __init__(self, root: Path, port: int = DEFAULT_PORT):
        self.root = root
        self.first_port = port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.state_path = root / STATE_FILE

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> dict[str, Any]:
        """Everything up and joined; the JSON line's object."""
        self.root.mkdir(parents=True, exist_ok=True)
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        ports = choose_ports(state.get("ports", {}), self.first_port)
        _write_state(self.state_path, {**state, "ports": ports})
        urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
        logs = {n: self.folder(n) / "server.log" for n in ports}
        deadline = time.monotonic() + START_TIMEOUT
        msp_dir = self.folder("msp")
        msp_db = f"sqlite:///{msp_dir / 'mall.sqlite3'}"
        self.procs["msp"] = _popen(["msp", "serve", "--db", msp_db, "--data-dir", str(msp_dir),
                                    "--port", str(ports["msp"]), "--public-url", urls["msp"]], logs["msp"])
        # each vendor's data, in parallel, while the MSP starts (a no-op after the first time)
        prepared = set(state.get("prepared", []))
        preparing = {v.key: _popen_prepare(v.key, self.folder(v.key), logs[v.key])
                     for v in VENDORS if v.key not in prepared}
        for key, proc in preparing.items():
            if proc.wait() != 0:
                raise DemoMallError(f"the demo data of {key} could not be loaded; see {logs[key]}")
        for v in VENDORS:
            self.procs[v.key] = _popen(["serve", *_server_args(self.folder(v.key)), "--port", str(ports[v.key]),
                                        "--public-url", urls[v.key]], logs[v.key])
        _write_state(self.state_path, {"ports": ports, "prepared": sorted(prepared | set(preparing))})
        _wait_until_answering(self.procs, urls, logs, deadline)
        ids = self.join_all(msp_db, urls, logs)
        members = [{"member_id": ids[v.key], "name": v.name, "url": urls[v.key]} for v in VENDORS]
        users = [{"member_id": ids[v.key], "username": v.user["username"], "password": v.user["password"],
                  "pin": v.user["pin"]} for v in VENDORS]
        return {"msp": urls["msp"], "members": members, "users": users}

    def join_all(self, msp_db: str, urls: dict[str, str], logs: dict[str, Path]) -> dict[str, str]:
        """Invite and join the vendors the MSP does not know yet (in parallel), then the franchise."""
        known = _msp_members(msp_db)
        joining = {}
        for v in VENDORS:
            if v.name in known:
                continue
            code = _invite(msp_db, v.name)
            args = ["admin", *_server_args(self.folder(v.key)), "join-mall", urls["msp"], "--invitation", code,
                    "--name", v.name, "--base-url", urls[v.key], "--token-name", v.token_name,
                    "--value-cents", str(v.value_cents)]
            joining[v.key] = _Background(args, logs[v.key])
        for job in joining.values():
            job.result()
        known = _msp_members(msp_db)
        ids = {v.key: known[v.name][0] for v in VENDORS}
        if joining or any(known[v.name][1] != (ids[v.parent] if v.parent else None) for v in VENDORS):
            _franchise(msp_db, ids)
            if joining:
                _open_tokens_terms(msp_db, ids, urls)
            # every vendor reads the directory now (it would within a minute anyway)
            refresh = [_Background(["admin", *_server_args(self.folder(v.key)), "refresh-directory"], logs[v.key])
                       for v in VENDORS]
            for job in refresh:
                job.result()
        if joining:
            _demo_open_purchases(urls[VENDORS[0].key], VENDORS[0].user)
        return ids

    def check_running(self) -> str | None:
        """The name of a server that has stopped, if one has."""
        return next((name for name, p in self.procs.items() if p.poll() is not None), None)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


def _popen_prepare(key: str, folder: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        env = {**_child_env(), "TOKENRENT_DB_URL": f"sqlite:///{folder / 'server.sqlite3'}",
               "TOKENRENT_DATA_DIR": str(folder)}
        return subprocess.Popen([sys.executable, "-m", "server_stub.demo_mall", "prepare", key], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=_end_with_parent if sys.platform == "linux" else None)


class _Background:
    """A `tokenrent-server` command run in a thread (the joins go in parallel)."""

    def __init__(self, args: Sequence[str], log: Path):
        self.error: BaseException | None = None
        self.out = ""
        self.thread = threading.Thread(target=self._work, args=(args, log), daemon=True)
        self.thread.start()

    def _work(self, args: Sequence[str], log: Path) -> None:
        try:
            self.out = _run(args, log)
        except BaseException as e:   # handed to result()
            self.error = e

    def result(self) -> str:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.out


def default_dir() -> Path:
    from .core.config import default_data_dir

    return default_data_dir() / "demo-mall"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo-mall", help="run a local demo mall: the MSP and four vendors, joined, with demo data")
    p.add_argument("--dir", help="where their databases live (default: the data dir + demo-mall)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="the MSP's port; the vendors take the next ones (free ones when taken)")


class _Stopped(Exception):
    """A signal came during start-up."""


def run(a: argparse.Namespace) -> int:
    # Everything starts on this (main) thread: PR_SET_PDEATHSIG ends a child when the thread
    # that started it ends. A signal during start-up interrupts it; afterwards it ends the wait.
    stop = threading.Event()
    starting = True

    def on_signal(*_: object) -> None:
        stop.set()
        if starting:
            raise _Stopped

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    mall = DemoMall(Path(a.dir) if a.dir else default_dir(), a.port)
    try:
        started = mall.start()
        starting = False
        print(json.dumps(started), flush=True)
        while not stop.wait(0.5):
            gone = mall.check_running()
            if gone is not None:
                print(f"demo-mall: {gone} stopped; see {mall.root / gone / 'server.log'}", file=sys.stderr)
                return 1
        return 0
    except _Stopped:
        return 0
    except DemoMallError as e:
        print(f"demo-mall: {e}", file=sys.stderr)
        return 1
    finally:
        starting = False
        mall.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["prepare"]:
    notes = prepare_vendor(sys.argv[2])
    print(json.dumps({"demo data": notes}), flush=True)
