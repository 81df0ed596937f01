"""First start: an empty user store gets its root user.

The password comes from the caller (TENANTKV_ROOT_PASSWORD or the config's
auth.root_password); without one a random password is generated and written
once to <data dir>/root.password (mode 0600). The caller logs that file's path,
never the password.
"""

from __future__ import annotations

import os
import secrets

from tenantkv.tenancy.store import User, UserExists, UserStore

PASSWORD_FILE = "root.password"


class BootstrapError(Exception):
    pass


def _write_once(path: str, secret: str) -> None:
    """Write `secret` to a new file, mode 0600 from the start, fsynced; never
    over an existing one (an earlier bootstrap's password file)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise BootstrapError(
            "%s already exists but the user database is empty: remove the stale file "
            "(or set TENANTKV_ROOT_PASSWORD) and start again" % path) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)
        raise


def ensure_root(store: UserStore, root_user: str, password: bytes | str | None,
                data_dir: str) -> tuple[User | None, str | None]:
    """When the store has no user at all, create `root_user` (root=True) and
    return (that user, path of the generated password file or None). An empty
    password counts as none. When users exist, do nothing: (None, None)."""
    if store.count():
        return None, None
    if isinstance(password, str):
        password = password.encode("utf-8")
    path = None
    if not password:
        generated = secrets.token_urlsafe(24)
        password = generated.encode("ascii")
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, PASSWORD_FILE)
        _write_once(path, generated)
    try:
        user = store.add(root_user, password, root=True)
    except UserExists:   # another process bootstrapped first
        if path:
            os.unlink(path)
        return None, None
    except BaseException:
        if path:
            os.unlink(path)
        raise
    return user, path
