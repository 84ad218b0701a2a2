"""Software D raster tool: grayscale, threshold and speck cleanup of PNG/PPM document scans.

    rastertool.py [--op grayscale|threshold|cleanup] [--level 0-255] [-o OUT_DIR] IMAGE...
    rastertool.py            (no images: a small window to pick and process images)

Every image costs one processing of the rental. The processing is RESERVED with the license
agent before the image is read and COMMITTED only after the result is safely on disk:
- the image fails (unreadable file, disk full, any exception), or the tool is stopped with
  Ctrl-C (SIGINT) or SIGTERM: the reservation is RELEASED, the processing is not used, and no
  half-written result is left;
- the tool is killed outright (SIGKILL, power loss): it cannot release anything, so the
  reservation is held until its time-to-live (10 minutes) passes and then COUNTS AS USED.
  That is the agent's rule, by design: otherwise killing the program at the right moment
  would give free work. The result of that image was never written (results are written to a
  temporary name and renamed into place before the commit).
Exit codes: 0 all done, 1 an image failed, 3 no processings left (the store URL is printed),
4 the license agent refused the license as invalid, 130 Ctrl-C, 143 SIGTERM.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def product_id() -> str:
    """$TOKENRENT_PRODUCT_ID, else product.json beside the program, else the storefront's
    install record (<programs>/<product id>/current.json, one folder up)."""
    if os.environ.get("TOKENRENT_PRODUCT_ID"):
        return os.environ["TOKENRENT_PRODUCT_ID"]
    for record in (HERE / "product.json", HERE.parent / "current.json"):
        try:
            return str(json.loads(record.read_text())["product_id"])
        except (OSError, ValueError, KeyError):
            continue
    sys.exit("rastertool: no product id (set TOKENRENT_PRODUCT_ID or ship product.json)")


# --- image work (Qt's QImage; no GUI needed) ----------------------------------------------------

def load_gray(path: Path):
    from PySide6.QtGui import QImage
    img = QImage(str(path))
    if img.isNull():
        raise ValueError(f"{path} is not a readable PNG/PPM image")
    return img.convertToFormat(QImage.Format.Format_Grayscale8)


def _rows(img) -> list[bytearray]:
    bpl, w = img.bytesPerLine(), img.width()
    bits = bytes(img.constBits())
    return [bytearray(bits[y * bpl: y * bpl + w]) for y in range(img.height())]


def _from_rows(rows: list[bytearray], width: int):
    from PySide6.QtGui import QImage
    img = QImage(width, len(rows), QImage.Format.Format_Grayscale8)
    bpl = img.bytesPerLine()
    buf = bytearray(bpl * len(rows))
    for y, row in enumerate(rows):
        buf[y * bpl: y * bpl + width] = row
    # QImage over our buffer, then copy() so it owns its pixels.
    return QImage(bytes(buf), width, len(rows), bpl, QImage.Format.Format_Grayscale8).copy()


def threshold_rows(rows: list[bytearray], level: int) -> list[bytearray]:
    table = bytes(0 if v < level else 255 for v in range(256))
    return [bytearray(row.translate(table)) for row in rows]


def despeckle(rows: list[bytearray]) -> list[bytearray]:
    """Turn isolated black pixels (no black 8-neighbour) white: scanner dust on a binarised page."""
    h = len(rows)
    out = [bytearray(r) for r in rows]
    for y in range(h):
        row = rows[y]
        w = len(row)
        x = row.find(0)
        while x != -1:
            alone = True
            for yy in (y - 1, y, y + 1):
                if 0 <= yy < h:
                    seg = rows[yy][max(0, x - 1): x + 2]
                    black = seg.count(0) - (1 if yy == y else 0)
                    if black:
                        alone = False
                        break
            if alone:
                out[y][x] = 255
            x = row.find(0, x + 1) if x + 1 < w else -1
    return out


def process(path: Path, out_dir: Path, op: str, level: int) -> Path:
    gray = load_gray(path)
    if op == "grayscale":
        result = gray
    else:
        rows = threshold_rows(_rows(gray), level)
        if op == "cleanup":
            rows = despeckle(rows)
        result = _from_rows(rows, gray.width())
    suffix = path.suffix.lower() if path.suffix.lower() in (".png", ".ppm", ".pgm") else ".png"
    if suffix == ".ppm":
        suffix = ".pgm"  # a one-channel result is a PGM
    target = out_dir / f"{path.stem}.{op}{suffix}"
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if not result.save(str(tmp), suffix.lstrip(".").upper()):
            raise OSError(f"cannot write {target}")
        os.replace(tmp, target)   # the result appears whole, or not at all
    finally:
        tmp.unlink(missing_ok=True)
    return target


# --- licensing ----------------------------------------------------------------------------------

class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: handled alike, so a stop from a service manager releases too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _on_signal)


@contextlib.contextmanager
def signals_deferred():
    """Hold Ctrl-C/SIGTERM while talking to the agent, so that a stop can never fall between
    "reserved" and "we know we hold it" (it is delivered right after, where it is released)."""
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:           # Windows: no signal masks; Ctrl-C there may leave a lapsing hold
        yield
        return
    old = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


def process_one(pid: str, image: Path, target_dir: Path, op: str, level: int, client, ttl: int):
    """Reserve one processing, do the image, commit; release if anything (even a stop) fails."""
    held = None
    try:
        with signals_deferred():
            held = client.reserve(pid, 1, ttl)
        target = process(image, target_dir, op, level)
    except BaseException:
        if held is not None:
            with signals_deferred():
                held.release()
        raise
    with signals_deferred():
        held.commit()
    return target, held


def left_text(kind, answer) -> str:
    """What is left after an image: processings for a processings rental; a time rental (e.g.
    ScanClean Pro) holds nothing per image and runs until it expires."""
    if kind == "processings":
        return f"{answer['remaining']} processings left"
    if kind == "time":
        return f"rented until {answer.get('expires_at') or '?'}"
    return "licensed"


def process_images(images: list[Path], out_dir: Path | None, op: str, level: int, say,
                   ttl: int | None = None) -> int:
    """Each image under its own reservation (held at most ttl seconds, default the agent's
    10 minutes). say(text, is_error) reports; returns the exit code."""
    from license_agent import client
    ttl = ttl or client.DEFAULT_RESERVATION_TTL

    pid = product_id()
    failed = 0
    for image in images:
        target_dir = out_dir or image.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        try:
            target, held = process_one(pid, image, target_dir, op, level, client, ttl)
        except client.Denied as e:
            say(f"{e}", True)
            say(f"buy more processings at {e.store_url}", True)
            return 3
        except client.AgentError as e:
            say(f"the license agent refused: {e}", True)
            return 4
        except (OSError, ValueError) as e:
            say(f"{image}: {e} (no processing used)", True)
            failed += 1
            continue
        say(f"{image} -> {target} ({left_text(held.answer.get('kind'), held.done)})", False)
        if held.answer.get("warning"):
            say(held.answer["message"], True)
    return 1 if failed else 0


def run_window(args) -> int:
    """Started without images (e.g. from the storefront's Launch): a small window to pick images."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import (QApplication, QComboBox, QFileDialog, QHBoxLayout, QListWidget,
                                   QPushButton, QSpinBox, QVBoxLayout, QWidget)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = QWidget()
    win.setWindowTitle("Raster Tool")
    op = QComboBox()
    op.addItems(["cleanup", "threshold", "grayscale"])
    op.setCurrentText(args.op)
    level = QSpinBox()
    level.setRange(0, 255)
    level.setValue(args.level)
    open_button = QPushButton("&Process images…")
    log = QListWidget()
    row = QHBoxLayout()
    for w in (op, level, open_button):
        row.addWidget(w)
    layout = QVBoxLayout(win)
    layout.addLayout(row)
    layout.addWidget(log)
    exit_code = {"code": 0}

    def say(text: str, is_error: bool) -> None:
        log.addItem(("⚠ " if is_error else "") + text)
        QApplication.processEvents()

    def choose() -> None:
        names, _ = QFileDialog.getOpenFileNames(win, "Images to process", "",
                                                "Images (*.png *.ppm *.pgm);;All files (*)")
        if names:
            exit_code["code"] = process_images([Path(n) for n in names], args.out_dir, op.currentText(),
                                               level.value(), say)
            if exit_code["code"] == 3:
                open_button.setEnabled(False)

    open_button.clicked.connect(choose)
    win.resize(560, 360)
    win.show()
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, app.quit)
    app.exec()
    # The closures above keep the window alive past the QApplication; delete it while Qt still can.
    import shiboken6
    shiboken6.delete(win)
    return exit_code["code"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="rastertool", description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="*", type=Path, help="without images: open the window")
    ap.add_argument("--op", choices=["grayscale", "threshold", "cleanup"], default="cleanup")
    ap.add_argument("--level", type=int, default=128, help="threshold level 0-255 (default 128)")
    ap.add_argument("-o", "--out-dir", type=Path, default=None, help="default: beside each image")
    ap.add_argument("--quit-after", type=int, metavar="MS", help=argparse.SUPPRESS)
    # How long a reservation may be held (the image's work must fit in it); tests shorten it.
    ap.add_argument("--reservation-ttl", type=int, metavar="S", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not 0 <= args.level <= 255:
        ap.error("--level must be between 0 and 255")
    if not args.images:
        return run_window(args)

    def say(text: str, is_error: bool) -> None:
        print(f"rastertool: {text}" if is_error else text, file=sys.stderr if is_error else sys.stdout,
              flush=True)

    install_signal_handlers()
    try:
        return process_images(args.images, args.out_dir, args.op, args.level, say, args.reservation_ttl)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        say(f"stopped ({signal.Signals(signum).name}): the image in progress was not counted", True)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
