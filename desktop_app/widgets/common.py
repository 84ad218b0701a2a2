"""Small shared widgets: banners, the progress-bar delegate, a dialog's button box, message helpers."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QLabel, QPushButton, QStyle,
                               QStyledItemDelegate, QStyleOptionProgressBar)


class Banner(QLabel):
    """A coloured line across the top of a page (off-line, account inactive ...)."""

    STYLES = {
        "warning": "background:#fff3cd;color:#5c4400;border:1px solid #e0c36b;",
        "error": "background:#f8d7da;color:#611a15;border:1px solid #e39ca4;",
        "info": "background:#d9ecff;color:#0b3a66;border:1px solid #9cc5ef;",
        "success": "background:#d8f3dc;color:#14462b;border:1px solid #94d3a2;",
    }

    def __init__(self, parent=None, objectName: str = ""):
        super().__init__(parent)
        if objectName:
            self.setObjectName(objectName)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_message(self, text: str, style: str = "info", link: tuple[str, str] | None = None) -> None:
        """``link``: (href, words) shown after the text; a click emits linkActivated(href)."""
        if link is None:
            self.setTextFormat(Qt.TextFormat.PlainText)
            self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.setText(text)
        else:
            import html
            href, words = link
            self.setTextFormat(Qt.TextFormat.RichText)
            self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                         | Qt.TextInteractionFlag.LinksAccessibleByMouse
                                         | Qt.TextInteractionFlag.LinksAccessibleByKeyboard)
            self.setText(f'{html.escape(text)} <a href="{html.escape(href, quote=True)}">'
                         f'{html.escape(words)}</a>')
        self.setStyleSheet(self.STYLES.get(style, "") + "padding:6px;border-radius:4px;")
        self.setAccessibleName(text)
        self.show()

    def clear_message(self) -> None:
        self.setText("")
        self.hide()


class ProgressDelegate(QStyledItemDelegate):
    """Draws a progress bar for cells whose ``role`` gives a fraction 0..1 (None: plain text)."""

    def __init__(self, role: int, parent=None):
        super().__init__(parent)
        self.role = role

    def paint(self, painter, option, index):
        fraction = index.data(self.role)
        if fraction is None:
            return super().paint(painter, option, index)
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int(round(float(fraction) * 1000))
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal   # without it Fusion fills upwards
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


def action_buttons(dialog: QDialog, text: str, object_name: str, action: Callable[[], object],
                   dismiss: QDialogButtonBox.StandardButton) -> tuple[QDialogButtonBox, QPushButton]:
    """A form dialog's button box: the button that sends (``text``, ``object_name``) runs ``action``,
    which closes the dialog only when the answer comes (so the dialog keeps it enabled or not), and
    ``dismiss`` (Close or Cancel) rejects the dialog. The box and the action button."""
    buttons = QDialogButtonBox()
    button = buttons.addButton(text, QDialogButtonBox.ButtonRole.AcceptRole)
    button.setObjectName(object_name)
    buttons.addButton(dismiss)
    buttons.accepted.connect(action)
    buttons.rejected.connect(dialog.reject)
    return buttons, button
