"""One numbered database: a dict of key -> value and a dict of key -> expiry (ms).

Values are typed Python objects: bytes for strings, dict for hashes, QuickList for
lists, set for sets, ZSet for sorted sets, Stream for streams. Expiry is lazy
(checked on every access) plus an active cycle (see `active_expire`).
"""

import time
from itertools import islice

from tenantkv import errors
from tenantkv.errors import CommandError

# A compact form -> the type its family's commands ask for (PackedHash -> dict):
# read_typed/write_typed accept either, checked only when the type is not the
# one asked for, so the big form's path costs nothing more.
COMPACT_OF: dict = {}


# Redis's shared integers (OBJ_SHARED_INTEGERS): every key holding "0" to
# "9999" points at one object. Here a string value with those exact bytes is
# stored as the one bytes object of SHARED_INTS (by SET and the counters),
# which saves its 48 B per key. Values are immutable bytes and nothing
# compares them by identity across keys, so sharing is invisible (OBJECT
# REFCOUNT already answers Redis's INT_MAX for them, from the bytes).
SHARED_INTS: tuple = tuple(b"%d" % i for i in range(10_000))


def shared(value: bytes) -> bytes:
    """The shared object equal to the string `value` if there is one (the
    decimal form of 0..9999, no sign, no leading zero), else `value`."""
    if len(value) < 5 and value.isdigit() and (value[0] != 48 or len(value) == 1):
        return SHARED_INTS[int(value)]
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


# While a script's command runs: the time the script began, in ms (else 0).
# As Redis's keyIsExpired, a script sees no key expire in its middle (a key
# it set with PX 1 still exists after a DEBUG SLEEP), so what it did and
# what the log replays agree. Set by scripting/engine.py around each call.
SCRIPT_NOW = 0

# On a replica (replication/): an expired key is hidden, not deleted. Its
# primary decides when it goes and sends the DEL, so the two never differ
# by a key the replica's clock dropped first (Redis 7's replicas do the same).
REPLICA_HIDES = False


class Database:
    __slots__ = ("data", "expires", "encodings", "index", "stats", "scans", "scan_ids",
                 "hits", "misses", "expired", "watchers", "blocked", "owner", "used", "access",
                 "evicted")

    def __init__(self, index: int, stats) -> None:
        self.data: dict = {}
        self.expires: dict = {}
        # key -> (value, "raw" | "embstr"): the OBJECT ENCODING of a string that
        # Redis would not give it from its bytes alone (APPEND and SETRANGE leave
        # a raw string, INCRBYFLOAT an embstr one even for "3"). Only valid while
        # the key still holds that very value object (checked by identity).
        self.encodings: dict = {}
        self.index = index
        self.scans: dict = {}   # SCAN snapshots by id, see commands/keys.py
        self.scan_ids = 0
        self.stats = stats   # server-wide counters: expired_keys, errors, ...
        # INFO's keyspace_hits/keyspace_misses, summed over every database of
        # every tenant for root, of the caller's tenant for anyone else
        # (commands/server.py). Counted by the read commands, as
        # Redis's lookupKeyRead* counts them: `read`/`read_typed` below, or
        # inline where a command has a fast path (GET). Plain `get`/`write_typed`
        # are write lookups (lookupKeyWrite) and count nothing.
        self.hits = 0
        self.misses = 0
        # Keys of this database that expired: a non-root user's INFO
        # expired_keys sums its own tenant's (stats.expired_keys is server-wide).
        self.expired = 0
        # key -> clients that WATCH it / are blocked on it (dispatch/observers.py,
        # dispatch/blocking.py). They outlive FLUSHDB: clear() keeps them.
        self.watchers: dict = {}
        self.blocked: dict = {}
        self.owner = None   # its tenant's key (Tenant sets it): the log's context
        # The memory accounting's (server/memory.py), while it is on: the sum
        # of this database's keys' footprints, and key -> last access (LRU)
        # or frequency (LFU) while an eviction policy needs it.
        self.used = 0
        self.access = None
        self.evicted = 0   # keys evicted (INFO evicted_keys of its tenant)

    # -- access --------------------------------------------------------------

    def get(self, key: bytes):
        """The live value under `key`, or None (deleting it if it has expired)."""
        if key in self.expires and self.expires[key] <= (SCRIPT_NOW or now_ms()):
            self._expire(key)
            return None
        return self.data.get(key)

    def write_typed(self, key: bytes, kind: type):
        """The live value under `key` for a write command, or None: WRONGTYPE
        when it is not a `kind` (bytes, dict, QuickList, set, ZSet...) or its compact
        form (COMPACT_OF: a PackedHash for dict, an IntSet for set). Counts no
        hit or miss (Redis's lookupKeyWrite). `get` written out: the pushes,
        SET-likes and counters all come through here."""
        value = self.data.get(key)
        if value is None:
            return None
        if self.expires and key in self.expires and self.expires[key] <= (SCRIPT_NOW or now_ms()):
            self._expire(key)
            return None
        if type(value) is not kind and COMPACT_OF.get(type(value)) is not kind:
            raise CommandError(errors.WRONGTYPE)
        return value

    def read(self, key: bytes):
        """`get` for a read command: counts a keyspace hit or miss (an expired key is a miss)."""
        value = self.data.get(key)
        if value is None:
            self.misses += 1
            if self.stats.on_miss is not None:
                self.stats.on_miss(self, key)
            return None
        if self.expires and key in self.expires and self.expires[key] <= (SCRIPT_NOW or now_ms()):
            self._expire(key)
            self.misses += 1
            if self.stats.on_miss is not None:
                self.stats.on_miss(self, key)
            return None
        self.hits += 1
        return value

    def read_typed(self, key: bytes, kind: type):
        """`write_typed` for a read command: counts a hit or miss as `read` does.
        A key of another type is a hit (Redis looks it up, then replies
        WRONGTYPE). `read`'s body is repeated rather than called: every read
        command of the data types runs this, and a method call costs about as
        much as the rest of it."""
        value = self.data.get(key)
        if value is None:
            self.misses += 1
            if self.stats.on_miss is not None:   # keyspace notifications' keymiss
                self.stats.on_miss(self, key)
            return None
        if self.expires and key in self.expires and self.expires[key] <= (SCRIPT_NOW or now_ms()):
            self._expire(key)
            self.misses += 1
            if self.stats.on_miss is not None:
                self.stats.on_miss(self, key)
            return None
        self.hits += 1
        if type(value) is not kind and COMPACT_OF.get(type(value)) is not kind:
            raise CommandError(errors.WRONGTYPE)
        return value

    def exists(self, key: bytes) -> bool:
        return self.get(key) is not None

    def set(self, key: bytes, value, keep_ttl: bool = False) -> None:
        self.data[key] = value
        if not keep_ttl and self.expires:
            self.expires.pop(key, None)
        if self.encodings:
            self.encodings.pop(key, None)

    def set_many(self, args: list, start: int) -> None:
        """set() for the key/value pairs args[start], args[start + 1], ...
        (MSET): one dict.update, in C, without copying the pairs out."""
        pairs = iter(args)
        for _ in range(start):
            next(pairs)
        self.data.update(zip(pairs, pairs))
        if self.expires or self.encodings:
            for key in args[start::2]:
                self.expires.pop(key, None)
                self.encodings.pop(key, None)

    def replace(self, key: bytes, value) -> None:
        """Set a new value and keep the key's TTL (INCR, APPEND, SETRANGE)."""
        self.data[key] = value
        if self.encodings:
            self.encodings.pop(key, None)

    def delete(self, key: bytes) -> bool:
        if self.get(key) is None:
            return False
        del self.data[key]
        self.expires.pop(key, None)
        if self.encodings:
            self.encodings.pop(key, None)
        return True

    def _expire(self, key: bytes) -> None:
        if REPLICA_HIDES:
            return
        freed = self.stats.on_free   # the accounting's, while it is on
        if freed is not None:
            freed(self, key)
        self.data.pop(key, None)
        del self.expires[key]
        if self.encodings:
            self.encodings.pop(key, None)
        self.expired += 1
        self.stats.expired_keys += 1
        hook = self.stats.on_expire   # the log's, while it is on: the key's DEL
        if hook is not None:
            hook(self, key)

    # -- string encodings ----------------------------------------------------

    def mark_encoding(self, key: bytes, value: bytes, name: str) -> None:
        """Record that the string `value` now under `key` has encoding `name`."""
        self.encodings[key] = (value, name)

    def marked_encoding(self, key: bytes, value):
        """The encoding recorded for `key` if it still holds `value`, else None."""
        entry = self.encodings.get(key)
        if entry is not None and entry[0] is value:
            return entry[1]
        return None

    # -- expiry --------------------------------------------------------------

    def set_expire(self, key: bytes, when_ms: int) -> None:
        self.expires[key] = when_ms

    def ttl_ms(self, key: bytes) -> int | None:
        """Milliseconds left, or None when the key has no expiry."""
        when = self.expires.get(key)
        return None if when is None else when - now_ms()

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def active_expire(self, deadline: float, sample: int = 200) -> int:
        """Reclaim expired keys without anyone reading them, as Redis's cycle does.

        Take keys from the front of the expiry dict (insertion order); expired
        ones are deleted, live ones are moved to the back so the next sample
        sees other keys (a round robin, O(1) per key). Repeat while more than
        25% of a sample had expired and time is left.
        """
        expires = self.expires
        removed = 0
        while expires:
            now = now_ms()
            batch = list(islice(expires.items(), sample))
            expired = 0
            for key, when in batch:
                if when <= now:
                    freed = self.stats.on_free
                    if freed is not None:
                        freed(self, key)
                    del expires[key]
                    self.data.pop(key, None)
                    if self.encodings:
                        self.encodings.pop(key, None)
                    expired += 1
                    hook = self.stats.on_expire
                    if hook is not None:
                        hook(self, key)
                else:
                    del expires[key]
                    expires[key] = when
            removed += expired
            if expired * 4 <= len(batch) or time.monotonic() > deadline:
                break
        self.expired += removed
        self.stats.expired_keys += removed
        return removed

    # -- whole database ------------------------------------------------------

    def purge_expired(self) -> None:
        """Drop every expired key (before KEYS/SCAN/DBSIZE-like full views)."""
        now = now_ms()
        dead = [k for k, when in self.expires.items() if when <= now]
        for key in dead:
            self._expire(key)

    def clear(self) -> None:
        cleared = self.stats.on_clear   # the accounting's, while it is on
        if cleared is not None:
            cleared(self)
        self.access = None if self.access is None else {}
        self.data = {}
        self.expires = {}
        self.encodings = {}

    def __len__(self) -> int:
        return len(self.data)
