"""Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.

Each command tries once, as its non-blocking form; when all its keys are
empty it parks the client (dispatch/blocking.py) with a function that serves
it later from one key. Inside MULTI/EXEC nothing blocks: an empty result is
answered as a timeout at once, as Redis does.

Replies as Redis 7.0's: BLPOP/BRPOP [key, element], BZPOP* [key, member,
score], BLMPOP/BZMPOP [key, [elements]], BLMOVE the element; on timeout a
null array, for every one of them (BLMOVE too, unlike LMOVE's null bulk).
"""

from collections import deque

from tenantkv import errors
from tenantkv.commands import lists, zsets
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import now_ms
from tenantkv.keyspace.zset import ZSet
from tenantkv.protocol.encoder import NULL_ARRAY
from tenantkv.dispatch.blocking import Blocked
from tenantkv.util.numbers import LLONG_MAX, parse_int, timeout_ms


def parse_timeout(raw: bytes) -> float:
    """Seconds as Redis reads them (util.numbers.timeout_ms); 0 blocks forever."""
    ms = timeout_ms(raw)
    if ms is None:
        raise CommandError("ERR timeout is not a float or out of range")
    if ms < 0 or ms > LLONG_MAX:   # Redis's (long long) cast of a huge value is negative
        raise CommandError(errors.NEGATIVE_TIMEOUT)
    if ms > LLONG_MAX - now_ms():
        raise CommandError("ERR timeout is out of range")
    return ms / 1000.0


def _block_or_timeout(conn, keys, kind, serve, timeout: float, timeout_reply,
                      exec_reply=NULL_ARRAY):
    """Nothing to pop now: park the client; inside EXEC answer at once (what
    the non-blocking form answers: a null array, BLMOVE LMOVE's null bulk)."""
    if conn.server.events.in_exec:
        return exec_reply
    return Blocked(conn, keys, kind, serve, timeout, timeout_reply)


def _written(conn, record: list, *keys) -> None:
    """A parked client was served: log what it did to the append-only log as
    the non-blocking command `record` (no handler wrapper ran for it), and
    report what its pop (and push) changed, for WATCH and for clients blocked
    on a BLMOVE's destination."""
    db = conn.db
    journal = conn.server.events.journal
    if journal is not None:
        journal.emit(conn.tenant.name, db.index, record)
    conn.server.events.written([(db, key) for key in keys])


# -- BLPOP / BRPOP --------------------------------------------------------------------

def _pop_or_block(conn, keys, kind, pop, record, timeout: float):
    """Pop from the first of `keys` that has data, else park the client.
    `pop(conn, key)` -> the reply, or None when the key is empty;
    `record(key, reply)` -> the non-blocking command that logs a pop served
    later (the append-only log replays it)."""
    for key in keys:
        reply = pop(conn, key)
        if reply is not None:
            return reply

    def serve(conn, key):
        reply = pop(conn, key)
        if reply is not None:
            _written(conn, record(key, reply), key)
        return reply
    return _block_or_timeout(conn, keys, kind, serve, timeout, NULL_ARRAY)


def _list_pop(head: bool):
    def pop(conn, key: bytes):
        db = conn.db
        lst = db.write_typed(key, deque)
        if not lst:
            return None
        value = lst.popleft() if head else lst.pop()
        if not lst:
            db.delete(key)
        return [key, value]
    return pop


def _blocking_pop(conn, args, head: bool):
    timeout = parse_timeout(args[-1])
    keys = args[1:-1]
    name = b"LPOP" if head else b"RPOP"
    return _pop_or_block(conn, keys, deque, _list_pop(head), lambda key, reply: [name, key],
                         timeout)


@command("blpop")
def blpop(conn, args):
    return _blocking_pop(conn, args, True)


@command("brpop")
def brpop(conn, args):
    return _blocking_pop(conn, args, False)


# -- BLMOVE / BRPOPLPUSH --------------------------------------------------------------

def _blocking_move(conn, src: bytes, dst: bytes, from_head: bool, to_head: bool, raw_timeout: bytes):
    timeout = parse_timeout(raw_timeout)
    value = lists._move(conn, src, dst, from_head, to_head)
    if value is not None:
        return value

    record = [b"LMOVE", src, dst, b"LEFT" if from_head else b"RIGHT",
              b"LEFT" if to_head else b"RIGHT"]

    def serve(conn, key):
        value = lists._move(conn, src, dst, from_head, to_head)
        if value is not None:
            _written(conn, record, src, dst)
        return value
    return _block_or_timeout(conn, [src], deque, serve, timeout, NULL_ARRAY, None)


@command("blmove")
def blmove(conn, args):
    from_head = lists._where(args[3])
    to_head = lists._where(args[4])
    return _blocking_move(conn, args[1], args[2], from_head, to_head, args[5])


@command("brpoplpush")
def brpoplpush(conn, args):
    return _blocking_move(conn, args[1], args[2], False, True, args[3])


# -- BLMPOP / BZMPOP: timeout numkeys key [key ...] <side> [COUNT count] ------------

def _mpop_args(args, sides: tuple) -> tuple:
    """(timeout, keys, side index in `sides`, count), checked in Redis's order."""
    timeout = parse_timeout(args[1])
    numkeys = parse_int(args[2])
    if numkeys is None or numkeys <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
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
                raise CommandError("ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(errors.SYNTAX)
    return timeout, args[3:where], sides.index(side), count or 1


@command("blmpop")
def blmpop(conn, args):
    timeout, keys, side, count = _mpop_args(args, (b"left", b"right"))
    head = side == 0

    def pop(conn, key):
        db = conn.db
        lst = db.write_typed(key, deque)
        if not lst:
            return None
        return [key, lists._pop_many(db, key, lst, head, count)]

    def record(key, reply):
        return [b"LMPOP", b"1", key, b"LEFT" if head else b"RIGHT", b"COUNT", b"%d" % len(reply[1])]
    return _pop_or_block(conn, keys, deque, pop, record, timeout)


@command("bzmpop")
def bzmpop(conn, args):
    timeout, keys, side, count = _mpop_args(args, (b"min", b"max"))

    def pop(conn, key):
        db = conn.db
        z = db.write_typed(key, ZSet)
        if not z:
            return None
        pairs = zsets._pop(db, key, z, count, side == 1)
        return [key, [[m, zsets._score(conn, s)] for s, m in pairs]]

    def record(key, reply):
        return [b"ZMPOP", b"1", key, b"MAX" if side == 1 else b"MIN", b"COUNT", b"%d" % len(reply[1])]
    return _pop_or_block(conn, keys, ZSet, pop, record, timeout)


# -- BZPOPMIN / BZPOPMAX ---------------------------------------------------------------

def _blocking_zpop(conn, args, maximum: bool):
    timeout = parse_timeout(args[-1])
    keys = args[1:-1]

    def pop(conn, key):
        db = conn.db
        z = db.write_typed(key, ZSet)
        if not z:
            return None
        (score, member), = zsets._pop(db, key, z, 1, maximum)
        return [key, member, zsets._score(conn, score)]

    name = b"ZPOPMAX" if maximum else b"ZPOPMIN"
    return _pop_or_block(conn, keys, ZSet, pop, lambda key, reply: [name, key], timeout)


@command("bzpopmin")
def bzpopmin(conn, args):
    return _blocking_zpop(conn, args, False)


@command("bzpopmax")
def bzpopmax(conn, args):
    return _blocking_zpop(conn, args, True)
