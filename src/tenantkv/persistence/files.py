"""Making a file's name durable: after a rename (or a new file) in a
directory, the directory itself must be fsynced, or a crash can lose the
entry. Used by the snapshot writer and the append-only log's manifest."""

import os


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
