"""The one place that knows how to lock a file on this platform: ``flock`` on POSIX,
``msvcrt.locking`` (the first byte of the file) on Windows. Both are advisory, exclusive,
held per open file, and released when the process dies (a crash never leaves it held).

    if try_lock(fd): ... unlock(fd)

Only the POSIX branch is exercised by the tests (they run on Linux); the Windows branch is
written to the msvcrt documentation and has not been run on Windows.
"""
from __future__ import annotations

import os
import sys

# For every file the agent opens with os.open: binary on Windows (no CRLF translation of the
# anchor's slots), and not inherited by programs that `run` starts.
OPEN_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)

if sys.platform == "win32":  # pragma: no cover - not run on the Linux test machines
    import msvcrt

    def try_lock(fd: int) -> bool:
        """Takes the exclusive lock without waiting; False if another holder has it."""
        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:  # EACCES / EDEADLOCK: held by someone else
            return False

    def unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    def write_at(fd: int, data: bytes, offset: int) -> None:
        os.lseek(fd, offset, os.SEEK_SET)
        os.write(fd, data)
else:
    import fcntl

    def try_lock(fd: int) -> bool:
        """Takes the exclusive lock without waiting; False if another holder has it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

    def write_at(fd: int, data: bytes, offset: int) -> None:
        os.pwrite(fd, data, offset)
