"""Buying open tokens and gift certificates, giving a certificate, redeeming a code (issue 12).

Buying happens at the home store (POST /v1/open-token-purchases: it charges the card, or waits
for an off-line payment, and has the MSP issue the tokens); giving goes through the store that
sold the certificate; redeeming is the MSP's (the open wallet lives in its books).

Idempotency keys as everywhere in the storefront (desktop_app.api.client): one per attempt the
user means; the same key after a lost answer, a new one after any edit of the form or a refusal.
A gift certificate's expiry is the selling store's policy (``expires_in_days`` of its offers)
and is shown before the purchase; the date it really expires is the store's answer.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QRadioButton, QSpinBox,
                               QStackedWidget, QVBoxLayout, QWidget)

from desktop_app.api.client import ApiError, needs_new_key, new_idempotency_key
from desktop_app.api.replies import (GiftGiven, GiveStatus, OpenKind, OpenKindOffer, OpenPurchaseStatus, OpenTokenOffers,
                                     OpenTokenPurchase, Redeemed)
from desktop_app.money import format_cents
from desktop_app.open.model import kind_text, units_text
from desktop_app.widgets.common import Banner, action_buttons

OFFLINE_METHODS = [("check", "Check"), ("money_order", "Money order"), ("purchase_order", "Purchase order")]
BASIS_POINTS = 10_000
GIFT_CODE_CHARACTERS = 16      # XXXX-XXXX-XXXX-XXXX (base32)


def offer_text(offer: OpenKindOffer) -> str:
    """'Manufacturer (Acme): $9.00 per 1,000 (10% off)', the store's own figures."""
    text = f"{kind_text(offer.kind, offer.issuer, offer.issuer_name)}: " \
           f"{format_cents(offer.price_cents_per_1000)} per 1,000"
    if offer.discount_bp:
        text += f" ({offer.discount_bp / 100:g}% off)"
    return text


def price_cents(tokens: int, unit_value_cents: int, discount_bp: int) -> int:
    """What the store will charge, shown before buying: the face value less the offer's
    discount, rounded up to a cent (docs/mall.md, "Prices"). The purchase's answer
    (``price_cents``) is what was charged."""
    face = tokens * unit_value_cents
    return -(-face * (BASIS_POINTS - discount_bp) // BASIS_POINTS)


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def day_text(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d") if when is not None else "never"


def gift_expiry(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(days=days)


class _PaymentBox(QWidget):
    """Card or an off-line method, and the PIN that confirms (as token purchases)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.card_radio = QRadioButton("&Card", objectName="open_card")
        self.card_radio.setChecked(True)
        self.group.addButton(self.card_radio)
        self.offline_radios: dict[str, QRadioButton] = {}
        methods = QHBoxLayout()
        methods.addWidget(self.card_radio)
        for key, label in OFFLINE_METHODS:
            radio = QRadioButton(label, objectName=f"open_{key}")
            self.offline_radios[key] = radio
            self.group.addButton(radio)
            methods.addWidget(radio)
        self.card_number = QLineEdit(objectName="open_card_number", placeholderText="4242 4242 4242 4242")
        self.card_expiry = QLineEdit(objectName="open_card_expiry", placeholderText="MM/YY")
        self.card_cvc = QLineEdit(objectName="open_card_cvc", maxLength=4, echoMode=QLineEdit.EchoMode.Password)
        card_box = QGroupBox("Card")
        cf = QFormLayout(card_box)
        cf.addRow("Card &number:", self.card_number)
        cf.addRow("E&xpiry:", self.card_expiry)
        cf.addRow("C&VC:", self.card_cvc)
        note = QLabel("You will get an invoice number. Send your payment quoting it; the open tokens are issued "
                      "when the store has received it.", wordWrap=True)
        self.stack = QStackedWidget()
        self.stack.addWidget(card_box)
        self.stack.addWidget(note)
        self.pin = QLineEdit(objectName="open_pin", echoMode=QLineEdit.EchoMode.Password, maxLength=12)
        pin_row = QFormLayout()
        pin_row.addRow("Your &PIN:", self.pin)
        self.group.buttonToggled.connect(lambda *_: self.stack.setCurrentIndex(0 if self.card_radio.isChecked() else 1))
        self.group.buttonToggled.connect(lambda *_: self.changed.emit())
        for field in (self.card_number, self.card_expiry, self.card_cvc, self.pin):
            field.textChanged.connect(lambda *_: self.changed.emit())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(methods)
        layout.addWidget(self.stack)
        layout.addLayout(pin_row)

    def method(self) -> str:
        if self.card_radio.isChecked():
            return "card"
        return next(k for k, r in self.offline_radios.items() if r.isChecked())

    def card(self) -> dict[str, str] | None:
        if self.method() != "card":
            return None
        return {"card_number": self.card_number.text().replace(" ", ""),
                "card_expiry": self.card_expiry.text().strip(), "card_cvc": self.card_cvc.text().strip()}

    def problem(self) -> str:
        """What is missing, in a sentence; '' when the payment can be sent."""
        card = self.card()
        if card is not None and not all(card.values()):
            return "Enter the card number, expiry and CVC."
        if not self.pin.text():
            return "Enter your PIN to confirm the purchase."
        return ""


class BuyOpenTokensDialog(QDialog):
    """Open tokens of a kind the home store sells, or (``gift``) a gift certificate.

    ``offers``: the store's GET /v1/open-token-offers (asked for here when not given).
    ``suggested_kind`` / ``suggested_tokens``: from the shortage dialog (the kinds that would help).
    """

    purchased = Signal(object)          # OpenTokenPurchase

    def __init__(self, state: Any, parent: QWidget | None = None, *, gift: bool = False,
                 offers: OpenTokenOffers | None = None, suggested_kind: str | None = None,
                 suggested_tokens: int = 0) -> None:
        super().__init__(parent)
        self.state = state
        self.gift = gift
        self.offers: OpenTokenOffers | None = None
        self.suggested_kind = suggested_kind
        self.suggested_tokens = suggested_tokens
        self.last_answer: OpenTokenPurchase | None = None
        self.idempotency_key = new_idempotency_key()
        self.busy = False
        self.setWindowTitle("Buy a gift certificate" if gift else "Buy open tokens")
        self.setAccessibleName(self.windowTitle())
        self.banner = Banner(self, objectName="open_buy_banner")

        self.kind = QComboBox(objectName="open_buy_kind")
        self.kind.setAccessibleName("Kind of open tokens")
        self.tokens = QSpinBox(objectName="open_buy_tokens", minimum=1, maximum=10_000_000, singleStep=100)
        self.tokens.setValue(suggested_tokens or 1000)
        self.value = QDoubleSpinBox(objectName="open_buy_value", minimum=1.0, maximum=10_000.0, decimals=2,
                                    prefix="$", singleStep=5.0, value=25.0)
        self.value.setAccessibleName("The gift certificate's value")
        self.price = QLabel(objectName="open_buy_price")
        self.expiry = QLabel(objectName="open_buy_expiry", wordWrap=True)
        self.for_someone = QCheckBox("For &someone else (their username and full name at this store)",
                                     objectName="open_buy_for_someone")
        self.recipient_username = QLineEdit(objectName="open_buy_recipient_username", enabled=False)
        self.recipient_full_name = QLineEdit(objectName="open_buy_recipient_full_name", enabled=False)
        self.for_someone.toggled.connect(self.recipient_username.setEnabled)
        self.for_someone.toggled.connect(self.recipient_full_name.setEnabled)
        self.payment = _PaymentBox(self)
        self.code = QLineEdit(objectName="open_buy_code", readOnly=True)
        self.code.setAccessibleName("The gift certificate's redemption code")
        self.code.hide()

        form = QFormLayout()
        if gift:
            form.addRow("&Value:", self.value)
            form.addRow("Expires:", self.expiry)
            form.addRow(self.for_someone)
            form.addRow("Recipient's &username:", self.recipient_username)
            form.addRow("Recipient's &full name:", self.recipient_full_name)
        else:
            form.addRow("&Kind:", self.kind)
            form.addRow("&Open tokens:", self.tokens)
        form.addRow("Price:", self.price)
        self.buttons, self.buy_button = action_buttons(self, "&Buy", "open_buy_button", self.buy,
                                                       QDialogButtonBox.StandardButton.Close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        layout.addWidget(self.payment)
        layout.addWidget(self.code)
        layout.addWidget(self.buttons)

        for signal in (self.kind.currentIndexChanged, self.tokens.valueChanged, self.value.valueChanged):
            signal.connect(self._update_price)
        for edit in (self.recipient_username, self.recipient_full_name):
            edit.textChanged.connect(self._new_key)
        self.for_someone.toggled.connect(self._new_key)
        self.payment.changed.connect(self._new_key)
        self.buy_button.setEnabled(False)
        if offers is not None:
            self.set_offers(offers)
        else:
            self.banner.show_message("Asking the store what it sells…", "info")
            state.call(state.api.open_token_offers, self.set_offers, self._offers_failed)

    # -- the store's offers -------------------------------------------------------------
    def set_offers(self, offers: OpenTokenOffers) -> None:
        self.offers = offers
        self.banner.clear_message()
        self.kind.blockSignals(True)
        self.kind.clear()
        for offer in offers.kinds:
            if offer.kind != OpenKind.GIFT_CERTIFICATE:      # a certificate has its own dialog
                self.kind.addItem(offer_text(offer), offer)
        self.kind.blockSignals(False)
        if self.suggested_kind:
            found = next((i for i in range(self.kind.count()) if self.kind.itemData(i).kind == self.suggested_kind), -1)
            if found >= 0:
                self.kind.setCurrentIndex(found)
        if self.gift and self.suggested_tokens:     # what the order was short of, in whole cents
            self.value.setValue(max(1.0, self.suggested_tokens * offers.unit_value_cents / 100))
        days = offers.gift_certificate.expires_in_days
        self.expiry.setText(f"{gift_expiry(days).astimezone().strftime('%Y-%m-%d')} "
                            f"({days:,} days after the purchase; the store's policy)")
        if not self.gift and not self.kind.count():
            self.banner.show_message("This store sells no open tokens.", "warning")
        self.buy_button.setEnabled(self.gift or self.kind.count() > 0)
        self._update_price()

    def _offers_failed(self, error: ApiError) -> None:
        self.banner.show_message(f"The store's open-token offers could not be read: {error.user_message}", "error")

    def offer(self) -> OpenKindOffer | None:
        data = self.kind.currentData()
        return data if isinstance(data, OpenKindOffer) else None

    def value_cents(self) -> int:
        return round(self.value.value() * 100)

    def _update_price(self, *_: object) -> None:
        self._new_key()                         # another amount or kind: another purchase
        if self.offers is None:
            self.price.setText("…")
            return
        unit = self.offers.unit_value_cents
        if self.gift:
            tokens = -(-self.value_cents() // unit)
            self.price.setText(f"{format_cents(self.value_cents())} ({units_text(tokens)})")
            return
        offer = self.offer()
        if offer is None:
            self.price.setText("")
            return
        cents = price_cents(self.tokens.value(), unit, offer.discount_bp)
        self.price.setText(f"{format_cents(cents)} (worth {format_cents(self.tokens.value() * unit)} in the mall)")

    def _new_key(self, *_: object) -> None:
        self.idempotency_key = new_idempotency_key()

    # -- buying ---------------------------------------------------------------------------
    def request(self) -> dict[str, Any] | str:
        """The purchase as ``ApiClient.buy_open_tokens`` takes it, or what is missing."""
        missing = self.payment.problem()
        if missing:
            return missing
        body: dict[str, Any] = {"method": self.payment.method(), "pin": self.payment.pin.text(),
                                "card": self.payment.card()}
        if self.gift:
            body.update(kind=OpenKind.GIFT_CERTIFICATE.value, value_cents=self.value_cents())
            if self.for_someone.isChecked():
                username, full_name = self.recipient_username.text().strip(), self.recipient_full_name.text().strip()
                if not username or not full_name:
                    return "Enter the recipient's username and full name (both must match their account)."
                body["recipient"] = {"username": username, "full_name": full_name}
            return body
        offer = self.offer()
        if offer is None:
            return "Choose a kind of open tokens."
        body.update(kind=offer.kind, tokens=self.tokens.value())
        if offer.issuer is not None:
            body["issuer"] = offer.issuer
        return body

    def buy(self) -> None:
        if self.busy:
            return
        request = self.request()
        if isinstance(request, str):
            self.banner.show_message(request, "error")
            return
        self.busy = True
        self.buy_button.setEnabled(False)
        self.banner.show_message("Sending…", "info")
        api, key = self.state.api, self.idempotency_key
        self.state.call(lambda: api.buy_open_tokens(idempotency_key=key, **request), self._done, self._failed)

    def _done(self, answer: OpenTokenPurchase) -> None:
        self.busy = False
        self.buy_button.setEnabled(True)
        self.last_answer = answer
        what = units_text(answer.tokens) if not self.gift else "The gift certificate"
        if answer.status == OpenPurchaseStatus.AWAITING_PAYMENT:
            invoice = f"Invoice number {answer.invoice_number}: " if answer.invoice_number else ""
            self.banner.show_message(f"{invoice}waiting for your payment. {what} will be issued when the store "
                                     f"has received it.", "info")
        elif answer.status in (OpenPurchaseStatus.ISSUED, OpenPurchaseStatus.PENDING):
            when = "are in your open wallet" if answer.status == OpenPurchaseStatus.ISSUED else \
                "are paid and being issued by the mall"
            if self.gift:
                when = when.replace("are", "is", 1)
            self.banner.show_message(f"Done: {what} {when} ({format_cents(answer.price_cents)} charged).",
                                     "success")
        else:
            self.banner.show_message(f"The purchase is {answer.status.replace('_', ' ')}.", "warning")
        certificate = answer.gift_certificate
        if certificate is not None and certificate.code:
            self.code.setText(certificate.code)
            self.code.show()
            self.banner.show_message(f"Your gift certificate's code is below; it expires on "
                                     f"{day_text(certificate.expires_at)}. Give the code to the recipient (or give "
                                     f"the certificate by name from your wallet).", "success")
        self._new_key()                          # a next purchase is a new one
        self.buy_button.setText("&Buy again")
        self.purchased.emit(answer)

    def _failed(self, error: ApiError) -> None:
        self.busy = False
        self.buy_button.setEnabled(True)
        if needs_new_key(error):
            self._new_key()       # a declined card, a wrong PIN: that answer is final for its key
        messages = {403: "That PIN is not right.",
                    404: "No user of this store has that username and full name. Check both."}
        self.banner.show_message(messages.get(error.status or 0, error.user_message), "error")


class GiveGiftDialog(QDialog):
    """Give a gift certificate you bought to another user of the store (FIG 11's rule: their
    username AND full name must match)."""

    given = Signal(object)

    def __init__(self, state: Any, certificates: list[OpenTokenPurchase], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Give a gift certificate")
        self.idempotency_key = new_idempotency_key()
        self.busy = False
        self.banner = Banner(self, objectName="give_banner")
        self.certificate = QComboBox(objectName="give_certificate")
        for p in certificates:
            value = p.gift_certificate.value_cents if p.gift_certificate is not None else p.price_cents
            expires = day_text(p.gift_certificate.expires_at if p.gift_certificate is not None else None)
            self.certificate.addItem(f"{format_cents(value)} gift certificate, expires {expires}", p)
        self.username = QLineEdit(objectName="give_username")
        self.full_name = QLineEdit(objectName="give_full_name")
        self.pin = QLineEdit(objectName="give_pin", echoMode=QLineEdit.EchoMode.Password, maxLength=12)
        for signal in (self.certificate.currentIndexChanged, self.username.textChanged, self.full_name.textChanged,
                       self.pin.textChanged):
            signal.connect(self._new_key)
        form = QFormLayout()
        form.addRow("&Certificate:", self.certificate)
        form.addRow("Recipient's &username:", self.username)
        form.addRow("Recipient's &full name:", self.full_name)
        form.addRow("Your &PIN:", self.pin)
        self.buttons, self.give_button = action_buttons(self, "&Give", "give_button", self.give,
                                                        QDialogButtonBox.StandardButton.Cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        if not certificates:
            self.banner.show_message("You have no gift certificate to give (one you bought, not yet given or "
                                     "spent).", "info")
            self.give_button.setEnabled(False)

    def _new_key(self, *_: object) -> None:
        self.idempotency_key = new_idempotency_key()

    def request(self) -> tuple[str, str, str, str] | str:
        chosen = self.certificate.currentData()
        if not isinstance(chosen, OpenTokenPurchase):
            return "Choose a gift certificate."
        username, full_name = self.username.text().strip(), self.full_name.text().strip()
        if not username or not full_name:
            return "Enter the recipient's username and full name (both must match their account)."
        if not self.pin.text():
            return "Enter your PIN to confirm."
        return chosen.operation_id, username, full_name, self.pin.text()

    def give(self) -> None:
        if self.busy:
            return
        request = self.request()
        if isinstance(request, str):
            self.banner.show_message(request, "error")
            return
        self.busy = True
        self.give_button.setEnabled(False)
        api, key = self.state.api, self.idempotency_key
        self.state.call(lambda: api.give_gift_certificate(*request, idempotency_key=key), self._done, self._failed)

    def _done(self, answer: GiftGiven) -> None:
        self.busy = False
        if answer.status == GiveStatus.PENDING:
            # the store has sent it to the mall, no answer yet: the same key asks again
            self.give_button.setEnabled(True)
            self.give_button.setText("&Check again")
            self.banner.show_message("Sent; the mall has not answered yet. Check again in a moment (it is given "
                                     "once).", "warning")
            return
        self.given.emit(answer)
        self.accept()

    def _failed(self, error: ApiError) -> None:
        self.busy = False
        self.give_button.setEnabled(True)
        if needs_new_key(error):
            self._new_key()
        messages = {403: "That PIN is not right.",
                    404: "No user of this store has that username and full name. Check both.",
                    409: "That certificate cannot be given now (it was spent, redeemed or given already)."}
        self.banner.show_message(messages.get(error.status or 0, error.user_message), "error")


class RedeemDialog(QDialog):
    """A gift certificate's code (XXXX-XXXX-XXXX-XXXX) moves it into your open wallet (at the
    MSP). Too many wrong codes lock redeeming for a while (the MSP's 423)."""

    redeemed = Signal(object)

    def __init__(self, state: Any, redeem: Callable[[str], Redeemed], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._redeem = redeem
        self.busy = False
        self.setWindowTitle("Redeem a gift certificate")
        self.banner = Banner(self, objectName="redeem_banner")
        self.code = QLineEdit(objectName="redeem_code", placeholderText="XXXX-XXXX-XXXX-XXXX")
        self.code.setAccessibleName("Gift certificate code")
        form = QFormLayout()
        form.addRow("&Code:", self.code)
        self.buttons, self.redeem_button = action_buttons(self, "&Redeem", "redeem_button", self.redeem,
                                                          QDialogButtonBox.StandardButton.Cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        layout.addWidget(self.buttons)

    def request(self) -> str | None:
        """The code as typed when it has the code's form, else None (the MSP decides if it is right)."""
        code = normalize_code(self.code.text())
        return self.code.text().strip() if len(code) == GIFT_CODE_CHARACTERS else None

    def redeem(self) -> None:
        if self.busy:
            return
        code = self.request()
        if code is None:
            self.banner.show_message("A code has 16 letters and digits, as XXXX-XXXX-XXXX-XXXX.", "error")
            return
        self.busy = True
        self.redeem_button.setEnabled(False)
        redeem = self._redeem
        self.state.call(lambda: redeem(code), self._done, self._failed)

    def _done(self, answer: Redeemed) -> None:
        self.busy = False
        self.redeemed.emit(answer)
        self.accept()

    def _failed(self, error: ApiError) -> None:
        self.busy = False
        self.redeem_button.setEnabled(True)
        wrong = "That code is not right. Check it and try again."
        messages = {404: wrong, 422: wrong,
                    409: "That certificate was already redeemed or spent.",
                    423: "Too many wrong codes: redeeming is locked for 15 minutes."}
        self.banner.show_message(messages.get(error.status or 0, error.user_message), "error")

