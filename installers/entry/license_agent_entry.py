"""Frozen entry point of the license agent (PyInstaller runs this file as __main__)."""
import sys

from license_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
