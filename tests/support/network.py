"""A mall network of real processes for tests: an MSP and two vendors (`serve`, each its own
database of the backend), joined with invitations as operators do (docs/mall.md, Joining).

    net, cleanup = start_network("sqlite", tmp_path, demo=True)
    net.a, net.a_id, net.b, net.b_id, net.msp
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.msp import Msp, start_msp
from tests.support.server import Server, TestUser, start_server


def join(msp: Msp, vendor: Server, name: str, value_cents: int, token_name: str) -> str:
    """`join-mall` with a fresh invitation; the new member id."""
    code = msp.admin_json("invite", name)["invitation"]
    out = json.loads(vendor.admin_cli("join-mall", msp.base_url, "--invitation", code, "--name", name,
                                      "--base-url", vendor.base_url, "--token-name", token_name,
                                      "--value-cents", str(value_cents)).stdout)
    return str(out["member_id"])


@dataclass
class MallNetwork:
    msp: Msp
    a: Server          # "Mall A", Token-A at $0.10
    a_id: str
    b: Server          # "Mall B", Token-B at $0.05 (the patent's example: 100 Token-A -> 200 Token-B)
    b_id: str


def funded_user(vendor: Server, tokens: int) -> TestUser:
    """A new user of ``vendor`` with ``tokens`` standard tokens."""
    user = vendor.register()
    vendor.admin_cli("grant", user.username, str(tokens), "--kind", "standard")
    return user


def start_network(backend: str, workdir: Path, demo: bool = False) -> tuple[MallNetwork, Callable[[], None]]:
    workdir = Path(workdir)
    cleanups: list[Callable[[], None]] = []

    def cleanup() -> None:
        for c in reversed(cleanups):
            c()

    try:
        msp, c = start_msp(backend, workdir / "msp")
        cleanups.append(c)
        a, c = start_server(backend, workdir / "a", demo=demo)
        cleanups.append(c)
        b, c = start_server(backend, workdir / "b", demo=demo)
        cleanups.append(c)
        a_id = join(msp, a, "Mall A", 10, "Token-A")
        b_id = join(msp, b, "Mall B", 5, "Token-B")
        for vendor in (a, b):          # each knows the other at once, not after its next minute
            vendor.admin_cli("refresh-directory")
    except BaseException:
        cleanup()
        raise
    return MallNetwork(msp, a, a_id, b, b_id), cleanup
