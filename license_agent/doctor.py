"""`license-agent doctor`: says how well this agent's state is protected, and whether it is sound."""
from __future__ import annotations

import json
import sys
from typing import Any

from .errors import EXIT_INVALID, EXIT_OK, AgentError
from .paths import agent_home


def daemon_answers(home) -> str | None:
    """Where a daemon for this home answers (socket path or 127.0.0.1:port), or None."""
    from .client import DaemonConnection
    try:
        with DaemonConnection.for_home(home, timeout=2) as connection:
            return connection.address if connection.request({"op": "ping"}).get("ok", False) else None
    except (OSError, AgentError, ValueError):
        return None


def run_doctor(as_json: bool) -> int:
    from .agent import Agent
    home = agent_home()
    report: dict[str, Any] = {"home": str(home), "ok": True, "problems": []}
    try:
        with Agent(home) as agent:
            report.update(agent.doctor_facts())
    except AgentError as exc:
        report["ok"] = False
        report["problems"].append(str(exc))
        report["error"] = exc.code
    address = daemon_answers(home)
    report["daemon_running"] = address is not None
    report["daemon_address"] = address
    if report.get("clock_behind"):
        report["problems"].append("the clock is behind the latest time seen: time rentals are refused")
    if as_json:
        print(json.dumps(report))
    else:
        print(f"home:          {report['home']}")
        if "secret_store" in report:
            print(f"secret store:  {report['secret_store']}")
            print(f"device id:     {report['device_id']}")
            print(f"journal:       {report['journal_entries']} entries, HMAC chain verified; anchor {report['anchor']}")
        print(f"daemon:        {'running at ' + address if address else 'not running'}")
        if report.get("weaker_protection"):
            print(f"WARNING: protection is weaker: {report['why_weaker']}")
        for problem in report["problems"]:
            print(f"PROBLEM: {problem}", file=sys.stderr)
        if report["ok"] and not report["problems"]:
            print("ok")
    return EXIT_OK if report["ok"] and not report["problems"] else EXIT_INVALID
