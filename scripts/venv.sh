# Sourced by scripts/run and scripts/test: create or refresh ./.venv so that a
# fresh machine needs nothing but python3 (3.11+).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[tokenrent] creating virtual environment in $VENV" >&2
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
# Reinstall only when the project's dependencies changed.
STAMP="$VENV/.tokenrent-stamp"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)-${TOKENRENT_EXTRAS:-test}"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "[tokenrent] installing dependencies into $VENV" >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[${TOKENRENT_EXTRAS:-test}]" >&2
    echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
