"""What the storefront loads at start-up. (Cycles and forbidden imports between
parts are checked for every part by tests/test_import_graph.py.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

# imported on first use on worker threads only (docs/performance.md, start-up)
HEAVY = ("cryptography", "requests", "keyring", "server_stub")


def test_the_main_window_loads_no_heavy_module():
    probe = ("import json, sys; import desktop_app.app, desktop_app.main_window; "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
