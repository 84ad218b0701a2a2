"""Buying at another member with its tokens: the order placed at that member's server
through the session there (opened with the home member's assertion).

The dialog shows that server's quote (what it costs there, what the user has there). When
the member answers 402 (short of its tokens), the home store's shortage dialog opens
(desktop_app.orders.page.ShortageDialog, in the member's tokens) with the exchange from the
home tokens as a fourth way (rounded up to whole home tokens; the exchange's own quote is
exact): choose something else, buy the member's tokens there by card (when its server offers
token purchases to the session there; otherwise hidden, and the dialog says why), or exchange.
Saving the order for later is hidden: the order list is the home store's. The order's
Idempotency-Key follows the rules of desktop_app.api.client: the same key after a lost answer,
a new one after a refusal.
"""
from __future__ import annotations

import platform

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout

from desktop_app.agent.bridge import AgentError
from desktop_app.api.client import ApiError, ShortOfTokens, needs_new_key, new_idempotency_key
from desktop_app.api.replies import MallMember, Offer, Product, Quote, Receipt, TokenOffers, TokenPurchase
from desktop_app.mall.rates import MemberPricing
from desktop_app.store.models import KIND_LABELS
from desktop_app.widgets.common import Banner


class BuyAtMemberDialog(QDialog):
    ordered = Signal(object)              # Receipt from the member's server

    def __init__(self, state, member: MallMember, product: Product, offer: Offer, tier_index: int = 0,
                 parent=None, *, license_id: int | None = None):
        super().__init__(parent)
        self.state = state
        self.member = member
        self.pricing: MemberPricing | None = state.mall.pricing_at(member)
        self.items = [{"offer_id": offer.id}]
        if offer.tiers:
            self.items[0]["quantity"] = offer.tiers[min(tier_index, len(offer.tiers) - 1)].quantity
        if license_id is not None:      # an extension or conversion of the user's license there
            self.items[0]["license_id"] = license_id
        self.idempotency_key = new_idempotency_key()
        self.busy = False
        self.shortage: int = 0
        self.quote: Quote | None = None
        self.setWindowTitle(self.tr("Buy at {name}").format(name=member.name))
        self.setAccessibleName(self.windowTitle())

        self.what = QLabel(self.tr("{product}: {kind}, at {name}, paid with {token}.").format(
            product=product.name, kind=KIND_LABELS[offer.kind], name=member.name, token=member.token.name),
            wordWrap=True, objectName="buy_member_what")
        self.summary = QLabel(wordWrap=True, objectName="buy_member_summary")
        self.summary.setAccessibleName(self.tr("Cost and balance"))
        if self.pricing is not None:
            self.summary.setToolTip(self.pricing.tooltip())
        self.banner = Banner(objectName="buy_member_banner")
        self.exchange_button = QPushButton(self.tr("E&xchange tokens for the rest…"),
                                           objectName="buy_member_exchange")
        self.exchange_button.setAccessibleName(self.tr("Exchange your home tokens into {token}").format(
            token=member.token.name))
        self.exchange_button.clicked.connect(lambda: self.open_exchange())
        self.exchange_button.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.place_button = self.buttons.addButton(self.tr("&Place order"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.place_button.setObjectName("buy_member_place")
        self.place_button.clicked.connect(self.place)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for w in (self.what, self.summary, self.banner, self.exchange_button, self.buttons):
            layout.addWidget(w)
        self.refresh_quote()

    def _text(self, tokens: int) -> str:
        return self.pricing.tokens_text(tokens) if self.pricing is not None else f"{tokens:,}"

    def refresh_quote(self) -> None:
        sessions, member, items = self.state.mall.sessions, self.member, self.items

        def done(quote: Quote) -> None:
            self.quote = quote
            self.summary.setText(self.tr("Costs {cost}. You have {have} at {name}.").format(
                cost=self._text(quote.required_tokens), have=self._text(quote.available_tokens), name=member.name))
            if quote.shortage > 0:
                self.show_shortage(quote.shortage)
            else:
                self.exchange_button.hide()
                self.banner.clear_message()

        self.state.call(lambda: sessions.call(member, lambda c: c.quote(items)), done,
                        lambda e: self.banner.show_message(e.user_message, "error"))

    def show_shortage(self, shortage: int) -> None:
        """The member's own numbers; the exchange is the way to get its tokens from home."""
        self.shortage = shortage
        self.banner.show_message(self.tr(
            "You are {short} short at {name}. Exchange your tokens for the rest, choose something else, "
            "or cancel.").format(short=self._text(shortage), name=self.member.name), "warning")
        self.exchange_button.show()

    def short_of_tokens(self, error: ShortOfTokens) -> None:
        """The home store's shortage dialog, for this member: first ask (off the UI thread)
        whether its server sells its tokens to the session there by card."""
        sessions, member = self.state.mall.sessions, self.member

        def offers(client) -> TokenOffers:
            return client.request("GET", "/v1/token-offers/mine", shape=TokenOffers)

        def done(found: TokenOffers) -> None:
            why = "" if "card" in found.payment_methods else self.tr(
                "{name} does not sell its tokens by card here.").format(name=member.name)
            self._open_shortage(error, found, why)

        def failed(problem: ApiError) -> None:
            self._open_shortage(error, None, self.tr("{name} does not sell its tokens to you here ({why}).").format(
                name=member.name, why=problem.user_message))

        self.state.call(lambda: sessions.call(member, offers), done, failed)

    def _open_shortage(self, error: ShortOfTokens, offers: TokenOffers | None, buy_hidden: str):
        from desktop_app.orders.page import ShortageDialog
        dialog = ShortageDialog(self.state, error, self, member=self.member, pricing=self.pricing,
                                buy_hidden=buy_hidden,
                                save_hidden=self.tr("An order at another store is not kept in your order list."))
        dialog.removeItems.connect(self.reject)
        dialog.exchangeTokens.connect(lambda: self.open_exchange())
        dialog.buyTokens.connect(lambda: self.open_buy_tokens(offers, error.shortage.shortage))
        self.shortage_dialog = dialog
        dialog.open()
        return dialog

    def open_buy_tokens(self, offers: TokenOffers | None, suggested: int):
        """The member's own tokens, bought by card at its server through the session there."""
        from desktop_app.wallet.page import BuyTokensDialog
        sessions, member = self.state.mall.sessions, self.member

        def purchase(method, tokens, bundle_id, card, key) -> TokenPurchase:
            return sessions.call(member, lambda c: c.buy_tokens(method=method, tokens=tokens, bundle_id=bundle_id,
                                                                card=card, idempotency_key=key))

        dialog = BuyTokensDialog(self.state, self, suggested_tokens=suggested, offers=offers, pricing=self.pricing,
                                 purchase=purchase,
                                 title=self.tr("Buy {token} at {name}").format(token=member.token.name,
                                                                               name=member.name))
        dialog.purchased.connect(self._bought_tokens)
        self.buy_dialog = dialog
        dialog.open()
        return dialog

    def _bought_tokens(self, _answer: TokenPurchase) -> None:
        self.refresh_quote()
        self.state.mall.refresh_balances()

    def open_exchange(self):
        from desktop_app.mall.exchange import ExchangeDialog
        home_tokens = self.pricing.home_tokens(self.shortage) if self.pricing is not None else self.shortage
        dialog = ExchangeDialog(self.state, self, to_member=self.member.member_id, tokens=home_tokens)
        dialog.exchangeStarted.connect(lambda _x: self.banner.show_message(
            self.tr("Exchange sent; place the order when it has completed."), "info"))
        self.state.mall.exchangeChanged.connect(self._exchange_changed)
        self.exchange_dialog = dialog
        dialog.open()
        return dialog

    def _exchange_changed(self, exchange) -> None:
        if exchange.to_member == self.member.member_id and not exchange.pending:
            self.refresh_quote()

    def place(self) -> None:
        if self.busy:
            return
        self.busy = True
        self.place_button.setEnabled(False)
        sessions, member, items, key, agent = self.state.mall.sessions, self.member, self.items, \
            self.idempotency_key, self.state.agent
        trust, mall = self.state.mall.trust, self.state.mall.mall

        def order(client):
            if mall is not None:   # before paying: the agent must accept the codes this member issues
                trust.trust_member(mall.msp_url, member.member_id)
            device = agent.device()
            registered = client.register_device(device.public_key, platform.node() or "this computer")
            return client.place_order(items, registered.device_id, [], key)

        def done(receipt: Receipt) -> None:
            self.busy = False
            self.ordered.emit(receipt)
            self.accept()

        def failed(error: ApiError | AgentError) -> None:
            self.busy = False
            self.place_button.setEnabled(True)
            if isinstance(error, AgentError):     # nothing was ordered: the agent would refuse its codes
                self.banner.show_message(self.tr("The license agent does not trust {name}'s programs: {why}").format(
                    name=self.member.name, why=error.user_message), "error")
                return
            if needs_new_key(error):
                self.idempotency_key = new_idempotency_key()   # refused: that answer is final for its key
            if isinstance(error, ShortOfTokens):
                self.show_shortage(error.shortage.shortage)
                self.short_of_tokens(error)
            else:
                self.banner.show_message(error.user_message, "error")

        self.state.call(lambda: sessions.call(member, order), done, failed)
