"""`tokenrent-server demo-mall`: the MSP and four vendors as real processes on their own SQLite
databases, joined, franchise parent and value set (FIG 16), demo data at each; one JSON line;
a restart on the same dir doubles nothing; SIGTERM (and kill -9 of demo-mall) ends every process.
SQLite only: the demo mall is SQLite by design (a newcomer's machine has no PostgreSQL)."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.server import ROOT

pytestmark = pytest.mark.timeout(600)


def free_port() -> int:
    """A first port for demo-mall, which serves the MSP there and its members on the ports after
    it: below Linux's ephemeral range (32768-60999), where any outgoing connection on this busy
    machine may take a port between demo-mall's check and its servers' bind."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - 16)
        if all(_free(p) for p in range(first, first + 16)):
            return first
    raise RuntimeError("no run of 16 free ports below the ephemeral range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

NAMES = ["Mall A1", "Mall A", "Mall A2", "Mall B"]


class Running:
    def __init__(self, root: Path, port: int):
        self.root = root
        self.err = open(root.parent / f"{root.name}-demo-mall.err", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "server_stub", "demo-mall", "--dir", str(root),
                                      "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.err,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()          # blocks until all answer (or it ends)
        assert line, f"demo-mall printed nothing; exit {self.proc.poll()}"
        self.info = json.loads(line)
        self.children = child_pids(self.proc.pid)

    def member(self, name: str) -> dict:
        return next(m for m in self.info["members"] if m["name"] == name)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.err.close()
        return code


def child_pids(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


def sign_in(url: str, username: str, password: str) -> dict[str, str]:
    r = requests.post(url + "/v1/sessions", json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def msp_admin(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "server_stub", "msp", "admin", "--db",
                          f"sqlite:///{root / 'msp' / 'mall.sqlite3'}", "--data-dir", str(root / "msp"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def snapshot(info: dict) -> dict:
    """What must not double on a restart: each member's products and the MSP's directory."""
    products = {m["name"]: sorted(p["name"] for p in requests.get(m["url"] + "/v1/products", timeout=30).json())
                for m in info["members"]}
    directory = requests.get(info["msp"] + "/v1/mall/directory", timeout=30).json()
    return {"products": products, "version": directory["version"],
            "members": sorted((m["member_id"], m["name"]) for m in directory["members"])}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-mall") / "mall"


@pytest.fixture(scope="module")
def running(demo_dir):
    r = Running(demo_dir, free_port())
    yield r
    if r.proc.poll() is None:
        r.stop()


def test_the_json_line_names_the_msp_every_member_and_the_users(running):
    info = running.info
    assert set(info) == {"msp", "members", "users"}
    assert [m["name"] for m in info["members"]] == NAMES
    ids = {m["member_id"] for m in info["members"]}
    assert len(ids) == 4 and all(i.startswith("m-") for i in ids)
    assert {u["member_id"] for u in info["users"]} == ids
    home = info["users"][0]
    assert (home["member_id"], home["username"], home["pin"]) == (running.member("Mall A1")["member_id"], "demo", "1234")
    assert all(set(u) == {"member_id", "username", "password", "pin"} for u in info["users"])
    assert len(running.children) == 5                     # the MSP and four vendors


def test_every_member_answers_as_a_member_and_its_users_sign_in(running):
    info = running.info
    for m, u in zip(info["members"], info["users"], strict=True):
        mall = requests.get(m["url"] + "/v1/mall", timeout=30).json()
        assert mall["member_id"] == m["member_id"] and mall["msp_url"] == info["msp"]
        assert sorted(x["name"] for x in mall["members"]) == sorted(NAMES)
        me = requests.get(m["url"] + "/v1/me", headers=sign_in(m["url"], u["username"], u["password"]), timeout=30)
        assert me.status_code == 200 and me.json()["available_tokens"] > 0, me.text
    home = info["users"][0]
    me = requests.get(info["members"][0]["url"] + "/v1/me", timeout=30,
                      headers=sign_in(info["members"][0]["url"], home["username"], home["password"])).json()
    assert me["available_tokens"] == 500


def test_each_member_has_its_own_catalog(running):
    products = snapshot(running.info)["products"]
    assert "Software A" in products["Mall A1"]
    names = [name for member in products.values() for name in member]
    assert all(products.values()) and len(names) == len(set(names))   # distinct products per member


def test_the_directory_has_the_parent_and_its_sub_malls_at_one_value(running):
    directory = requests.get(running.info["msp"] + "/v1/mall/directory", timeout=30).json()
    by_name = {m["name"]: m for m in directory["members"]}
    parent = running.member("Mall A")["member_id"]
    assert by_name["Mall A1"]["parent"] == parent and by_name["Mall A2"]["parent"] == parent
    assert by_name["Mall A"]["parent"] is None and by_name["Mall B"]["parent"] is None
    assert by_name["Mall A1"]["token"]["value_cents"] == by_name["Mall A2"]["token"]["value_cents"] == 10
    assert by_name["Mall B"]["token"]["value_cents"] == 5
    # the demo keeps each vendor's token price and its value at the MSP in step
    for m in running.info["members"]:
        price = requests.get(m["url"] + "/v1/token-offers", timeout=30).json()["token_price_cents"]
        assert price == by_name[m["name"]]["token"]["value_cents"], m["name"]


def test_franchise_value_sets_every_sub_mall_and_refuses_bad_input(running, demo_dir):
    parent = running.member("Mall A")["member_id"]
    before = requests.get(running.info["msp"] + "/v1/mall/directory", timeout=30).json()
    out = json.loads(msp_admin(demo_dir, "franchise-value", parent, "12").stdout)
    assert sorted(m["name"] for m in out["members"]) == ["Mall A1", "Mall A2"]
    assert out["directory_version"] == before["version"] + 1
    after = {m["name"]: m for m in requests.get(running.info["msp"] + "/v1/mall/directory", timeout=30).json()["members"]}
    assert after["Mall A1"]["token"]["value_cents"] == after["Mall A2"]["token"]["value_cents"] == 12
    assert after["Mall A"]["token"]["value_cents"] == 10 and after["Mall B"]["token"]["value_cents"] == 5
    # the same value again changes nothing; bad input is refused and changes nothing
    same = json.loads(msp_admin(demo_dir, "franchise-value", parent, "12").stdout)
    assert same["directory_version"] == out["directory_version"]
    for args, says in ((("franchise-value", parent, "0"), "cents"),
                       (("franchise-value", running.member("Mall B")["member_id"], "10"), "no sub-malls"),
                       (("franchise-value", "m-nosuchmembr", "10"), "")):
        res = msp_admin(demo_dir, *args, check=False)
        assert res.returncode == 2 and says in res.stderr, res.stderr
    version = requests.get(running.info["msp"] + "/v1/mall/directory", timeout=30).json()["version"]
    assert version == out["directory_version"]
    msp_admin(demo_dir, "franchise-value", parent, "10")   # back to the demo's value


def test_sigterm_stops_every_process_and_a_restart_doubles_nothing(running, demo_dir):
    before = snapshot(running.info)
    children = running.children
    assert running.stop(signal.SIGTERM) == 0
    assert wait_gone(children) == []
    again = Running(demo_dir, free_port())      # another --port: the recorded ports are kept
    try:
        assert again.info == running.info
        assert snapshot(again.info) == before
        home = again.info["users"][0]
        me = requests.get(again.info["members"][0]["url"] + "/v1/me", timeout=30,
                          headers=sign_in(again.info["members"][0]["url"], home["username"], home["password"])).json()
        assert me["available_tokens"] == 500                   # the demo tokens were not granted twice
    finally:
        children = again.children
        again.stop(signal.SIGINT)
    assert wait_gone(children) == []


def test_kill_9_of_demo_mall_ends_its_children(demo_dir):
    r = Running(demo_dir, free_port())
    children = r.children
    assert len(children) == 5
    r.stop(signal.SIGKILL)
    assert wait_gone(children) == []
