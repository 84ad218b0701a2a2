"""Readable at high DPI: the real app in its own process with QT_SCALE_FACTOR=2 (set before
any QApplication), signed in to the real server with a real agent, each main screen shown in
1366x728 logical pixels (a 2732x1536 screen at 200 %, less a panel). No visible label or
button may be narrower or lower than its text needs, or cut off by the window or its parent;
see hidpi_probe.py for the check."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("hidpi_probe.py")


def test_main_screens_at_scale_2_are_not_clipped(app_home, store_server):
    user = store_server.new_user(tokens=500)
    out, picture = app_home / "hidpi.json", app_home / "store-hidpi.png"
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, str(PROBE), store_server.base_url, user.username, user.password,
                          str(out), str(picture)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device_pixel_ratio"] == 2.0                     # the scale took effect
    assert report["grab_size"] == [2732, 1456] and picture.stat().st_size > 0   # drawn at 2x, not blown up
    min_w, min_h = report["minimum_size_hint"]
    assert min_w <= 1366 and min_h <= 728, report["minimum_size_hint"]   # the window fits the screen
    assert report["window_size"] == [1366, 728]
    assert set(report["screens"]) == {"store", "order list", "library", "wallet", "settings"}
    assert all(n >= 5 for n in report["screens"].values()), report["screens"]   # labels and buttons checked
    assert report["problems"] == []
