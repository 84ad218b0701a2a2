"""What the agent loads before a gate decision: `license-agent check/run` and the daemon's
answers must not pay for `cryptography`, which only installing a code or setting up the
device needs (docs/performance.md, the agent's start-up)."""
from __future__ import annotations

import json
import subprocess
import sys


def test_the_gate_path_loads_no_cryptography():
    probe = ("import json, sys; import license_agent.cli, license_agent.agent, license_agent.gate; "
             "print(json.dumps('cryptography' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
