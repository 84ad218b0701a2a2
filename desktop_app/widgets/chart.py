"""A small line chart drawn with QPainter (PySide6-Essentials has no QtCharts)."""
from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class LineChart(QWidget):
    """Step chart of (time, value) points: balances and counts change in steps."""

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        self.title = title
        self._points: list[tuple[float, float]] = []
        self._until: float | None = None
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAccessibleName(title or "chart")

    def sizeHint(self):
        return QSize(400, 180)

    def set_points(self, points: list[tuple[float, float]], until: float | None = None) -> None:
        """``until``: the last value still holds up to then (usually now)."""
        self._points = sorted((float(x), float(y)) for x, y in points)
        self._until = until
        self.setToolTip(f"{self.title}: {len(self._points)} points" if self.title else "")
        self.update()

    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    def paintEvent(self, event):
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        fm = self.fontMetrics()
        margin_left = fm.horizontalAdvance("0000000") + 8
        top = fm.height() + 8 if self.title else 8
        plot = QRectF(margin_left, top, self.width() - margin_left - 12, self.height() - top - fm.height() - 10)
        text_color = pal.color(QPalette.ColorRole.Text)
        p.setPen(text_color)
        if self.title:
            p.drawText(QRectF(0, 2, self.width(), fm.height() + 4), Qt.AlignmentFlag.AlignHCenter, self.title)
        p.setPen(QPen(pal.color(QPalette.ColorRole.Mid), 1))
        p.drawRect(plot)
        if not self._points:
            p.setPen(text_color)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No data yet")
            return
        xs = [x for x, _ in self._points]
        ys = [y for _, y in self._points]
        x0, x1 = min(xs), max(xs)
        if self._until is not None and x1 > x0:
            x1 = max(x1, self._until)
        if x1 > x0:     # room after the last step, so a change at the very end shows
            x1 += (x1 - x0) * 0.04
        if x1 == x0:
            # one moment only: a line between two equal times would say nothing
            p.setPen(text_color)
            when = datetime.fromtimestamp(x0).strftime("%Y-%m-%d %H:%M")
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter,
                       f"{ys[-1]:,.0f} on {when}\nThe chart fills in as this changes over time.")
            return
        y0, y1 = min(0.0, min(ys)), max(ys)
        if x1 == x0:
            x1 = x0 + 1
        if y1 == y0:
            y1 = y0 + 1

        def at(x, y):
            return QPointF(plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                           plot.bottom() - (y - y0) / (y1 - y0) * plot.height())

        path = QPainterPath(at(*self._points[0]))
        prev_y = self._points[0][1]
        for x, y in self._points[1:]:
            path.lineTo(at(x, prev_y))
            path.lineTo(at(x, y))
            prev_y = y
        path.lineTo(at(x1, prev_y))
        p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
        p.drawPath(path)
        p.setPen(text_color)
        p.drawText(QRectF(0, plot.top() - fm.height() / 2, margin_left - 4, fm.height()),
                   Qt.AlignmentFlag.AlignRight, f"{y1:,.0f}")
        p.drawText(QRectF(0, plot.bottom() - fm.height() / 2, margin_left - 4, fm.height()),
                   Qt.AlignmentFlag.AlignRight, f"{y0:,.0f}")
        fmt = time_format(x1 - x0)
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height() + 4),
                   Qt.AlignmentFlag.AlignLeft, datetime.fromtimestamp(x0).strftime(fmt))
        p.drawText(QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height() + 4),
                   Qt.AlignmentFlag.AlignRight, datetime.fromtimestamp(x1).strftime(fmt))


def time_format(span_seconds: float) -> str:
    """Axis labels that tell the two ends apart."""
    if span_seconds > 2 * 86400:
        return "%Y-%m-%d"
    if span_seconds > 3600:
        return "%m-%d %H:%M"
    return "%H:%M:%S"
