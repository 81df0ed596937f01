"""A tenant: one user's (or one namespace's) world: its databases and clients.

Commands reach data only through `conn.tenant`, so isolation between users is
a matter of which Tenant object a connection holds, not of key prefixes.

A tenant also keeps its own activity figures, which are what INFO shows its
(non-root) users instead of the server's (commands/server.py): the server's
figures would let one tenant watch another's traffic. They are counted where
the server-wide ones are, at the cost of one more increment on an object the
connection already holds; the commands the hot path runs are only appended to
`ran` (one C call) and folded into `calls` by the cron and by INFO.

A server is meant to hold many small tenants, so an idle one must cost little
(issue 14: <= 2 KB with one key): its databases are made on first use
(`Databases`), its per-command counters and its set of clients when first
needed, and the objects have no __dict__.
"""

from collections import _count_elements   # Counter.update's C loop

from tenantkv.keyspace.database import Database
from tenantkv.keyspace.quota import NO_QUOTA

DATABASES = 16
NO_CLIENTS = frozenset()


class Databases:
    """A tenant's numbered databases, each made when first indexed.

    An empty Database costs ~0.5 KB (its dicts), sixteen of them most of a
    tenant that uses one. `dbs[i]` makes database i (0 <= i < len(dbs)) and
    keeps it; iterating yields only the databases made so far, in index
    order, so whoever walks every database (INFO, FLUSHALL, snapshots, the
    log's rewrite, the expiry cycle) skips the ones never used: those hold
    nothing. Code that needs a database's position reads `db.index`, never
    its place in the iteration."""

    __slots__ = ("made", "count", "stats", "owner")

    def __init__(self, count: int, stats, owner) -> None:
        self.made: dict = {}   # index -> Database, in index order
        self.count = count
        self.stats = stats
        self.owner = owner

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Database:
        db = self.made.get(index)
        if db is None:
            if type(index) is not int or not 0 <= index < self.count:
                raise IndexError("database index out of range")
            db = Database(index, self.stats)
            db.owner = self.owner
            # Copy on write (at most `count` times a tenant): a walker still
            # iterating the old dict is not disturbed, so iterating needs no
            # copy; the cron walks every tenant's databases ten times a second.
            made = {**self.made, index: db}
            self.made = dict(sorted(made.items())) if len(made) > 1 else made
        return db

    def get(self, index: int):
        """Database `index` if it was made, else None (makes nothing)."""
        return self.made.get(index)

    def __iter__(self):
        # Safe if a walker makes a database (MOVE, COPY) as it walks: a new
        # one goes into a new dict (above).
        return iter(self.made.values())

    def pairs(self) -> list:
        """[(data, expires)] for every index 0..len-1, empty dicts for the
        databases never made (what kdb.load() returns, and install() takes)."""
        made = self.made
        return [(made[i].data, made[i].expires) if i in made else ({}, {})
                for i in range(self.count)]


class Tenant:
    __slots__ = ("name", "dbs", "_clients", "auth_failures", "acl_denied", "ran", "_calls",
                 "_failed", "_rejected", "_errors", "error_replies", "net_input_bytes",
                 "net_output_bytes", "connections", "quota", "used_memory", "limiter", "busy", "held",
                 "_scans", "scan_names", "_scans_evicted", "channels", "notify",
                 "tracking", "turn", "turn_used", "scripts", "functions", "slowlog", "latency",
                 "quota_refused")

    def __init__(self, name: str, stats, databases: int = DATABASES) -> None:
        self.name = name
        self.dbs = Databases(databases, stats, name)
        self._clients = None
        # As the server's acl_access_denied_* (server/stats.py), CONFIG
        # RESETSTAT leaves these alone.
        self.auth_failures = 0   # WRONGPASS replies to this tenant's connections
        self.acl_denied = 0      # NOPERM replies
        # Requests a quota refused, by quota ("memory", "keys", "connections",
        # "rate"), for the metrics endpoint (server/metrics.py); None until
        # the first refusal, as most tenants never meet their quotas.
        self.quota_refused = None
        self.ran: list = []      # Commands the hot path ran, not yet in `calls`
        self.quota = NO_QUOTA    # its limits (keyspace/quota.py)
        self.used_memory = 0     # bytes its data takes, kept by server/memory.py
        # Its rate quota's token bucket (dispatch/throttle.py), None without
        # one: the connection tests this once per read.
        self.limiter = None
        # A long command running in slices (dispatch/slices.py): the client
        # running it, and the other clients whose requests wait for its end.
        self.busy = None
        self.held: list = []
        # Its share of the current loop turn (dispatch/slices.py: charge):
        # the turn it was last charged in, and the seconds it ran then.
        self.turn = -1
        self.turn_used = 0.0
        # Its live SCAN snapshots, bounded over all its databases
        # (commands/keys.py): made when first used, as most tenants never scan.
        self._scans = self._scans_evicted = None
        self.scan_names = 0
        # Its pub/sub channel space (dispatch/pubsub.py), None until a client
        # of the tenant subscribes: most tenants never do.
        self.channels = None
        # Its own notify-keyspace-events (dispatch/notify.py: the class bits),
        # None while it follows the server's.
        self.notify = None
        # Its client-side caching table (dispatch/tracking.py), None while
        # none of its clients tracks.
        self.tracking = None
        # Its Lua state and script cache (scripting/engine.py), made on first EVAL.
        self.scripts = None
        # Its FUNCTION libraries (scripting/functions.py), made on first FUNCTION LOAD.
        self.functions = None
        # Its SLOWLOG entries and LATENCY events (dispatch/slowlog.py,
        # dispatch/latency.py), made at its first slow command.
        self.slowlog = None
        self.latency = None
        self.reset_stats()

    @property
    def clients(self):
        """This tenant's connections, to read (`join`/`leave` change them)."""
        return self._clients or NO_CLIENTS

    def join(self, conn) -> None:
        clients = self._clients
        if clients is None:
            clients = self._clients = set()
        clients.add(conn)

    def leave(self, conn) -> None:
        """`conn` is no longer this tenant's: the set goes with its last
        member (an empty set still costs 216 bytes, and most tenants are idle)."""
        clients = self._clients
        if clients is not None:
            clients.discard(conn)
            if not clients:
                self._clients = None

    def reset_stats(self) -> None:
        # Per Command (hashed by identity; a subcommand and COMMAND's bare
        # form are Commands of their own): calls, failed calls, calls
        # refused before running. Each dict is made when first counted in
        # or read (the properties below): most tenants never fail a call.
        self.ran.clear()
        self._calls = self._failed = self._rejected = self._errors = None
        self.error_replies = 0
        self.net_input_bytes = 0    # of connections gone (Connection.fold_net)
        self.net_output_bytes = 0
        self.connections = 0     # connections that logged in to this tenant

    @property
    def scans(self) -> dict:
        if self._scans is None:
            self._scans = {}
        return self._scans

    @property
    def scans_evicted(self) -> dict:
        if self._scans_evicted is None:
            self._scans_evicted = {}
        return self._scans_evicted

    @property
    def calls(self) -> dict:
        if self._calls is None:
            self._calls = {}
        return self._calls

    @property
    def failed(self) -> dict:
        if self._failed is None:
            self._failed = {}
        return self._failed

    @property
    def rejected(self) -> dict:
        if self._rejected is None:
            self._rejected = {}
        return self._rejected

    @property
    def errors(self) -> dict:   # error prefix -> count (INFO errorstats)
        if self._errors is None:
            self._errors = {}
        return self._errors

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
        errors = self.errors
        errors[prefix] = errors.get(prefix, 0) + 1
        if prefix == "WRONGPASS":
            self.auth_failures += 1
        elif prefix == "NOPERM":
            self.acl_denied += 1

    def refused(self, quota: str) -> None:
        """One more request refused by this tenant's `quota`."""
        refused = self.quota_refused
        if refused is None:
            refused = self.quota_refused = {}
        refused[quota] = refused.get(quota, 0) + 1

    def key_count(self) -> int:
        return sum(len(db) for db in self.dbs)
