"""Order list (FIG 8), confirmation (FIG 9), short of tokens (FIG 10).

Whether an order fits is the server's answer (the quote's ``payable`` and ``shortage``,
which count restricted tokens and a negative-draw limit), never RT and AT compared here.
Idempotency keys: one per attempt to place an order; "Try again" after a lost answer sends
the same key (never bought twice), a new attempt after a refusal sends a new one (the first
answer is final for its key).

Open tokens (issue 12): in a mall the order can be paid with this store's tokens only
(``closed``), its tokens first and open tokens for the rest (``auto``) or open tokens only
(``open``). Which open kinds pay is the MSP's plan, shown as the quote carries it before
confirming; the receipt names the kinds that paid and what is left of each.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QGridLayout,
                               QHBoxLayout, QHeaderView, QLabel, QListWidget, QPushButton,
                               QStyledItemDelegate, QTableView, QVBoxLayout, QWidget)

from desktop_app.api.client import (SessionExpired, ShortOfOpenTokens, ShortOfTokens, answer_lost, needs_new_key,
                                    new_idempotency_key)
from desktop_app.api.replies import Offer, OpenKind, OrderList, OrderPayment, Product, Quote, Receipt
from desktop_app.open.model import kinds_text, plan_lines, receipt_lines, units_text
from desktop_app.orders.model import OrderLine, OrderListModel, TierChoicesRole, lines_from_items
from desktop_app.widgets.common import Banner


class TierDelegate(QStyledItemDelegate):
    """A combo box of the offer's tiers (FIG 8: "101 - 1,000 for 80 tokens")."""

    def createEditor(self, parent, option, index):
        combo = QComboBox(parent)
        combo.addItems(index.data(TierChoicesRole) or [])
        combo.activated.connect(lambda _i: self.commitData.emit(combo))
        return combo

    def sizeHint(self, option, index):
        """Wide enough for the longest choice, so the open combo box is never clipped."""
        hint = super().sizeHint(option, index)
        choices = index.data(TierChoicesRole) or []
        if len(choices) > 1:
            widest = max(option.fontMetrics.horizontalAdvance(c) for c in choices)
            hint.setWidth(max(hint.width(), widest + 48))     # + the combo's frame and arrow
        return hint

    def setEditorData(self, editor, index):
        editor.setCurrentIndex(int(index.data(Qt.ItemDataRole.EditRole) or 0))

    def setModelData(self, editor, model, index):
        model.setData(index, editor.currentIndex(), Qt.ItemDataRole.EditRole)


TOTAL_STYLE = "font-size:14pt;font-weight:600;"
PENDING_WAIT_SECONDS = 15.0     # an order waiting for the mall: how long the dialog waits before saying so

PAYMENT_LABELS = {OrderPayment.CLOSED: "This store's tokens",
                  OrderPayment.AUTO: "This store's tokens, then open tokens",
                  OrderPayment.OPEN: "Open tokens only"}


def payment_combo(name: str, payment: str) -> QComboBox:
    """The payment choice (shown only in a mall: open tokens are the mall's)."""
    combo = QComboBox(objectName=name)
    combo.setAccessibleName("Pay with")
    for value, label in PAYMENT_LABELS.items():
        combo.addItem(label, value.value)
    combo.setCurrentIndex(max(0, combo.findData(str(payment))))
    return combo


def totals_grid(labels: dict[str, QLabel]) -> QGridLayout:
    grid = QGridLayout()
    for col, (key, title) in enumerate((("rt", "Tokens required (RT)"), ("at", "Your tokens (AT)"),
                                        ("left", "Left after the order"))):
        head = QLabel(title)
        head.setAlignment(Qt.AlignmentFlag.AlignCenter)
        value = labels[key]
        value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        value.setStyleSheet(TOTAL_STYLE)
        grid.addWidget(head, 0, col)
        grid.addWidget(value, 1, col)
    return grid


class OrderPage(QWidget):
    """FIG 8. RT, AT and what remains update live as lines and tiers change."""

    goToWallet = Signal()
    orderPlaced = Signal(object)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.model = OrderListModel(self)
        self.banner = Banner(self)
        self.inactive_banner = Banner(self)
        self.table = QTableView(objectName="order_table")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(OrderListModel.COL_TIER, TierDelegate(self.table))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.labels = {k: QLabel("0", objectName=f"order_{k}") for k in ("rt", "at", "left")}
        self.cash = QLabel(objectName="order_cash")
        self.cash.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.remove_button = QPushButton("&Remove selected", objectName="order_remove")
        self.save_button = QPushButton("&Save list for later", objectName="order_save")
        self.order_button = QPushButton("&Order…", objectName="order_submit")
        self.order_button.setDefault(True)
        self.payment: str = OrderPayment.CLOSED
        self.payment_label = QLabel("&Pay with:")
        self.payment_choice = payment_combo("order_payment", self.payment)
        self.payment_label.setBuddy(self.payment_choice)
        self.payment_choice.currentIndexChanged.connect(
            lambda _i: self.set_payment(self.payment_choice.currentData()))
        self.split = QLabel(objectName="order_split", wordWrap=True)
        self.split.hide()
        self.remove_button.clicked.connect(self.remove_selected)
        self.table.installEventFilter(self)    # Delete in the table removes the selected items
        self._fitting = False            # FIG 10 "remove items": guiding the user until the order fits
        self.save_button.clicked.connect(lambda: self.save_for_later())
        self.order_button.clicked.connect(self.start_order)

        buttons = QHBoxLayout()
        buttons.addWidget(self.remove_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        buttons.addWidget(self.payment_label)
        buttons.addWidget(self.payment_choice)
        buttons.addWidget(self.order_button)
        self._show_payment(state.mall.mall is not None)
        state.mall.mallChanged.connect(lambda mall: self._show_payment(mall is not None))
        # open tokens are the mall's: read the directory once per sign-in if nothing has yet
        self._mall_asked = False
        state.meChanged.connect(self._me_for_mall)
        self._read_mall()
        layout = QVBoxLayout(self)
        layout.addWidget(self.inactive_banner)
        layout.addWidget(self.banner)
        layout.addWidget(QLabel("Tick “Installed on this computer?” for programs you already have here: "
                                "they only get a new authorization code, nothing is downloaded."))
        layout.addWidget(self.table, 1)
        layout.addLayout(totals_grid(self.labels))
        layout.addWidget(self.cash)
        layout.addWidget(self.split)
        layout.addLayout(buttons)

        self.model.pricing = state.pricing
        state.pricingChanged.connect(lambda pricing: setattr(self.model, "pricing", pricing))
        state.meChanged.connect(lambda _me: self._lines_changed())      # another balance: ask again
        state.pricingChanged.connect(lambda _p: self.update_totals())
        self._saved_items = None         # the saved list, while it waits for the catalog
        state.catalogChanged.connect(self._apply_saved)
        state.userChanged.connect(lambda: setattr(self, "_saved_items", None))
        self.quote: Quote | None = None   # the server's figures for the lines as they are now
        self._quote_seq = 0               # answers to older questions are dropped
        self._quote_timer = QTimer(self, singleShot=True, interval=150)   # one question per burst of edits
        self._quote_timer.timeout.connect(self._ask_quote)
        self.model.totalsChanged.connect(lambda _rt: self._lines_changed())
        self.update_totals()

    # -- how the order is paid (issue 12) ------------------------------------------
    def _show_payment(self, in_mall: bool) -> None:
        self.payment_label.setVisible(in_mall)
        self.payment_choice.setVisible(in_mall)
        if not in_mall and self.payment != OrderPayment.CLOSED:
            self.set_payment(OrderPayment.CLOSED)      # no mall: no open tokens

    def _me_for_mall(self, me) -> None:
        if me is None:
            self._mall_asked = False        # the next user's sign-in asks again
        else:
            self._read_mall()

    def _read_mall(self) -> None:
        if self.state.signed_in and self.state.mall.mall is None and not self._mall_asked:
            self._mall_asked = True         # a store in no mall is asked once, not at every balance change
            self.state.mall.refresh()

    def set_payment(self, payment: str) -> None:
        if payment == self.payment:
            return
        self.payment = payment
        self.payment_choice.blockSignals(True)
        self.payment_choice.setCurrentIndex(max(0, self.payment_choice.findData(str(payment))))
        self.payment_choice.blockSignals(False)
        self._lines_changed()                 # another question for the store

    # -- lines ------------------------------------------------------------
    def add(self, product: Product, offer: Offer, tier_index: int = 0, license_id=None) -> int:
        installed = str(product.id) in self.state.installed_product_ids()
        row = self.model.add_line(OrderLine(product, offer, tier_index, installed, license_id))
        if tier_index and self.model.line(row).tier_index != tier_index:
            self.model.set_tier(row, tier_index)
        return row

    def remove_selected(self) -> None:
        rows = [i.row() for i in self.table.selectionModel().selectedRows()]
        if not rows and self.table.currentIndex().isValid():
            rows = [self.table.currentIndex().row()]
        self.model.remove_rows(rows)
        if self.model.rowCount() and self._fitting:
            self.select_row(min(min(rows, default=0), self.model.rowCount() - 1))

    def eventFilter(self, watched, event) -> bool:
        if watched is self.table and event.type() == QEvent.Type.KeyPress \
                and event.matches(QKeySequence.StandardKey.Delete) \
                and self.table.state() != QAbstractItemView.State.EditingState:
            self.remove_selected()
            return True
        return super().eventFilter(watched, event)

    def select_row(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    def start_removing(self, error: ShortOfTokens | None = None) -> None:
        """FIG 10 "remove items": the order table, its first item selected, and a hint that
        follows the server's quote live until the order fits (first: the refusal's shortage)."""
        self._fitting = True
        if self.model.rowCount():
            self.select_row(0)
        if error is not None and self.quote is None:
            self.banner.show_message(self.tr("Still short of {short}: select an item and press Delete (or “Remove "
                                             "selected”) until the order fits.").format(
                short=self.state.pricing.tokens_text(error.shortage.shortage)), "warning")
        self.update_totals()

    def _fitting_hint(self) -> None:
        """FIG 10 "remove items": the server's verdict on the lines as they are now."""
        pricing, quote = self.state.pricing, self.quote
        if not self.model.rowCount():
            self._fitting = False
            self.banner.show_message(self.tr("Your order list is empty."), "info")
        elif quote is None:
            return          # the store has not answered for these lines yet: the last verdict stands
        elif quote.payable:
            self._fitting = False
            self.banner.show_message(self.tr("The order fits now: {left} left after it. Press “Order…” to place "
                                             "it.").format(left=pricing.tokens_text(quote.remaining_tokens)),
                                     "success")
            self.order_button.setFocus(Qt.FocusReason.OtherFocusReason)
        else:
            self.banner.show_message(self.tr("Still short of {short}: select an item and press Delete (or “Remove "
                                             "selected”) until the order fits.").format(
                short=pricing.tokens_text(quote.shortage)), "warning")

    # -- the server's quote for the lines ------------------------------------------
    def _lines_changed(self) -> None:
        self.quote = None            # the last answer was for other lines
        self._quote_seq += 1
        if self.model.rowCount() and self.state.signed_in:
            self._quote_timer.start()
        self.update_totals()

    def _ask_quote(self) -> None:
        if not self.model.rowCount() or not self.state.signed_in:
            return
        seq, items, api, payment = self._quote_seq, self.model.items(), self.state.api, self.payment

        def done(quote: Quote) -> None:
            if seq == self._quote_seq:
                self.quote = quote
                self.update_totals()

        self.state.call(lambda: api.quote(items, payment), done, lambda _e: None)

    def update_totals(self, *_args) -> None:
        """RT, AT and what is left: the server's quote once it is in, the lines' own sum and
        the wallet until then. Red only when the server says the order is not payable."""
        quote, pricing = self.quote, self.state.pricing
        if quote is not None:
            rt, at, left = quote.required_tokens, quote.available_tokens, quote.remaining_tokens
        else:
            rt = self.model.required_tokens()
            at = self.state.available_tokens
            left = at - rt
        for key, tokens in (("rt", rt), ("at", at), ("left", left)):
            self.labels[key].setText(pricing.tokens_text(tokens))     # tokens and cash (FIG 17)
        short = quote is not None and not quote.payable
        self.labels["left"].setStyleSheet(TOTAL_STYLE + ("color:#b00020;" if short else ""))
        self.cash.setText(f"Order total: {pricing.tokens_text(rt)}")
        split = plan_lines(quote) if quote is not None and quote.payment != OrderPayment.CLOSED else []
        self.split.setText("\n".join(split))
        self.split.setVisible(bool(split))
        self.order_button.setEnabled(bool(self.model.rowCount()))
        if self._fitting:
            self._fitting_hint()
        if self.state.me and not self.state.active:
            self.inactive_banner.show_message("Your account is not active yet: buy the minimum tokens in the "
                                              "Wallet before you order.", "warning")
        else:
            self.inactive_banner.clear_message()

    # -- saved list (FIG 10 step 907) ------------------------------------------
    def save_for_later(self, on_done=None) -> None:
        items = self.model.items()

        def done(_answer):
            self.banner.show_message("Your order list is saved. It will be here at your next sign-in.", "success")
            if on_done:
                on_done()

        self.state.call(lambda: self.state.api.put_order_list(items), done)

    def restore_saved(self) -> None:
        """At sign-in: bring back a saved, uncompleted order list (once the catalog is there
        too: the saved items are rebuilt against its offers)."""
        def done(answer: OrderList):
            self._saved_items = answer.items
            self._apply_saved()

        self.state.call(self.state.api.get_order_list, done, lambda e: None)

    def _apply_saved(self) -> None:
        items = self._saved_items
        if not items or not self.state.catalog_loaded:
            return      # nothing saved, or wait for the catalog (catalogChanged calls again)
        self._saved_items = None
        if self.model.rowCount():
            return
        installed = self.state.installed_product_ids()
        lines = lines_from_items(items, self.state.find_offer, lambda pid: str(pid) in installed)
        self.model.set_lines(lines)
        if lines:
            self.banner.show_message(f"Your saved order list is back ({len(lines)} item(s)).", "info")

    # -- ordering -------------------------------------------------------------
    def start_order(self) -> None:
        if not self.model.rowCount():
            return
        if not self.state.signed_in:
            self.banner.show_message("Please sign in to order.", "warning")
            return
        if not self.state.active:
            self.banner.show_message("Your account is not active yet: buy the minimum tokens in the Wallet "
                                     "to activate it, then order.", "warning")
            return
        dialog = ConfirmOrderDialog(self.state, self.model, self, payment=self.payment)
        dialog.shortOfTokens.connect(lambda err: self.short_of_tokens(err))
        dialog.shortOfOpenTokens.connect(lambda err: self.short_of_open_tokens(err))
        dialog.paymentChanged.connect(self.set_payment)
        dialog.confirmed.connect(self._confirmed)
        self.confirm_dialog = dialog
        dialog.open()

    def _confirmed(self, answer: Receipt) -> None:
        lines = self.model.lines()
        self.model.clear()
        self.state.call(lambda: self.state.api.put_order_list([]), lambda _a: None, lambda _e: None)
        paid = " ".join(receipt_lines(answer))
        self.banner.show_message("ORDER CONFIRMED. " + (paid + " " if paid else "")
                                 + "Your licenses are being installed on this computer.", "success")
        self.state.refresh_me()
        self.orderPlaced.emit({"answer": answer, "lines": lines})

    def short_of_tokens(self, error: ShortOfTokens) -> None:
        dialog = ShortageDialog(self.state, error, self)
        self.shortage_dialog = dialog
        dialog.removeItems.connect(lambda: self.start_removing(error))
        dialog.buyTokens.connect(self.goToWallet)
        dialog.saveForLater.connect(lambda: self.save_for_later())
        dialog.payWithOpen.connect(self._pay_rest_with_open)
        dialog.open()

    def _pay_rest_with_open(self) -> None:
        """FIG 10 in a mall: the store's tokens first, open tokens for the rest; confirm again."""
        self.set_payment(OrderPayment.AUTO)
        self.start_order()

    def short_of_open_tokens(self, error: ShortOfOpenTokens) -> OpenShortageDialog:
        dialog = OpenShortageDialog(error, self)
        self.open_shortage_dialog = dialog
        dialog.removeItems.connect(lambda: self.start_removing())
        dialog.saveForLater.connect(lambda: self.save_for_later())
        dialog.buyOpenTokens.connect(self.open_buy_open_tokens)
        dialog.open()
        return dialog

    def open_buy_open_tokens(self, kind: str, units: int):
        """Buy the open tokens that would help, then ask the store again (the order stays)."""
        from desktop_app.open.dialogs import BuyOpenTokensDialog
        dialog = BuyOpenTokensDialog(self.state, self, gift=kind == OpenKind.GIFT_CERTIFICATE, suggested_kind=kind,
                                     suggested_tokens=units)
        dialog.purchased.connect(lambda _a: self._lines_changed())
        self.buy_open_dialog = dialog
        dialog.open()
        return dialog


class ConfirmOrderDialog(QDialog):
    """FIG 9: what will be downloaded, what only gets a new code, RT / AT / left.

    One idempotency key per attempt: a second click, or "Try again" after a lost answer
    (off-line, a timeout, a 5xx), sends the same key, so the order is placed at most once.
    After a refusal (the server's answer is final for its key) the next try gets a new key;
    a refusal for lack of tokens closes the dialog, and the next confirmation (after "Buy
    tokens now", say) is a new dialog with a new key.
    """

    confirmed = Signal(object)
    shortOfTokens = Signal(object)
    shortOfOpenTokens = Signal(object)   # ShortOfOpenTokens: the MSP's plan was short
    paymentChanged = Signal(str)

    def __init__(self, state, model: OrderListModel, parent=None, *, payment: str = OrderPayment.CLOSED):
        super().__init__(parent)
        self.state = state
        self.payment = payment
        self.quote: Quote | None = None
        self._quote_seq = 0
        self.setWindowTitle("Confirm your order")
        self.items = model.items()
        self.installed_ids = model.installed_product_ids()
        self.idempotency_key = new_idempotency_key()
        self.placing = False
        self.attempts = 0
        self.banner = Banner(self)
        self.plan = QListWidget(objectName="confirm_plan")
        self.plan.setWordWrap(True)
        for n, line in enumerate(model.lines(), 1):
            if line.needs_download():
                what = f"{n}. We will download {line.product.name} with its authorization code " \
                       f"({line.description()})."
            else:
                why = "already installed on this computer" if line.installed else "a license you hold"
                what = f"{n}. {line.description()}: a new authorization code only ({why})."
            self.plan.addItem(what)
        self.labels = {k: QLabel("…", objectName=f"confirm_{k}") for k in ("rt", "at", "left")}
        self.payment_choice = payment_combo("confirm_payment", payment)
        self.payment_choice.setVisible(state.mall.mall is not None)
        self.payment_choice.currentIndexChanged.connect(lambda _i: self.set_payment(self.payment_choice.currentData()))
        self.split = QLabel(objectName="confirm_split", wordWrap=True)
        self.split.setAccessibleName("How the order is paid")
        rt = model.required_tokens()
        self._show_totals(rt, state.available_tokens, state.available_tokens - rt, short=False)
        self.buttons = QDialogButtonBox()
        self.confirm_button = self.buttons.addButton("&Confirm order", QDialogButtonBox.ButtonRole.AcceptRole)
        self.confirm_button.setObjectName("confirm_button")
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.place)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.plan)
        layout.addLayout(totals_grid(self.labels))
        pay = QHBoxLayout()
        pay_label = QLabel("&Pay with:")
        pay_label.setBuddy(self.payment_choice)
        pay_label.setVisible(self.payment_choice.isVisibleTo(self))
        pay.addWidget(pay_label)
        pay.addWidget(self.payment_choice, 1)
        layout.addLayout(pay)
        layout.addWidget(self.split)
        layout.addWidget(self.buttons)
        self.resize(760, 400)
        # the server's own figures replace the local ones as soon as they arrive
        self._ask_quote()

    def set_payment(self, payment: str) -> None:
        """Another way to pay: another order (a new key) and another quote."""
        if payment == self.payment or self.placing:
            return
        self.payment = payment
        self.idempotency_key = new_idempotency_key()
        self.paymentChanged.emit(payment)
        self._ask_quote()

    def _ask_quote(self) -> None:
        self._quote_seq += 1
        seq, state, items, payment = self._quote_seq, self.state, self.items, self.payment
        self.quote = None
        self.split.setText("Asking the store how the order is paid…" if payment != OrderPayment.CLOSED else "")

        def done(quote: Quote) -> None:
            if seq == self._quote_seq:
                self._quoted(quote)

        state.call(lambda: state.api.quote(items, payment), done, lambda e: None)

    def _show_totals(self, rt: int, at: int, left: int, short: bool) -> None:
        pricing = self.state.pricing
        for key, tokens in (("rt", rt), ("at", at), ("left", left)):
            self.labels[key].setText(pricing.tokens_text(tokens))     # tokens and cash (FIG 17)
        self.labels["left"].setStyleSheet(TOTAL_STYLE + ("color:#b00020;" if short else ""))

    def _quoted(self, quote: Quote) -> None:
        self.quote = quote
        self._show_totals(quote.required_tokens, quote.available_tokens, quote.remaining_tokens,
                          short=not quote.payable)
        self.split.setText("\n".join(plan_lines(quote)) if quote.payment != OrderPayment.CLOSED else "")

    def place(self) -> None:
        if self.placing:
            return   # a second click while the first is on its way
        self.placing = True
        self.attempts += 1
        self.confirm_button.setEnabled(False)
        self.banner.show_message("Placing your order…", "info")
        api, state = self.state.api, self.state
        items, installed, key, payment = self.items, self.installed_ids, self.idempotency_key, self.payment
        state.call(lambda: api.place_order(items, state.device_id, installed, key, payment,
                                           wait_seconds=PENDING_WAIT_SECONDS),
                   self._placed, self._failed, retry_after_sign_in=False)

    def _placed(self, answer: Receipt) -> None:
        self.placing = False
        if answer.pending:
            # the mall has not answered yet: the store finishes the order by itself; asking again
            # sends the same key, so it is never bought twice
            self.confirm_button.setEnabled(True)
            self.confirm_button.setText("&Check again")
            self.banner.show_message("Your order is waiting for the mall's answer about your open tokens. "
                                     "It completes by itself; check again in a moment (it will not be "
                                     "bought twice).", "warning")
            return
        self.banner.show_message("ORDER CONFIRMED", "success")
        self.confirmed.emit(answer)
        self.accept()

    def _failed(self, error) -> None:
        self.placing = False
        if needs_new_key(error):
            self.idempotency_key = new_idempotency_key()    # that refusal is final for the old key
        if isinstance(error, SessionExpired):
            # Sign in again and the order goes on (same key: never bought twice). If the user
            # declines, the dialog stays usable: Confirm tries again, Cancel closes it.
            self.confirm_button.setEnabled(True)
            self.confirm_button.setText("&Try again")
            self.banner.show_message("Your session has ended. Sign in again to place the order; "
                                     "it will not be bought twice.", "warning")
            self.state.wait_for_sign_in(lambda: self.place() if self.isVisible() else None)
            return
        if isinstance(error, ShortOfTokens):
            self.reject()
            self.shortOfTokens.emit(error)
            return
        if isinstance(error, ShortOfOpenTokens):
            self.reject()
            self.shortOfOpenTokens.emit(error)
            return
        self.confirm_button.setEnabled(True)
        self.confirm_button.setText("&Try again")
        if answer_lost(error):
            self.banner.show_message(error.user_message + " Trying again will not buy twice.", "error")
        else:
            self.banner.show_message(error.user_message, "error")


class ShortageDialog(QDialog):
    """FIG 10: remove items, buy tokens now and come back, or save the list for later. For an
    order at another member of the mall (``member``) the same dialog in that member's tokens,
    with a fourth way: exchange home tokens for the rest. A way that does not apply there is
    hidden and the dialog says why (``buy_hidden``, ``save_hidden``)."""

    removeItems = Signal()
    buyTokens = Signal()
    saveForLater = Signal()
    exchangeTokens = Signal()            # only offered for an order at another member
    payWithOpen = Signal()               # in a mall: the store's tokens first, open tokens for the rest

    def __init__(self, state, error: ShortOfTokens, parent=None, *, member=None, pricing=None,
                 buy_hidden: str = "", save_hidden: str = ""):
        super().__init__(parent)
        pricing = pricing if pricing is not None else state.pricing
        self.member = member
        self.setWindowTitle("Not enough tokens" if member is None else
                            self.tr("Not enough {token} at {name}").format(token=member.token.name, name=member.name))
        self.setMinimumWidth(520)
        figures = error.shortage          # the server's numbers (402 on POST /v1/orders)
        at = "" if member is None else f" at {member.name}"
        text = QLabel(f"This order needs {pricing.tokens_text(figures.required_tokens)}; you have "
                      f"{pricing.tokens_text(figures.available_tokens)}{at}.\n"
                      f"You are short of {pricing.tokens_text(figures.shortage)}.", objectName="shortage_text")
        text.setWordWrap(True)
        self.shortage = figures.shortage
        remove = QPushButton("&Remove items" if member is None else self.tr("&Choose something else"),
                             objectName="shortage_remove")
        buy = QPushButton("&Buy tokens now" if member is None else
                          self.tr("&Buy {token} by card").format(token=member.token.name), objectName="shortage_buy")
        save = QPushButton("&Save the order for later", objectName="shortage_save")
        ways = [(remove, self.removeItems), (buy, self.buyTokens), (save, self.saveForLater)]
        if member is not None:
            exchange = QPushButton(self.tr("E&xchange your tokens for the rest"), objectName="shortage_exchange")
            ways.append((exchange, self.exchangeTokens))
        elif state.mall.mall is not None:
            use_open = QPushButton(self.tr("Pay the rest with &open tokens"), objectName="shortage_open")
            ways.append((use_open, self.payWithOpen))
        buy.setDefault(True)
        for button, signal in ways:
            button.clicked.connect(signal)
            button.clicked.connect(self.accept)
        self.ways = {button.objectName(): button for button, _signal in ways}
        notes = []
        for button, why in ((buy, buy_hidden), (save, save_hidden)):
            if why:
                button.hide()
                notes.append(why)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        if notes:
            note = QLabel(" ".join(notes), objectName="shortage_hidden_ways")
            note.setWordWrap(True)
            layout.addWidget(note)
            self.hidden_note = note
        row = QHBoxLayout()
        for b, _signal in ways:
            row.addWidget(b)
        layout.addLayout(row)


class OpenShortageDialog(QDialog):
    """FIG 10 for open tokens: the MSP's plan was short. Says by how much and which kinds would
    pay these lines (the MSP's ``helpful_kinds``), and offers to buy them, to remove items or to
    save the order for later."""

    removeItems = Signal()
    saveForLater = Signal()
    buyOpenTokens = Signal(str, int)      # kind, open units short

    def __init__(self, error: ShortOfOpenTokens, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Not enough open tokens")
        self.setMinimumWidth(640)
        short = error.short
        self.short_units = short.short_units
        self.helpful_kinds = list(short.helpful_kinds)
        helpful = (f" These kinds would pay for it: {kinds_text(self.helpful_kinds)}."
                   if self.helpful_kinds else "")
        text = QLabel(f"You are short of {units_text(short.short_units)} for this order.{helpful}",
                      objectName="open_shortage_text", wordWrap=True)
        remove = QPushButton("&Remove items", objectName="open_shortage_remove")
        save = QPushButton("&Save the order for later", objectName="open_shortage_save")
        remove.clicked.connect(self.removeItems)
        save.clicked.connect(self.saveForLater)
        self.buy_buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        from desktop_app.open.model import kind_label
        for kind in self.helpful_kinds:
            words = "Buy a gift certificate" if kind == OpenKind.GIFT_CERTIFICATE else \
                f"Buy {kind_label(kind).lower()} open tokens"
            button = QPushButton(words, objectName=f"open_shortage_buy_{kind}")
            button.clicked.connect(lambda _c=False, k=kind: self.buyOpenTokens.emit(k, self.short_units))
            self.buy_buttons[kind] = button
            row.addWidget(button)
        if self.buy_buttons:
            next(iter(self.buy_buttons.values())).setDefault(True)
        for button in (*self.buy_buttons.values(), remove, save):
            button.clicked.connect(self.accept)
        other_ways = QHBoxLayout()
        other_ways.addWidget(remove)
        other_ways.addWidget(save)
        other_ways.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addLayout(row)          # buy what would help, or another way
        layout.addLayout(other_ways)
