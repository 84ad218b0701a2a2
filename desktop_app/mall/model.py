"""Item models of the mall: the members with the user's balance at each, and the exchanges.

Rows hold the servers' typed replies; the balances are each member's own answer
(GET /v1/me there), never added up here.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QCoreApplication, QModelIndex, Qt

from desktop_app.api.replies import Exchange, ExchangeStatus, Mall, MallMember
from desktop_app.mall.rates import token_count_text
from desktop_app.money import format_cents

MemberRole = Qt.ItemDataRole.UserRole + 1
ExchangeRole = Qt.ItemDataRole.UserRole + 2


def _tr(text: str) -> str:
    return QCoreApplication.translate("MallModel", text)


@dataclass(frozen=True)
class Balance:
    """The user's tokens at one member as that member said, or why there is no number."""

    tokens: int | None
    note: str = ""


def balance_text(member: MallMember, balance: Balance | None) -> str:
    if balance is None:
        return ""
    if balance.tokens is None:
        return balance.note
    cash = format_cents(balance.tokens * member.token.value_cents)
    return f"{token_count_text(balance.tokens, member.token.name)} ({cash})"


class MallMembersModel(QAbstractTableModel):
    """The members (name, token, value, status) and the user's balance at each."""

    COLUMNS = ("Member", "Token", "Value of a token", "Status", "Your tokens there")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._mall: Mall | None = None
        self._members: list[MallMember] = []
        self._balances: dict[str, Balance] = {}

    @property
    def mall(self) -> Mall | None:
        return self._mall

    def set_mall(self, mall: Mall | None) -> None:
        """The home member first, then the others by name."""
        self.beginResetModel()
        self._mall = mall
        members = list(mall.members) if mall is not None else []
        home = mall.member_id if mall is not None else ""
        self._members = sorted(members, key=lambda m: (m.member_id != home, m.name.lower()))
        self._balances = {k: v for k, v in self._balances.items() if any(m.member_id == k for m in members)}
        self.endResetModel()

    def set_balances(self, balances: dict[str, Balance]) -> None:
        self._balances = dict(balances)
        if self._members:
            column = len(self.COLUMNS) - 1
            self.dataChanged.emit(self.index(0, column), self.index(len(self._members) - 1, column))

    def clear_balances(self) -> None:
        self.set_balances({})

    def balance(self, member_id: str) -> Balance | None:
        return self._balances.get(member_id)

    def member(self, row: int) -> MallMember | None:
        return self._members[row] if 0 <= row < len(self._members) else None

    def row_of(self, member_id: str) -> int:
        return next((i for i, m in enumerate(self._members) if m.member_id == member_id), -1)

    def members(self) -> list[MallMember]:
        return list(self._members)

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._members)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.COLUMNS):
            return _tr(self.COLUMNS[section])
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._members):
            return None
        m = self._members[index.row()]
        col = index.column()
        if role == MemberRole:
            return m
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            home = self._mall is not None and m.member_id == self._mall.member_id
            if col == 0:
                return m.name + (_tr(" (your store)") if home else "")
            if col == 1:
                return m.token.name
            if col == 2:
                return format_cents(m.token.value_cents)
            if col == 3:
                return _tr("active") if m.active else _tr("blocked")
            if col == 4:
                return balance_text(m, self._balances.get(m.member_id))
        if role == Qt.ItemDataRole.ToolTipRole and col == 3 and not m.active:
            return _tr("A blocked member takes no new exchanges or sign-ons; those under way finish.")
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 4):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


STATUS_TEXT = {ExchangeStatus.PENDING: "pending", ExchangeStatus.COMPLETED: "completed",
               ExchangeStatus.FAILED: "failed"}


class ExchangeModel(QAbstractTableModel):
    """The user's exchanges, newest first, each with the status the home server gave."""

    COLUMNS = ("Date", "To", "Tokens out", "Tokens in", "Status")

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[Exchange] = []
        self._mall: Mall | None = None

    def set_mall(self, mall: Mall | None) -> None:
        self._mall = mall
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(self.COLUMNS) - 1))

    def set_exchanges(self, exchanges: list[Exchange]) -> None:
        self.beginResetModel()
        self._rows = sorted(exchanges, key=lambda x: x.created_at, reverse=True)
        self.endResetModel()

    def update(self, exchange: Exchange) -> None:
        """One exchange as the server now says (a new one goes on top)."""
        for i, x in enumerate(self._rows):
            if x.id == exchange.id:
                self._rows[i] = exchange
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))
                return
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._rows.insert(0, exchange)
        self.endInsertRows()

    def exchanges(self) -> list[Exchange]:
        return list(self._rows)

    def pending(self) -> list[Exchange]:
        return [x for x in self._rows if x.pending]

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.COLUMNS):
            return _tr(self.COLUMNS[section])
        return None

    def _token(self, member_id: str) -> str:
        m = self._mall.member(member_id) if self._mall is not None else None
        return m.token.name if m is not None else _tr("tokens")

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        x = self._rows[index.row()]
        col = index.column()
        if role == ExchangeRole:
            return x
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if col == 0:
                return x.created_at.astimezone().strftime("%Y-%m-%d %H:%M")
            if col == 1:
                m = self._mall.member(x.to_member) if self._mall is not None else None
                return m.name if m is not None else x.to_member
            if col == 2:
                return token_count_text(x.tokens_from, self._token(self._mall.member_id if self._mall else ""))
            if col == 3:
                return token_count_text(x.tokens_to, self._token(x.to_member))
            if col == 4:
                return _tr(STATUS_TEXT.get(ExchangeStatus(x.status), x.status)) \
                    if x.status in STATUS_TEXT else x.status
        if role == Qt.ItemDataRole.ToolTipRole and col == 4 and x.reason:
            return x.reason
        return None
