"""The request/response shapes of the agent protocol (docs/agent-protocol.md), shared by the
daemon and by the SDK's in-process fallback so both answer exactly alike."""
from __future__ import annotations

import os

from .agent import exit_code_for
from .errors import EXIT_OK, AgentError, BadInput

PROTOCOL_VERSION = 1


def dispatch(agent, request) -> dict:
    """One request -> one response. Never raises: errors become {"ok": false, ...}."""
    request_id = request.get("id") if isinstance(request, dict) else None
    try:
        if not isinstance(request, dict):
            raise BadInput("a request must be a JSON object")
        op = request.get("op")
        if op == "ping":
            result, code = {"pong": True, "protocol": PROTOCOL_VERSION, "pid": os.getpid()}, EXIT_OK
        elif op in ("check", "consume", "reserve"):
            args = {"product_id": request.get("product_id")}
            if op != "check":
                args["n"] = request.get("n", 1)
            if op == "reserve" and "ttl" in request:
                args["ttl"] = request["ttl"]
            result = getattr(agent, op)(**args)
            code = exit_code_for(result)
        elif op == "commit":
            result, code = agent.commit(request.get("reservation_id"), request.get("n")), EXIT_OK
        elif op == "release":
            result = agent.release(request.get("reservation_id"))
            code = EXIT_OK if result["allowed"] else 3
        elif op == "status":
            result, code = agent.status(), EXIT_OK
        elif op == "device":
            result, code = agent.device(), EXIT_OK
        elif op == "trust":
            result, code = agent.trust(request.get("public_key")), EXIT_OK
        elif op == "trust_entry":
            result, code = agent.trust_entry(request.get("entry")), EXIT_OK
        elif op == "trust_mall":
            result, code = agent.trust_mall(request.get("msp_key"), bool(request.get("replace", False))), EXIT_OK
        elif op == "install":
            result, code = agent.install(request.get("code")), EXIT_OK
        else:
            raise BadInput(f"unknown op {op!r}")
        return {"id": request_id, "ok": True, "exit_code": code, "result": result}
    except AgentError as exc:
        return {"id": request_id, "ok": False, **exc.to_json()}
    except Exception as exc:  # a bug must not take the daemon down or leak a traceback to the peer
        return {"id": request_id, "ok": False, "error": "internal", "message": f"internal error: {exc}",
                "exit_code": 4}


