"""Talks to the local license agent through its CLI (`license-agent ... --json`).

A subprocess per call keeps the agent's state and keys in the agent's own
process (the same path a rented program uses), and LICENSE_AGENT_HOME picks
the agent home. Blocking: call from worker threads only. Answers are typed
(desktop_app.agent.replies): what the agent decided, read as it said it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from desktop_app.agent.replies import AgentDevice, AgentFailure, AgentStatus, Doctor, GateAnswer, Installed, Trusted
from desktop_app.wire import ReplyError, parse

# agent exit codes (contract)
ALLOWED, BAD_INPUT, DENIED, INVALID = 0, 2, 3, 4


class AgentError(Exception):
    def __init__(self, message: str, exit_code: int | None = None, answer: Any = None):
        super().__init__(message)
        self.user_message = message
        self.exit_code = exit_code
        self.answer = answer


@dataclass
class AgentResult:
    exit_code: int
    answer: Any
    stdout: str
    stderr: str

    @property
    def allowed(self) -> bool:
        return self.exit_code == ALLOWED


def agent_command() -> list[str]:
    """The agent's console script beside this Python, else run its module."""
    bindir = Path(sys.executable).parent
    # Frozen installs (installers/): the agent's one-folder build sits beside the storefront's
    # (Linux bundle, Windows installer), or in the app's Resources (macOS).
    folders = (bindir, bindir.parent / "license-agent", bindir.parent / "Resources" / "license-agent")
    for folder in folders:
        for name in ("license-agent", "license-agent.exe"):
            candidate = folder / name
            if candidate.is_file():
                return [str(candidate)]
    found = shutil.which("license-agent")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from license_agent.cli import main; sys.exit(main())"]


class AgentBridge:
    def __init__(self, home: Path, timeout: float = 60.0):
        self.home = Path(home)
        self.timeout = timeout
        self._base = agent_command()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LICENSE_AGENT_HOME"] = str(self.home)
        return env

    def call(self, args: Sequence[str], *, stdin: str | None = None, check: bool = True,
             timeout: float | None = None, cwd: Path | None = None) -> AgentResult:
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run([*self._base, *args], input=stdin, capture_output=True, text=True,
                                  env=self.env(), timeout=timeout or self.timeout, cwd=cwd)
        except FileNotFoundError as exc:
            raise AgentError("The license agent is not installed.") from exc
        except subprocess.TimeoutExpired as exc:
            raise AgentError("The license agent did not answer in time.") from exc
        answer: Any = None
        out = proc.stdout.strip()
        if out and "--json" in args:
            try:
                answer = json.loads(out)
            except ValueError:
                answer = None
        result = AgentResult(proc.returncode, answer, proc.stdout, proc.stderr)
        if check and proc.returncode != ALLOWED:
            raise AgentError(_message(result), proc.returncode, answer)
        return result

    def _typed(self, shape, args: Sequence[str], **kwargs):
        result = self.call([*args, "--json"], **kwargs)
        try:
            return parse(shape, result.answer, f"license-agent {args[0]}")
        except ReplyError as exc:
            raise AgentError(exc.user_message) from exc

    # -- contract calls ---------------------------------------------------
    def device(self) -> AgentDevice:
        return self._typed(AgentDevice, ["device"])

    def trust(self, public_key_b64: str) -> Trusted:
        return self._typed(Trusted, ["trust", public_key_b64])

    def install(self, code: str) -> Installed:
        return self._typed(Installed, ["install", "-"], stdin=code)

    def status(self) -> AgentStatus:
        return self._typed(AgentStatus, ["status"])

    def doctor(self) -> Doctor | None:
        """The agent's own health report (secret store, journal, clock); None when it gave none."""
        result = self.call(["doctor", "--json"], check=False)
        try:
            return parse(Doctor, result.answer, "license-agent doctor")
        except ReplyError:
            return None

    def check(self, product_id: Any) -> GateAnswer:
        """The gate (FIG 12). Allowed or denied, the agent's answer says so (exit 0 or 3); a
        failure to decide at all (bad input, tampered state: exit 2, 4) is an AgentError."""
        result = self.call(["check", str(product_id), "--json"], check=False)
        try:
            return parse(GateAnswer, result.answer, "license-agent check")
        except ReplyError:
            raise AgentError(_message(result), result.exit_code, result.answer) from None

    def run(self, product_id: Any, command: Sequence[str], cwd: Path | None = None) -> AgentResult:
        """The gate, then the program (in its own folder); returns when the program ends."""
        return self.call(["run", str(product_id), "--", *command], check=False, timeout=24 * 3600, cwd=cwd)


def _message(result: AgentResult) -> str:
    """The agent's own sentence for a failure: its JSON ``message`` (with --json), else the last
    line it wrote on stderr (``license-agent: ...``), else what its exit code means."""
    if result.answer is not None:
        try:
            return parse(AgentFailure, result.answer).message
        except ReplyError:
            pass
    text = (result.stderr or result.stdout).strip().splitlines()
    if text:
        return text[-1]
    return {BAD_INPUT: "The license agent refused the input.",
            DENIED: "The license does not allow this run.",
            INVALID: "The authorization code is invalid or the agent's state was tampered with."}.get(
        result.exit_code, f"The license agent failed (exit code {result.exit_code}).")
