"""The Malls page: the members of the mall, the user's tokens at each, Browse and Exchange."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from desktop_app.api.replies import MallMember
from desktop_app.mall.exchange import ExchangeDialog
from desktop_app.mall.model import MemberRole
from desktop_app.widgets.common import Banner


class MallPage(QWidget):
    browse = Signal(object)          # MallMember: show its store on the Store page

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.mall = state.mall
        title = QLabel(self.tr("The mall"), objectName="mall_title")
        title.setStyleSheet("font-size:14pt;font-weight:600;")
        self.intro = QLabel(self.tr("Stores of the mall. You shop at each with your account here: no second "
                                    "registration. Exchange your tokens for another store's to buy there."),
                            wordWrap=True)
        self.banner = Banner(objectName="mall_banner")
        self.table = QTableView(objectName="mall_members")
        self.table.setAccessibleName(self.tr("Members of the mall"))
        self.table.setModel(self.mall.members)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.activated.connect(lambda _i: self._browse())
        self.table.selectionModel().currentChanged.connect(lambda *_: self._update_buttons())
        self.mall.members.modelReset.connect(self._members_reset)

        self.browse_button = QPushButton(self.tr("&Browse its store"), objectName="mall_browse")
        self.browse_button.setAccessibleName(self.tr("Browse the selected member's store"))
        self.browse_button.clicked.connect(self._browse)
        self.exchange_button = QPushButton(self.tr("&Exchange tokens…"), objectName="mall_exchange")
        self.exchange_button.setAccessibleName(self.tr("Exchange your tokens into the selected member's"))
        self.exchange_button.clicked.connect(lambda: self.open_exchange())
        self.refresh_button = QPushButton(self.tr("&Refresh"), objectName="mall_refresh")
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        buttons.addWidget(self.browse_button)
        buttons.addWidget(self.exchange_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.intro)
        layout.addWidget(self.banner)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.setTabOrder(self.table, self.browse_button)
        self.setTabOrder(self.browse_button, self.exchange_button)
        self.setTabOrder(self.exchange_button, self.refresh_button)

        self.mall.problem.connect(lambda text: self.banner.show_message(text, "warning"))
        self.mall.mallChanged.connect(lambda m: self.banner.clear_message() if m is not None else None)
        state.meChanged.connect(lambda _me: self._update_buttons())
        self._update_buttons()

    def refresh(self) -> None:
        self.mall.refresh()

    def selected(self) -> MallMember | None:
        index = self.table.currentIndex()
        return index.data(MemberRole) if index.isValid() else None

    def select(self, member_id: str) -> bool:
        row = self.mall.members.row_of(member_id)
        if row >= 0:
            self.table.selectRow(row)
        return row >= 0

    def _members_reset(self) -> None:
        if not self.table.currentIndex().isValid() and self.mall.members.rowCount():
            self.table.selectRow(0)
        self._update_buttons()

    def _is_home(self, member: MallMember | None) -> bool:
        mall = self.mall.mall
        return member is not None and mall is not None and member.member_id == mall.member_id

    def _update_buttons(self) -> None:
        member = self.selected()
        self.browse_button.setEnabled(member is not None)
        other = member is not None and not self._is_home(member) and member.active
        self.exchange_button.setEnabled(other and self.state.signed_in)

    def _browse(self) -> None:
        member = self.selected()
        if member is not None:
            self.browse.emit(member)

    def open_exchange(self, tokens: int = 0) -> ExchangeDialog | None:
        member = self.selected()
        if not self.state.signed_in:
            self.banner.show_message(self.tr("Sign in to exchange tokens."), "warning")
            return None
        dialog = ExchangeDialog(self.state, self, to_member=member.member_id if member is not None else "",
                                tokens=tokens)
        dialog.exchangeStarted.connect(self._started)
        self.exchange_dialog = dialog
        dialog.open()
        return dialog

    def _started(self, exchange) -> None:
        self.banner.show_message(self.tr("Exchange {status}: it shows in your Wallet.").format(
            status=exchange.status), "info")
