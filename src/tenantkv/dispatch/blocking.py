"""Blocked clients: BLPOP and friends park a client until a key has data.

A blocking command first tries once, as its non-blocking form would. When
every key is empty it returns a `Blocked` reply instead: a Deferred (see
dispatch/replies.py) whose future the connection waits on with reading paused,
exactly as for AUTH. No coroutine and no polling: the client sits in the FIFO
queue of each of its keys (`db.blocked[key]`, in its tenant's database, so
another tenant's push can never reach it) with one loop timer for its timeout.

Whoever writes a key someone is blocked on reports it (dispatch/observers.py,
whose write hooks are installed while any client is blocked), and
`serve_ready` then hands the data to the waiting clients in the order they
blocked, right after the command that pushed it -- or after the whole EXEC
when the push was inside a transaction, as Redis does.

The blocking commands live with their families (BLPOP, BRPOP, BLMOVE,
BRPOPLPUSH, BLMPOP in commands/lists.py; BZPOPMIN, BZPOPMAX, BZMPOP in
commands/zsets.py) and share the helpers at the end of this module: the
timeout argument, "pop now or park" (`pop_or_block`), and what a client
served later must report (`served`).
"""

from collections import deque
from time import monotonic

from tenantkv import errors
from tenantkv.dispatch.replies import Deferred
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import COMPACT_OF, now_ms
from tenantkv.protocol.encoder import NULL_ARRAY
from tenantkv.util.numbers import LLONG_MAX, parse_int, timeout_ms


def _reply_or_raise(result):
    if isinstance(result, CommandError):
        raise result
    return result


class Blocked(Deferred):
    """One parked client: its keys, how to serve it from a key, its timeout."""

    __slots__ = ("conn", "db", "keys", "kind", "serve", "timeout_reply", "timer", "events",
                 "gone")

    def __init__(self, conn, keys: list, kind: type, serve, timeout: float, timeout_reply) -> None:
        loop = conn.server.loop
        super().__init__(loop.create_future(), _reply_or_raise)
        self.conn = conn
        self.db = db = conn.db
        self.keys = list(dict.fromkeys(keys))   # a key named twice waits once
        self.kind = kind              # the value type that can serve it (deque, ZSet)
        self.serve = serve            # serve(conn, key) -> reply, or None if the key cannot
        self.timeout_reply = timeout_reply
        self.events = conn.server.events
        # The error that answers it when a key it waits on is deleted or
        # takes another type (Redis 7.0 answers a parked XREADGROUP so,
        # unblockDeletedStreamReadgroupClients); None: it keeps waiting.
        self.gone = None
        for key in self.keys:
            queue = db.blocked.get(key)
            if queue is None:
                queue = db.blocked[key] = deque()
            queue.append(self)
        self.events.listen()
        self.timer = None
        if timeout > 0:
            # The loop's clock is read once per iteration, in whole ms (libuv):
            # it lags the real time, and a timer set from it could fire a
            # fraction of a ms early. Never early: add the lag and one ms.
            lag = max(0.0, monotonic() - loop.time())
            self.timer = loop.call_later(timeout + lag + 0.001, self.time_out)

    def _detach(self) -> None:
        blocked = self.db.blocked
        for key in self.keys:
            queue = blocked.get(key)
            if queue is not None:
                try:
                    queue.remove(self)
                except ValueError:
                    pass
                if not queue:
                    del blocked[key]
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.events.unlisten()

    def _finish(self, result) -> None:
        if not self.future.done():
            self._detach()
            self.future.set_result(result)

    def time_out(self) -> None:
        self._finish(self.timeout_reply)

    def unblock(self, error: str | None = None) -> None:
        """CLIENT UNBLOCK: as if the timeout had passed, or with an error."""
        self._finish(CommandError(error) if error else self.timeout_reply)

    def abandon(self) -> None:
        """The client went away: leave the queues, answer no one."""
        if not self.future.done():
            self._detach()
            self.future.cancel()

    def try_serve(self, key: bytes) -> bool:
        """`key` holds data: serve this client from it if its type fits."""
        if self.conn.closing:
            self.abandon()
            return False
        value = self.db.get(key)
        if value is None or (type(value) is not self.kind
                             and COMPACT_OF.get(type(value)) is not self.kind):
            # Redis 7.0: a value of another type leaves it blocked (a compact
            # form of its type, as a PackedZSet for a ZSet, serves it),
            # unless it is answered then (`gone`)
            if self.gone is not None:
                self._finish(CommandError(self.gone))
                return True
            return False
        try:
            reply = self.serve(self.conn, key)
        except CommandError as exc:   # e.g. BLMOVE's destination holds a string
            self._finish(exc)
            return True
        if reply is None:
            return False
        self._finish(reply)
        return True


def serve_ready(events) -> None:
    """Serve the clients blocked on the keys in `events.ready`, in the order
    they blocked, while those keys hold data. Serving can fill other keys
    (BLMOVE pushes): they join `ready` and are served in the same pass."""
    if events.serving:
        return
    events.serving = True
    try:
        while events.ready:
            ready, events.ready = events.ready, []
            for db, key in ready:
                queue = db.blocked.get(key)
                if not queue:
                    continue
                for waiter in list(queue):
                    if key not in db.data:
                        _key_gone(queue)
                        break
                    waiter.try_serve(key)   # its serve() reports what it wrote
    finally:
        events.serving = False


def _key_gone(queue) -> None:
    """The key of `queue` was deleted: answer the clients that do not wait
    for it to come back (`gone`), in the order they blocked."""
    for waiter in list(queue):
        if waiter.gone is not None and not waiter.conn.closing:
            waiter._finish(CommandError(waiter.gone))


# -- what the blocking commands share ----------------------------------------------------
#
# Each command tries once, as its non-blocking form; when all its keys are
# empty it parks the client with a function that serves it later from one key.
# Inside MULTI/EXEC nothing blocks: an empty result is answered as a timeout at
# once, as Redis does. On timeout every one of them replies a null array, as
# Redis 7.0 (BLMOVE too, unlike LMOVE's null bulk).

def parse_timeout(raw: bytes) -> float:
    """Seconds as Redis reads them (util.numbers.timeout_ms); 0 blocks forever."""
    ms = timeout_ms(raw)
    if ms is None:
        raise CommandError(errors.TIMEOUT_NOT_FLOAT)
    if ms < 0 or ms > LLONG_MAX:   # Redis's (long long) cast of a huge value is negative
        raise CommandError(errors.NEGATIVE_TIMEOUT)
    if ms > LLONG_MAX - now_ms():
        raise CommandError(errors.TIMEOUT_RANGE)
    return ms / 1000.0


def block_or_timeout(conn, keys, kind, serve, timeout: float, timeout_reply,
                     exec_reply=NULL_ARRAY):
    """Nothing to pop now: park the client; inside EXEC answer at once (what
    the non-blocking form answers: a null array, BLMOVE LMOVE's null bulk)."""
    if conn.server.events.in_exec:
        return exec_reply
    return Blocked(conn, keys, kind, serve, timeout, timeout_reply)


def served(conn, record: list, *keys) -> None:
    """A parked client was served: log what it did to the append-only log as
    the non-blocking command `record` (no handler wrapper ran for it), and
    report what its pop (and push) changed, for WATCH and for clients blocked
    on a BLMOVE's destination; its keyspace notifications."""
    db = conn.db
    events = conn.server.events
    journal = events.journal
    if journal is not None:
        journal.emit(conn.tenant.name, db.index, record)
    if events.notifier is not None:   # its keyspace events (dispatch/notify.py)
        events.notifier.served(conn, db, record)
    # Written by `conn` (NOLOOP; its own invalidation goes after its reply).
    events.written([(db, key) for key in keys], conn)


def pop_or_block(conn, keys, kind, pop, record, timeout: float):
    """Pop from the first of `keys` that has data, else park the client.
    `pop(conn, key)` -> the reply, or None when the key is empty;
    `record(key, reply)` -> the non-blocking command that logs a pop served
    later (the append-only log replays it)."""
    for key in keys:
        reply = pop(conn, key)
        if reply is not None:
            return reply

    def serve(conn, key):
        reply = metered(conn, (key,), pop, conn, key)
        if reply is not None:
            served(conn, record(key, reply), key)
        return reply
    return block_or_timeout(conn, keys, kind, serve, timeout, NULL_ARRAY)


def metered(conn, keys, function, *args):
    """function(*args) for a parked client being served, which changes
    `keys` of conn.db outside any handler: counted by the memory accounting
    while it is on (server/memory.py), as a write command's wrapper would."""
    meter = conn.server.events.meter
    if meter is None:
        return function(*args)
    return meter.measure(conn, keys, function, *args)


def mpop_args(args, sides: tuple) -> tuple:
    """BLMPOP / BZMPOP timeout numkeys key [key ...] <side> [COUNT count]:
    (timeout, keys, side index in `sides`, count), checked in Redis's order."""
    timeout = parse_timeout(args[1])
    numkeys = parse_int(args[2])
    if numkeys is None or numkeys <= 0:
        raise CommandError(errors.NUMKEYS_POSITIVE)
    where = 3 + numkeys
    if where >= len(args):
        raise CommandError(errors.SYNTAX)
    side = args[where].lower()
    if side not in sides:
        raise CommandError(errors.SYNTAX)
    count = None
    j = where + 1
    while j < len(args):
        if count is None and args[j].lower() == b"count" and j + 1 < len(args):
            count = parse_int(args[j + 1])
            if count is None or count <= 0:
                raise CommandError(errors.COUNT_POSITIVE)
            j += 2
        else:
            raise CommandError(errors.SYNTAX)
    return timeout, args[3:where], sides.index(side), count or 1
