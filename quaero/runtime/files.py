"""The data directory is private: 0700, and every file Quaero writes in it 0600.

The general mechanism is the process's umask, set to 0o077 where a process starts its runtime or its logs:
every file made afterwards (the databases, SQLite's ``-wal`` and ``-shm`` files, the queue, the logs, the
key file, plugins' folders) is readable by its owner only, whoever creates it. A data directory made by an
older release is tightened once as well: the directory and the files it knows to be its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
# What Quaero writes in the data directory (and logs/ below it).
OWN_FILES = ("*.db", "*.db-wal", "*.db-shm", "*.db-journal", "*.lock", "secret.key")


def private_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Set the umask to 0o077, make ``data_dir`` (0700) and tighten what an older release left open."""
    os.umask(PRIVATE_UMASK)
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path)
    for pattern in OWN_FILES:
        for file in path.glob(pattern):
            _tighten(file)
    logs = path / "logs"
    if logs.is_dir():
        _tighten(logs)
        for file in logs.iterdir():
            _tighten(file)
    return path


def _tighten(path: Path) -> None:
    """Take group and other permissions away from a file or folder of ours."""
    try:
        current = path.lstat()
        if stat.S_ISLNK(current.st_mode) or current.st_uid != os.getuid():
            return  # not ours to change
        if stat.S_IMODE(current.st_mode) & 0o077:
            path.chmod(stat.S_IMODE(current.st_mode) & 0o700)  # the owner's bits as they were
    except OSError:
        pass  # gone, or a file system without modes: nothing to tighten
