"""Server-wide counters that INFO reports (field names as Redis's) to root;
other users see their tenant's (keyspace/tenant.py), counted alongside."""


class Stats:
    def __init__(self) -> None:
        # Security counters: as Redis's acl_access_denied_* (INFO stats), CONFIG
        # RESETSTAT leaves them alone (Redis sets them once, at start-up).
        self.auth_failures = 0    # acl_access_denied_auth: failed AUTH / HELLO AUTH
        self.acl_denied = 0       # acl_access_denied_cmd: NOPERM
        self.auth_throttled = 0   # AUTH attempts refused by the brute-force throttle
        # Write commands that succeeded and changed nothing, as Redis leaves
        # its `dirty` alone for them (SETBIT of a bit to the value it has): not
        # changes since the last save (persistence/kdb/snapshot.py), not logged and
        # not seen by WATCH (dispatch/observers.py). Monotonic: RESETSTAT keeps it.
        self.unchanged_writes = 0
        # A key expired: on_expire(db, key), set by the write observers
        # (dispatch/observers.py) while the append-only log is on; every
        # Database holds this object, and only an expiry pays the test.
        self.on_expire = None
        # The memory accounting's hooks (server/memory.py), while it is on: a
        # key about to leave by expiry, on_free(db, key); a database about to
        # be emptied, on_clear(db).
        self.on_free = None
        self.on_clear = None
        # A read found no key (Database.read/read_typed, GET): on_miss(db, key),
        # set by dispatch/notify.py while some setting asks for keymiss (m).
        self.on_miss = None
        self.reset()

    def reset(self) -> None:
        self.total_connections_received = 0
        self.total_commands_processed = 0
        # Of closed connections (and bytes a connection had before it
        # changed tenant): INFO adds the live ones' (Connection.fold_net).
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.expired_keys = 0
        self.evicted_keys = 0
        self.evicted_clients = 0   # closed for memory (server/memory.py evict_clients)
        # keyspace_hits/keyspace_misses are counted on each Database (one
        # increment on an object the command already holds) and summed by INFO.
        self.rejected_connections = 0
        self.total_error_replies = 0
        self.unknown_commands = 0
        self.errors: dict = {}   # error prefix -> count, for INFO errorstats

    def error(self, message: str, tenant) -> None:
        """An error reply to a client of `tenant` (counted there too)."""
        self.total_error_replies += 1
        prefix = message.split(" ", 1)[0]
        self.errors[prefix] = self.errors.get(prefix, 0) + 1
        tenant.error(prefix)

    def unknown_command(self, args: list, tenant) -> None:
        self.unknown_commands += 1
        self.error("ERR", tenant)
