"""Frozen entry point of the storefront (PyInstaller runs this file as __main__)."""
import multiprocessing
import sys

from desktop_app.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
