"""Authentication on the server side: the user store off the event loop, and
what a successful AUTH does to a connection.

Checking a password costs an argon2id hash (tens of milliseconds of CPU, by
design), so it runs in a small, bounded pool of worker threads: a flood of
AUTH commands queues there and never takes the event loop or every thread.
AUTH returns a Deferred; the connection holds the client's later requests
until the check is done, while other clients are served.

An unknown user is checked against a dummy hash and a disabled user is
checked like any other, so unknown user, disabled user and wrong password
take the same time and get the same WRONGPASS reply.
"""

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from tenantkv import errors
from tenantkv.errors import CommandError
from tenantkv.server.deferred import Deferred
from tenantkv.tenancy import hashing, permissions

log = logging.getLogger("tenantkv.auth")

HASH_WORKERS = 2   # at most this many hashes at once; more AUTHs wait in line
ACL_LOG_MAX = 128  # Redis's acllog-max-len default


class Authenticator:
    def __init__(self, server, store) -> None:
        self.server = server
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="tenantkv-auth")
        # ACL LOG entries, newest first (dicts: count, reason "auth" | "command",
        # context, object, username, timestamp-created/-last-updated, client-info)
        self.acl_log: deque = deque(maxlen=ACL_LOG_MAX)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def check(self, username: bytes, password: bytes):
        """The stored user if `password` is right and the user enabled, else None.
        Runs in a worker thread."""
        try:
            user = self.store.get(username.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):   # a name no user can have
            user = None
        stored = user.password if user is not None else hashing.dummy_hash()
        if not hashing.verify_password(stored, password) or user is None or not user.enabled:
            return None
        if hashing.needs_rehash(stored):
            # Parameters changed since this hash was made: upgrade it now that
            # we hold the password (the only moment we ever do).
            # (Only if unchanged meanwhile: a password change must win.)
            self.store.set_hash(user.username, hashing.hash_password(password), expected=stored)
        return user

    def command_table(self, user) -> dict:
        """The raw-name -> Command table `user` may run (see tenancy.permissions)."""
        return permissions.command_table(user)

    def denied(self, conn, command_name: str) -> None:
        """A command refused by the user's rules (NOPERM): counted, and kept
        for ACL LOG."""
        self.server.stats.acl_denied += 1
        self.log_event(conn, "command", command_name, conn.user)

    def log_event(self, conn, reason: str, object_name: str, username: str) -> None:
        """Record a security event for ACL LOG, as Redis does: the same
        (reason, object, username, context) within 60 s only bumps the count
        of the newest entry; at most ACL_LOG_MAX entries, newest first."""
        now = time.time()
        for entry in self.acl_log:
            if (entry["reason"], entry["object"], entry["username"]) == (reason, object_name, username):
                if now - entry["timestamp-last-updated"] < 60:
                    entry["count"] += 1
                    entry["timestamp-last-updated"] = now
                    entry["client-info"] = conn.client_info()
                    return
                break
        self.acl_log.appendleft({
            "count": 1, "reason": reason, "context": "toplevel", "object": object_name,
            "username": username, "timestamp-created": now, "timestamp-last-updated": now,
            "client-info": conn.client_info(),
        })

    def start(self, conn, username: bytes, password: bytes, reply) -> Deferred:
        """AUTH `username` `password` for `conn`; on success the connection
        logs in and the client gets `reply()`; else WRONGPASS."""
        future = self.server.loop.run_in_executor(self.pool, self.check, username, password)

        def finish(user):
            if user is None:
                self.server.stats.auth_failures += 1
                self.log_event(conn, "auth", "AUTH", username.decode("utf-8", "replace"))
                raise CommandError(errors.WRONGPASS)
            conn.login(user)
            return reply()

        return Deferred(future, finish)
