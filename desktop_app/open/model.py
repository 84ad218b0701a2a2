"""The open-token account (issue 12, FIG 18-20) as item models: the lots and the statement.

Everything shown is the MSP's: each lot's tokens, cash value and whether it expired; each
statement line's ``balance_after``. The storefront does not add up lots or lines again, and it
never decides which kind pays (that is the MSP's plan, shown by the order dialog).
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from desktop_app.api.replies import ActivityWhat, OpenActivityLine, OpenKind, OpenLot, OpenWallet, Quote, Receipt
from desktop_app.money import format_cents

KIND_LABELS = {
    OpenKind.UNIVERSAL: "Universal",
    OpenKind.MANUFACTURER: "Manufacturer",
    OpenKind.MANUFACTURER_FREE: "Manufacturer (free)",
    OpenKind.GROUP: "Group",
    OpenKind.GIFT_CERTIFICATE: "Gift certificate",
}

LotRole = Qt.ItemDataRole.UserRole + 30

_Index = QModelIndex | QPersistentModelIndex


def kind_label(kind: str) -> str:
    """A kind's name for people; a kind this storefront does not know yet by its own name."""
    try:
        return KIND_LABELS[OpenKind(kind)]
    except ValueError:
        return kind.replace("_", " ").capitalize()


def kind_text(kind: str, issuer: str | None, issuer_name: str | None = None) -> str:
    """'Universal', 'Manufacturer (Acme)', 'Gift certificate (Mall A)'."""
    who = issuer_name or issuer
    return f"{kind_label(kind)} ({who})" if who else kind_label(kind)


def kinds_text(kinds: list[str]) -> str:
    """'Universal, Group, Gift certificate' (the server's order)."""
    return ", ".join(kind_label(k) for k in kinds)


def units_text(units: int) -> str:
    return f"{units:,} open token{'' if abs(units) == 1 else 's'}"


WHAT_LABELS = {
    ActivityWhat.ISSUED: "Bought", ActivityWhat.GRANTED: "Given free by the brand",
    ActivityWhat.CHANGE: "Change from a gift certificate", ActivityWhat.HELD: "Paid for an order",
    ActivityWhat.RELEASED: "Order not completed: given back", ActivityWhat.REFUNDED: "Refunded",
    ActivityWhat.RECEIVED: "Received (a gift certificate)", ActivityWhat.GIVEN: "Given to someone else",
    ActivityWhat.OTHER: "Other",
}


def what_label(what: str) -> str:
    try:
        return WHAT_LABELS[ActivityWhat(what)]
    except ValueError:
        return what.replace("_", " ").capitalize()


def balance_series(lines: list[OpenActivityLine], lots: list[OpenLot]) -> list[tuple[float, float]]:
    """(time, the open account's balance) for the chart, oldest first, from the MSP's figures:
    each line gives its lot's balance after it (``balance_after``), so the account after a line is
    that lot's balance plus every other lot's latest. A lot before its first line in the window had
    ``balance_after - change``; a lot without lines in the window held what the wallet says."""
    oldest_first = list(reversed(lines))
    state: dict[int, int] = {}
    for line in oldest_first:
        state.setdefault(line.lot_id, line.balance_after - line.change)
    quiet = sum(lot.tokens for lot in lots if lot.lot_id not in state and not lot.expired)
    points = []
    for line in oldest_first:
        state[line.lot_id] = line.balance_after
        points.append((line.at.timestamp(), float(quiet + sum(state.values()))))
    return points


class _Table(QAbstractTableModel):
    HEADERS: list[str] = []

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows())

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def _rows(self) -> list:
        raise NotImplementedError


class OpenLotsModel(_Table):
    """One row per lot: kind, issuer, expiry, tokens, cash value (GET /v1/open-wallet)."""

    HEADERS = ["Kind", "Issuer", "Expires", "Open tokens", "Cash value"]
    COL_KIND, COL_ISSUER, COL_EXPIRES, COL_TOKENS, COL_VALUE = range(5)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.wallet: OpenWallet | None = None

    def _rows(self) -> list[OpenLot]:
        return self.wallet.lots if self.wallet is not None else []

    def set_wallet(self, wallet: OpenWallet | None) -> None:
        self.beginResetModel()
        self.wallet = wallet
        self.endResetModel()

    def lot(self, row: int) -> OpenLot:
        return self._rows()[row]

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        rows = self._rows()
        if not index.isValid() or not 0 <= index.row() < len(rows):
            return None
        lot, col = rows[index.row()], index.column()
        if role == LotRole:
            return lot
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_KIND:
                return kind_label(lot.kind)
            if col == self.COL_ISSUER:
                return lot.issuer_name or lot.issuer or "every store of the mall"
            if col == self.COL_EXPIRES:
                if lot.expires_at is None:
                    return "never"
                day = lot.expires_at.astimezone().strftime("%Y-%m-%d")
                return f"expired {day}" if lot.expired else day
            if col == self.COL_TOKENS:
                return f"{lot.tokens:,}"
            if col == self.COL_VALUE:
                return format_cents(lot.value_cents)
        if role == Qt.ItemDataRole.ForegroundRole and lot.expired:
            from PySide6.QtGui import QColor
            return QColor("#8a8a8a")        # an expired lot pays nothing (the MSP says which)
        if role == Qt.ItemDataRole.ToolTipRole and lot.expired:
            return "Expired: these tokens no longer pay for anything."
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_TOKENS, self.COL_VALUE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class OpenActivityModel(_Table):
    """The open account's statement, newest first, with the balance after each line."""

    HEADERS = ["Date", "What", "Kind", "Open tokens", "Lot balance"]
    COL_AT, COL_WHAT, COL_KIND, COL_CHANGE, COL_BALANCE = range(5)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.lines: list[OpenActivityLine] = []
        self.member_names: dict[str, str] = {}     # member id -> name (the mall's directory)
        self.issuer_names: dict[str, str] = {}     # issuer -> its name, as the wallet's lots give it

    def set_member_names(self, names: dict[str, str]) -> None:
        self.member_names = dict(names)
        if self.lines:
            self.dataChanged.emit(self.index(0, self.COL_WHAT), self.index(len(self.lines) - 1, self.COL_WHAT))

    def _rows(self) -> list[OpenActivityLine]:
        return self.lines

    def set_lines(self, lines: list[OpenActivityLine], lots: list[OpenLot] | None = None) -> None:
        self.beginResetModel()
        self.lines = list(lines)          # the MSP sends newest first
        self.issuer_names = {lot.issuer: lot.issuer_name for lot in lots or [] if lot.issuer and lot.issuer_name}
        self.endResetModel()

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.lines):
            return None
        line, col = self.lines[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_AT:
                return line.at.astimezone().strftime("%Y-%m-%d %H:%M")
            if col == self.COL_WHAT:
                what = what_label(line.what)
                if not line.member:
                    return what
                return f"{what} at {self.member_names.get(line.member, line.member)}"
            if col == self.COL_KIND:
                name = self.issuer_names.get(line.issuer or "") or self.member_names.get(line.issuer or "")
                return kind_text(line.kind, line.issuer, name)
            if col == self.COL_CHANGE:
                return ("+" if line.change > 0 else "") + f"{line.change:,}"
            if col == self.COL_BALANCE:
                return f"{line.balance_after:,}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_CHANGE, self.COL_BALANCE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


# ---------------------------------------------------------------- an order's open part, in words
# (the order dialog, the confirmation, the store's "Pays with": the server's figures, never redone)

def plan_lines(quote: Quote) -> list[str]:
    """The split of a quote before confirming: the store's own tokens, then each open kind the
    MSP's plan takes (and a gift certificate's change), or why there is no plan."""
    closed = quote.closed_tokens if quote.closed_tokens is not None else quote.required_tokens
    lines = [f"This store's tokens: {closed:,}"] if closed or quote.payment == "closed" else []
    if not quote.open_units and quote.open_plan is None and quote.open_plan_error is None:
        return lines
    needed = units_text(quote.open_units) if quote.open_units is not None else "some open tokens"
    plan = quote.open_plan
    if plan is None:
        return [*lines, f"Open tokens: {needed}, but the mall did not say which kinds "
                        f"({quote.open_plan_error or 'no answer'})"]
    if plan.short_units:
        helpful = f"; these kinds would help: {kinds_text(plan.helpful_kinds)}" if plan.helpful_kinds else ""
        return [*lines, f"Open tokens: {needed} needed, you are short of "
                        f"{units_text(plan.short_units)}{helpful}"]
    lines += [f"{kind_text(kind, issuer)}: {units_text(tokens)}" for kind, issuer, tokens in plan.by_kind()]
    lines += [f"Change from a gift certificate, back as universal tokens: {units_text(p.tokens)}"
              for p in plan.change]
    return lines


def receipt_lines(receipt: Receipt) -> list[str]:
    """The confirmation: the kinds that paid, and the balance left of each open kind."""
    paid = []
    for part in receipt.paid:
        if part.kind == "closed":
            paid.append(f"{part.tokens:,} of this store's tokens")
        else:
            paid.append(f"{units_text(part.tokens)} ({kind_text(part.kind, part.issuer)})")
    lines = ["Paid with " + ", ".join(paid) + "."] if paid else []
    if receipt.open_balance_after:
        lines.append("Left: " + ", ".join(f"{kind_label(kind)} {tokens:,}"
                                          for kind, tokens in receipt.open_balance_after.items()) + ".")
    return lines
