"""Wallet: buy tokens (card or off-line), statement with a balance chart, transfers (FIG 11).

Idempotency keys: one per purchase or transfer the user means. A retry after a lost answer
(off-line, a timeout, a 5xx) sends the same key, so nothing is charged or sent twice; any
edit of the form, or a refusal (a declined card, a wrong PIN: the first answer is final for
its key), makes the next try a new request with a new key."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QRadioButton,
                               QSpinBox, QSplitter, QStackedWidget, QTableView, QVBoxLayout, QWidget)

from desktop_app.api.client import needs_new_key, new_idempotency_key
from desktop_app.api.replies import Bundle, Ledger, PurchaseStatus, TokenPurchase, Transfer
from desktop_app.money import format_cents
from desktop_app.open.page import OpenTokensPanel
from desktop_app.wallet.model import LedgerModel, balance_series
from desktop_app.widgets.chart import LineChart
from desktop_app.widgets.common import Banner, action_buttons

OFFLINE_METHODS = [("check", "Check"), ("money_order", "Money order"), ("purchase_order", "Purchase order")]


def bundle_text(bundle: Bundle, pricing) -> str:
    parts = [f"{bundle.name}: {bundle.tokens:,} tokens", format_cents(bundle.price_cents, pricing.currency)]
    if bundle.discount_percent:
        parts.append(f"{bundle.discount_percent:g}% off")
    return " — ".join(parts)


def bundle_price_text(bundle: Bundle, pricing) -> str:
    """The bundle's cash price, and what it saves: '$18.00 (10% off $20.00)' (the server's figures)."""
    text = format_cents(bundle.price_cents, pricing.currency)
    if bundle.discount_percent and bundle.list_price_cents != bundle.price_cents:
        text += f" ({bundle.discount_percent:g}% off {format_cents(bundle.list_price_cents, pricing.currency)})"
    return text


class BuyTokensDialog(QDialog):
    """Buys the home store's tokens; or, given ``offers``, ``pricing`` and ``purchase`` (a blocking
    call ``(method, tokens, bundle_id, card, key) -> TokenPurchase``), another member's by card
    through the session there (desktop_app.mall.buy)."""

    purchased = Signal(object)

    def __init__(self, state, parent=None, *, suggested_tokens: int = 0, offers=None, pricing=None,
                 purchase=None, title: str = "Buy tokens"):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle(title)
        offers = offers if offers is not None else state.token_offers
        self.pricing = pricing if pricing is not None else state.pricing
        self._purchase = purchase
        self.bundles = list(offers.bundles) if offers is not None else []
        self.idempotency_key = new_idempotency_key()
        self.banner = Banner(self)

        self.amount = QComboBox(objectName="buy_amount")
        self.amount.addItem("A number of tokens", None)
        for b in self.bundles:
            self.amount.addItem(bundle_text(b, self.pricing), b.id)
        self.tokens = QSpinBox(objectName="buy_tokens")
        self.tokens.setRange(1, 1_000_000)
        minimum = state.me.min_tokens if purchase is None and state.me is not None and not state.active else 0
        self.tokens.setValue(max(suggested_tokens, minimum, 1))
        self.cash = QLabel(objectName="buy_cash")
        self._own_tokens = None        # the number the user typed, kept while a bundle is chosen
        self.tokens.valueChanged.connect(self._update_cash)
        self.amount.currentIndexChanged.connect(self._update_cash)

        self.method_group = QButtonGroup(self)
        self.card_radio = QRadioButton("&Card", objectName="buy_card")
        self.card_radio.setChecked(True)
        self.method_group.addButton(self.card_radio)
        self.offline_radios = {}
        methods = QHBoxLayout()
        methods.addWidget(self.card_radio)
        for key, label in OFFLINE_METHODS if purchase is None else ():   # another store's: by card only
            radio = QRadioButton(label, objectName=f"buy_{key}")
            self.offline_radios[key] = radio
            self.method_group.addButton(radio)
            methods.addWidget(radio)
        self.card_number = QLineEdit(objectName="card_number")
        self.card_number.setPlaceholderText("4242 4242 4242 4242")
        self.card_expiry = QLineEdit(objectName="card_expiry")
        self.card_expiry.setPlaceholderText("MM/YY")
        self.card_cvc = QLineEdit(objectName="card_cvc")
        self.card_cvc.setMaxLength(4)
        self.card_cvc.setEchoMode(QLineEdit.EchoMode.Password)
        self.card_box = QGroupBox("Card")
        cf = QFormLayout(self.card_box)
        cf.addRow("Card &number:", self.card_number)
        cf.addRow("E&xpiry:", self.card_expiry)
        cf.addRow("C&VC:", self.card_cvc)
        self.offline_note = QLabel("You will get an invoice number. Send your payment quoting it; the "
                                   "tokens arrive when the vendor has received it.")
        self.offline_note.setWordWrap(True)
        self.method_stack = QStackedWidget()
        self.method_stack.addWidget(self.card_box)
        self.method_stack.addWidget(self.offline_note)
        self.method_group.buttonToggled.connect(
            lambda *_: self.method_stack.setCurrentIndex(0 if self.card_radio.isChecked() else 1))
        self.method_group.buttonToggled.connect(self._new_key)
        for field in (self.card_number, self.card_expiry, self.card_cvc):
            field.textChanged.connect(self._new_key)      # another card: another request

        form = QFormLayout()
        form.addRow("&Amount:", self.amount)
        form.addRow("&Tokens:", self.tokens)
        form.addRow("Price:", self.cash)
        self.buttons, self.buy_button = action_buttons(self, "&Buy", "buy_button", self.buy,
                                                       QDialogButtonBox.StandardButton.Close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        layout.addLayout(methods)
        layout.addWidget(self.method_stack)
        layout.addWidget(self.buttons)
        self._update_cash()

    def method(self) -> str:
        if self.card_radio.isChecked():
            return "card"
        return next(k for k, r in self.offline_radios.items() if r.isChecked())

    def _bundle(self) -> Bundle | None:
        bundle_id = self.amount.currentData()
        return next((b for b in self.bundles if b.id == bundle_id), None) if bundle_id is not None else None

    def _update_cash(self, *_):
        bundle = self._bundle()
        pricing = self.pricing
        if bundle is None:
            if not self.tokens.isEnabled() and self._own_tokens is not None:
                self._set_tokens(self._own_tokens)      # back from a bundle: the user's own number
            self.tokens.setEnabled(True)
            self.cash.setText(pricing.tokens_text(self.tokens.value()))
        else:
            if self.tokens.isEnabled():
                self._own_tokens = self.tokens.value()
            self.tokens.setEnabled(False)
            self._set_tokens(bundle.tokens)   # what the bundle gives
            self.cash.setText(bundle_price_text(bundle, pricing))
        self._new_key()                      # a different purchase: a new key

    def _new_key(self, *_) -> None:
        self.idempotency_key = new_idempotency_key()

    def _set_tokens(self, value: int) -> None:
        self.tokens.blockSignals(True)
        self.tokens.setValue(value)
        self.tokens.blockSignals(False)

    def buy(self) -> None:
        method = self.method()
        card = None
        if method == "card":
            card = {"card_number": self.card_number.text().replace(" ", ""),
                    "card_expiry": self.card_expiry.text().strip(), "card_cvc": self.card_cvc.text().strip()}
            if not all(card.values()):
                self.banner.show_message("Enter the card number, expiry and CVC.", "error")
                return
        bundle_id = self.amount.currentData()
        tokens = None if bundle_id is not None else self.tokens.value()
        self.buy_button.setEnabled(False)
        self.banner.show_message("Sending…", "info")
        api, key, purchase = self.state.api, self.idempotency_key, self._purchase
        if purchase is not None:
            self.state.call(lambda: purchase(method, tokens, bundle_id, card, key), self._done, self._failed)
            return
        self.state.call(lambda: api.buy_tokens(method=method, tokens=tokens, bundle_id=bundle_id, card=card,
                                               idempotency_key=key), self._done, self._failed)

    def _done(self, answer: TokenPurchase) -> None:
        self.buy_button.setEnabled(True)
        self.last_answer = answer
        pending = answer.status == PurchaseStatus.PENDING
        if pending:
            self.banner.show_message(f"Invoice number {answer.invoice_number}: waiting for your payment (pending). "
                                     f"Quote this number with your payment.", "info")
            self.buy_button.setText("&Buy again")
            self._new_key()
        else:
            have = (f"{answer.available_tokens:,} tokens" if self._purchase is None
                    else self.pricing.tokens_text(answer.available_tokens))
            self.banner.show_message(f"Done. You now have {have}.", "success")
        self.purchased.emit(answer)
        if not pending:
            self.accept()

    def _failed(self, error) -> None:
        self.buy_button.setEnabled(True)
        if needs_new_key(error):
            self._new_key()         # e.g. a declined card: that answer is final for the old key
        self.banner.show_message(error.user_message, "error")


class TransferDialog(QDialog):
    """FIG 11: the recipient's username AND full name must match; your PIN confirms."""

    transferred = Signal(object)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Send tokens to another user")
        self.idempotency_key = new_idempotency_key()
        self.banner = Banner(self)
        self.to_username = QLineEdit(objectName="transfer_username")
        self.to_full_name = QLineEdit(objectName="transfer_full_name")
        self.tokens = QSpinBox(objectName="transfer_tokens")
        self.tokens.setRange(1, 10_000_000)
        self.pin = QLineEdit(objectName="transfer_pin")
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        for w in (self.to_username, self.to_full_name, self.pin):
            w.textChanged.connect(self._new_key)
        self.tokens.valueChanged.connect(self._new_key)
        self.cash = QLabel(objectName="transfer_cash")          # FIG 17: what the tokens are worth
        self.tokens.valueChanged.connect(self._update_cash)
        form = QFormLayout()
        form.addRow("Recipient's &username:", self.to_username)
        form.addRow("Recipient's &full name:", self.to_full_name)
        form.addRow("&Tokens:", self.tokens)
        form.addRow("Worth:", self.cash)
        self.balance = QLabel(objectName="transfer_balance")
        form.addRow("You have:", self.balance)
        form.addRow("Your &PIN:", self.pin)
        self.buttons, self.send_button = action_buttons(self, "&Send", "transfer_send", self.send,
                                                        QDialogButtonBox.StandardButton.Cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self._update_cash()

    def _update_cash(self, *_):
        pricing = self.state.pricing
        self.cash.setText(pricing.tokens_text(self.tokens.value()))
        self.balance.setText(pricing.tokens_text(self.state.available_tokens))

    def _new_key(self, *_):
        self.idempotency_key = new_idempotency_key()

    def send(self) -> None:
        to_user, to_name, pin = self.to_username.text().strip(), self.to_full_name.text().strip(), self.pin.text()
        if not to_user or not to_name or not pin:
            self.banner.show_message("Enter the recipient's username and full name, and your PIN.", "error")
            return
        tokens, key, api = self.tokens.value(), self.idempotency_key, self.state.api
        self.send_button.setEnabled(False)

        def failed(error):
            self.send_button.setEnabled(True)
            if needs_new_key(error):
                self._new_key()     # e.g. a wrong PIN: that answer is final for the old key
            messages = {403: "That PIN is not right.",
                        404: "No user has that username and full name. Check both."}
            self.banner.show_message(messages.get(error.status, error.user_message), "error")

        def done(answer: Transfer):
            self.send_button.setEnabled(True)
            self.transferred.emit(answer)
            self.accept()

        self.state.call(lambda: api.transfer(to_user, to_name, tokens, pin, key), done, failed)


class WalletPage(QWidget):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.banner = Banner(self)
        self.balance = QLabel(objectName="wallet_balance")
        self.balance.setStyleSheet("font-size:18pt;font-weight:600;")
        self.buy_button = QPushButton("&Buy tokens…", objectName="wallet_buy")
        self.transfer_button = QPushButton("Send &tokens…", objectName="wallet_transfer")
        self.refresh_button = QPushButton("Re&fresh", objectName="wallet_refresh")
        self.buy_button.clicked.connect(lambda: self.open_buy())
        self.transfer_button.clicked.connect(self.open_transfer)
        self.refresh_button.clicked.connect(self.refresh)
        self.ledger = LedgerModel(self)
        self.ledger.set_pricing(state.pricing)
        state.pricingChanged.connect(self.ledger.set_pricing)
        self.table = QTableView(objectName="wallet_statement")
        self.table.setModel(self.ledger)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.pending = QLabel(objectName="wallet_pending")
        self.pending.setWordWrap(True)
        self.pending.hide()
        self.chart = LineChart("Balance over time")
        self.chart.setObjectName("wallet_chart")
        top = QHBoxLayout()
        top.addWidget(self.balance, 1)
        for b in (self.buy_button, self.transfer_button, self.refresh_button):
            top.addWidget(b)
        self.mall_box = self._mall_box(state)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.chart)
        split.addWidget(self.table)
        split.addWidget(self.mall_box)
        self.open_panel = OpenTokensPanel(state, self)          # issue 12: beside the members' tokens
        self.open_panel.setVisible(state.mall.mall is not None)
        split.addWidget(self.open_panel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(top)
        layout.addWidget(self.pending)
        layout.addWidget(split, 1)
        state.meChanged.connect(self._me_changed)
        state.pricingChanged.connect(lambda _p: self._me_changed(state.me))
        self._me_changed(state.me)

    def _mall_box(self, state) -> QGroupBox:
        """Across the mall: the tokens at each member (their own answers) and the exchanges."""
        box = QGroupBox(self.tr("Your tokens across the mall"), objectName="wallet_mall")
        members = QTableView(objectName="wallet_mall_members")
        members.setAccessibleName(self.tr("Your tokens at each store of the mall"))
        exchanges = QTableView(objectName="wallet_exchanges")
        exchanges.setAccessibleName(self.tr("Your exchanges"))
        members.setModel(state.mall.members)
        exchanges.setModel(state.mall.exchanges)
        for view in (members, exchanges):
            view.verticalHeader().hide()
            view.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
            view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            view.horizontalHeader().setStretchLastSection(True)
        self.mall_members, self.exchanges = members, exchanges
        row = QHBoxLayout(box)
        row.addWidget(members, 3)
        row.addWidget(exchanges, 2)
        box.setVisible(state.mall.mall is not None)
        state.mall.mallChanged.connect(lambda mall: box.setVisible(mall is not None))
        return box

    def _me_changed(self, me) -> None:
        if not me:
            self.balance.setText("Sign in to see your wallet")
            self.banner.clear_message()
            self.ledger.clear()            # the last user's statement is not shown to the next
            self.chart.set_points([])
            return
        self.balance.setText(f"Balance: {self.state.pricing.tokens_text(self.state.available_tokens)}")
        if not me.active:
            from desktop_app.account.dialogs import activation_text
            self.banner.show_message(activation_text(me, self.state.pricing), "warning")
        else:
            self.banner.clear_message()

    def refresh(self) -> None:
        if not self.state.signed_in:
            return
        self.state.refresh_me()
        self.state.mall.refresh()
        self.open_panel.refresh()
        self.state.call(self.state.api.ledger, self._statement)
        self.state.call(self.state.api.token_purchases, self._purchases, lambda _e: None)

    def _purchases(self, purchases: list[TokenPurchase]) -> None:
        waiting = [p for p in purchases if p.status == PurchaseStatus.PENDING]
        if not waiting:
            self.pending.hide()
            return
        lines = [f"invoice {p.invoice_number}: {p.tokens:,} tokens by "
                 f"{p.method.replace('_', ' ')}, {format_cents(p.amount_cents)}"
                 for p in waiting]
        self.pending.setText("Waiting for your payment (pending): " + "; ".join(lines))
        self.pending.show()

    def _statement(self, ledger: Ledger) -> None:
        self.ledger.set_ledger(ledger)
        import time
        self.chart.set_points(balance_series(ledger), until=time.time())

    def open_buy(self, suggested_tokens: int = 0, on_done=None) -> BuyTokensDialog:
        dialog = BuyTokensDialog(self.state, self, suggested_tokens=suggested_tokens)
        dialog.purchased.connect(lambda _a: self.refresh())
        if on_done:
            dialog.purchased.connect(lambda a: on_done(a))
        self.buy_dialog = dialog
        dialog.open()
        return dialog

    def open_transfer(self) -> TransferDialog:
        dialog = TransferDialog(self.state, self)
        dialog.transferred.connect(lambda _a: (self.refresh(), self.banner.show_message(
            "Tokens sent.", "success")))
        self.transfer_dialog = dialog
        dialog.open()
        return dialog
