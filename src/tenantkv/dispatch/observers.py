"""The write observers: what a command wrote, told to those who must know.

Three observers, all registered here (dispatch owns the mechanism; nothing
outside this package swaps a handler): the append-only log (`set_journal`,
persistence/), WATCH and the blocked clients. The last two must know which
keys a command changed: WATCH (a watched key
written by anyone of the same tenant makes the watcher's EXEC fail) and the
blocking pops (a key a client is blocked on that now holds data serves that
client). Redis calls signalModifiedKey() from every write path. Here the
write paths are inline dict and deque operations spread over every command
family, and a call per write would cost every client on the hot path.

So the cost is paid only while someone listens: as long as at least one
client in the server watches a key or is blocked, the handler of every write
command is replaced by a wrapper that, after the command ran, reports the keys
it wrote (`written`). When the last watcher or blocked client goes, the plain
handlers come back. With nobody listening, a write costs exactly what it did.
The append-only log (persistence) uses the same wrappers: while it is on, they
stay installed and hand every successful write to `journal.record`.

The same swap refuses writes the server could not persist (`deny`, driven by
persistence/diskerror.py: a failed background save, a failed log write):
while denied, every write command's handler (and PING's, as Redis 7's
processCommand) raises the -MISCONF error, and EXEC's refuses a queue that
holds a write. A healthy server tests nothing per command for it.

Which keys a command wrote: its key positions (the registry's first/last/step)
unless TOUCHED below says otherwise (the STORE commands write only their
destination; MOVE and COPY can write in another database; FLUSHDB/FLUSHALL
every key that existed). A command that failed (CommandError) wrote nothing;
for the commands of UNCHANGED_ON_ZERO a reply of 0 (or a null) means nothing
changed either, as Redis signals only real changes there; the commands of
MAY_CHANGE_NOTHING say so by counting in `stats.unchanged_writes`.

The keyspace notifications (dispatch/notify.py, `set_notifier`) use the same
wrappers: while any setting publishes, a write whose tenant has a subscriber
is described by the Notifier (what its keys were before, then its events);
a key that expires reaches it through the expiry hook, as the log's DEL.

Client-side caching (dispatch/tracking.py) listens too: while any client
tracks, writes report their keys (`written` hands them to the Tracker, with
the client that wrote them, for NOLOOP), a FLUSHDB/FLUSHALL says so
(`flushed`), an expiry goes through stats.on_expire, and the read commands
that name keys (Redis's "readonly" ones) are wrapped to remember what a
tracking client read (`set_tracking`).

The memory accounting (server/memory.py, `set_meter`) uses the same swap:
while it is on (maxmemory, or a memory/keys quota), its wrapper goes around
whatever handler the state above chose (so its OOM check comes first, as
Redis's processCommand checks memory before the disk error), for the write
commands, EXEC and, while an LRU/LFU policy needs access times, the readers.

Two command observers wrap every command the same way, outside the meter,
only while they are on (`set_layer`): MONITOR's feed (dispatch/monitor.py,
while anyone monitors) and CLIENT PAUSE's gate (dispatch/pause.py, while a
pause lasts), the gate outermost: a postponed command is shown when it runs.
"""

from tenantkv import errors
from tenantkv.dispatch.keyprocs import georadius_store_key
from tenantkv.dispatch.table import COMMANDS
from tenantkv.errors import CommandError, execabort_because
from tenantkv.keyspace.database import now_ms
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY
from tenantkv.dispatch import blocking
from tenantkv.dispatch.replies import Deferred
from tenantkv.util.keyspecs import sort_procedure
from tenantkv.util.numbers import parse_int


def _key_positions(cmd):
    def touched(conn, db, args, reply):
        return [(db, args[i]) for i in cmd.key_positions(args)]
    return touched


def _nothing(conn, db, args, reply):
    return []


def _xgroup(conn, db, args, reply):
    sub = args[1].lower()
    if sub == b"create" and b"mkstream" in [a.lower() for a in args[5:]]:
        return [(db, args[2])]
    return []


def _destination(conn, db, args, reply):
    return [(db, args[1])]


def _georadius_store(conn, db, args, reply):
    # GEORADIUS[BYMEMBER] writes its STORE key only (without one it wrote
    # nothing, and said so through stats.unchanged_writes)
    key = georadius_store_key(args)
    return [] if key is None else [(db, key)]


def _popped_key(conn, db, args, reply):
    # LMPOP / ZMPOP reply [key, elements] naming the one key they popped from.
    if type(reply) is list and reply:
        return [(db, reply[0])]
    return []


def _move(conn, db, args, reply):
    index = parse_int(args[2])
    return [(db, args[1]), (conn.tenant.dbs[index], args[1])] if reply == 1 else []


def _copy(conn, db, args, reply):
    if reply != 1:
        return []
    target = db
    for i in range(3, len(args) - 1):
        if args[i].lower() == b"db":
            index = parse_int(args[i + 1])
            if index is not None and 0 <= index < len(conn.tenant.dbs):
                target = conn.tenant.dbs[index]
    return [(target, args[2])]


def _sort_store(conn, db, args, reply):
    # SORT ... STORE dst: the destination (sortGetKeys finds it)
    found = sort_procedure(args)
    return [(db, args[found[1][0]])] if len(found) > 1 else []


def _swapdb(conn, db, args, reply):
    """SWAPDB's effect on the clients of both databases (run after the
    swap), as Redis's touchAllWatchedKeysInDb and scanDatabaseForReadyKeys:
    a WATCHed key changed when it existed in its database before or exists
    there now, unless it only gets a stale (expired) value where it had
    none (an expired key WATCH saw was deleted then: tenantkv's WATCH reads
    the key); a key someone is blocked on that exists in its database now
    may serve them (the pop itself skips an expired one)."""
    first, second = parse_int(args[1]), parse_int(args[2])
    if first == second:
        return []
    dbs = conn.tenant.dbs
    a, b = dbs.get(first), dbs.get(second)
    if a is None or b is None:
        return []
    now = now_ms()
    keys = []
    for one, other in ((a, b), (b, a)):
        before, after, expires = other.data, one.data, one.expires   # swapped already
        for key in one.watchers:
            if key in before:
                keys.append((one, key))
            elif key in after and not (key in expires and expires[key] <= now):
                keys.append((one, key))
        for key in one.blocked:
            if key in after and key not in one.watchers:
                keys.append((one, key))
    return keys


# command name -> touched(conn, db, args, reply) -> [(db, key), ...]
TOUCHED = {
    "sinterstore": _destination, "sunionstore": _destination, "sdiffstore": _destination,
    "zunionstore": _destination, "zinterstore": _destination, "zdiffstore": _destination,
    "zrangestore": _destination, "bitop": lambda conn, db, args, reply: [(db, args[2])],
    "lmpop": _popped_key, "zmpop": _popped_key, "blmpop": _popped_key, "bzmpop": _popped_key,
    "move": _move, "copy": _copy, "sort": _sort_store,
    "swapdb": _swapdb,
    "geosearchstore": _destination, "georadius": _georadius_store,
    "georadiusbymember": _georadius_store, "pfmerge": _destination,
    # Consumer groups change no key for WATCH, tracking or blocked clients
    # (t_stream.c signals nothing for them), but XGROUP CREATE ... MKSTREAM
    # making the key (XGROUP DESTROY wakes its parked XREADGROUPs itself:
    # commands/streamgroups.py)
    "xreadgroup": _nothing, "xack": _nothing, "xclaim": _nothing, "xautoclaim": _nothing,
    "xgroup": _xgroup,
}


def _read_only(handler):
    """A write command's handler on a read-only replica: its internal
    clients (the primary's stream, the log replay) write; nobody else."""
    def read_only_handler(conn, args):
        if conn.internal:
            return handler(conn, args)
        raise CommandError(errors.READONLY)
    return read_only_handler


def _read_only_exec(events, handler):
    """EXEC on a read-only replica: a transaction queued while this server
    was still a primary and holding a write is refused whole, before any of
    it runs (as Redis: -EXECABORT ... READONLY); one without writes runs."""
    def read_only_exec(conn, args):
        queued = conn.multi
        if not conn.internal and queued and any("write" in cmd.flags for cmd, _ in queued):
            events.end_transaction(conn)
            raise CommandError(execabort_because(errors.READONLY))
        return handler(conn, args)
    return read_only_exec


def writes_keys(cmd) -> bool:
    """A container with subcommands that write keys (XGROUP): observed as a
    write command, its keys those of the subcommand run."""
    return any("write" in sub.flags and sub.key_specs for sub in cmd.subcommands.values())


def _existing_watched(dbs):
    """The watched keys of `dbs` that hold a value now (before a flush)."""
    return [(db, key) for db in dbs for key in db.watchers if db.get(key) is not None]


def _flushed(dbs):
    """What a flush of `dbs` writes for the observers: the watched keys
    that hold a value, and the keys clients are blocked on that do (a
    parked XREADGROUP is answered when its stream goes, as Redis's
    signalFlushedDb -> scanDatabaseForDeletedStreams)."""
    keys = _existing_watched(dbs)
    keys += [(db, key) for db in dbs for key in db.blocked
             if key not in db.watchers and db.get(key) is not None]
    return keys


# command name -> prepare(conn, args) -> [(db, key), ...], taken before the
# command runs, for commands after which the keys they changed are gone.
PREPARE = {
    "flushdb": lambda conn, args: _flushed([conn.db]),
    "flushall": lambda conn, args: _flushed(conn.tenant.dbs),
}

# Refused with the writes while the server cannot persist (besides the write
# commands): PING, so that a health check notices (Redis 7's processCommand),
# and EXEC, which refuses a queue holding a write.
_GATED = frozenset(("ping", "exec"))

# Commands whose reply shows nothing of the data (mark_readers leaves them
# alone): connection state, transaction control, configuration, saving.
SHOWS_NO_DATA = frozenset((
    "auth", "client", "echo", "hello", "quit", "reset", "select", "host:", "post",
    "multi", "discard", "watch", "unwatch",
    "acl", "bgrewriteaof", "bgsave", "command", "config", "help", "lastsave", "save",
    "shutdown", "time",
))

# A reply of 0 / null from these means that they changed nothing.
UNCHANGED_ON_ZERO = frozenset((
    "del", "unlink", "sadd", "srem", "hdel", "zrem", "hsetnx", "setnx", "msetnx",
    "expire", "pexpire", "expireat", "pexpireat", "persist", "lrem", "smove",
    "renamenx", "lpushx", "rpushx", "zremrangebyrank", "zremrangebyscore",
    "zremrangebylex", "lpop", "rpop", "spop", "getdel", "rpoplpush", "lmove",
    "zpopmin", "zpopmax", "blpop", "brpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax",
    "xadd", "xdel", "xtrim", "pfadd",
))

# Commands whose reply does not tell whether they changed anything: they count
# a no-op in server.stats.unchanged_writes (SETBIT of a bit to its value;
# GEORADIUS and SORT without STORE, write commands only for their STORE form).
MAY_CHANGE_NOTHING = frozenset(("setbit", "bitfield", "georadius", "georadiusbymember", "sort"))


class KeyEvents:
    def __init__(self, stats) -> None:
        # The server's counters, which every Database holds: a key that
        # expires calls stats.on_expire(db, key) while the log is on.
        self.stats = stats
        self.listeners = 0      # watching clients + blocked clients, server-wide
        self.installed = False
        self.in_exec = False    # inside EXEC: blocked clients are served after it
        self.ready: list = []   # (db, key) that may serve blocked clients
        self.serving = False    # inside serve_ready (which serving can re-enter)
        # The append-only log, when on: journal.record(conn, db, cmd, args,
        # reply) after every write command that did not fail (see _wrap).
        self.journal = None
        # The keyspace notifications (dispatch/notify.py), while any setting
        # publishes: notifier.listening(conn) -> flags, before(...), after(...).
        self.notifier = None
        # Writes refused (MISCONF, NOREPLICAS): the error message, else None.
        self.denied = None
        # A read-only replica (replication/): writes are refused with
        # -READONLY but for its internal clients (the primary's stream).
        self.read_only = False
        self._read_only: dict = {}   # handler -> its refusing wrapper (built once)
        self._plain: dict = {}    # command name -> its unwrapped handler
        self._wrapped: dict = {}  # command name -> its wrapper (built once)
        self._refusing: dict = {}  # command name -> its refusing handler (built once)
        self._gated: list = []     # the write commands, PING, EXEC
        self._readers: list = []   # the other commands but SHOWS_NO_DATA
        # While set, marker(conn) runs before any command that may show data
        # (mark_readers); _marking: command name -> that wrapper (built once).
        self.marker = None
        self._marking: dict = {}
        # Client-side caching (dispatch/tracking.py): its Tracker once made,
        # and whether any client tracks now (readers wrapped, writes
        # reported); _tracked: the reader names that remember keys,
        # _tracking: (name, handler) -> that wrapper (built once).
        self.tracker = None
        self.tracking = False
        self._tracked: frozenset = frozenset()
        self._tracking: dict = {}
        # The memory accounting, while on (server/memory.py): meter.wrap(cmd,
        # handler) -> its wrapper or None; _metered caches them by (name,
        # handler) until the meter changes.
        self.meter = None
        self._metered: dict = {}
        # The command observers, while on (set_layer): the monitors' feed and
        # the pause gate; each has wrap(cmd, handler) -> its wrapper or None.
        self.monitor = None
        self.gate = None
        self._layered: dict = {}
        self._others: list = []   # the commands neither gated nor readers

    # -- listening -------------------------------------------------------------

    def listen(self) -> None:
        self.listeners += 1
        if not self.installed:
            self._install()

    def unlisten(self) -> None:
        self.listeners -= 1
        if self.listeners <= 0:
            self.listeners = 0
            if self.installed and self.journal is None and self.notifier is None:
                self._uninstall()

    def set_journal(self, journal) -> None:
        """Turn the write hooks' logging on (a journal) or off (None). A key
        that expires is a write too: logged as its DEL (keyspace/database.py
        calls stats.on_expire, only when a key expires)."""
        self.journal = journal
        self._expiry_hook()
        if journal is not None and not self.installed:
            self._install()
        elif journal is None and self.installed and not self.listeners and self.notifier is None:
            self._uninstall()

    def set_notifier(self, notifier) -> None:
        """Keyspace notifications on (a dispatch/notify.Notifier) or off (None)."""
        if notifier is self.notifier:
            return
        self.notifier = notifier
        self._expiry_hook()
        if notifier is not None and not self.installed:
            self._install()
        elif (notifier is None and self.installed and not self.listeners
              and self.journal is None):
            self._uninstall()

    def _expiry_hook(self) -> None:
        """stats.on_expire: the log's (the key's DEL), the notifications'
        ("expired") and the tracker's (an invalidation), whichever are on;
        None when none is (the expiry then tests one attribute)."""
        hooks = [hook for hook in (
            self.journal.expired if self.journal is not None else None,
            self.notifier.expired if self.notifier is not None else None,
            self.tracker.expired if self.tracking and self.tracker is not None else None)
            if hook is not None]
        if len(hooks) <= 1:
            self.stats.on_expire = hooks[0] if hooks else None
            return

        def expired(db, key):
            for hook in hooks:
                hook(db, key)
        self.stats.on_expire = expired

    def _install(self) -> None:
        self.installed = True
        self._apply()

    def _uninstall(self) -> None:
        self.installed = False
        self._apply()

    def _capture(self) -> dict:
        """The real handlers, remembered at the first swap."""
        plain = self._plain
        if not plain:
            for name, cmd in COMMANDS.items():
                plain[name] = cmd.handler
                if "write" in cmd.flags or writes_keys(cmd):
                    self._wrapped[name] = self._wrap(cmd, cmd.handler)
                    self._gated.append(name)
                elif name in _GATED:
                    self._gated.append(name)
                elif name not in SHOWS_NO_DATA:
                    self._readers.append(name)
                else:
                    self._others.append(name)
            self._tracked = frozenset(
                name for name in self._readers
                if "readonly" in COMMANDS[name].flags and "pubsub" not in COMMANDS[name].flags
                and COMMANDS[name].has_keys())
        return plain

    def _apply(self) -> None:
        """Give every write command (and PING, EXEC) the handler the state
        asks for: refusing while denied, else reporting while installed,
        else its own."""
        plain = self._capture()
        wrapped = self._wrapped
        for name in self._gated:
            handler = plain[name]
            if self.denied is not None:
                refusing = self._refusing.get(name)
                if refusing is None:
                    refusing = self._refusing[name] = self._refuse(name)
                handler = refusing
            elif self.installed and name in wrapped:
                handler = wrapped[name]
                if self.tracking:
                    handler = self._running(handler)
            if self.read_only and name in wrapped:
                refusing = self._read_only.get(handler)
                if refusing is None:
                    refusing = self._read_only[handler] = _read_only(handler)
                handler = refusing
            elif self.read_only and name == "exec":
                refusing = self._read_only.get(handler)
                if refusing is None:
                    refusing = self._read_only[handler] = _read_only_exec(self, handler)
                handler = refusing
            COMMANDS[name].handler = self._outer(name, handler)

    # -- refusing writes (MISCONF, NOREPLICAS, READONLY) ------------------------

    def set_read_only(self, on: bool) -> None:
        """A read-only replica (on) or not: see _read_only."""
        if on != self.read_only:
            self.read_only = on
            self._capture()
            self._apply()

    def deny(self, message) -> None:
        """Refuse writes with `message` (an error text), or accept them
        again (None). See persistence/diskerror.py for when."""
        if message == self.denied:
            return
        self.denied = message
        self._apply()

    def _refuse(self, name: str):
        events = self

        def current(conn, args):
            # What runs when writes are accepted: the reporting wrapper while
            # it is installed, else the command itself.
            if events.installed and name in events._wrapped:
                return events._wrapped[name](conn, args)
            return events._plain[name](conn, args)

        if name == "exec":
            def refusing_exec(conn, args):
                # As Redis: a transaction that would write is refused as a
                # whole, before any of it runs (and is discarded).
                queued = conn.multi
                if queued and any("write" in cmd.flags for cmd, _ in queued):
                    events.end_transaction(conn)
                    raise CommandError(execabort_because(events.denied))
                return current(conn, args)
            return refusing_exec

        def refusing_handler(conn, args):
            if conn.internal or (name == "ping" and not events.denied.startswith("MISCONF")):
                # A replica obeys its primary's stream whatever its own disk
                # says (Redis's obey_client); PING is refused for MISCONF only.
                return current(conn, args)
            if events.in_exec:
                # An EXEC that began before the refusal (it checked its queue
                # then) runs whole: a transaction is all or nothing. Its reply
                # shows writes that may not be logged: marked (see below).
                if events.marker is not None:
                    events.marker(conn)
                return current(conn, args)
            raise CommandError(events.denied)
        return refusing_handler

    # -- marking readers (appendfsync always, while the log cannot be written) --

    def mark_readers(self, marker) -> None:
        """From now on call `marker(conn)` before every command that may show
        data (all but the write commands, PING, EXEC and SHOWS_NO_DATA; inside
        EXEC, its commands), or no more (None). persistence/aof/journal.py holds the
        output of such a connection until the log has caught up."""
        if marker == self.marker:
            return
        self.marker = marker
        self._apply_readers()

    def _apply_readers(self) -> None:
        """Give every reader the handler the state asks for: marked (see
        mark_readers), remembering keys for tracking clients (set_tracking),
        metered, in that order from the inside."""
        plain = self._capture()
        marking = self._marking
        marker = self.marker
        tracked = self._tracked if self.tracking else ()
        for name in self._readers:
            handler = plain[name]
            if marker is not None:
                handler = marking.get(name)
                if handler is None:
                    handler = marking[name] = self._mark(plain[name])
            if name in tracked:
                wrapper = self._tracking.get((name, handler))
                if wrapper is None:
                    wrapper = self._tracking[(name, handler)] = self._remembering(name, handler)
                handler = wrapper
            COMMANDS[name].handler = self._outer(name, handler)

    # -- client-side caching -----------------------------------------------------

    def set_tracking(self, on: bool) -> None:
        """Some client tracks (on) or none does any more: the readers that
        name keys remember them for a tracking caller, an expiry
        invalidates (dispatch/tracking.py; the writes report through
        listen())."""
        if on == self.tracking:
            return
        self.tracking = on
        self._expiry_hook()
        self._apply()
        self._apply_readers()

    def _remembering(self, name: str, handler):
        cmd = COMMANDS[name]
        events = self

        def remembering_handler(conn, args):
            if conn.tracking is None:
                return handler(conn, args)
            tracker = events.tracker
            previous, tracker.current = tracker.current, conn
            try:
                reply = handler(conn, args)
            finally:
                tracker.current = previous
            if conn.tracking is not None:
                tracker.remember(conn, cmd, args)
            return reply
        return remembering_handler

    def _running(self, handler):
        """A write command's reporting wrapper, while anyone tracks: a
        tracking caller is the tracker's `current` while it runs, so that
        the keys it expires lazily are invalidated after its reply (its
        own writes say so themselves, see _wrap)."""
        wrapper = self._tracking.get(("", handler))
        if wrapper is not None:
            return wrapper
        events = self

        def running_handler(conn, args):
            if conn.tracking is None:
                return handler(conn, args)
            tracker = events.tracker
            previous, tracker.current = tracker.current, conn
            try:
                return handler(conn, args)
            finally:
                tracker.current = previous
        running_handler.__wrapped__ = handler
        self._tracking[("", handler)] = running_handler
        return running_handler

    # -- the memory accounting ---------------------------------------------------

    def set_meter(self, meter) -> None:
        """Wrap the write commands, EXEC and (as it asks) the readers with
        `meter`'s wrappers (server/memory.py), or no more (None). Called
        again when what the meter wraps changes (an LRU policy turned on)."""
        self.meter = meter
        self._metered = {}
        self._apply()
        self._apply_readers()

    # -- the command observers: MONITOR, CLIENT PAUSE ------------------------------

    def set_layer(self, kind: str, layer) -> None:
        """Turn the command observer `kind` ("monitor" or "gate") on (its
        object) or off (None): every command's handler is rebuilt."""
        if getattr(self, kind) is layer:
            return
        setattr(self, kind, layer)
        self._layered = {}
        self._apply()
        self._apply_readers()
        plain = self._plain
        for name in self._others:
            COMMANDS[name].handler = self._outer(name, plain[name])

    def _outer(self, name: str, handler):
        """`handler` inside the meter's wrapper, then the command observers'."""
        handler = self._metering(name, handler)
        for layer in (self.monitor, self.gate):   # the gate outermost
            if layer is not None:
                key = (layer, name, handler)
                wrapper = self._layered.get(key)
                if wrapper is None:
                    wrapper = self._layered[key] = layer.wrap(COMMANDS[name], handler) or handler
                handler = wrapper
        return handler

    def _metering(self, name: str, handler):
        meter = self.meter
        if meter is None:
            return handler
        cached = self._metered.get((name, handler))
        if cached is None:
            cached = meter.wrap(COMMANDS[name], handler) or handler
            self._metered[(name, handler)] = cached
        return cached

    def _mark(self, handler):
        events = self

        def marking_handler(conn, args):
            marker = events.marker
            if marker is not None:
                marker(conn)
            return handler(conn, args)
        return marking_handler

    def _wrap(self, cmd, handler):
        touched = TOUCHED.get(cmd.name) or _key_positions(cmd)
        prepare = PREPARE.get(cmd.name)
        zero_is_noop = cmd.name in UNCHANGED_ON_ZERO
        flush = cmd.name in ("flushdb", "flushall")
        may_change_nothing = cmd.name in MAY_CHANGE_NOTHING
        events = self
        Blocked = blocking.Blocked

        def reporting_handler(conn, args):
            db = conn.db
            listening = events.listeners
            before = prepare(conn, args) if prepare is not None and listening else None
            notifier = events.notifier
            notify = notifier.listening(conn) if notifier is not None else 0
            if notify:
                notified = notifier.before(cmd, db, args, notify)
            if may_change_nothing:
                stats = conn.server.stats
                unchanged = stats.unchanged_writes
                reply = handler(conn, args)
                if stats.unchanged_writes != unchanged:
                    return reply   # as Redis: not logged, no WATCH touched
            else:
                reply = handler(conn, args)
            if type(reply) is Blocked:
                return reply   # it parked the client and changed nothing
            if notify:
                notifier.after(conn, db, cmd, args, reply, notified, notify)
            if events.journal is not None:
                events.journal.record(conn, db, cmd, args, reply)
            if not listening:
                return reply
            tracking = conn.tracking
            if tracking is not None and tracking.caching and not events.in_exec:
                tracking.caching = False   # CLIENT CACHING spoke of this command
            if flush and events.tracking:
                events.tracker.flushed(conn.tenant, conn)
            if before is not None:
                keys = before
            elif zero_is_noop and (reply == 0 or reply is None or reply is NULL_ARRAY
                                   or reply is EMPTY_ARRAY or reply == []):
                return reply
            else:
                keys = touched(conn, db, args, reply)
            if keys:
                # After a flush, the tracker's null said it all (above).
                events.written(keys, conn, track=not flush)
                if type(reply) is Deferred:
                    # A job in slices (a big SORT ... STORE, ZUNIONSTORE):
                    # its writes happen at its end. WATCH is marked now (the
                    # tenant's held EXEC may run before the callback); the
                    # blocked clients can be served only then.
                    reply.future.add_done_callback(
                        lambda future: future.cancelled() or future.exception() is not None
                        or events.written(keys, conn, track=not flush))
            return reply

        reporting_handler.__wrapped__ = handler
        return reporting_handler

    # -- events ----------------------------------------------------------------

    def written(self, keys, conn=None, track: bool = True) -> None:
        """Commands wrote these (db, key) pairs (`conn`'s command, if known):
        fail the EXEC of their watchers, invalidate the caches of tracking
        clients, and serve the clients blocked on them (after EXEC when
        inside one, as Redis does)."""
        if self.tracking and track:
            self.tracker.written(keys, conn)
        for db, key in keys:
            watchers = db.watchers.get(key) if db.watchers else None
            if watchers:
                for conn in watchers:
                    conn.watch_dirty = True
            if db.blocked and key in db.blocked:
                self.ready.append((db, key))
        if self.ready and not self.in_exec:
            blocking.serve_ready(self)

    def serve_ready(self) -> None:
        """Serve blocked clients from the keys written so far (after EXEC)."""
        if self.ready:
            blocking.serve_ready(self)

    # -- WATCH -----------------------------------------------------------------

    def watch(self, conn, db, key: bytes) -> None:
        watched = conn.watched
        if watched is None:
            watched = conn.watched = {}
            self.listen()
        if (db, key) in watched:
            return
        # A key that expires between WATCH and EXEC fails the EXEC (Redis 7):
        # remember when this one, live now, expires.
        watched[(db, key)] = db.expires.get(key) if db.get(key) is not None else None
        db.watchers.setdefault(key, []).append(conn)

    def end_transaction(self, conn) -> None:
        """Leave MULTI (if in it) and forget every watched key (DISCARD, EXEC, RESET)."""
        conn.multi = None
        conn.multi_error = False
        self.unwatch_all(conn)

    def unwatch_all(self, conn) -> None:
        watched = conn.watched
        conn.watch_dirty = False
        if watched is None:
            return
        conn.watched = None
        for db, key in watched:
            watchers = db.watchers.get(key)
            if watchers is not None:
                try:
                    watchers.remove(conn)
                except ValueError:
                    pass
                if not watchers:
                    del db.watchers[key]
        self.unlisten()

    def watch_failed(self, conn) -> bool:
        """Did a watched key change, or expire, since WATCH?"""
        if conn.watch_dirty:
            return True
        if conn.watched:
            now = now_ms()
            for when in conn.watched.values():
                if when is not None and when <= now:
                    return True
        return False
