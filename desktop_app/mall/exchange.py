"""The exchange dialog (FIG 15): home tokens into another member's, quote first, then confirm.

The quote is the server's (N asked, N' that move, M that arrive, the value and the fees,
locked until its expiry, counted down here). Confirming sends one Idempotency-Key per
attempt: after a lost answer "Confirm" again sends the same key (the exchange happens at
most once); after a refusal (final for its key) the next try gets a new key.
"""
from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QPushButton, QSpinBox,
                               QVBoxLayout)

from desktop_app.api.client import ApiError, needs_new_key, new_idempotency_key
from desktop_app.api.replies import Exchange, ExchangeQuote, MallMember
from desktop_app.mall.rates import token_count_text
from desktop_app.money import format_cents
from desktop_app.widgets.common import Banner


class ExchangeDialog(QDialog):
    exchangeStarted = Signal(object)      # Exchange (201: pending, or already completed/failed)

    def __init__(self, state, parent=None, *, to_member: str = "", tokens: int = 0):
        super().__init__(parent)
        self.state = state
        self.mall_state = state.mall
        self.setWindowTitle(self.tr("Exchange tokens"))
        self.setAccessibleName(self.tr("Exchange tokens"))
        self.setMinimumWidth(480)
        self.quote: ExchangeQuote | None = None
        self.idempotency_key = new_idempotency_key()
        self.busy = False
        mall = self.mall_state.mall
        self.home: MallMember | None = mall.home if mall is not None else None
        home_token = self.home.token.name if self.home is not None else self.tr("tokens")

        self.member = QComboBox(objectName="exchange_member")
        self.member.setAccessibleName(self.tr("Exchange into the tokens of"))
        for m in (mall.members if mall is not None else []):
            if m.member_id != mall.member_id and m.active:
                self.member.addItem(f"{m.name} ({m.token.name}, {format_cents(m.token.value_cents)})", m.member_id)
        if to_member:
            self.member.setCurrentIndex(max(0, self.member.findData(to_member)))
        self.tokens = QSpinBox(objectName="exchange_tokens", minimum=1, maximum=10_000_000)
        self.tokens.setAccessibleName(self.tr("{token} to exchange").format(token=home_token))
        self.tokens.setValue(max(1, tokens or min(100, max(1, state.available_tokens))))
        self.tokens.setSuffix(f" {home_token}")
        self.available = QLabel(self.tr("You have {n}.").format(
            n=token_count_text(state.available_tokens, home_token)), objectName="exchange_available")
        self.quote_button = QPushButton(self.tr("&Get a quote"), objectName="exchange_quote")
        self.quote_button.clicked.connect(self.ask_quote)
        self.details = QLabel(objectName="exchange_details", wordWrap=True)
        self.details.setAccessibleName(self.tr("Quote"))
        self.countdown = QLabel(objectName="exchange_countdown")
        self.banner = Banner(objectName="exchange_banner")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.confirm_button = self.buttons.addButton(self.tr("&Confirm exchange"),
                                                     QDialogButtonBox.ButtonRole.AcceptRole)
        self.confirm_button.setObjectName("exchange_confirm")
        self.confirm_button.setEnabled(False)
        self.confirm_button.clicked.connect(self.confirm)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow(self.tr("&To:"), self.member)
        form.addRow(self.tr("&Tokens:"), self.tokens)
        form.addRow("", self.available)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.quote_button)
        layout.addWidget(self.details)
        layout.addWidget(self.countdown)
        layout.addWidget(self.banner)
        layout.addWidget(self.buttons)
        self.member.currentIndexChanged.connect(self._input_changed)
        self.tokens.valueChanged.connect(self._input_changed)
        self._tick = QTimer(self, interval=1000)
        self._tick.timeout.connect(self._update_countdown)
        if self.member.count() == 0:
            self.quote_button.setEnabled(False)
            self.banner.show_message(self.tr("No other member of the mall takes exchanges now."), "warning")

    # -- quote ----------------------------------------------------------------------
    def _input_changed(self, *_) -> None:
        """Another member or amount: the quote on show no longer applies."""
        self.quote = None
        self._tick.stop()
        self.details.setText("")
        self.countdown.setText("")
        self.confirm_button.setEnabled(False)

    def ask_quote(self) -> None:
        to_member, tokens, api = self.member.currentData(), self.tokens.value(), self.state.api
        if not to_member or self.busy:
            return
        self.busy = True
        self.quote_button.setEnabled(False)
        self.banner.clear_message()

        def done(quote: ExchangeQuote) -> None:
            self.busy = False
            self.quote_button.setEnabled(True)
            self.show_quote(quote)

        def failed(error: ApiError) -> None:
            self.busy = False
            self.quote_button.setEnabled(True)
            self.banner.show_message(error.user_message, "error")

        self.state.call(lambda: api.exchange_quote(to_member, tokens), done, failed)

    def show_quote(self, quote: ExchangeQuote) -> None:
        self.quote = quote
        self.idempotency_key = new_idempotency_key()      # a new quote is a new exchange
        mall = self.mall_state.mall
        to = mall.member(quote.to_member) if mall is not None else None
        home_token = self.home.token.name if self.home is not None else ""
        to_token = to.token.name if to is not None else quote.to_member
        kept = quote.tokens_asked - quote.tokens_from
        lines = [
            self.tr("{out} leave your wallet; you get {got} at {to}.").format(
                out=token_count_text(quote.tokens_from, home_token), got=token_count_text(quote.tokens_to, to_token),
                to=to.name if to is not None else quote.to_member),
            self.tr("Value: {value}. Network fees (paid by the stores): {fees}.").format(
                value=format_cents(quote.value_cents), fees=format_cents(quote.fees_cents)),
        ]
        if kept:
            lines.append(self.tr("{kept} stay with you: they would not buy a whole {to_token}.").format(
                kept=token_count_text(kept, home_token), to_token=to_token))
        self.details.setText("\n".join(lines))
        self.confirm_button.setEnabled(True)
        self._update_countdown()
        self._tick.start()

    def seconds_left(self) -> int:
        if self.quote is None:
            return 0
        return max(0, int((self.quote.expires_at - datetime.now(UTC)).total_seconds()))

    def _update_countdown(self) -> None:
        left = self.seconds_left()
        if self.quote is None:
            return
        if left <= 0:
            self._tick.stop()
            self.confirm_button.setEnabled(False)
            self.countdown.setText(self.tr("The quote expired: get a new one."))
            return
        self.countdown.setText(self.tr("This rate holds for {m}:{s:02d}.").format(m=left // 60, s=left % 60))

    # -- confirm ------------------------------------------------------------------------
    def confirm(self) -> None:
        quote, key, api = self.quote, self.idempotency_key, self.state.api
        if quote is None or self.busy:
            return
        self.busy = True
        self.confirm_button.setEnabled(False)
        self.banner.show_message(self.tr("Sending…"), "info")

        def done(exchange: Exchange) -> None:
            self.busy = False
            self._tick.stop()
            self.mall_state.track(exchange)
            self.exchangeStarted.emit(exchange)
            self.accept()

        def failed(error: ApiError) -> None:
            self.busy = False
            if needs_new_key(error):
                self.idempotency_key = new_idempotency_key()
                if error.status in (404, 409):         # the quote is gone: a new one is needed
                    self._input_changed()
            self.confirm_button.setEnabled(self.quote is not None and self.seconds_left() > 0)
            self.banner.show_message(error.user_message, "error")

        self.state.call(lambda: api.confirm_exchange(quote.quote_id, key), done, failed)

    def done(self, result: int) -> None:        # noqa: D401  (QDialog.done)
        self._tick.stop()
        super().done(result)
