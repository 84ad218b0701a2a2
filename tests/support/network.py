"""A mall network of real processes for tests: an MSP and two or more vendors (`serve`, each its
own database of the backend), joined with invitations as operators do (docs/mall.md, Joining).

    net, cleanup = start_network("sqlite", tmp_path, demo=True)
    net.a, net.a_id, net.b, net.b_id, net.msp
    net, cleanup = start_network("postgres", tmp_path, members=THREE_MEMBERS)
    for v in net.vendors: v.server, v.member_id, v.value_cents
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class MemberSpec:
    name: str
    value_cents: int
    token_name: str


# the patent's example: 100 Token-A -> 200 Token-B
TWO_MEMBERS = (MemberSpec("Mall A", 10, "Token-A"), MemberSpec("Mall B", 5, "Token-B"))
# values that do not divide each other, so exchanges leave rounding gains
THREE_MEMBERS = (*TWO_MEMBERS, MemberSpec("Mall C", 3, "Token-C"))


@dataclass
class Vendor:
    server: Server
    member_id: str
    name: str
    value_cents: int
    token_name: str


@dataclass
class MallNetwork:
    msp: Msp
    vendors: list[Vendor]

    @property
    def a(self) -> Server:          # "Mall A", Token-A at $0.10
        return self.vendors[0].server

    @property
    def a_id(self) -> str:
        return self.vendors[0].member_id

    @property
    def b(self) -> Server:          # "Mall B", Token-B at $0.05
        return self.vendors[1].server

    @property
    def b_id(self) -> str:
        return self.vendors[1].member_id


def funded_user(vendor: Server, tokens: int) -> TestUser:
    """A new user of ``vendor`` with ``tokens`` standard tokens."""
    user = vendor.register()
    vendor.admin_cli("grant", user.username, str(tokens), "--kind", "standard")
    return user


def start_network(backend: str, workdir: Path, demo: bool = False, members: Sequence[MemberSpec] = TWO_MEMBERS,
                  msp_env: dict[str, str] | None = None) -> tuple[MallNetwork, Callable[[], None]]:
    """The MSP (with `msp_env` added to its environment) and one vendor per spec, joined in
    order; every vendor has read the directory with all of them. Returns (network, cleanup)."""
    workdir = Path(workdir)
    cleanups: list[Callable[[], None]] = []

    def cleanup() -> None:
        for c in reversed(cleanups):
            c()

    try:
        msp, c = start_msp(backend, workdir / "msp", env=msp_env)
        cleanups.append(c)
        servers = []
        for i, _spec in enumerate(members):
            srv, c = start_server(backend, workdir / "abcdefgh"[i], demo=demo)
            cleanups.append(c)
            servers.append(srv)
        vendors = [Vendor(srv, join(msp, srv, spec.name, spec.value_cents, spec.token_name), spec.name,
                          spec.value_cents, spec.token_name) for srv, spec in zip(servers, members, strict=True)]
        for v in vendors:          # each knows the others at once, not after its next minute
            v.server.admin_cli("refresh-directory")
    except BaseException:
        cleanup()
        raise
    return MallNetwork(msp, vendors), cleanup
