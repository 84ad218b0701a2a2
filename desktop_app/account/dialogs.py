"""Sign in and register (FIG 3). An inactive account is told how to activate it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QTabWidget,
                               QVBoxLayout, QWidget)

from desktop_app.widgets.common import Banner

if TYPE_CHECKING:
    from desktop_app.api.replies import Me


class SignInDialog(QDialog):
    """Tabs: Sign in | Create an account. Work runs through AppState (worker threads)."""

    def __init__(self, state, parent=None, *, reason: str = ""):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Sign in to TokenRent")
        self.setModal(True)
        self.banner = Banner(self)
        if reason:
            self.banner.show_message(reason, "warning")

        self.tabs = QTabWidget(self)
        # sign in
        sign_in = QWidget()
        form = QFormLayout(sign_in)
        self.username = QLineEdit(state.settings.last_username)
        self.username.setObjectName("signin_username")
        self.password = QLineEdit()
        self.password.setObjectName("signin_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("&Username:", self.username)
        form.addRow("&Password:", self.password)
        self.tabs.addTab(sign_in, "&Sign in")
        # register
        register = QWidget()
        rform = QFormLayout(register)
        self.r_username = QLineEdit(objectName="reg_username")
        self.r_full_name = QLineEdit(objectName="reg_full_name")
        self.r_email = QLineEdit(objectName="reg_email")
        self.r_password = QLineEdit(objectName="reg_password")
        self.r_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.r_pin = QLineEdit(objectName="reg_pin")
        self.r_pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.r_pin.setToolTip("A short PIN that confirms token transfers")
        self.r_address = QLineEdit(objectName="reg_address")
        self.r_phone = QLineEdit(objectName="reg_phone")
        for label, w in (("User&name:", self.r_username), ("&Full name:", self.r_full_name),
                         ("&E-mail:", self.r_email), ("Pass&word:", self.r_password),
                         ("P&IN:", self.r_pin), ("&Address (optional):", self.r_address),
                         ("P&hone (optional):", self.r_phone)):
            rform.addRow(label, w)
        self.tabs.addTab(register, "&Create an account")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.tabs.currentChanged.connect(self._tab_changed)
        self._tab_changed(0)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs)
        layout.addWidget(self.buttons)
        (self.password if self.username.text() else self.username).setFocus()

    def _tab_changed(self, index: int) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Sign in" if index == 0 else "Create account")

    def _busy(self, busy: bool) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not busy)
        self.tabs.setEnabled(not busy)

    def submit(self) -> None:
        if self.tabs.currentIndex() == 0:
            self.do_sign_in(self.username.text().strip(), self.password.text())
        else:
            self.do_register()

    def do_sign_in(self, username: str, password: str) -> None:
        if not username or not password:
            self.banner.show_message("Enter your username and password.", "error")
            return
        self._busy(True)
        self.banner.show_message("Signing in…", "info")

        def done(me):
            self._busy(False)
            self.accept()

        def failed(error):
            self._busy(False)
            self.banner.show_message(error.user_message, "error")

        self.state.sign_in(username, password, done, failed)

    def do_register(self) -> None:
        fields = dict(username=self.r_username.text().strip(), password=self.r_password.text(),
                      pin=self.r_pin.text().strip(), full_name=self.r_full_name.text().strip(),
                      email=self.r_email.text().strip())
        missing = [k.replace("_", " ") for k, v in fields.items() if not v]
        if missing:
            self.banner.show_message("Please fill in: " + ", ".join(missing) + ".", "error")
            return
        self._busy(True)
        api = self.state.api
        address, phone = self.r_address.text().strip(), self.r_phone.text().strip()

        def done(answer):
            self._busy(False)
            self.username.setText(fields["username"])
            self.password.setText(fields["password"])
            self.tabs.setCurrentIndex(0)
            self.do_sign_in(fields["username"], fields["password"])

        def failed(error):
            self._busy(False)
            self.banner.show_message(error.user_message, "error")

        self.state.call(lambda: api.register(**fields, address=address, phone=phone), done, failed,
                        retry_after_sign_in=False)


def activation_text(me: Me, pricing) -> str:
    """What an inactive account must do to become active."""
    minimum = me.min_tokens
    return (f"Your account is not active yet. Buy at least {pricing.tokens_text(minimum)} "
            f"in the Wallet to activate it. Until then you can browse the store but not order.")
