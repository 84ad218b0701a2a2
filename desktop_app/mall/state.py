"""The mall as the storefront knows it: the directory (GET /v1/mall at home), the user's
balance at each member, the exchanges and their polling. Every call runs off the UI thread
through AppState.call; the answers land in the item models."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.api.client import ApiError, NetworkError, SessionExpired
from desktop_app.api.replies import Category, Exchange, Mall, MallMember, Product
from desktop_app.mall.model import Balance, ExchangeModel, MallMembersModel
from desktop_app.mall.rates import MemberPricing
from desktop_app.mall.sessions import MemberSessions


class BrowsedStore:
    """Another member's catalog as it sent it, and how to show its prices."""

    def __init__(self, member: MallMember, categories: list[Category], products: list[Product],
                 pricing: MemberPricing):
        self.member = member
        self.categories = categories
        self.products = products
        self.pricing = pricing


class MallState(QObject):
    mallChanged = Signal(object)         # Mall, or None (this store is in no mall / not reached)
    balancesChanged = Signal()
    exchangeChanged = Signal(object)     # Exchange: a new status
    problem = Signal(str)                # why the directory could not be read

    POLL_MS = 1000

    def __init__(self, app_state, parent=None):
        super().__init__(parent)
        self.app = app_state
        self.sessions = MemberSessions(app_state.api)
        self.members = MallMembersModel(self)
        self.exchanges = ExchangeModel(self)
        self.mall: Mall | None = None
        self._poll = QTimer(self, interval=self.POLL_MS, singleShot=True)
        self._poll.timeout.connect(self._poll_pending)
        self._polling = False
        app_state.meChanged.connect(self._me_changed)
        app_state.userChanged.connect(self._forget)

    # -- the directory and balances --------------------------------------------------
    def refresh(self, on_done: Callable[[], None] | None = None) -> None:
        """The members, then (signed in) the balance at each, and the exchanges."""
        api = self.app.api

        def done(mall: Mall) -> None:
            self.mall = mall
            self.members.set_mall(mall)
            self.exchanges.set_mall(mall)
            self.mallChanged.emit(mall)
            if self.app.signed_in:
                self.refresh_balances(on_done)
                self.refresh_exchanges()
            elif on_done:
                on_done()

        def failed(error: ApiError) -> None:
            self.mall = None
            self.members.set_mall(None)
            self.mallChanged.emit(None)
            if error.status == 409:
                self.problem.emit(self.tr("This store has not joined a mall."))
            else:
                self.problem.emit(error.user_message)

        self.app.call(api.mall, done, failed)

    def refresh_balances(self, on_done: Callable[[], None] | None = None) -> None:
        mall, sessions, api = self.mall, self.sessions, self.app.api
        if mall is None:
            return

        def work() -> dict[str, Balance]:
            balances: dict[str, Balance] = {mall.member_id: Balance(api.me().available_tokens)}
            for m in mall.members:
                if m.member_id == mall.member_id:
                    continue
                try:
                    balances[m.member_id] = Balance(sessions.call(m, lambda c: c.me().available_tokens))
                except SessionExpired:
                    raise                 # the home session ended: sign in again, then this again
                except NetworkError:
                    balances[m.member_id] = Balance(None, self.tr("not reachable"))
                except ApiError as exc:   # a blocked member, a refused assertion: the server's words
                    balances[m.member_id] = Balance(None, exc.user_message)
            return balances

        def done(balances: dict[str, Balance]) -> None:
            self.members.set_balances(balances)
            self.balancesChanged.emit()
            if on_done:
                on_done()

        self.app.call(work, done)

    # -- exchanges ---------------------------------------------------------------------
    def refresh_exchanges(self) -> None:
        def done(rows: list[Exchange]) -> None:
            self.exchanges.set_exchanges(rows)
            self._start_polling()
        self.app.call(self.app.api.exchanges, done, lambda _e: None)

    def track(self, exchange: Exchange) -> None:
        """A confirmed exchange: on show at once, polled until it is completed or failed."""
        self.exchanges.update(exchange)
        self.exchangeChanged.emit(exchange)
        if exchange.pending:
            self._start_polling()
        else:
            self._finished()

    def _start_polling(self) -> None:
        if self.exchanges.pending() and not self._polling and not self._poll.isActive():
            self._poll.start()

    def _poll_pending(self) -> None:
        pending = [x.id for x in self.exchanges.pending()]
        if not pending or not self.app.signed_in:
            return
        api = self.app.api
        self._polling = True

        def done(rows: list[Exchange]) -> None:
            self._polling = False
            finished = False
            for x in rows:
                self.exchanges.update(x)
                if not x.pending:
                    finished = True
                    self.exchangeChanged.emit(x)
            if finished:
                self._finished()
            self._start_polling()

        def failed(_error: ApiError) -> None:     # off-line: the banner says so; try again later
            self._polling = False
            self._start_polling()

        self.app.call(lambda: [api.exchange(i) for i in pending], done, failed)

    def _finished(self) -> None:
        """An exchange ended: both balances changed."""
        self.app.refresh_me()
        self.refresh_balances()

    # -- another member's store ----------------------------------------------------------
    def open_store(self, member: MallMember, on_done: Callable[[BrowsedStore], None]) -> None:
        mall, sessions = self.mall, self.sessions
        if mall is None or mall.home is None:
            return
        pricing = MemberPricing(member, mall.home)

        def work() -> BrowsedStore:
            client = sessions.public(member)
            return BrowsedStore(member, client.categories(), client.products(), pricing)

        self.app.call(work, on_done)

    def pricing_at(self, member: MallMember) -> MemberPricing | None:
        home = self.mall.home if self.mall is not None else None
        return MemberPricing(member, home) if home is not None else None

    # -- who is signed in ----------------------------------------------------------------
    def _me_changed(self, me) -> None:
        if me is None:
            self._forget()

    def _forget(self) -> None:
        """Signed out or another user: no session elsewhere, no balances, no exchanges."""
        self.sessions.forget()
        self.members.clear_balances()
        self.exchanges.set_exchanges([])

    def run(self, fn, on_done=None, on_error=None) -> None:
        self.app.call(fn, on_done, on_error)

