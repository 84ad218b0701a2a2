"""The real `license-agent` CLI as a subprocess: commands, JSON shapes, exit codes 0/2/3/4."""
from __future__ import annotations

import os
import stat


from license_agent import __version__


def test_version_and_help(agent_home):
    result = agent_home.cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    assert agent_home.cli().returncode == 2
    assert agent_home.cli("frobnicate").returncode == 2


def test_device_is_stable_and_private(agent_home):
    first = agent_home.device()
    assert len(first["device_id"]) == 32 and len(first["public_key"]) == 44
    assert agent_home.device() == first
    assert stat.S_IMODE(os.stat(agent_home.home).st_mode) == 0o700
    for path in agent_home.home.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_trust_is_idempotent_and_checks_the_key(agent_home):
    again = agent_home.cli("trust", agent_home.vendor_public_b64, "--json")
    assert again.returncode == 0 and again.json["added"] is False
    for bad in ("not base64!", "AAAA", "A" * 60):
        result = agent_home.cli("trust", bad, "--json")
        assert result.returncode == 2 and result.json["error"] == "bad_input", bad
    assert agent_home.ok("status", "--json").json["trusted_keys"] == [again.json["kid"]]


def test_install_check_consume_status_json_shapes(agent_home):
    code = agent_home.code("4", "uses", uses=3, low_threshold=1)
    installed = agent_home.cli("install", "-", "--json", input="\n".join(code[i:i + 60] for i in range(0, len(code), 60)))
    assert installed.returncode == 0, installed
    assert installed.json["status"] == "installed" and installed.json["license"]["remaining"] == 3
    answer = agent_home.ok("check", "4", "--json").json
    for key in ("product_id", "allowed", "kind", "remaining", "warning", "message", "expired", "used_up", "store_url"):
        assert key in answer, key
    assert answer["remaining"] == 2 and answer["allowed"] is True and answer["kind"] == "uses"
    warn = agent_home.ok("check", "4").stdout
    assert "warning" in warn and "buy more" in warn
    last = agent_home.ok("check", "4", "--json").json
    assert last["remaining"] == 0 and last["used_up"]
    denied = agent_home.cli("check", "4", "--json")
    assert denied.returncode == 3 and denied.json["allowed"] is False and denied.json["reason"] == "used_up"
    assert "denied" in agent_home.cli("check", "4").stderr
    status = agent_home.ok("status", "--json").json
    assert status["licenses"][0]["remaining"] == 0 and status["licenses"][0]["used"] == 3
    assert "used_up" in agent_home.ok("status").stdout


def test_consume_processings_with_n(agent_home):
    agent_home.install("8", "processings", processings=10)
    assert agent_home.ok("consume", "8", "4", "--json").json["remaining"] == 6
    assert agent_home.ok("consume", "8", "--json").json["remaining"] == 5
    result = agent_home.cli("consume", "8", "6", "--json")
    assert result.returncode == 3 and result.json["remaining"] == 5
    for bad in ("0", "-1", "x"):
        assert agent_home.cli("consume", "8", bad).returncode == 2
    assert agent_home.ok("check", "8", "--json").json["remaining"] == 5


def test_bad_codes_exit_2_untrusted_and_foreign_exit_4(agent_home, tmp_path):
    assert agent_home.cli("install", "hello", "--json").json["error"] == "malformed_code"
    assert agent_home.cli("install", "hello").returncode == 2
    assert agent_home.cli("install", "-", input="").returncode == 2
    assert agent_home.cli("install", "TRC9.AAAA").returncode == 4  # a newer format: not bad input, unsupported


def test_run_passes_the_exit_code_through(agent_home, tmp_path):
    agent_home.install("4", "uses", uses=2)
    result = agent_home.cli("run", "4", "--", "sh", "-c", "echo hi; exit 7")
    assert result.returncode == 7 and result.stdout == "hi\n"
    assert "warning" in result.stderr and "1 use of" in result.stderr   # default threshold: 10%, at least 1
    assert agent_home.cli("run", "4", "--", "true").returncode == 0
    denied = agent_home.cli("run", "4", "--", "sh", "-c", "echo SHOULD-NOT-RUN")
    assert denied.returncode == 3 and "SHOULD-NOT-RUN" not in denied.stdout and "buy more" in denied.stderr
    assert agent_home.cli("run", "4").returncode == 2


def test_run_with_an_unknown_command_costs_nothing(agent_home):
    agent_home.install("4", "uses", uses=2)
    assert agent_home.cli("run", "4", "--", "no-such-command-xyz").returncode == 2
    assert agent_home.ok("status", "--json").json["licenses"][0]["remaining"] == 2


def test_doctor_reports_the_secret_store(agent_home):
    report = agent_home.ok("doctor", "--json").json
    assert report["ok"] and report["journal"] == "verified" and report["daemon_running"] is False
    human = agent_home.ok("doctor").stdout
    if report["secret_store"] == "file":
        assert report["weaker_protection"] and "weaker" in human and "0600 file" in report["why_weaker"]
    else:
        assert not report["weaker_protection"] and "weaker" not in human
