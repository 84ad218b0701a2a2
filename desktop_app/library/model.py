"""The library: every license the user holds, with what is left.

A row joins the server's license (GET /v1/licenses, cached for off-line use) with the
agent's own view of it on this computer (`license-agent status`). What is left, whether it
is running low, expired or used up is the agent's answer, shown as it is: the agent is what
decides whether a program may run, so the library never works these out again.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QCoreApplication, QModelIndex, Qt

from desktop_app.agent.replies import AgentLicense
from desktop_app.api.replies import License
from license_agent.code_terms import HOME_ISSUER, LicenseKind, product_ref, store_link

EntryRole = Qt.ItemDataRole.UserRole + 20
FractionRole = Qt.ItemDataRole.UserRole + 21   # 0..1 left, or None for permanent

KIND_NAMES = {LicenseKind.PERMANENT: "Purchased", LicenseKind.TIME: "Rented by time",
              LicenseKind.USES: "Rented by uses", LicenseKind.PROCESSINGS: "Rented by processings"}
COUNT_UNITS = {LicenseKind.USES: "uses", LicenseKind.PROCESSINGS: "processings"}


def _tr(text: str) -> str:
    return QCoreApplication.translate("LibraryEntry", text)


@dataclass(frozen=True)
class LibraryEntry:
    """One license: the server's record and the agent's view (either may be missing)."""

    license: License | None       # None: only the agent knows it (a code pasted while off-line)
    agent: AgentLicense | None    # None: not on this computer (yet, or bound to another one)
    installed: bool = False
    this_device: str | None = None    # this computer's device id, once known
    issuer: str | None = None         # the mall member that issued it; None: the home store
    store_name: str = ""              # that member's name, when the mall's directory is known

    @property
    def license_id(self) -> str:
        """The license as both sides name it (the agent's ids are the server's, as text)."""
        return str(self.license.id) if self.license is not None else self.agent.license_id

    @property
    def product_id(self) -> str:
        """The id at its own store (every store numbers from 1: see product_key)."""
        return str(self.license.product_id) if self.license is not None else self.agent.product_id

    @property
    def key(self) -> tuple[str | None, str]:
        """What names this license among every store's: (issuer, license id)."""
        return self.issuer, self.license_id

    @property
    def product_key(self) -> str:
        """The product on this computer (install folder, downloads): the bare id for the home
        store's, as always; `MEMBER/ID` for another member's."""
        return product_ref(self.product_id, self.issuer)

    @property
    def agent_ref(self) -> str:
        """The product as the agent must be asked about it (`home/ID` or `MEMBER/ID`): never
        another store's license of the same product id."""
        return product_ref(self.product_id, self.issuer or HOME_ISSUER)

    @property
    def name(self) -> str:
        return self.license.product_name if self.license is not None else self.agent.product_name

    @property
    def kind(self) -> LicenseKind:
        return self.agent.kind if self.agent is not None else self.license.kind

    @property
    def store_url(self) -> str:
        """The agent's link (it names the member for a member's license), else the server's."""
        if self.agent is not None:
            return self.agent.store_url
        return store_link(self.product_id, self.issuer) if self.issuer else self.license.store_url

    @property
    def agent_known(self) -> bool:
        """The agent holds a code for it on this computer."""
        return self.agent is not None

    @property
    def remaining(self) -> int | None:
        """The agent's figure: seconds (time), a count (uses, processings); None when permanent
        or not on this computer."""
        return self.agent.remaining if self.agent is not None else None

    @property
    def total(self) -> int | None:
        """Uses or processings granted (the agent's total, else the server's grant)."""
        if self.agent is not None:
            return self.agent.total
        if self.license is not None:
            return {LicenseKind.USES: self.license.uses,
                    LicenseKind.PROCESSINGS: self.license.processings}.get(self.license.kind)
        return None

    @property
    def warning(self) -> bool:
        """Running low, by the agent's rule (FIG 12 steps 1106, 1112, 1118)."""
        return self.agent is not None and self.agent.warning

    @property
    def expires_at(self) -> datetime | None:
        if self.agent is not None:
            return self.agent.expires_at
        return self.license.expires_at if self.license is not None else None

    @property
    def history(self) -> tuple[tuple[str, int], ...]:
        """The agent's daily use: ((date "YYYY-MM-DD", used), ...)."""
        return tuple((day.date, day.used) for day in self.agent.history) if self.agent is not None else ()

    @property
    def other_device(self) -> str:
        """The name of the user's other computer this license is bound to, if it is."""
        lic = self.license
        if lic is None or lic.device_id is None or self.this_device is None or lic.device_id == self.this_device:
            return ""
        return lic.device_name or lic.device_id

    @property
    def fraction(self) -> float | None:
        """How full the bar is: the agent's remaining over what the code granted."""
        a = self.agent
        if a is None or a.remaining is None:
            return None
        if a.kind == LicenseKind.TIME:
            span = (a.expires_at - a.issued_at).total_seconds() if a.expires_at else 0
        else:
            span = a.total or 0
        return max(0.0, min(1.0, a.remaining / span)) if span > 0 else None

    def left_text(self) -> str:
        if self.kind == LicenseKind.PERMANENT:
            return "Yours to keep"
        if self.other_device and not self.agent_known:
            return f"On your other computer “{self.other_device}”"
        a = self.agent
        if a is None:
            return "Unknown (not on this computer yet)"
        if a.clock_behind:
            return _tr("Refused until this computer's clock is right")
        if a.kind == LicenseKind.TIME:
            if a.expired:
                return "Expired"
            days, rem = divmod(a.remaining, 86400)
            hours, rem = divmod(rem, 3600)
            return f"{days} d {hours} h left" if days else f"{hours} h {rem // 60} min left"
        total = f" of {a.total:,}" if a.total else ""
        return f"{a.remaining:,}{total} {COUNT_UNITS[a.kind]} left"


def build_entries(licenses: list[License], agent: list[AgentLicense], installed_ids: set[str],
                  device_id: str | None = None,
                  member_licenses: dict[str, list[License]] | None = None) -> list[LibraryEntry]:
    """The server's licenses (the home store's, then each member's), each with the agent's view
    of it, then the licenses only the agent holds (off-line, or a code pasted by hand before the
    server list was cached). Stores number licenses alike: they are matched by (issuer, id).
    ``installed_ids``: the product keys installed here (LibraryEntry.product_key)."""
    by_license = {(a.issuer, a.license_id): a for a in agent}
    sources: list[tuple[str | None, list[License]]] = [(None, licenses), *(member_licenses or {}).items()]
    entries = []
    for issuer, listed in sources:
        for lic in listed:
            entries.append(LibraryEntry(lic, by_license.get((issuer, str(lic.id))),
                                        product_ref(lic.product_id, issuer) in installed_ids, device_id, issuer))
    known = {e.key for e in entries}
    entries += [LibraryEntry(None, a, product_ref(a.product_id, a.issuer) in installed_ids, device_id, a.issuer)
                for a in agent if (a.issuer, a.license_id) not in known]
    return entries


def history_key(entry: LibraryEntry) -> str:
    """The library cache's key of a license: its id at home (as before), `MEMBER/ID` elsewhere."""
    return f"{entry.issuer}/{entry.license_id}" if entry.issuer else entry.license_id


class LibraryModel(QAbstractTableModel):
    COL_NAME, COL_KIND, COL_LEFT, COL_INSTALLED = range(4)
    HEADERS = ["Program", "License", "What is left", "On this computer"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[LibraryEntry] = []

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self.endResetModel()

    def entries(self) -> list[LibraryEntry]:
        return list(self._entries)

    def entry(self, row: int) -> LibraryEntry:
        return self._entries[row]

    def row_of_product(self, product_key) -> int:
        """The row of a product key (a bare id: the home store's; `MEMBER/ID`: that member's)."""
        for row, e in enumerate(self._entries):
            if e.product_key == str(product_key):
                return row
        return -1

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        e = self._entries[index.row()]
        col = index.column()
        if role == EntryRole:
            return e
        if role == FractionRole and col == self.COL_LEFT:
            return e.fraction
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_NAME:
                return f"{e.name} ({e.store_name or e.issuer})" if e.issuer else e.name
            if col == self.COL_KIND:
                return KIND_NAMES[e.kind]
            if col == self.COL_LEFT:
                return e.left_text() + (" — running low" if e.warning else "")
            if col == self.COL_INSTALLED:
                return "Installed" if e.installed else "Not installed"
        if role == Qt.ItemDataRole.ToolTipRole and col == self.COL_LEFT and e.expires_at is not None:
            return f"Ends {e.expires_at.astimezone():%Y-%m-%d %H:%M}"
        return None
