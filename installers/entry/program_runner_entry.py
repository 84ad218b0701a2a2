"""`tokenrent-python SCRIPT.py ARGS...`: runs a rented program written in Python inside the
frozen storefront's folder, where the user may have no Python at all. It provides what such
programs use: the standard library, PySide6 and the agent SDK (license_agent.client).
The storefront substitutes it for `{python}` in a package's entry command when frozen."""
import os
import runpy
import sys


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    script = os.path.abspath(sys.argv[1])
    if not os.path.isfile(script):
        print(f"tokenrent-python: no such program: {sys.argv[1]}", file=sys.stderr)
        return 2
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, os.path.dirname(script))   # as `python SCRIPT` does: its own modules first
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
