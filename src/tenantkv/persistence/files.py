"""Files in the data directory.

- fsync_dir: after a rename (or a new file) in a directory, the directory
  itself must be fsynced, or a crash can lose the entry. Used by the snapshot
  writer and the append-only log's manifest.
- safe_path / open_regular / create_exclusive: a file name that comes from a
  client (KDB SAVE/LOAD) names a regular file inside the data directory and
  nothing else. A symlink planted there (evil.kdb -> users.db) is refused, not
  followed, and the opens use O_NOFOLLOW so a symlink swapped in after the
  check is not followed either.
"""

import os
import stat

from tenantkv import errors


class UnsafePath(ValueError):
    """A client's file name refused; str() is the client's error text."""


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_path(base: str, name: str, suffix: str, reserved: tuple = ()) -> str:
    """The absolute path of `name` (relative to `base`, or absolute inside it):
    no '..', ending in `suffix`, its directory resolved (symlinks and all) and
    inside `base`, the name itself not a symlink, a directory or a special
    file (it may not exist yet), and not inside any of the `reserved`
    directories. Raises UnsafePath."""
    base = os.path.realpath(base)
    if not name or "\0" in name:
        raise UnsafePath(errors.KDB_PATH_INVALID)
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafePath(errors.KDB_PATH_DOTDOT)
    if not name.endswith(suffix):
        raise UnsafePath(errors.KDB_PATH_SUFFIX)
    candidate = os.path.join(base, name)   # an absolute name stays itself
    directory, filename = os.path.split(candidate)
    # The directory is resolved; the last component is never followed.
    path = os.path.join(os.path.realpath(directory), filename)
    if os.path.commonpath([path, base]) != base or path == base:
        raise UnsafePath(errors.KDB_PATH_OUTSIDE)
    for other in reserved:
        other = os.path.realpath(other)
        if os.path.commonpath([path, other]) == other:
            raise UnsafePath(errors.KDB_PATH_RESERVED)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    except OSError:
        raise UnsafePath(errors.KDB_PATH_NOT_FILE)
    if not stat.S_ISREG(mode):
        raise UnsafePath(errors.KDB_PATH_NOT_FILE)
    return path


def open_regular(path: str):
    """`path` opened for reading in binary, refused (OSError) if it is a
    symlink (ELOOP) or not a regular file: a FIFO neither blocks the server
    (O_NONBLOCK at open) nor is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errors.KDB_NOT_REGULAR_REASON)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def create_exclusive(path: str, buffering: int = -1):
    """A new file at `path` for writing in binary: O_CREAT|O_EXCL|O_NOFOLLOW,
    so a symlink (or anything) planted at a predictable temp name is never
    written through. A stale file left there by a crash is removed first
    (unlink removes a symlink itself, not its target)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, 0o666)
    try:
        return os.fdopen(fd, "wb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise
