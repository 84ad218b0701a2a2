"""The app's shared state and the one way pages talk to the server and agent.

``AppState.call`` runs a blocking function on a worker thread and delivers
the answer on the UI thread. It also handles the two failures every page
shares: off-line (NetworkError -> the off-line banner) and an expired session
(SessionExpired -> ask to sign in again, then retry the same call, so the
user keeps their place).
"""
from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from desktop_app.agent.bridge import AgentBridge, AgentError
from desktop_app.agent.replies import AgentLicense
from desktop_app.api.client import ApiClient, ApiError, NetworkError, SessionExpired
from desktop_app.api.replies import Category, Delivery, License, Me, Offer, Product, TokenOffers
from desktop_app.api.session_store import SessionStore
from desktop_app.api.worker import run_async
from desktop_app.library import install as installer
from desktop_app.library.cache import LibraryCache
from desktop_app.library.model import build_entries, history_key
from desktop_app.money import Pricing
from desktop_app.paths import AppPaths
from desktop_app.settings.config import Settings, save_settings
from license_agent.code_terms import product_ref


class AppState(QObject):
    meChanged = Signal(object)           # Me (GET /v1/me), or None when signed out
    offlineChanged = Signal(bool)
    pricingChanged = Signal(object)      # Pricing
    catalogChanged = Signal()
    libraryChanged = Signal()
    sessionExpired = Signal()            # the main window asks to sign in again
    userChanged = Signal()               # a different user signed in: forget the last one's work
    lowRental = Signal(object)           # LibraryEntry running low
    message = Signal(str, str)           # text, style

    def __init__(self, paths: AppPaths, settings: Settings, server_url: str, parent=None, *, demo: bool = False):
        super().__init__(parent)
        self.paths = paths
        self.settings = settings
        self.api = ApiClient(server_url)
        self.agent = AgentBridge(settings.resolved_agent_home(paths, demo=demo))
        self.sessions = SessionStore()
        self.cache = LibraryCache(paths.library_cache)
        self.me: Me | None = None
        self.pricing = Pricing()
        self.token_offers: TokenOffers | None = None
        self.categories: list[Category] = []
        self.products: list[Product] = []
        self.device_id: str | None = None
        self.offline = False
        self.catalog_loaded = False      # the catalog (products, offers) has arrived at least once
        self.entries = []
        self._pending_retries: list[Callable[[], None]] = []
        self._session_user = settings.last_username   # whose work the caches and retries hold
        self._low_now: set[str] = set()    # licenses known to be under their threshold
        from desktop_app.mall.state import MallState
        self.mall = MallState(self)         # the mall network: members, sessions there, exchanges

    # -- background calls ---------------------------------------------------
    def call(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[ApiError], None] | None = None, *, retry_after_sign_in: bool = True) -> None:
        def done(value):
            self.set_offline(False)
            if on_done is not None:
                on_done(value)

        def failed(error):
            if isinstance(error, NetworkError):
                self.set_offline(True)
            if isinstance(error, SessionExpired) and retry_after_sign_in:
                self.wait_for_sign_in(lambda: self.call(fn, on_done, on_error))
                return
            if on_error is not None:
                on_error(error)
            elif not isinstance(error, NetworkError):   # off-line has its own banner
                self.message.emit(getattr(error, "user_message", str(error)), "error")

        run_async(fn, done, failed)

    def wait_for_sign_in(self, retry: Callable[[], None]) -> None:
        """The session ended: ask to sign in again (once for all waiting work); ``retry`` runs
        after the same user signed in, and is dropped if the user declines."""
        self._pending_retries.append(retry)
        if len(self._pending_retries) == 1:
            self.sessionExpired.emit()

    def set_offline(self, offline: bool) -> None:
        if offline != self.offline:
            self.offline = offline
            self.offlineChanged.emit(offline)

    @property
    def signed_in(self) -> bool:
        return self.me is not None

    @property
    def install_dir(self) -> Path:
        return self.settings.resolved_install_dir(self.paths)

    def save_settings(self) -> None:
        from dataclasses import replace
        snapshot, paths = replace(self.settings), self.paths
        run_async(lambda: save_settings(paths, snapshot))   # disk: off the UI thread

    def drop_pending_retries(self) -> None:
        """The user declined to sign in again: the calls that waited for it are dropped."""
        self._pending_retries = []

    # -- session --------------------------------------------------------------
    def sign_in(self, username: str, password: str, on_done=None, on_error=None) -> None:
        api, sessions = self.api, self.sessions

        def work():
            api.sign_in(username, password)
            me = api.me()
            sessions.save(api.base_url, username, api.token)   # the keyring is slow: off the UI thread
            return me

        def done(me):
            if self._session_user and self._session_user != username:
                # Someone else signed in: calls made for the previous user are never replayed
                # on this account, and the previous user's library is not shown.
                self._pending_retries = []
                self.cache.data.update(licenses=[], member_licenses={}, history={}, username=username)
                self.userChanged.emit()
            self._session_user = username
            self.settings.last_username = username
            self.save_settings()
            self._set_me(me)
            retries, self._pending_retries = self._pending_retries, []
            for retry in retries:
                retry()
            self.after_sign_in()
            if on_done:
                on_done(me)

        self.call(work, done, on_error, retry_after_sign_in=False)

    def resume_session(self, on_done=None) -> None:
        """Signs in with a token saved in the keyring, if any is still valid."""
        username = self.settings.last_username
        if not username:
            return
        api, sessions = self.api, self.sessions

        def work():
            token = sessions.load(api.base_url, username)
            if not token:
                return None
            probe = ApiClient(api.base_url, token)
            return token, probe.me()

        def done(found):
            if found is None:
                return          # no saved session: nothing was asked of the server
            self.set_offline(False)
            token, me = found
            self.api.token = token
            self._set_me(me)
            self.after_sign_in()
            if on_done:
                on_done(me)

        def failed(error):
            if isinstance(error, NetworkError):
                self.set_offline(True)
            if isinstance(error, SessionExpired):
                run_async(lambda: sessions.forget(api.base_url, username))

        # not self.call: a keyring without a saved session must not count as "the server answered"
        run_async(work, done, failed)

    def sign_out(self) -> None:
        if self.me:
            sessions, url, name = self.sessions, self.api.base_url, self.me.username
            run_async(lambda: sessions.forget(url, name))
        if self.api.token:
            ended = ApiClient(self.api.base_url, self.api.token)   # revoke on the server too
            run_async(ended.sign_out, None, lambda _e: None)
        self.api.token = None
        self._pending_retries = []
        self._set_me(None)

    def _set_me(self, me: Me | None) -> None:
        self.me = me
        self.meChanged.emit(me)

    def refresh_me(self, on_done=None) -> None:
        def done(me):
            self._set_me(me)
            if on_done:
                on_done(me)
        if self.api.token:
            self.call(self.api.me, done)

    @property
    def available_tokens(self) -> int:
        return self.me.available_tokens if self.me is not None else 0

    @property
    def active(self) -> bool:
        return self.me is not None and self.me.active

    # -- catalog ----------------------------------------------------------------
    def load_catalog(self, on_done=None) -> None:
        api = self.api

        def work():
            # every part is the contract: an answer that is not (ReplyError) is said, not hidden
            return api.categories(), api.products(), api.token_offers()

        def done(value):
            self.categories, self.products, self.token_offers = value
            self.catalog_loaded = True
            self.pricing = Pricing.from_offers(self.token_offers)
            self.pricingChanged.emit(self.pricing)
            self.catalogChanged.emit()
            if on_done:
                on_done()

        self.call(work, done)

    def product(self, product_id) -> Product | None:
        """By id (the agent names products as text, the server as numbers)."""
        for p in self.products:
            if str(p.id) == str(product_id):
                return p
        return None

    def find_offer(self, offer_id: int) -> tuple[Product, Offer] | None:
        for p in self.products:
            for o in p.offers:
                if o.id == offer_id:
                    return p, o
        return None

    # -- agent and library ---------------------------------------------------
    def after_sign_in(self) -> None:
        """Register this device, trust the vendor key, install every code the server has."""
        api, agent, cache, root = self.api, self.agent, self.cache, self.install_dir
        member_licenses = self.member_licenses

        def work():
            device = agent.device()
            api.register_device(device.public_key, platform.node() or "this computer")
            vendor_key = api.vendor_key()
            agent.trust(vendor_key.public_key)
            licenses = api.licenses()
            # the home store's licenses only: another member's license 1 is not this one
            held = {a.license_id: a.serial for a in agent.status().licenses if a.issuer is None}
            problems = []
            for lic in licenses:
                if lic.device_id is not None and lic.device_id != device.device_id:
                    continue    # bound to the user's other computer: its code is for that one only
                if held.get(str(lic.id), -1) >= lic.serial:
                    continue    # the agent already has this code (or a newer one)
                try:
                    code = api.license_code(lic.id, device.device_id)
                    agent.install(code.authorization_code)
                except (ApiError, AgentError) as exc:
                    if isinstance(exc, SessionExpired):
                        raise
                    problems.append(f"{lic.product_name}: {exc.user_message}")
            status = agent.status().licenses
            members = member_licenses(status)
            return (device.device_id, vendor_key, licenses, status, problems, members,
                    _installed_ids(root, licenses, status, members))

        def done(value):
            self.device_id, vendor_key, licenses, status, problems, members, installed_ids = value
            cache.set_vendor_key(vendor_key)
            cache.data["username"] = self.me.username if self.me is not None else ""
            self._update_library(licenses, status, installed_ids, members=members)
            if problems:
                self.message.emit("Some licenses could not be brought to this computer: "
                                  + "; ".join(problems), "warning")

        def failed(error):
            self.message.emit(getattr(error, "user_message", str(error)), "error")

        self.call(work, done, failed)

    def refresh_library(self, on_done=None) -> None:
        """Server licenses when on-line; the agent's own counts always (no network needed)."""
        api, agent, cache, root = self.api, self.agent, self.cache, self.install_dir
        signed_in = self.api.token is not None
        member_licenses = self.member_licenses if signed_in else (lambda _status: {})

        def work():
            licenses = None
            if signed_in:
                try:
                    licenses = api.licenses()
                except NetworkError:
                    licenses = None   # off-line: the cached list stands
            try:
                status = agent.status().licenses
            except AgentError:
                status = None
            members = member_licenses(status or cache.agent) if licenses is not None else {}
            return licenses, status, members, _installed_ids(root, licenses or cache.licenses, status or cache.agent,
                                                             members or cache.member_licenses)

        def done(value):
            licenses, status, members, installed_ids = value
            if signed_in:
                self.set_offline(licenses is None)
            self._update_library(licenses, status, installed_ids, members=members)
            if on_done:
                on_done()

        run_async(work, done, lambda e: self.message.emit(e.user_message, "error"))

    def load_cached_library(self) -> None:
        cache, root = self.cache, self.install_dir
        run_async(lambda: _installed_ids(root, cache.licenses, cache.agent, cache.member_licenses),
                  lambda ids: self._update_library(None, None, ids, record=False))

    def member_licenses(self, status: list[AgentLicense]) -> dict[str, list[License]]:
        """Each member's own list of the user's licenses there (GET /v1/licenses through the
        session there), for the members whose licenses the agent holds. A member that cannot be
        reached keeps its cached list. Blocking: a worker thread."""
        mall, sessions = self.mall.mall, self.mall.sessions
        found: dict[str, list[License]] = {}
        if mall is None:
            return found
        for member_id in sorted({a.issuer for a in status if a.issuer}):
            member = mall.member(member_id)
            if member is None or member_id == mall.member_id:
                continue
            try:
                found[member_id] = sessions.call(member, lambda c: c.licenses())
            except SessionExpired:
                raise
            except ApiError:
                continue        # not reachable, or it refused: the agent's view (and the cache) stand
        return found

    def _update_library(self, licenses: list[License] | None, status: list[AgentLicense] | None,
                        installed_ids: set[str], record: bool = True,
                        members: dict[str, list[License]] | None = None) -> None:
        lic = licenses if licenses is not None else self.cache.licenses
        st = status if status is not None else self.cache.agent
        known_members = {**self.cache.member_licenses, **(members or {})}
        names = {m.member_id: m.name for m in self.mall.mall.members} if self.mall.mall is not None else {}
        entries = build_entries(lic, st, installed_ids, device_id=self.device_id, member_licenses=known_members)
        self.entries = [replace(e, store_name=names.get(e.issuer, "")) if e.issuer else e for e in entries]
        if record:
            if members:
                self.cache.record_members(members)
            self.cache.record(licenses, status, {history_key(e): e.remaining for e in self.entries
                                                 if e.remaining is not None})
        self.libraryChanged.emit()
        # one notice per threshold crossing, not per poll: a license notifies when it goes
        # from above to under its threshold; an extension (back above) arms it again
        for e in self.entries:
            key = history_key(e)
            if e.warning and key not in self._low_now:
                self._low_now.add(key)
                self.lowRental.emit(e)
            elif not e.warning and e.agent_known:
                self._low_now.discard(key)

    def installed_product_ids(self) -> set[str]:
        """Product keys (LibraryEntry.product_key: the bare id for the home store's)."""
        return {e.product_key for e in self.entries if e.installed}

    def install_codes(self, deliveries: list[Delivery], on_done=None) -> None:
        agent = self.agent

        def work():
            problems = []
            for d in deliveries:
                try:
                    agent.install(d.authorization_code)
                except AgentError as exc:
                    problems.append(exc.user_message)
            return problems

        def done(problems):
            if problems:
                self.message.emit("The license agent refused a code: " + "; ".join(problems), "error")
            self.refresh_library(on_done)

        run_async(work, done)


def _installed_ids(root: Path, licenses: list[License], status: list[AgentLicense],
                   members: dict[str, list[License]] | None = None) -> set[str]:
    """Which of these products are installed here, as product keys (bare ids at home, `MEMBER/ID`
    at another member): disk reads, call on a worker thread."""
    keys = {str(x.product_id) for x in licenses}
    keys |= {product_ref(a.product_id, a.issuer) for a in status}
    keys |= {product_ref(lic.product_id, member) for member, listed in (members or {}).items() for lic in listed}
    return {key for key in keys if installer.installed(root, key) is not None}
