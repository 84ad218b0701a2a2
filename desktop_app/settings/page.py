"""Settings: server address, where programs are installed, the agent's home."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from desktop_app.api.session_store import keyring_works
from desktop_app.api.worker import run_async
from desktop_app.settings.config import SettingsError, validate_server_url
from desktop_app.widgets.common import Banner


class SettingsPage(QWidget):
    serverChanged = Signal(str)

    def __init__(self, state, demo_url: str = "", parent=None):
        super().__init__(parent)
        self.state = state
        self.banner = Banner(self)
        self.server = QLineEdit(state.settings.server_url, objectName="settings_server")
        self.server.setPlaceholderText(f"empty: the local demo store ({demo_url or 'started on demand'})")
        self.install_dir = QLineEdit(state.settings.install_dir, objectName="settings_install_dir")
        self.install_dir.setPlaceholderText(str(state.paths.default_install_dir))
        browse = QPushButton("&Browse…")
        browse.clicked.connect(self._browse)
        self.save_button = QPushButton("&Save", objectName="settings_save")
        self.save_button.clicked.connect(self.save)
        row = QHBoxLayout()
        row.addWidget(self.install_dir, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Store &server address:", self.server)
        install_label = QLabel("&Install programs in:")
        install_label.setBuddy(self.install_dir)
        form.addRow(install_label, row)
        form.addRow("License agent home:", QLabel(str(state.agent.home)))
        self.agent_health = QLabel("…", objectName="settings_agent_health")
        self.agent_health.setWordWrap(True)
        form.addRow("License agent:", self.agent_health)
        run_async(state.agent.doctor, self._agent_health, lambda e: self.agent_health.setText(e.user_message))
        self.notifications = QLabel("…", objectName="settings_notifications")
        self.notifications.setWordWrap(True)
        form.addRow("Notifications:", self.notifications)
        self.session_storage = QLabel("…")
        form.addRow("Session storage:", self.session_storage)
        # asking the OS for its keyring is slow: off the UI thread
        run_async(keyring_works, lambda works: self.session_storage.setText(
            "the system keyring" if works else "memory only (no keyring here: sign in each time)"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(form)
        save_row = QHBoxLayout()
        save_row.addStretch(1)
        save_row.addWidget(self.save_button)
        layout.addLayout(save_row)
        layout.addStretch(1)

    def _agent_health(self, facts) -> None:
        """The agent's doctor report (desktop_app.agent.replies.Doctor), as it states it."""
        if facts is None:
            self.agent_health.setText("The license agent did not answer.")
            return
        if facts.secret_store is None:      # the state could not be read: the agent says why
            self.agent_health.setText("; ".join(facts.problems))
            return
        parts = [f"secrets kept in {facts.secret_store}"]
        if facts.weaker_protection:
            parts.append("weaker protection: " + (facts.why_weaker or "no system keyring"))
        if facts.clock_behind:
            parts.append("the clock is behind the latest time seen: time rentals are refused until it is right")
        self.agent_health.setText("; ".join(parts))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Install programs in", self.install_dir.text()
                                                  or str(self.state.paths.default_install_dir))
        if folder:
            self.install_dir.setText(folder)

    def save(self) -> bool:
        try:
            url = validate_server_url(self.server.text())
        except SettingsError as exc:
            self.banner.show_message(str(exc), "error")
            return False
        changed = url != self.state.settings.server_url
        self.state.settings.server_url = url
        self.state.settings.install_dir = self.install_dir.text().strip()
        self.state.save_settings()
        self.banner.show_message("Saved." + (" Restart TokenRent to use the new server." if changed else ""),
                                 "success")
        if changed:
            self.serverChanged.emit(url)
        return True
