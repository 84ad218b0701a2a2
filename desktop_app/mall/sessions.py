"""Sessions at the other members of the mall: one ApiClient per member, in memory only.

A session at another member is opened with a single-use assertion from the home member
(POST /v1/mall-assertions at home, then POST /v1/sessions {assertion} there): no second
registration and nothing stored on disk. Blocking: call from a worker thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from desktop_app.api.client import ApiClient, SessionExpired
from desktop_app.api.replies import MallMember

T = TypeVar("T")


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

    def forget(self, member_id: str | None = None) -> None:
        """Drop one member's session, or all (signed out, another user)."""
        with self._lock:
            if member_id is None:
                self._clients.clear()
            else:
                self._clients.pop(member_id, None)
