"""Errors of the license agent, each with the CLI exit code it maps to (see docs/contracts.md)."""

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DENIED = 3
EXIT_INVALID = 4


class AgentError(Exception):
    """Base: str(e) is one clear line; ``code`` is a stable machine-readable name."""

    exit_code = EXIT_INVALID
    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code

    def to_json(self) -> dict:
        return {"error": self.code, "message": str(self), "exit_code": self.exit_code}


class BadInput(AgentError):
    exit_code = EXIT_BAD_INPUT
    code = "bad_input"


class InvalidCode(AgentError):
    """A code that is authentic-looking but refused: untrusted, altered, other device, older serial."""

    exit_code = EXIT_INVALID
    code = "invalid_code"


class Tampered(AgentError):
    """The local state fails its integrity checks; the agent refuses to decide."""

    exit_code = EXIT_INVALID
    code = "tampered"


class SecretStoreUnavailable(AgentError):
    exit_code = EXIT_INVALID
    code = "secret_store_unavailable"


class Busy(AgentError):
    """Another process holds the state's lock for too long; nothing was decided."""

    exit_code = EXIT_INVALID
    code = "busy"
