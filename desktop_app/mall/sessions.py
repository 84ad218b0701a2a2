"""Sessions at the other members of the mall: one ApiClient per member, in memory only.

A session at another member is opened with a single-use assertion from the home member
(POST /v1/mall-assertions at home, then POST /v1/sessions {assertion} there): no second
registration and nothing stored on disk. The MSP is reached the same way (the open-token
wallet lives in its books): an assertion with audience "msp", then the MSP's POST /v1/sessions.
Blocking: call from a worker thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from desktop_app.api.client import ApiClient, SessionExpired
from desktop_app.api.replies import MallMember

T = TypeVar("T")

MSP_AUDIENCE = "msp"      # the MSP's id in assertions and signatures (docs/mall.md, Identities)


class MemberSessions:
    def __init__(self, home: ApiClient):
        self.home = home
        self._clients: dict[str, ApiClient] = {}
        self._lock = threading.Lock()

    def client(self, member: MallMember) -> ApiClient:
        """The signed-in client at ``member``, opening its session on first use."""
        with self._lock:
            known = self._clients.get(member.member_id)
        if known is not None and known.token:
            return known
        assertion = self.home.mall_assertion(member.member_id)
        client = ApiClient(member.base_url, timeout=self.home.timeout)
        client.sign_in_with_assertion(assertion.assertion)
        with self._lock:
            self._clients[member.member_id] = client
        return client

    def public(self, member: MallMember) -> ApiClient:
        """A client for the member's public calls (its catalog): no session needed."""
        with self._lock:
            known = self._clients.get(member.member_id)
        return known if known is not None else ApiClient(member.base_url, timeout=self.home.timeout)

    def call(self, member: MallMember, fn: Callable[[ApiClient], T]) -> T:
        """``fn(client)`` at ``member``; when that session ended, once more with a new one.
        (A home session that ended raises SessionExpired from the home call: sign in again.)"""
        client = self.client(member)
        try:
            return fn(client)
        except SessionExpired:
            self.forget(member.member_id)
            return fn(self.client(member))

    # -- the MSP -----------------------------------------------------------------------
    def msp(self, msp_url: str) -> ApiClient:
        """The signed-in client at the MSP, opening its session on first use."""
        key = _msp_key(msp_url)
        with self._lock:
            known = self._clients.get(key)
        if known is not None and known.token:
            return known
        assertion = self.home.mall_assertion(MSP_AUDIENCE)
        client = ApiClient(msp_url, timeout=self.home.timeout)
        client.sign_in_with_assertion(assertion.assertion)
        with self._lock:
            self._clients[key] = client
        return client

    def call_msp(self, msp_url: str, fn: Callable[[ApiClient], T]) -> T:
        """``fn(client)`` at the MSP; when that session ended (an hour), once more with a new one."""
        try:
            return fn(self.msp(msp_url))
        except SessionExpired:
            self.forget(_msp_key(msp_url))
            return fn(self.msp(msp_url))

    def forget(self, member_id: str | None = None) -> None:
        """Drop one member's session (or the MSP's), or all (signed out, another user)."""
        with self._lock:
            if member_id is None:
                self._clients.clear()
            else:
                self._clients.pop(member_id, None)


def _msp_key(msp_url: str) -> str:
    return f"{MSP_AUDIENCE} {msp_url}"      # a space: never a member id
