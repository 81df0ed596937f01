"""A tenant: one user's (or one namespace's) world: its databases and clients.

Commands reach data only through `conn.tenant`, so isolation between users is
a matter of which Tenant object a connection holds, not of key prefixes.

A tenant also keeps its own activity figures, which are what INFO shows its
(non-root) users instead of the server's (commands/server.py): the server's
figures would let one tenant watch another's traffic. They are counted where
the server-wide ones are, at the cost of one more increment on an object the
connection already holds; the commands the hot path runs are only appended to
`ran` (one C call) and folded into `calls` by the cron and by INFO.
"""

from collections import _count_elements   # Counter.update's C loop

from tenantkv.keyspace.database import Database

DATABASES = 16


class Tenant:
    def __init__(self, name: str, stats, databases: int = DATABASES) -> None:
        self.name = name
        self.dbs = [Database(i, stats) for i in range(databases)]
        for db in self.dbs:
            db.owner = name
        self.clients: set = set()
        # As the server's acl_access_denied_* (server/stats.py), CONFIG
        # RESETSTAT leaves these alone.
        self.auth_failures = 0   # WRONGPASS replies to this tenant's connections
        self.acl_denied = 0      # NOPERM replies
        self.ran: list = []      # Commands the hot path ran, not yet in `calls`
        self.reset_stats()

    def reset_stats(self) -> None:
        # Per Command (hashed by identity; a subcommand and COMMAND's bare
        # form are Commands of their own): calls, failed calls, calls
        # refused before running.
        self.ran.clear()
        self.calls: dict = {}
        self.failed: dict = {}
        self.rejected: dict = {}
        self.errors: dict = {}   # error prefix -> count (INFO errorstats)
        self.error_replies = 0
        self.net_input_bytes = 0    # of connections gone (Connection.fold_net)
        self.net_output_bytes = 0
        self.connections = 0     # connections that logged in to this tenant

    def fold(self) -> None:
        """Count the commands the hot path queued in `ran` into `calls`."""
        ran = self.ran
        if ran:
            _count_elements(self.calls, ran)
            ran.clear()

    def count(self, counters: dict, cmd) -> None:
        """One more for `cmd` in `counters` (calls, failed or rejected): the
        paths off the hot one (MULTI, EXEC, a container's subcommand, a wait)."""
        counters[cmd] = counters.get(cmd, 0) + 1

    def error(self, prefix: str) -> None:
        self.error_replies += 1
        self.errors[prefix] = self.errors.get(prefix, 0) + 1
        if prefix == "WRONGPASS":
            self.auth_failures += 1
        elif prefix == "NOPERM":
            self.acl_denied += 1

    def key_count(self) -> int:
        return sum(len(db) for db in self.dbs)
