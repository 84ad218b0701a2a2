"""The open-token panel of the wallet (issue 12, FIG 18-20): the open account beside the
members' own tokens.

The lots, their cash value and the statement are the MSP's (GET /v1/open-wallet and
/activity through an MSP session: desktop_app.mall.sessions); buying and giving go through the
home store; every call runs off the UI thread (AppState.call). The balance chart plots the
MSP's ``balance_after`` of each statement line.
"""
from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter, QTableView,
                               QVBoxLayout, QWidget)

from desktop_app.api.client import ApiClient, ApiError
from desktop_app.api.replies import (GiveStatus, OpenActivityLine, OpenGiftCertificate, OpenKind, OpenPurchaseStatus,
                                     OpenTokenPurchase, OpenWallet, Redeemed)
from desktop_app.money import format_cents
from desktop_app.open.dialogs import BuyOpenTokensDialog, GiveGiftDialog, RedeemDialog, day_text
from desktop_app.open.model import OpenActivityModel, OpenLotsModel, balance_series
from desktop_app.widgets.chart import LineChart
from desktop_app.widgets.common import Banner

ACTIVITY_LIMIT = 200


def givable(purchases: list[OpenTokenPurchase]) -> list[OpenTokenPurchase]:
    """The user's issued gift certificates not given yet: the ones the store can give (the MSP
    refuses one spent or redeemed meanwhile)."""
    return [p for p in purchases if p.kind == OpenKind.GIFT_CERTIFICATE and p.status == OpenPurchaseStatus.ISSUED
            and p.gift_certificate is not None and p.gift_certificate.give_status != GiveStatus.GIVEN]


def certificate_lines(certificates: list[OpenGiftCertificate]) -> list[str]:
    """'$25.00 from Mall A, $25.00 left, expires 2027-12-02 (yours)' per certificate, as the MSP says."""
    out = []
    for c in certificates:
        whose = "yours" if c.held else (f"given to {c.recipient_name}" if c.recipient_name else "given")
        expires = "expired" if c.expired else f"expires {day_text(c.expires_at)}"
        out.append(f"{format_cents(c.face_cents)} from {c.seller_name}, {c.tokens:,} open tokens left, "
                   f"{expires} ({whose})")
    return out


class OpenTokensPanel(QGroupBox):
    """Lots (kind, issuer, expiry, tokens, cash value), the statement and its chart, and the ways
    to buy, give and redeem."""

    changed = Signal()              # the open wallet was read again

    def __init__(self, state: Any, parent: QWidget | None = None) -> None:
        super().__init__("Open tokens and gift certificates (good across the mall)", parent)
        self.setObjectName("wallet_open")
        self.state = state
        self.wallet: OpenWallet | None = None
        self.purchases: list[OpenTokenPurchase] = []
        self._read_failed = False
        self.banner = Banner(self, objectName="open_banner")
        self.total = QLabel(objectName="open_total")
        self.total.setStyleSheet("font-size:13pt;font-weight:600;")
        self.certificates = QLabel(objectName="open_certificates", wordWrap=True)
        self.certificates.hide()
        self.lots = OpenLotsModel(self)
        self.activity = OpenActivityModel(self)
        self.lots_view = self._table(self.lots, "open_lots", "Your open tokens: one line per kind, issuer and expiry")
        self.activity_view = self._table(self.activity, "open_activity", "Your open tokens' statement")
        self.activity_view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.chart = LineChart("Open tokens over time")
        self.chart.setObjectName("open_chart")
        self.buy_button = QPushButton("Buy &open tokens…", objectName="open_buy")
        self.gift_button = QPushButton("Buy a &gift certificate…", objectName="open_buy_gift")
        self.give_button = QPushButton("G&ive a gift certificate…", objectName="open_give")
        self.redeem_button = QPushButton("Re&deem a code…", objectName="open_redeem")
        self.buy_button.clicked.connect(lambda: self.open_buy())
        self.gift_button.clicked.connect(lambda: self.open_buy(gift=True))
        self.give_button.clicked.connect(lambda: self.open_give())
        self.redeem_button.clicked.connect(lambda: self.open_redeem())
        top = QHBoxLayout()
        top.addWidget(self.total, 1)
        for b in (self.buy_button, self.gift_button, self.give_button, self.redeem_button):
            top.addWidget(b)
        top_row = QSplitter(Qt.Orientation.Horizontal)     # the lots beside their chart, the statement below
        top_row.addWidget(self.lots_view)
        top_row.addWidget(self.chart)
        top_row.setStretchFactor(0, 3)
        top_row.setStretchFactor(1, 2)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top_row)
        split.addWidget(self.activity_view)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.certificates)
        layout.addWidget(split, 1)
        self._show_total()
        state.meChanged.connect(lambda me: self.clear() if me is None else None)
        state.mall.mallChanged.connect(self._mall_changed)

    @staticmethod
    def _table(model: Any, name: str, accessible: str) -> QTableView:
        view = QTableView(objectName=name)
        view.setModel(model)
        view.setAccessibleName(accessible)
        view.verticalHeader().hide()
        view.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        view.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        view.horizontalHeader().setStretchLastSection(True)
        return view

    # -- reading the open wallet ---------------------------------------------------------------
    def msp_url(self) -> str | None:
        mall = self.state.mall.mall
        return mall.msp_url if mall is not None else None

    def at_msp(self, fn: Any) -> Any:
        """``fn(client at the MSP)`` through the MSP session (blocking: a worker thread)."""
        url, sessions = self.msp_url(), self.state.mall.sessions
        if url is None:
            raise ApiError("This store is in no mall: there are no open tokens here.")
        return sessions.call_msp(url, fn)

    def refresh(self) -> None:
        if not self.state.signed_in or self.msp_url() is None:
            return
        at_msp, api = self.at_msp, self.state.api

        def read_msp(c: ApiClient) -> tuple[OpenWallet, list[OpenActivityLine]]:
            return c.open_wallet(), c.open_activity(limit=ACTIVITY_LIMIT)

        self.state.call(lambda: at_msp(read_msp), self.set_account, self._failed)
        self.state.call(api.open_token_purchases, self._purchases, lambda _e: None)

    def set_account(self, account: tuple[OpenWallet, list[OpenActivityLine]]) -> None:
        wallet, lines = account
        self.wallet = wallet
        self.lots.set_wallet(wallet)
        self.activity.set_lines(lines, wallet.lots)
        self.chart.set_points(balance_series(lines, wallet.lots), until=time.time())
        if self._read_failed:
            self.banner.clear_message()         # the last read's failure is over (a success note stays)
            self._read_failed = False
        self._show_total()
        self.changed.emit()

    def _purchases(self, purchases: list[OpenTokenPurchase]) -> None:
        self.purchases = purchases
        waiting = [p for p in purchases if p.status == OpenPurchaseStatus.AWAITING_PAYMENT]
        if waiting:
            self.banner.show_message("Waiting for your payment: " + "; ".join(
                f"invoice {p.invoice_number or p.id}, {format_cents(p.price_cents)}" for p in waiting), "info")

    def _failed(self, error: ApiError) -> None:
        self._read_failed = True
        self.banner.show_message(f"Your open tokens could not be read: {error.user_message}", "error")

    def _show_total(self) -> None:
        self._show_certificates()
        wallet = self.wallet
        if wallet is None:
            self.total.setText("Open tokens: —")
            return
        self.total.setText(f"Open tokens worth {format_cents(wallet.value_cents)} "
                           f"(one open token is {format_cents(wallet.unit_value_cents)})")

    def clear(self) -> None:
        """Signed out: the last user's open wallet is not shown to the next."""
        self.wallet, self.purchases = None, []
        self.lots.set_wallet(None)
        self.activity.set_lines([])
        self.chart.set_points([])
        self.banner.clear_message()
        self._show_total()

    def _show_certificates(self) -> None:
        wallet = self.wallet
        lines = certificate_lines(wallet.gift_certificates) if wallet is not None else []
        self.certificates.setText("Gift certificates: " + "; ".join(lines) if lines else "")
        self.certificates.setVisible(bool(lines))

    def _mall_changed(self, mall: Any) -> None:
        self.setVisible(mall is not None)
        if mall is not None:
            self.activity.set_member_names({m.member_id: m.name for m in mall.members})
            if self.wallet is None:
                self.refresh()          # the directory arrived after the wallet asked

    # -- the dialogs ------------------------------------------------------------------------------
    def _after(self, done: str) -> None:
        self.refresh()
        self.banner.show_message(done, "success")

    def open_buy(self, gift: bool = False, suggested_kind: str | None = None,
                 suggested_tokens: int = 0) -> BuyOpenTokensDialog:
        dialog = BuyOpenTokensDialog(self.state, self, gift=gift, suggested_kind=suggested_kind,
                                     suggested_tokens=suggested_tokens)
        dialog.purchased.connect(lambda _a: self.refresh())
        self.buy_dialog = dialog
        dialog.open()
        return dialog

    def open_give(self) -> GiveGiftDialog:
        dialog = GiveGiftDialog(self.state, givable(self.purchases), self)
        dialog.given.connect(lambda _a: self._after("The gift certificate is theirs now."))
        self.give_dialog = dialog
        dialog.open()
        return dialog

    def open_redeem(self) -> RedeemDialog:
        at_msp = self.at_msp

        def redeem(code: str) -> Redeemed:
            return at_msp(lambda c: c.redeem_gift_certificate(code))

        dialog = RedeemDialog(self.state, redeem, self)
        dialog.redeemed.connect(lambda _a: self._after("The gift certificate is in your open wallet."))
        self.redeem_dialog = dialog
        dialog.open()
        return dialog
