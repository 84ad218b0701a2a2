"""`license-agent`: the command line of the license agent (contract in docs/contracts.md, shapes in docs/agent-protocol.md).

Exit codes: 0 allowed / done, 2 bad input, 3 denied, 4 invalid code or tampered state.
Human output by default, one JSON object with --json (shapes in docs/agent-protocol.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_INVALID, EXIT_OK, AgentError, BadInput

PROG = "license-agent"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code is 2 as well; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="TokenRent license agent")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, help_text, json_flag=True):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    command("device", "show this device's id and public key")
    p = command("trust", "pin a vendor public key (base64, raw Ed25519), or trust the code keys of a member's "
                         "MSP-signed directory entry (a JWT; '-' reads it from stdin)")
    p.add_argument("public_key", metavar="KEY|ENTRY")
    p.add_argument("--mall", action="store_true", help="KEY is the mall's (MSP's) network key 'ed25519:...' to pin")
    p.add_argument("--replace", action="store_true", help="with --mall: replace another pinned mall key")
    command("install", "install an authorization code (or '-' to read it from stdin)").add_argument("code")
    command("status", "list the installed licenses and what remains")
    command("check", "the gate before each run (FIG 12)").add_argument("product_id")
    p = command("consume", "before each processing task: spend N processings")
    p.add_argument("product_id")
    p.add_argument("n", nargs="?", default="1")
    p = command("run", "the gate, then run CMD with its exit code passed through", json_flag=False)
    p.add_argument("product_id")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    p = command("serve", "run the daemon on a local socket (JSON lines)", json_flag=False)
    p.add_argument("--socket", help="unix transport: socket path (default: in LICENSE_AGENT_HOME)")
    p.add_argument("--transport", choices=("unix", "tcp"), default=None,
                   help="unix socket (default except on Windows) or loopback TCP with a token file "
                        "(default on Windows)")
    command("doctor", "check the state, the keyring and the clock")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        return _dispatch(args, as_json)
    except AgentError as exc:
        _fail(exc, as_json)
        return exc.exit_code
    except (OSError, sqlite3.Error) as exc:  # unwritable home, full disk, ...: no traceback, no decision
        error = AgentError(f"cannot use the agent's state: {exc}", "state_unavailable")
        _fail(error, as_json)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


def _fail(exc: AgentError, as_json: bool) -> None:
    if as_json:
        print(json.dumps(exc.to_json()))
    print(f"{PROG}: {exc}", file=sys.stderr)


def _out(data: dict, as_json: bool, human: str) -> None:
    print(json.dumps(data, indent=None if as_json else 2) if as_json else human)


def _dispatch(args, as_json: bool) -> int:
    if args.command == "doctor":
        from .doctor import run_doctor
        return run_doctor(as_json)
    if args.command == "serve":
        from .daemon import serve
        return serve(socket=args.socket, transport=args.transport)
    if args.command == "run":
        return _run(args)

    from .agent import Agent, exit_code_for
    with Agent() as agent:
        if args.command == "device":
            data = agent.device()
            _out(data, as_json, f"device_id:  {data['device_id']}\npublic_key: {data['public_key']}")
            return EXIT_OK
        if args.command == "trust":
            return _trust(agent, args, as_json)
        if args.command == "install":
            text = sys.stdin.read() if args.code == "-" else args.code
            data = agent.install(text)
            lic = data["license"]
            _out(data, as_json, f"{data['status']}: license {lic['license_id']} for "
                                f"{lic['product_name'] or 'product ' + lic['product_id']} ({lic['kind']}, serial "
                                f"{lic['serial']}){_left(lic)}")
            return EXIT_OK
        if args.command == "status":
            data = agent.status()
            _out(data, as_json, _status_text(data))
            return EXIT_OK
        if args.command == "check":
            answer = agent.check(args.product_id)
        else:  # consume
            answer = agent.consume(args.product_id, _amount(args.n))
        code = exit_code_for(answer)
        if as_json:
            print(json.dumps(answer))
        else:
            prefix = "allowed" if answer["allowed"] else "denied"
            if answer["warning"]:
                prefix += " (warning)"
            print(f"{prefix}: {answer['message']}", file=sys.stdout if code == EXIT_OK else sys.stderr)
        return code


def _trust(agent, args, as_json: bool) -> int:
    text = sys.stdin.read() if args.public_key == "-" else args.public_key
    if args.replace and not args.mall:
        raise BadInput("--replace is for --mall only")
    if args.mall:
        data = agent.trust_mall(text, replace=args.replace)
        _out(data, as_json, f"{'pinned' if data['added'] else 'already pinned'}: mall key {data['msp_key']}"
                            + (f" (replacing {data['replaced']})" if data["replaced"] else ""))
    elif text.strip().count(".") == 2:
        data = agent.trust_entry(text)
        _out(data, as_json, f"trusted: member {data['member_id']} ({data['name']}), code keys "
                            f"{', '.join(data['kids'])}{'' if data['added'] else ' (already trusted)'}")
    else:
        data = agent.trust(text)
        _out(data, as_json, f"{'trusted' if data['added'] else 'already trusted'}: vendor key {data['kid']}")
    return EXIT_OK


def _amount(text: str) -> int:
    from .agent import valid_amount
    return valid_amount(text)


def _left(lic: dict) -> str:
    if lic["remaining"] is None:
        return ""
    return f", {lic['remaining']} {lic['unit']} left"


def _status_text(data: dict) -> str:
    lines = [f"device {data['device_id']}  (secrets: {data['secret_store']})"]
    if data["clock"]["behind"]:
        lines.append("WARNING: the clock is behind the latest time seen; time rentals are refused")
    if not data["licenses"]:
        lines.append("no licenses installed")
    for lic in data["licenses"]:
        flags = [flag for flag in ("expired", "used_up", "warning") if lic[flag]]
        remaining = "permanent" if lic["remaining"] is None else f"{lic['remaining']} {lic['unit']} left"
        product = lic["product_ref"] if lic.get("issuer") else lic["product_id"]   # a member's: say which store
        lines.append(f"  {product:>6}  {lic['product_name'] or '-':<24} {lic['kind']:<11} "
                     f"{remaining}{'  [' + ', '.join(flags) + ']' if flags else ''}")
    return "\n".join(lines)


def _which(name: str) -> str | None:
    """shutil.which without importing shutil (start-up time of `run` matters)."""
    if os.name == "nt":  # PATHEXT (.exe, .bat, ...) and the current directory: shutil knows them
        import shutil
        return shutil.which(name)
    candidates = [name] if os.sep in name else [os.path.join(d, name) for d in os.get_exec_path()]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _run(args) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise BadInput("nothing to run: use  license-agent run PRODUCT_ID -- CMD ARGS...")
    if _which(cmd[0]) is None:  # before the gate, so a typo does not cost a use
        raise BadInput(f"cannot run {cmd[0]}: command not found")
    from .agent import Agent, exit_code_for
    with Agent() as agent:
        answer = agent.check(args.product_id)
    code = exit_code_for(answer)
    if code != EXIT_OK:
        print(f"{PROG}: denied: {answer['message']}", file=sys.stderr)
        return code
    if answer["warning"]:
        print(f"{PROG}: warning: {answer['message']}", file=sys.stderr)
    if "/" in args.product_id or answer.get("issuer"):
        # the program's own gate (SDK) must name the same store's license as this run did
        os.environ["TOKENRENT_PRODUCT_ID"] = answer["product_ref"]
    sys.stdout.flush()
    if _SPAWN:
        return _spawn(cmd)
    try:
        os.execvp(cmd[0], cmd)  # the program replaces us, so its exit code is the exit code
    except OSError as exc:
        print(f"{PROG}: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    return EXIT_INVALID  # pragma: no cover - execvp does not return


# Windows has no exec that keeps the process (os.execvp there starts a new process and the
# caller sees our exit, not the program's), so there the agent runs CMD as a child and waits.
_SPAWN = os.name == "nt"


def _spawn(cmd: list[str]) -> int:
    """Runs CMD as a child with our stdin/stdout/stderr and returns its exit code. Ctrl-C reaches
    the child too (same console / process group); we wait for it instead of dying first."""
    import signal
    import subprocess
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN: not inherited
    try:
        try:
            child = subprocess.Popen(cmd)
        except OSError as exc:
            print(f"{PROG}: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code  # POSIX: killed by signal N -> 128+N, as a shell says


if __name__ == "__main__":
    sys.exit(main())
