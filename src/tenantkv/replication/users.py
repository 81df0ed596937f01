"""The user store follows the primary.

Replicas must let in the same users, with the same passwords, rights and
tenant keys, as the primary: a failover must not lock anyone out nor hand a
tenant's data to another user. A full sync ships every row (payload.py);
after that, each ACL write on the primary (SETUSER, DELUSER, LOAD...)
reaches the replicas as records in the stream:

    @user <row as JSON>        insert or replace the row (the primary's id,
                               hash, tenant key, rules, quota...)
    @deluser <username>

The primary does not know which rows an ACL write touched (the writes run in
the store's worker pool), so after each one (Authenticator.users_changed)
it reads every row in the pool and sends what differs from what it sent
last: ACL writes are rare and the table small next to the data. The rows
hold argon2id hashes, never a password.
"""

import json
import logging

from tenantkv.persistence.aof.format import encode_command

log = logging.getLogger("tenantkv.replication")

USER_RECORD = b"@user"
DELUSER_RECORD = b"@deluser"


class UserFeed:
    def __init__(self, replication) -> None:
        self.replication = replication
        self.active = False
        self.shipped: dict = {}     # username -> row, as the replicas have it
        self.reading = False        # a read of the rows is under way
        self.again = False          # and another change came meanwhile

    def start(self) -> None:
        if not self.active:
            self.active = True
            auth = self.replication.server.auth
            self.shipped_now(auth.store.rows() if auth is not None else [])

    def stop(self) -> None:
        self.active = False

    def shipped_now(self, rows: list) -> None:
        """The replicas have these rows (a full sync is sending them)."""
        self.shipped = {row["username"]: row for row in rows}

    def changed(self) -> None:
        """An ACL write landed (server/auth.py users_changed)."""
        if not self.active:
            return
        if self.reading:
            self.again = True
            return
        server = self.replication.server
        self.reading = True
        future = server.loop.run_in_executor(server.auth.pool, server.auth.store.rows)
        future.add_done_callback(self._read)

    def _read(self, future) -> None:
        self.reading = False
        if future.cancelled():
            return
        if future.exception() is not None:
            log.warning("Reading the user store for the replicas failed: %s", future.exception())
        elif self.active:
            rows = {row["username"]: row for row in future.result()}
            records = []
            for name, row in rows.items():
                if self.shipped.get(name) != row:
                    records.append(encode_command(
                        [USER_RECORD, json.dumps(row, separators=(",", ":")).encode()]))
            for name in self.shipped:
                if name not in rows:
                    records.append(encode_command([DELUSER_RECORD, name.encode("utf-8", "surrogateescape")]))
            self.shipped = rows
            if records:
                self.replication.feed_records(b"".join(records))
        if self.again:
            self.again = False
            self.changed()


def apply(server, args: list) -> None:
    """On a replica: an @user / @deluser record from the primary."""
    store = server.auth.store
    if args[0] == USER_RECORD:
        row = json.loads(args[1])
        store.put_row(row)
        name = row.get("username")
    else:
        name = args[1].decode("utf-8", "surrogateescape")
        store.delete_row(name)
    users_reloaded(server, [name])


def users_reloaded(server, names=None) -> None:
    """The rows changed under the authenticator (of users `names`; None:
    any): AUTH re-reads, quotas follow, and the live sessions too, as on
    the primary (commands/acl.py): a user's connections take its new rules
    and namespace, and those of a user that no longer exists are closed —
    a credential revoked on the primary stops reading the replicas too."""
    from tenantkv.commands.acl import _user_conns
    store = server.auth.store
    server.auth.users_changed()
    server.quotas.load(store.list())
    if names is None:
        names = {conn.user for conn in server.clients.values()
                 if conn.authenticated and not conn.internal}
    for name in names:
        conns = _user_conns(server, name)
        if not conns:
            continue
        user = store.get(name)
        for conn in conns:
            if user is None:
                log.info("Closing a session of %r: the primary has no such user", name)
                conn.close()
            else:
                conn.login(user)
