"""The main window: header with the balance, navigation, pages."""
from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QMainWindow, QPushButton, QStackedWidget,
                               QVBoxLayout, QWidget)

from desktop_app.api.replies import PurchaseStatus
from desktop_app.store.page import StorePage
from license_agent.code_terms import HOME_ISSUER, product_of_store_link, product_ref, split_ref, store_link
from desktop_app.widgets.common import Banner

PAGES = ["Store", "Order list", "Library", "Wallet", "Settings", "Malls"]


class MainWindow(QMainWindow):
    def __init__(self, state, *, demo_url: str = "", parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("TokenRent")
        self.resize(1180, 760)

        # header: who, status, balance (always visible), sign in/out
        self.user_label = QLabel("Not signed in", objectName="header_user")
        self.balance_label = QLabel("", objectName="header_balance")
        self.balance_label.setStyleSheet("font-weight:600;font-size:12pt;")
        self.sign_button = QPushButton("&Sign in…", objectName="header_sign")
        self.sign_button.clicked.connect(self._sign_in_or_out)
        header = QHBoxLayout()
        title = QLabel("TokenRent")
        title.setStyleSheet("font-size:16pt;font-weight:700;")
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.user_label)
        header.addWidget(self.balance_label)
        header.addWidget(self.sign_button)
        self.offline_banner = Banner(objectName="offline_banner")
        self.banner = Banner(objectName="main_banner")
        self.status_banner = Banner(objectName="status_banner")

        self.demo_url = demo_url
        self.store = StorePage(state)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.store)
        # Order list, Library, Wallet and Settings are built when first needed: a faster start.
        self._lazy: dict[int, QWidget] = {}
        for _ in range(len(PAGES) - 1):
            self.pages.addWidget(QWidget())
        self.nav = QListWidget(objectName="nav")
        self.nav.addItems(PAGES)
        self.nav.setFixedWidth(self.nav.sizeHintForColumn(0) + 40)
        self.nav.currentRowChanged.connect(self._page_changed)
        for i in range(len(PAGES)):   # Ctrl+1..6 jump to a page
            act = QAction(self, shortcut=QKeySequence(f"Ctrl+{i + 1}"))
            act.triggered.connect(lambda _=False, i=i: self.nav.setCurrentRow(i))
            self.addAction(act)

        body = QHBoxLayout()
        body.addWidget(self.nav)
        body.addWidget(self.pages, 1)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(header)
        layout.addWidget(self.offline_banner)
        layout.addWidget(self.status_banner)
        layout.addWidget(self.banner)
        layout.addLayout(body, 1)
        self.setCentralWidget(central)
        self.setTabOrder(self.nav, self.pages)

        from desktop_app.notifier import Notifier
        self.notifier = Notifier(self, self.banner)     # tray, else notify-send, else the banner only
        self.notifier.linkActivated.connect(self.open_link)

        # wiring
        self.store.addToOrder.connect(self.add_to_order)
        self.store.addAtMember.connect(self.buy_at_member)
        state.meChanged.connect(self._me_changed)
        state.offlineChanged.connect(self._offline_changed)
        state.message.connect(self.banner.show_message)
        state.sessionExpired.connect(self._session_expired)
        state.userChanged.connect(self._user_changed)
        state.lowRental.connect(self.notify_low)
        state.pricingChanged.connect(lambda _p: self._me_changed(state.me))
        self.nav.setCurrentRow(0)
        self._me_changed(None)

    # -- pages built on first use -----------------------------------------------------
    def _page(self, index: int) -> QWidget:
        page = self._lazy.get(index)
        if page is None:
            if index == 1:
                from desktop_app.orders.page import OrderPage
                page = OrderPage(self.state)
                page.goToWallet.connect(self.buy_for_order)
                page.orderPlaced.connect(self._order_placed)
            elif index == 2:
                from desktop_app.library.page import LibraryPage
                page = LibraryPage(self.state)
                page.extend.connect(lambda product, offer, license_id:
                                    self.add_to_order(product, offer, 0, license_id))
                page.extendAtMember.connect(self.extend_at_member)
            elif index == 3:
                from desktop_app.wallet.page import WalletPage
                page = WalletPage(self.state)
            elif index == 4:
                from desktop_app.settings.page import SettingsPage
                page = SettingsPage(self.state, self.demo_url)
                page.notifications.setText(self.notifier.describe())   # which backend notices use
            else:
                from desktop_app.mall.page import MallPage
                page = MallPage(self.state)
                page.browse.connect(self.browse_member)
            placeholder = self.pages.widget(index)
            current = self.pages.currentIndex()
            self.pages.insertWidget(index, page)
            self.pages.removeWidget(placeholder)
            placeholder.deleteLater()
            self.pages.setCurrentIndex(current)
            self._lazy[index] = page
        return page

    @property
    def orders(self):
        return self._page(1)

    @property
    def library(self):
        return self._page(2)

    @property
    def wallet(self):
        return self._page(3)

    @property
    def settings_page(self):
        return self._page(4)

    @property
    def malls(self):
        return self._page(5)

    # -- navigation ---------------------------------------------------------------
    def _page_changed(self, row: int) -> None:
        if row >= 1:
            self._page(row)
        self.pages.setCurrentIndex(row)
        if row == 3:
            self.wallet.refresh()
        elif row == 2:
            self.state.refresh_library()
        elif row == 5:
            self.malls.refresh()

    def show_page(self, page: QWidget) -> None:
        self.nav.setCurrentRow(self.pages.indexOf(page))

    def open_product(self, product_id, *, directory_read: bool = False) -> bool:
        """tokenrent --product ID / tokenrent://product/ID: the product's page; MEMBER/ID (a mall
        member's link, as the agent gives for that member's licenses): that member's store (the
        mall's directory is read first when this run has not read it yet)."""
        member_id, bare = split_ref(str(product_id))
        mall = self.state.mall.mall
        if member_id is not None and member_id != HOME_ISSUER and not (mall is not None and member_id == mall.member_id):
            if mall is None and not directory_read:
                self.state.mall.refresh(lambda: self.open_product(product_id, directory_read=True))
                return True
            member = mall.member(member_id) if mall is not None else None
            if member is None:
                self.banner.show_message(self.tr("That store ({id}) is not in your mall.").format(id=member_id),
                                         "error")
                return False

            def opened(browsed) -> None:
                self.store.browse_store(browsed)
                self.show_page(self.store)
                if not self.store.show_product(bare):
                    self.banner.show_message(self.tr("Product {id} is not in {name}'s store.").format(
                        id=bare, name=member.name), "error")

            self.state.mall.open_store(member, opened)
            return True
        self.store.browse_home()
        self.show_page(self.store)
        found = self.store.show_product(bare)
        if not found:
            self.banner.show_message(f"Product {bare} is not in the store.", "error")
        return found

    # -- session ------------------------------------------------------------------
    def _sign_in_or_out(self) -> None:
        if self.state.signed_in:
            self.state.sign_out()
        else:
            self.ask_sign_in()

    def ask_sign_in(self, reason: str = ""):
        from desktop_app.account.dialogs import SignInDialog
        dialog = SignInDialog(self.state, self, reason=reason)
        self.sign_in_dialog = dialog
        dialog.open()
        return dialog

    def _session_expired(self) -> None:
        # the page stays as it is; the failed call is retried after sign-in
        dialog = self.ask_sign_in("Your session has ended. Sign in again to continue where you were.")
        dialog.rejected.connect(self.state.drop_pending_retries)

    def _user_changed(self) -> None:
        if 1 in self._lazy:
            self.orders.model.clear()     # the previous user's order list is theirs
        self.banner.clear_message()

    def _me_changed(self, me) -> None:
        if not me:
            self.user_label.setText("Not signed in")
            self.balance_label.setText("")
            self.sign_button.setText("&Sign in…")
            self.status_banner.clear_message()
            return
        self.user_label.setText(f"{me.full_name or me.username} ({me.username})")
        self.balance_label.setText(self.state.pricing.tokens_text(self.state.available_tokens))
        self.sign_button.setText("&Sign out")
        if not me.active:
            from desktop_app.account.dialogs import activation_text
            self.status_banner.show_message(activation_text(me, self.state.pricing), "warning")
        else:
            self.status_banner.clear_message()

    def after_sign_in(self) -> None:
        self.orders.restore_saved()

    def _offline_changed(self, offline: bool) -> None:
        if offline:
            self.offline_banner.show_message(
                "Off-line: the store cannot be reached. Your library shows what was saved on this computer "
                "and your programs still launch; buying, extending and downloading wait for the network.",
                "warning")
        else:
            self.offline_banner.clear_message()

    # -- the mall ---------------------------------------------------------------
    def browse_member(self, member) -> None:
        """Another member's store on the Store page, its prices in three forms (FIG 17)."""
        mall = self.state.mall
        if mall.mall is not None and member.member_id == mall.mall.member_id:
            self.store.browse_home()
            self.show_page(self.store)
            return

        def opened(browsed) -> None:
            self.store.browse_store(browsed)
            self.show_page(self.store)

        mall.open_store(member, opened)

    def buy_at_member(self, member, product, offer, tier_index: int = 0, license_id: int | None = None):
        """An offer of another member's store: ordered there, paid with its tokens (``license_id``:
        extending or converting the user's license there)."""
        if not self.state.signed_in:
            self.ask_sign_in(self.tr("Sign in to buy at {name}.").format(name=member.name))
            return None
        from desktop_app.mall.buy import BuyAtMemberDialog
        dialog = BuyAtMemberDialog(self.state, member, product, offer, tier_index, self, license_id=license_id)
        dialog.ordered.connect(lambda receipt: self._ordered_at_member(member, receipt))
        self.member_order_dialog = dialog
        dialog.open()
        return dialog

    def extend_at_member(self, entry, kind) -> None:
        """Extend or convert another member's license: that member's offer of ``kind`` for the
        product, ordered at its store (its catalog is read off the UI thread first)."""
        mall = self.state.mall.mall
        member = mall.member(entry.issuer) if mall is not None else None
        if member is None:
            self.banner.show_message(self.tr("That store is not known yet; open the Malls page, then try again."),
                                     "error")
            return

        def opened(browsed) -> None:
            product = next((p for p in browsed.products if str(p.id) == entry.product_id), None)
            offer = product.offer_of_kind(kind) if product is not None else None
            if offer is None:
                self.banner.show_message(self.tr("{name} offers no way to do that for {product} now.").format(
                    name=member.name, product=entry.name), "error")
                return
            self.buy_at_member(member, product, offer, 0, license_id=entry.license.id)

        self.state.mall.open_store(member, opened)

    def _ordered_at_member(self, member, receipt) -> None:
        self.banner.show_message(self.tr("ORDER CONFIRMED at {name} (order {id}).").format(
            name=member.name, id=receipt.id), "success")
        self.state.install_codes(receipt.deliveries)   # the agent says so if it does not trust that store's key
        self.state.mall.refresh_balances()
        # its programs come from that member's server, as products of that member (MEMBER/ID)
        downloads = self.state.cache.data.setdefault("download_urls", {})
        installed = self.state.installed_product_ids()
        for d in receipt.deliveries:
            if d.download_url is not None:
                key = product_ref(d.product_id, member.member_id)
                downloads[key] = {"url": d.download_url, "sha256": d.sha256, "size": d.size}
                if key not in installed:
                    self.library.start_download(key, downloads[key])
        self.state.cache.save()

    # -- order flow -------------------------------------------------------------
    def add_to_order(self, product, offer, tier_index: int = 0, license_id=None) -> None:
        self.orders.add(product, offer, tier_index, license_id)
        self.banner.show_message(f"{product.name} is in your order list.", "info")
        if license_id is not None:
            self.show_page(self.orders)

    def buy_for_order(self) -> None:
        """FIG 10: buy tokens now, then come back to the same order."""
        self.show_page(self.wallet)
        shortage = getattr(self.orders, "shortage_dialog", None)
        suggested = shortage.shortage if shortage is not None else 0

        def bought(answer):
            if answer.status != PurchaseStatus.PENDING:
                self.show_page(self.orders)

        self.wallet.open_buy(suggested, bought)

    def _order_placed(self, info: dict) -> None:
        answer, lines = info["answer"], info["lines"]
        deliveries = answer.deliveries
        self.state.install_codes(deliveries)
        downloads = self.state.cache.data.setdefault("download_urls", {})
        wanted = {line.product.id for line in lines if line.needs_download()}
        for d in deliveries:
            if d.download_url is not None:
                info_ = {"url": d.download_url, "sha256": d.sha256, "size": d.size}
                downloads[str(d.product_id)] = info_
                if d.product_id in wanted:
                    self.library.start_download(d.product_id, info_)
        self.state.cache.save()

    # -- notifications ------------------------------------------------------------
    def open_link(self, link: str) -> bool:
        """A tokenrent://product/ID link (from a notice) opens that product's page."""
        product_id = product_of_store_link(link)
        if product_id is None:
            return False
        self.showNormal()
        self.raise_()
        self.activateWindow()
        return self.open_product(product_id)

    def notify_low(self, entry) -> None:
        """A rental crossed its running-low threshold (AppState says so once per crossing)."""
        text = f"{entry.name}: {entry.left_text()}. Extend it in the Library to keep going."
        # a member's license leads to that member's store (the agent's link names it)
        link = entry.store_url if entry.issuer else store_link(entry.product_id)
        self.notifier.notify("TokenRent: rental running low", text, link)
