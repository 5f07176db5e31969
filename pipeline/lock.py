"""One job at a time: an advisory file lock next to the database.

`hold(db_path, "send")` takes `db/chipwatch.db.send.lock` with `fcntl.flock`. The kernel drops
the lock when the process ends however it ends (exit, crash, SIGKILL), so a stale lock file
never blocks anything and is never deleted (deleting lock files opens races). A second process
waits `WAIT_S` seconds, then gets `AlreadyRunning`, whose exit code is 0: under cron, "the
job is already running" is not a failure worth a mail.

flock works on local file systems; keep the database off NFS.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ChipwatchError

WAIT_S = 5.0
POLL_S = 0.1


class AlreadyRunning(ChipwatchError):
    exit_code = 0


def lock_path(db_path: Path, name: str) -> Path:
    return db_path.with_name(f"{db_path.name}.{name}.lock")


@contextmanager
def hold(db_path: Path, name: str, wait_s: float | None = None) -> Iterator[Path]:
    """Hold the lock `name` of this database for the duration of the block."""
    path = lock_path(Path(db_path), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _acquire(fd, WAIT_S if wait_s is None else wait_s):
            raise AlreadyRunning(
                f"{name} is already running on {db_path} ({_holder(fd)} holds {path.name}); "
                "this one stops here"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def _acquire(fd: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def _holder(fd: int) -> str:
    """'pid N' from the lock file (written by the holder), for the message only."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"pid {text}" if text.isdigit() else "another process"
