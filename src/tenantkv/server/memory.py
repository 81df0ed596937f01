"""Memory accounting, maxmemory with eviction, and the memory and keys quotas.

Python has no cheap allocator counter, and the process's RSS does not shrink
when keys are freed (pymalloc keeps its arenas), so "evict until RSS <
maxmemory" would evict everything. Like Redis's used_memory, the figure
compared with maxmemory is LOGICAL:

    used_memory = baseline (the process's RSS when the server was made,
                  before loading any data)
                + the sum of every tenant's used_memory (the footprints of its
                  keys, keyspace/footprint.py)
                + the clients' buffers (output queued in the transports and
                  not yet handed to them, MULTI queues), summed by the cron.

A tenant's used_memory is kept by deltas, only while the accounting is on
(maxmemory > 0, or some tenant has a memory or keys quota): the write
observers (dispatch/observers.py) then wrap every write command's handler
with `wrap` below: the footprint of its keys before, the handler, the
footprint after. The paths that change data outside a command report through
the Stats hooks: expiry (on_free), a database emptied (on_clear: FLUSHDB,
FLUSHALL, ACL DELUSER...), and eviction here. A server with the accounting
off tests nothing per command: the plain handlers run.

Before a command with Redis's `denyoom` flag (and EXEC of a queue holding
one) the wrapper checks, as Redis's processCommand: over maxmemory, evict
per maxmemory-policy (bounded by maxmemory-eviction-tenacity, as Redis's
performEvictions), and if nothing can go, -OOM; then the tenant's quotas: its
used_memory over its memory quota gets errors.quota_memory, a command that
would create a key while the tenant holds its keys quota gets
errors.quota_keys. Writes to existing keys, DEL and reads go on.

Eviction picks across ALL tenants (the server's memory is shared), but not
blindly: it samples a few tenants and takes its keys from the one most over
its memory quota, else the biggest of the sample, so a tenant that fills the
server pays first and a small tenant keeps its data. Within that tenant:
Redis's sampled approximations over maxmemory-samples keys (random, the least
recently used, the least frequently used with Redis's logarithmic counter and
decay, the soonest to expire). The access information LRU/LFU need is kept
(Database.access) only while such a policy is on.

RSS itself is kept near the data by handing free memory back: glibc keeps
the pages of freed heap chunks (a big reply, a refused payload, deleted
values) until malloc_trim. The cron trims when RSS has grown since its last
trim, and follows up a few times with a growing pause (trim below);
MEMORY PURGE asks for it at once.
"""

import ctypes
import random
import sys
import time

from tenantkv import errors
from tenantkv.errors import CommandError, execabort_because
from tenantkv.keyspace.footprint import BYTES, EXPIRE_OVERHEAD, KEY_OVERHEAD, data_size, footprint
from tenantkv.dispatch.observers import writes_keys
from tenantkv.util.numbers import parse_int
from tenantkv.util.rss import rss_bytes
from tenantkv.util.sampling import random_member

monotonic = time.monotonic

LFU_INIT = 5          # Redis's LFU_INIT_VAL: a new key is not evicted at once
TENANT_SAMPLES = 5    # tenants looked at per eviction
# The write commands without key arguments that change data other than
# through a database's clear() (which reports itself): recount the tenant.
FLUSHES = frozenset(("flushdb", "flushall"))
# The keyless writes that need no recount: the flushes, and SWAPDB, which
# swaps the databases' figures (db.used) with their data, so the tenant's
# total is unchanged (a recount would make every SWAPDB O(keys)).
SAME_TOTAL = FLUSHES | {"swapdb"}
# Containers with subcommands that replace or merge data (see _wrap_reload).
RELOADS = frozenset(("kdb", "debug"))


def _find_malloc_trim():
    """glibc's malloc_trim, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return trim


malloc_trim = _find_malloc_trim()
# The cron's trims: when RSS has grown by more than TRIM_GROWTH (or a 16th)
# since the last trim, at most once per TRIM_PERIOD seconds; then again
# TRIM_PERIOD, 2, 4... up to TRIM_FOLLOW_UP seconds later (what had grown
# may have been a buffer freed since). MEMORY PURGE: once per TRIM_PERIOD.
TRIM_PERIOD = 1.0
TRIM_GROWTH = 8 << 20
TRIM_FOLLOW_UP = 32.0
# Client eviction: a client holding less output than this is not closed.
CLIENT_EVICT_MIN = 1 << 20




class Memory:
    def __init__(self, server) -> None:
        self.server = server
        self.config = server.config
        self.on = False
        self.baseline = rss_bytes()
        self.data = 0        # the sum of the tenants' used_memory
        self.buffers = 0     # the clients' buffers, as the cron last summed them
        self.peak = 0
        self.maxmemory = 0
        self.policy = "noeviction"
        self.samples = 5
        self.budget = 0.0005   # seconds of eviction per command (tenacity)
        self.tracking = None   # "lru" / "lfu" while such a policy is on
        # (db, key) whose access record RESTORE IDLETIME/FREQ has just set
        # (commands/dump.py): the touch after its handler leaves it alone, once.
        self.keep = None
        self.lfu_log_factor = 10
        self.lfu_decay = 1
        # The keys the running write command's wrapper measures (one key:
        # outer_db/outer_key; several: outer_pairs), for measure().
        self.outer_db = None
        self.outer_key = None
        self.outer_pairs = None
        self.data_limit = float("inf")
        self.tenant_buffers: dict = {}   # tenant name -> its clients' buffers (cron)
        self.unrefused = None   # a connection admit() lets through (see there)
        # Handing freed memory back (trim): RSS right after the last trim.
        self.trim_floor = self.baseline
        self.trim_next = 0.0        # the cron looks again from then (monotonic)
        self.trim_backoff = TRIM_FOLLOW_UP * 2   # no follow-up pending
        self.purged_at = 0.0

    # -- state -----------------------------------------------------------------

    rss = staticmethod(rss_bytes)   # for MEMORY STATS (commands/memory.py)

    def used(self) -> int:
        """INFO's used_memory: the figure compared with maxmemory."""
        return self.baseline + self.data + self.buffers

    def _redis_setting(self, name: str):
        return self.config.values[(None, name)]

    def refresh(self, *_ignored, loaded: bool = False) -> None:
        """Read maxmemory, its policy and every quota again; turn the
        accounting on or off. Called when any of them changes (config
        listeners; the quotas' per-user overrides) and at start-up, after
        loading (a full count)."""
        server = self.server
        config = self.config
        self.maxmemory = config["limits.maxmemory"]
        self.policy = config["limits.maxmemory_policy"]
        self.samples = self._redis_setting("maxmemory-samples")
        tenacity = self._redis_setting("maxmemory-eviction-tenacity")
        # Redis's evictionTimeLimitUs: 50 us per step up to 10, then +15% a
        # step; 100 means no limit.
        self.budget = (50e-6 * tenacity if tenacity <= 10
                       else 500e-6 * 1.15 ** (tenacity - 10) if tenacity < 100 else 1e9)
        self.lfu_log_factor = self._redis_setting("lfu-log-factor")
        self.lfu_decay = self._redis_setting("lfu-decay-time")
        quotas = [server.default_quota] + [t.quota for t in server.tenants.values()]
        on = self.maxmemory > 0 or any(q.memory or q.keys for q in quotas)
        tracking = None
        if on and self.maxmemory and self.policy.endswith(("-lru", "-lfu")):
            tracking = self.policy[-3:]
        if on and (loaded or not self.on):
            self.recount()
        elif self.on and not on:
            for tenant in server.tenants.values():   # stale figures are wrong figures
                tenant.used_memory = 0
                for db in tenant.dbs:
                    db.used = 0
            self.data = 0
        if tracking != self.tracking or not on:
            for tenant in server.tenants.values():
                for db in tenant.dbs:
                    db.access = None   # made again on first use, for the new policy
        self.on = on
        self.tracking = tracking
        stats = server.stats
        stats.on_free = self._freed if on else None
        stats.on_clear = self._cleared if on else None
        self._set_limit()
        server.events.set_meter(self if on else None)
        self._evict_in_background()   # a lower maxmemory takes effect now, as Redis's

    def _set_limit(self) -> None:
        # The most data there may be before a denyoom command must look
        # closer (admit): one comparison on the write path.
        self.data_limit = (self.maxmemory - self.baseline - self.buffers if self.maxmemory
                           else float("inf"))

    def _evict_in_background(self) -> None:
        """Over maxmemory with an evicting policy and nothing writing: evict
        (one bounded step), as Redis's eviction time proc keeps doing."""
        maxmemory = self.maxmemory
        if (maxmemory and self.policy != "noeviction"
                and self.baseline + self.data + self.buffers > maxmemory):
            self.evict(maxmemory)

    def recount(self) -> None:
        """Count every tenant's data from scratch (O(keys): when turned on,
        after loading)."""
        total = 0
        for tenant in self.server.tenants.values():
            used = 0
            for db in tenant.dbs:
                size = 0
                for key, value in db.data.items():
                    size += footprint(db, key, value)
                db.used = size
                used += size
            used += _scripts_memory(tenant)
            tenant.used_memory = used
            total += used
        self.data = total

    # -- handing freed memory back to the system --------------------------------

    def trim(self) -> int:
        """malloc_trim(0): hand the C heap's free pages back to the system
        (glibc keeps them otherwise: after a big transient reply, payload or
        free, RSS stayed ~90 MB up until the process ended). Returns the
        bytes RSS went down by. Measured: 0.2-0.5 ms with nothing to give
        back, 24 ms handing back 630 MB, with 1M keys."""
        if malloc_trim is None:
            return 0
        before = rss_bytes()
        malloc_trim(0)
        after = self.trim_floor = rss_bytes()
        return max(0, before - after)

    def purge(self) -> bool:
        """MEMORY PURGE: trim now, unless a PURGE trimmed within TRIM_PERIOD
        (any user may ask, so asking often costs at most one trim a
        second). True when it trimmed."""
        now = monotonic()
        if now - self.purged_at < TRIM_PERIOD:
            return False
        self.purged_at = now
        self.trim()
        return True

    def _trim_if_grown(self) -> None:
        """The cron's trim. RSS grown past the last trim's: trim (growth
        that is data stays, and becomes the new floor; a buffer freed goes
        back), and follow up 1, 2, 4... s later, as what had grown may be
        freed after that trim (a big reply still being written). A trim
        walks only the heap's free chunks: cheap when there are few."""
        now = monotonic()
        if malloc_trim is None or now < self.trim_next:
            return
        rss = rss_bytes()
        floor = self.trim_floor
        if rss > floor + max(TRIM_GROWTH, floor >> 4):
            self.trim()
            self.trim_backoff = TRIM_PERIOD
        elif self.trim_backoff <= TRIM_FOLLOW_UP:
            self.trim()
            self.trim_backoff *= 2
            if self.trim_floor > floor:
                self.trim_floor = floor   # a follow-up gave nothing back: keep the floor
        else:
            if rss < floor:
                self.trim_floor = rss   # handed back without a trim
            self.trim_next = now + 0.1
            return
        self.trim_next = monotonic() + self.trim_backoff

    # -- client eviction ----------------------------------------------------------

    def evict_clients(self) -> None:
        """Over maxmemory with the output held for paused clients counted
        (clients that do not read what they asked for): close the non-root
        clients holding the most output first until under, as Redis's client
        eviction (maxmemory-clients) does. Without this, 4 clients that never
        read, each under the tenant's 64 MB output limit, held 256 MB, and
        every other tenant's writes got -OOM. Only paused clients can hold
        much (a client is paused once its output passes the transport's
        high-water mark), so this looks at those: called when one of them
        gets more output (connection.py) and by the cron. A tenant's
        CLIENT NO-EVICT does not exempt its clients: that is for root's."""
        maxmemory = self.maxmemory
        paused = self.server.output_paused
        if not maxmemory or not paused:
            return
        held = []
        total = 0
        for conn in paused:
            transport = conn.transport
            if transport is None or conn.closing:
                continue
            size = transport.get_write_buffer_size()
            total += size
            if not conn.root and size >= CLIENT_EVICT_MIN:
                held.append((size, conn))
        over = self.baseline + self.data + total - maxmemory
        if over <= 0 or not held:
            return
        held.sort(key=lambda pair: pair[0], reverse=True)
        stats = self.server.stats
        for size, conn in held:
            conn.evict_for_memory()
            stats.evicted_clients += 1
            over -= size
            if over <= 0:
                break

    def cron(self) -> None:
        """The clients' buffers, and the sum of the tenants' figures again (a
        tenant dropped with its data leaves the sum this way); memory handed
        back after a big transient allocation."""
        self._trim_if_grown()
        if not self.on:
            return
        self.evict_clients()
        # The clients' buffers, in all and per tenant (its memory quota
        # counts its clients' output and MULTI queues too).
        total = 0
        per_tenant: dict = {}
        one = self.client_buffers
        for conn in self.server.clients.values():
            size = one((conn,))
            if size:
                total += size
                name = conn.tenant.name
                per_tenant[name] = per_tenant.get(name, 0) + size
        self.buffers = total
        self.tenant_buffers = per_tenant
        self._set_limit()
        self.data = sum(tenant.used_memory for tenant in self.server.tenants.values())
        used = self.used()
        if used > self.peak:
            self.peak = used
        self._evict_in_background()

    @staticmethod
    def client_buffers(clients) -> int:
        """The bytes `clients` hold: output in their transports and not yet
        handed to them, queued MULTI requests."""
        buffers = 0
        for conn in clients:
            transport = conn.transport
            if transport is not None:
                buffers += transport.get_write_buffer_size()
            unsent = conn.unsent
            if unsent:
                buffers += sum(map(len, unsent))
            multi = conn.multi
            if multi:
                buffers += sum(sum(map(len, args)) + 16 * len(args) for _, args in multi)
        return buffers

    # -- deltas ----------------------------------------------------------------

    def _charge(self, db, delta: int, tenant=None) -> None:
        db.used += delta
        if tenant is None:
            tenant = self.server.tenants.get(db.owner)
        if tenant is not None:
            tenant.used_memory += delta
        self.data += delta

    charge = _charge   # for the paths outside a command (KDB IMPORT's install)

    @staticmethod
    def footprints(db, keys) -> int:
        """The accounting's bytes for these keys of `db` as they are now."""
        data = db.data
        return sum(footprint(db, key, data.get(key)) for key in keys)

    def import_room(self, conn) -> tuple:
        """(bytes, refusal): how much decoded data KDB IMPORT of `conn` may
        hold before it is refused with `refusal` (kdb.parse_steps' room);
        (None, None) without a limit. Eviction cannot make room for a payload
        that is decoded before it is installed: under an evicting policy,
        maxmemory is left to the evictions that follow."""
        if not self.on or conn.transport is None:
            return None, None
        room = refusal = None
        if self.maxmemory and self.policy == "noeviction":
            room, refusal = self.maxmemory - self.used(), errors.OOM
        tenant = conn.tenant
        quota = tenant.quota.memory
        if quota:
            left = quota - tenant.used_memory - self.tenant_buffers.get(tenant.name, 0)
            if room is None or left < room:
                room, refusal = left, errors.quota_memory(quota)
        return (max(room, 0), refusal) if room is not None else (None, None)

    def _freed(self, db, key: bytes) -> None:
        """A key is about to leave `db` by expiry."""
        if not ((db is self.outer_db and key == self.outer_key)
                or (self.outer_pairs is not None and (db, key) in self.outer_pairs)):
            # (A key the running write command measures, expiring as that
            # command looks it up, is counted by its wrapper: before, the
            # expired value; after, the new one.)
            size = footprint(db, key, db.data.get(key))
            if size:
                self._charge(db, -size)
        access = db.access
        if access:
            access.pop(key, None)

    def _cleared(self, db) -> None:
        """`db` is about to be emptied."""
        if db.used:
            self._charge(db, -db.used)

    # -- the checks before a command that may grow memory ------------------------

    def admit(self, conn, creates, data=None, key=None) -> None:
        """Refuse (CommandError) a denyoom command of `conn` when the server
        is over maxmemory and nothing can be evicted, or its tenant is over a
        quota. Would the command create a key? `creates()`, or (creates
        None) is `key` missing from `data`: no closure made per command."""
        if conn.transport is None or conn is self.unrefused:
            # The server's own client (the log's replay), or root's allow-oom
            # script running a command (scripting/engine.py): never refused.
            return
        maxmemory = self.maxmemory
        if maxmemory and self.baseline + self.data + self.buffers > maxmemory:
            if not self.evict(maxmemory):
                raise CommandError(errors.OOM)
        tenant = conn.tenant
        quota = tenant.quota
        if quota.memory and (tenant.used_memory + self.tenant_buffers.get(tenant.name, 0)
                             > quota.memory):
            tenant.refused("memory")
            raise CommandError(errors.quota_memory(quota.memory))
        if quota.keys and tenant.key_count() >= quota.keys and (
                key not in data if creates is None else creates()):
            tenant.refused("keys")
            raise CommandError(errors.quota_keys(quota.keys))

    def check_growth(self, conn, growth: int) -> None:
        """A command about to grow a value by `growth` bytes (SETRANGE, SETBIT,
        BITFIELD, APPEND): refused before it allocates when that would pass
        maxmemory (after evicting what the policy allows) or the tenant's
        memory quota. Free when the accounting is off."""
        if not self.on or growth <= 0 or conn.transport is None:
            return
        maxmemory = self.maxmemory
        if maxmemory:
            limit = maxmemory - growth
            if limit <= self.baseline or (self.used() > limit and not self.evict(limit)) \
                    or self.used() > limit:
                raise CommandError(errors.OOM)
        tenant = conn.tenant
        quota = tenant.quota
        if quota.memory and tenant.used_memory + growth > quota.memory:
            tenant.refused("memory")
            raise CommandError(errors.quota_memory(quota.memory))

    # -- eviction ----------------------------------------------------------------

    def evict(self, limit: int) -> bool:
        """Evict per the policy until used_memory <= limit, for at most the
        tenacity's time. False when nothing could go (noeviction, no
        candidate); True when under, or still evicting when the time ran out
        (Redis's EVICT_RUNNING: the command runs)."""
        if self.policy == "noeviction":
            return False
        if self.server.replication.link is not None and \
                self.server.config.values[(None, "replica-ignore-maxmemory")]:
            return False   # a replica's keys go when its primary's do (their DELs)
        deadline = monotonic() + self.budget
        volatile = self.policy.startswith("volatile")
        skipped = 0
        while self.baseline + self.data + self.buffers > limit:
            picked = self._pick(volatile)
            if picked is None:
                return False
            db, key = picked
            if ((db is self.outer_db and key == self.outer_key)
                    or (self.outer_pairs is not None and picked in self.outer_pairs)):
                # The key the running command is about to grow (check_growth
                # evicts from inside it): not this one.
                skipped += 1
                if skipped > 16:
                    return False
                continue
            self.evict_key(db, key)
            if monotonic() > deadline:
                break
        return True

    def _pick_tenant(self, volatile: bool):
        tenants = self.server.tenants
        if not tenants:
            return None
        best = None
        best_rank = None
        seen = set()
        # Few tenants: look at each (a sample of 5 out of 3 misses the big
        # one 13% of the time); many: a sample, O(1) per eviction.
        for _ in range(TENANT_SAMPLES if len(tenants) > 4 * TENANT_SAMPLES else 0):
            name = random_member(tenants)
            if name in seen:
                continue
            seen.add(name)
            tenant = tenants[name]
            rank = self._rank(tenant, volatile)
            if rank is not None and (best_rank is None or rank > best_rank):
                best, best_rank = tenant, rank
        if best is None:   # the sample held no data: look at every tenant
            for tenant in tenants.values():
                rank = self._rank(tenant, volatile)
                if rank is not None and (best_rank is None or rank > best_rank):
                    best, best_rank = tenant, rank
        return best

    @staticmethod
    def _rank(tenant, volatile: bool):
        """How much `tenant` should lose keys first: over its memory quota
        first (by how much), then by its size; None when it has no candidate."""
        if not any(db.expires if volatile else db.data for db in tenant.dbs):
            return None
        quota = tenant.quota.memory
        over = tenant.used_memory - quota if quota else 0
        return (over > 0, over, tenant.used_memory)

    def _pick(self, volatile: bool):
        tenant = self._pick_tenant(volatile)
        if tenant is None:
            return None
        dbs = [db for db in tenant.dbs if (db.expires if volatile else db.data)]
        if len(dbs) > 1:   # the database with the most candidates
            db = max(dbs, key=(lambda d: len(d.expires)) if volatile else len)
        else:
            db = dbs[0]
        pool = db.expires if volatile else db.data
        policy = self.policy
        if policy.endswith("random"):
            return db, random_member(pool)
        sample = [random_member(pool) for _ in range(min(self.samples, len(pool)))]
        if policy == "volatile-ttl":
            expires = db.expires
            return db, min(sample, key=expires.__getitem__)
        access = db.access or {}
        if self.tracking == "lfu":
            now = int(monotonic() // 60)
            return db, min(sample, key=lambda key: self._lfu_value(access.get(key), now))
        return db, min(sample, key=lambda key: access.get(key, 0.0))

    def evict_key(self, db, key: bytes) -> None:
        """Remove `key` from `db` as an eviction: a write (the log gets its
        DEL, WATCH sees it), counted in evicted_keys."""
        server = self.server
        value = db.data.get(key)
        if value is not None:
            self._charge(db, -footprint(db, key, value))
        db.data.pop(key, None)
        db.expires.pop(key, None)
        if db.encodings:
            db.encodings.pop(key, None)
        if db.access:
            db.access.pop(key, None)
        db.evicted += 1
        server.stats.evicted_keys += 1
        events = server.events
        if events.journal is not None:
            events.journal.expired(db, key)   # logs the key's DEL
        if events.notifier is not None:
            events.notifier.evicted(db, key)   # "evicted" (dispatch/notify.py)
        if events.tracking:
            events.tracker.expired(db, key)   # client-side caches: invalidated
        watchers = db.watchers.get(key) if db.watchers else None
        if watchers:
            for conn in watchers:
                conn.watch_dirty = True

    # -- LFU: Redis's logarithmic counter (evict.c) --------------------------------

    def _lfu_value(self, packed, now_min: int) -> int:
        """The counter of an access record (minutes << 8 | counter), decayed
        by one per lfu-decay-time minutes since."""
        if packed is None:
            return 0
        counter = packed & 255
        if self.lfu_decay:
            periods = (now_min - (packed >> 8)) // self.lfu_decay
            counter = counter - periods if periods < counter else 0
        return counter

    def lfu_touch(self, access: dict, key: bytes) -> None:
        now = int(monotonic() // 60)
        packed = access.get(key)
        counter = LFU_INIT if packed is None else self._lfu_value(packed, now)
        if counter < 255:
            base = counter - LFU_INIT
            if base <= 0 or random.random() < 1.0 / (base * self.lfu_log_factor + 1):
                counter += 1
        access[key] = (now << 8) | counter

    def object_freq(self, db, key: bytes):
        """OBJECT FREQ's answer while LFU is on, else None."""
        if self.tracking != "lfu":
            return None
        access = db.access or {}
        return self._lfu_value(access.get(key), int(monotonic() // 60))

    def object_idletime(self, db, key: bytes):
        """OBJECT IDLETIME's answer (seconds) while LRU is on, else None."""
        if self.tracking != "lru":
            return None
        access = db.access or {}
        last = access.get(key)
        return 0 if last is None else int(monotonic() - last)

    # -- the handler wrappers (installed by dispatch/observers.py) ------------------

    def wrap(self, cmd, handler):
        """The metered form of `cmd`'s handler, or None when this command
        needs none (a reader while no LRU/LFU policy tracks access)."""
        name = cmd.name
        if name == "exec":
            return self._wrap_exec(handler)
        if name in RELOADS:
            return self._wrap_reload(handler)
        if "write" in cmd.flags or writes_keys(cmd):   # XGROUP: its subcommands write
            return self._wrap_write(cmd, handler)
        if self.tracking is not None and cmd.has_keys():
            return self._wrap_read(cmd, handler)
        return None

    def _touch(self, db, key: bytes, created: bool = False) -> None:
        if self.keep is not None and self.keep == (db, key):
            self.keep = None
            return
        access = db.access
        if access is None:
            access = db.access = {}
        if self.tracking == "lfu":
            if created:   # a new object starts at LFU_INIT_VAL, its write not counted
                access[key] = (int(monotonic() // 60) << 8) | LFU_INIT
            else:
                self.lfu_touch(access, key)
        else:
            access[key] = monotonic()

    def _wrap_exec(self, handler):
        memory = self

        def metered_exec(conn, args):
            queued = conn.multi
            if queued and any("denyoom" in cmd.flags for cmd, _ in queued):
                data = conn.db.data

                def creates():
                    return any(args[i] not in data for cmd, args in queued
                               if "denyoom" in cmd.flags for i in cmd.keys_of(args))
                try:
                    memory.admit(conn, creates)
                except CommandError as exc:
                    # As Redis's rejectCommand for EXEC: the transaction is discarded.
                    conn.server.events.end_transaction(conn)
                    raise CommandError(execabort_because(exc.message)) from None
            return handler(conn, args)
        metered_exec.__wrapped__ = handler
        return metered_exec

    def _wrap_reload(self, handler):
        """KDB and DEBUG: subcommands that replace data wholesale (KDB LOAD,
        DEBUG RELOAD: count everything again) or merge a payload (KDB IMPORT:
        checked as a denyoom command, then its tenant counted again). Their
        own work is O(data) already."""
        memory = self

        def metered_reload(conn, args):
            sub = args[1].lower() if len(args) > 1 else b""
            if sub == b"import":
                memory.admit(conn, lambda: True)
            try:
                return handler(conn, args)
            finally:
                # (KDB IMPORT, a job that installs at its end, charges what
                # it installs itself: commands/persistence.py import_tenant.)
                if sub in (b"load", b"reload", b"loadaof", b"drop-orphan"):
                    memory.recount()
        metered_reload.__wrapped__ = handler
        return metered_reload

    def _wrap_read(self, cmd, handler):
        memory = self
        single = cmd.first_key == 1 and cmd.last_key == 1 and "movablekeys" not in cmd.flags

        def tracking_reader(conn, args):
            reply = handler(conn, args)
            if memory.tracking is not None:
                db = conn.db
                data = db.data
                if single:
                    if args[1] in data:
                        memory._touch(db, args[1])
                else:
                    for i in cmd.keys_of(args):
                        if args[i] in data:
                            memory._touch(db, args[i])
            return reply
        tracking_reader.__wrapped__ = handler
        return tracking_reader

    def _wrap_write(self, cmd, handler):
        memory = self
        denyoom = "denyoom" in cmd.flags
        # A container's subcommands that may grow the data (XGROUP CREATE,
        # CREATECONSUMER): checked as denyoom commands are.
        denyoom_subs = frozenset(name for name, sub in cmd.subcommands.items()
                                 if "denyoom" in sub.flags)
        name = cmd.name
        single = (cmd.first_key == 1 and cmd.last_key == 1 and "movablekeys" not in cmd.flags
                  and name not in ("move", "copy"))
        keyless = not cmd.has_keys()

        events = self.server.events
        if single:
            # The common case, written out (the accounting's cost per write
            # is mostly here): the key's part of its footprint is charged
            # only when the key appears or goes; a string's value is its
            # getsizeof.
            def metered_single(conn, args):
                db = conn.db
                key = args[1]
                data = db.data
                tenant = conn.tenant
                if denyoom and not events.in_exec:
                    quota = tenant.quota
                    if memory.data > memory.data_limit or quota.memory or quota.keys:
                        memory.admit(conn, None, data, key)
                value = data.get(key)
                if value is None:
                    before = 0
                else:
                    before = len(value) + BYTES if type(value) is bytes else data_size(value)
                    expires = db.expires
                    if expires and key in expires:
                        before += EXPIRE_OVERHEAD
                memory.outer_db = db   # see measure()
                memory.outer_key = key
                try:
                    return handler(conn, args)
                finally:
                    memory.outer_db = None
                    data = db.data   # FLUSH-like commands replace the dict
                    after = data.get(key)
                    if after is None:
                        delta = -before
                        if value is not None:
                            delta -= len(key) + BYTES + KEY_OVERHEAD
                    else:
                        delta = (len(after) + BYTES if type(after) is bytes
                                 else data_size(after)) - before
                        expires = db.expires
                        if expires and key in expires:
                            delta += EXPIRE_OVERHEAD
                        if value is None:
                            delta += len(key) + BYTES + KEY_OVERHEAD
                    if delta:
                        db.used += delta
                        tenant.used_memory += delta
                        memory.data += delta
                    if memory.tracking is not None:
                        if after is not None:
                            memory._touch(db, key, value is None)
                        elif db.access:
                            db.access.pop(key, None)
            metered_single.__wrapped__ = handler
            return metered_single

        def metered(conn, args):
            db = conn.db
            tenant = conn.tenant
            if keyless:
                pairs = ()
            else:
                pairs = list(dict.fromkeys((db, args[i]) for i in cmd.keys_of(args)))
                if name == "move" or name == "copy":
                    other = _other_db(conn, args, name)
                    if other is not None:
                        pairs.append((other, args[2] if name == "copy" else args[1]))
            if (denyoom or (denyoom_subs and len(args) > 1 and args[1].lower() in denyoom_subs)) \
                    and not events.in_exec:
                memory.admit(conn, lambda: any(key not in d.data for d, key in pairs))
            before = [footprint(d, key, d.data.get(key)) for d, key in pairs]
            existed = ({(d, key) for d, key in pairs if key in d.data}
                       if memory.tracking == "lfu" else ())
            memory.outer_pairs = pairs   # see measure()
            try:
                return handler(conn, args)
            finally:
                memory.outer_pairs = None
                tracking = memory.tracking
                for (d, key), size in zip(pairs, before):
                    value = d.data.get(key)
                    delta = footprint(d, key, value) - size
                    if delta:
                        memory._charge(d, delta, tenant)
                    if tracking is not None:
                        if value is not None:
                            memory._touch(d, key, (d, key) not in existed)
                        elif d.access:
                            d.access.pop(key, None)
                if keyless and name not in SAME_TOTAL:
                    memory._recount_tenant(tenant)
        metered.__wrapped__ = handler
        return metered

    def measure(self, conn, keys, function, *args):
        """function(*args), which changes `keys` of conn.db outside a
        command's handler (a parked client served: dispatch/blocking.py)."""
        db = conn.db
        # A key the write command running now measures itself (a push that
        # served a parked client): counted there, once.
        outer = self.outer_pairs or ()
        keys = tuple(key for key in dict.fromkeys(keys)
                     if not (db is self.outer_db and key == self.outer_key)
                     and (db, key) not in outer)
        before = [footprint(db, key, db.data.get(key)) for key in keys]
        try:
            return function(*args)
        finally:
            for key, size in zip(keys, before):
                delta = footprint(db, key, db.data.get(key)) - size
                if delta:
                    self._charge(db, delta, conn.tenant)

    def _recount_tenant(self, tenant) -> None:
        """After a write that names no keys (and is no flush): count the
        tenant again (KDB IMPORT and the like: rare, and O(their work))."""
        used = 0
        for db in tenant.dbs:
            db.used = sum(footprint(db, key, value) for key, value in db.data.items())
            used += db.used
        used += _scripts_memory(tenant)
        self.data += used - tenant.used_memory
        tenant.used_memory = used


def _scripts_memory(tenant) -> int:
    """The memory of the tenant's Lua state (scripting/engine.py), counted
    as its data is; the state remembers what it counted."""
    scripts = tenant.scripts
    if scripts is None:
        return 0
    scripts.counted = scripts.memory()
    return scripts.counted


def _other_db(conn, args, name):
    """MOVE's or COPY ... DB's destination database, when valid."""
    dbs = conn.tenant.dbs
    if name == "move":
        index = parse_int(args[2]) if len(args) > 2 else None
    else:
        index = None
        for i in range(3, len(args) - 1):
            if args[i].lower() == b"db":
                index = parse_int(args[i + 1])
    if index is None or not 0 <= index < len(dbs):
        return None
    target = dbs[index]
    return target if target is not conn.db else None
