"""Library: licenses with what is left, use chart, Launch, Extend, Convert, Download/Install, Uninstall.

Works off-line from the local cache; launching goes through the agent and
needs no network.
"""
from __future__ import annotations

import time
from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QGroupBox, QHBoxLayout, QHeaderView,
                               QLabel, QPlainTextEdit, QProgressBar,
                               QPushButton, QSplitter, QTableView, QVBoxLayout, QWidget)

from desktop_app.api.worker import run_async
from desktop_app.library import install as installer
from desktop_app.library.downloads import DownloadManager
from desktop_app.api.replies import RENTAL_OFFER_KIND, OfferKind
from desktop_app.library.model import EntryRole, FractionRole, LibraryModel, history_key
from desktop_app.widgets.chart import LineChart
from desktop_app.widgets.common import Banner, ProgressDelegate
from license_agent.code_terms import LicenseKind, split_ref


class LibraryPage(QWidget):
    extend = Signal(object, object, object)     # product, offer, license_id -> order list
    extendAtMember = Signal(object, object)     # LibraryEntry, OfferKind: ordered at that member's store
    openProduct = Signal(object)            # product id -> store

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.downloads = DownloadManager(state, self)
        self.model = LibraryModel(self)
        self.banner = Banner(self)
        self.table = QTableView(objectName="library_table")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(LibraryModel.COL_LEFT, ProgressDelegate(FractionRole, self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(LibraryModel.COL_LEFT, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentChanged.connect(lambda *_: self._selection_changed())

        self.title = QLabel(objectName="library_title")
        self.title.setStyleSheet("font-size:14pt;font-weight:600;")
        self.left = QLabel(objectName="library_left")
        self.chart = LineChart("What is left, over time")
        self.chart.setObjectName("library_chart")
        self.progress = QProgressBar(objectName="library_progress")
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.buttons = {}
        actions = QHBoxLayout()
        for key, text in (("launch", "&Launch"), ("extend", "E&xtend…"), ("convert", "Con&vert to permanent…"),
                          ("download", "&Download and install"), ("pause", "&Pause"),
                          ("uninstall", "&Uninstall"), ("paste_code", "Enter a &code…"), ("refresh", "&Refresh")):
            b = QPushButton(text, objectName=f"library_{key}")
            self.buttons[key] = b
            actions.addWidget(b)
        self.buttons["launch"].clicked.connect(self.launch)
        self.buttons["extend"].clicked.connect(self.extend_selected)
        self.buttons["convert"].clicked.connect(self.convert_selected)
        self.buttons["download"].clicked.connect(self.download_selected)
        self.buttons["pause"].clicked.connect(self.pause_selected)
        self.buttons["uninstall"].clicked.connect(self.uninstall_selected)
        self.buttons["refresh"].clicked.connect(lambda: self.state.refresh_library())
        self.buttons["paste_code"].clicked.connect(self.open_code_dialog)

        details = QGroupBox("Details")
        dl = QVBoxLayout(details)
        dl.addWidget(self.title)
        dl.addWidget(self.left)
        dl.addWidget(self.progress)
        dl.addWidget(self.chart, 1)
        dl.addStretch(0)        # keeps the lines at the top when the chart is hidden
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(details)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(split, 1)
        layout.addLayout(actions)

        state.libraryChanged.connect(self.reload)
        self.downloads.progress.connect(self._progress)
        self.downloads.paused.connect(lambda pid: self._download_note(pid, "Paused. Press Download to continue."))
        self.downloads.failed.connect(lambda pid, msg: self._download_note(pid, msg, "error"))
        self.downloads.installed.connect(lambda pid: self._download_note(pid, "Installed.", "success"))
        self.reload()

    # -- content ---------------------------------------------------------------
    def reload(self) -> None:
        current = self.selected()
        self.model.set_entries(self.state.entries)
        if current is not None:
            row = self.model.row_of_product(current.product_key)
            if row >= 0:
                self.table.setCurrentIndex(self.model.index(row, 0))
        elif self.model.rowCount():
            self.table.setCurrentIndex(self.model.index(0, 0))
        self._selection_changed()

    def selected(self):
        index = self.table.currentIndex()
        return index.data(EntryRole) if index.isValid() else None

    def select_product(self, product_key) -> bool:
        row = self.model.row_of_product(product_key)
        if row >= 0:
            self.table.setCurrentIndex(self.model.index(row, 0))
        return row >= 0

    def _selection_changed(self) -> None:
        e = self.selected()
        for b in self.buttons.values():
            b.setEnabled(e is not None)
        self.buttons["refresh"].setEnabled(True)
        self.buttons["paste_code"].setEnabled(True)
        if e is None:
            self.title.setText("Your programs appear here")
            self.left.setText("")
            self.chart.set_points([])
            return
        self.title.setText(e.name)
        self.left.setText(e.left_text() + ("  — running low: extend it to keep going." if e.warning else ""))
        self.chart.setVisible(e.kind != LicenseKind.PERMANENT)    # nothing runs out: no chart
        if len(e.history) >= 2:   # the agent's own record of use, per day (one day is no chart)
            self.chart.title = "Use per day (this computer)"
            self.chart.set_points([(datetime.strptime(day, "%Y-%m-%d").timestamp(), used)
                                   for day, used in e.history if day])
        else:
            self.chart.title = "What is left, over time"
            self.chart.set_points(self.state.cache.history(history_key(e)), until=time.time())
        self.buttons["launch"].setEnabled(e.installed)
        if e.issuer is not None:   # another member's: its store has the offers (read when asked)
            self.buttons["extend"].setEnabled(e.license is not None and e.kind in RENTAL_OFFER_KIND)
            self.buttons["convert"].setEnabled(e.license is not None and e.kind != LicenseKind.PERMANENT)
        else:
            self.buttons["extend"].setEnabled(self._offer_for(e, RENTAL_OFFER_KIND.get(e.kind)) is not None)
            self.buttons["convert"].setEnabled(e.kind != LicenseKind.PERMANENT
                                               and self._offer_for(e, OfferKind.CONVERT) is not None)
        running = self.downloads.is_running(e.product_key)
        self.buttons["download"].setEnabled(not e.installed and not running)
        self.buttons["pause"].setEnabled(running)
        self.buttons["uninstall"].setEnabled(e.installed)
        pending = self.downloads.pending().get(e.product_key)
        self.progress.setVisible(running or pending is not None)
        if pending is not None and not running:     # stopped (paused, off-line, closed app): how far
            pid, total, downloads = e.product_key, int(pending.get("size") or -1), self.downloads
            run_async(lambda: downloads.received_on_disk(pid),
                      lambda received: self._progress(pid, received, total, stopped=True))

    # -- actions ---------------------------------------------------------------
    def launch(self) -> None:
        e = self.selected()
        if e is None:
            return
        self.banner.show_message(f"Starting {e.name}…", "info")
        agent, root = self.state.agent, self.state.install_dir

        def work():
            # reads the installed program's manifest (disk, crypto imports): on the worker thread
            command, folder = installer.launch_command(root, e.product_key)
            # the agent is asked about this store's license only (`home/ID`, `MEMBER/ID`): another
            # store's product of the same id is never spent
            return agent.run(e.agent_ref, command, folder)

        def done(result):
            if result.allowed:
                self.banner.show_message(f"{e.name} ran and has finished.", "success")
            else:   # the agent's own sentence (`license-agent run` says why on stderr)
                from desktop_app.agent.bridge import _message
                self.banner.show_message(f"{e.name} may not run: {_message(result)}", "error")
            self.state.refresh_library()

        run_async(work, done, lambda err: self.banner.show_message(getattr(err, "user_message", str(err)), "error"))

    def _offer_for(self, e, kind: OfferKind | None):
        """The store's offer of that kind for this license's product, if the server knows the
        license (extending and converting name it) and the product has one. Another member's
        license is extended at that member's store (its link), not in the home order list."""
        product = self.state.product(e.product_id) if e.issuer is None else None
        if kind is None or e.license is None or product is None:
            return None
        return product.offer_of_kind(kind)

    def _order_for(self, kind: OfferKind | None, refusal: str) -> None:
        e = self.selected()
        if e is not None and e.issuer is not None and kind is not None and e.license is not None:
            self.extendAtMember.emit(e, kind)   # that member's offer, ordered there with its tokens
            return
        offer = self._offer_for(e, kind) if e is not None else None
        if offer is None:
            self.banner.show_message(refusal, "error")
            return
        self.extend.emit(self.state.product(e.product_id), offer, e.license.id)

    def extend_selected(self) -> None:
        e = self.selected()
        if e is not None:
            self._order_for(RENTAL_OFFER_KIND.get(e.kind), "This rental cannot be extended right now.")

    def convert_selected(self) -> None:
        self._order_for(OfferKind.CONVERT, "This license cannot be converted right now.")

    def download_url_for(self, product_key) -> dict | None:
        pid = str(product_key)
        pending = self.downloads.pending().get(pid)
        if pending:
            return pending
        known = self.state.cache.data.get("download_urls", {}).get(pid)
        if known:
            return known
        if split_ref(pid)[0]:   # another member's: the link its receipt gave (above), the only one known here
            return None
        product = self.state.product(product_key)
        version = product.latest_version if product is not None else None
        if version is not None:
            return {"url": f"/v1/products/{product.id}/download", "sha256": version.sha256, "size": version.size}
        return None

    def download_selected(self) -> None:
        e = self.selected()
        if e is None:
            return
        info = self.download_url_for(e.product_key)
        if info is None:
            self.banner.show_message("This program has nothing to download.", "error")
            return
        self.start_download(e.product_key, info)

    def start_download(self, product_id, info: dict) -> None:
        self.state.cache.data.setdefault("download_urls", {})[str(product_id)] = info
        self.downloads.start(product_id, info["url"], info.get("sha256"), info.get("size"))
        self._selection_changed()

    def pause_selected(self) -> None:
        e = self.selected()
        if e is not None:
            self.downloads.pause(e.product_key)

    def uninstall_selected(self) -> None:
        e = self.selected()
        if e is None:
            return
        root = self.state.install_dir

        def done(_removed):
            self.banner.show_message(f"{e.name} was removed from this computer. Your license stays.", "success")
            self.state.refresh_library()

        run_async(lambda: installer.uninstall(root, e.product_key), done,
                  lambda err: self.banner.show_message(err.user_message, "error"))

    def open_code_dialog(self) -> CodeDialog:
        dialog = CodeDialog(self.state, self)
        dialog.installed.connect(lambda text: (self.banner.show_message(text, "success"),
                                               self.state.refresh_library()))
        self.code_dialog = dialog
        dialog.open()
        return dialog

    def _progress(self, pid: str, received: int, total: int, stopped: bool = False) -> None:
        e = self.selected()
        if e is None or e.product_key != pid:
            return
        if stopped and self.downloads.is_running(pid):
            return      # it went on meanwhile: the live figures win
        self.progress.show()
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(received * 1000 / total))
            text = f"{size_text(received)} of {size_text(total)}"
            self.progress.setFormat(f"Stopped at {text}: press Download to continue" if stopped
                                    else f"Downloading: {text}")
        else:
            self.progress.setRange(0, 0)

    def _download_note(self, pid: str, text: str, style: str = "info") -> None:
        entry = next((e for e in self.state.entries if e.product_key == pid), None)
        name = entry.name if entry is not None else "Download"
        self.banner.show_message(f"{name}: {text}", style)
        self._selection_changed()


def size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{max(n, 0) / 1e3:.0f} kB"


class CodeDialog(QDialog):
    """An authorization code received by e-mail or on paper (off-line delivery): the agent
    checks the vendor's signature and that it is for this computer, then installs it."""

    installed = Signal(str)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Enter an authorization code")
        self.banner = Banner(self)
        self.text = QPlainTextEdit(objectName="code_text")
        self.text.setPlaceholderText("Paste the code here (it starts with TRC1). Line breaks and spaces "
                                     "do not matter.")
        self.text.setTabChangesFocus(True)
        self.buttons = QDialogButtonBox()
        self.install_button = self.buttons.addButton("&Install", QDialogButtonBox.ButtonRole.AcceptRole)
        self.install_button.setObjectName("code_install")
        self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.install)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.text)
        layout.addWidget(self.buttons)
        self.resize(560, 300)

    def install(self) -> None:
        code = self.text.toPlainText().strip()
        if not code:
            self.banner.show_message("Paste the code first.", "error")
            return
        self.install_button.setEnabled(False)
        agent = self.state.agent

        def done(installed):
            self.install_button.setEnabled(True)
            lic = installed.license
            name = lic.product_name or f"product {lic.product_id}"
            self.installed.emit(f"The code for {name} is installed on this computer.")
            self.accept()

        def failed(error):
            self.install_button.setEnabled(True)
            self.banner.show_message(f"The code was not installed: {error.user_message}", "error")

        run_async(lambda: agent.install(code), done, failed)
