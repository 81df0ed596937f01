"""Keyspace notifications (issue 16): `notify-keyspace-events`, per tenant.

Redis publishes `__keyspace@<db>__:<key>` (message: the event) and
`__keyevent@<db>__:<event>` (message: the key) for every change of a key,
filtered by the classes of notify-keyspace-events. Here every one of them
is published with dispatch/pubsub.publish into the tenant that owns the key,
and <db> is the index of the database inside that tenant: a tenant never
sees another's key names, and its own setting never turns on anyone else's.

The setting: the server's (CONFIG SET by root, the config file
`[notify] keyspace_events`, TENANTKV_NOTIFY__KEYSPACE_EVENTS), and a
tenant's own (`tenant.notify`, CONFIG SET by a non-root user: see
commands/server.py), which wins while set. None on a tenant: the server's.

Cost only while someone can listen: the events are computed by the write
observers' wrappers (dispatch/observers.py), installed while any setting
publishes anything (`Notifier.on`), and for a command whose tenant has no
subscriber at all nothing is computed. With notifications off everywhere
the plain handlers run: not one extra test per command.

Which events a command emits is Redis 7.0's (grep notifyKeyspaceEvent in
its t_*.c, db.c, expire.c, bitops.c): EVENTS maps a command to a function
of what it was asked (args), what it answered (reply) and what the keys
were before it ran (`before`, taken only while notifying: which of its keys
existed, for the `new` class and the deletions of emptied keys; ZADD the
scores, GETEX the TTL, SMOVE the member). A command that failed
(CommandError) emits nothing. `expired` comes from the expiry hook (lazy
and active, keyspace/database.py), `evicted` from server/memory.py,
`keymiss` (class m) from the read lookups when they miss (stats.on_miss,
set only while some setting has m: a hit never tests it).

The append-only log records commands, never these messages, and its replay
(on the internal client, which has no transport) publishes nothing.
"""

from tenantkv.dispatch.keyprocs import georadius_store_key
from tenantkv.dispatch.pubsub import publish
from tenantkv.dispatch.replies import Deferred
from tenantkv.errors import CommandError
from tenantkv.keyspace.stream import Stream
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY
from tenantkv.util.keyspecs import sort_procedure
from tenantkv.util.numbers import parse_int

from tenantkv.util.keyspace_events import (  # noqa: F401  (the classes, for readers)
    ALL, CHANNELS, EVICTED, EXPIRED, GENERIC, HASH, KEY_MISS, KEYEVENT, KEYSPACE, LIST, NEW,
    SET, STREAM, STRING, ZSET, parse_flags, publishes, render_flags,
)


# -- what the commands emit --------------------------------------------------------------
#
# events(db, args, reply, before) -> [(class, event, key), ...] in Redis's
# order; `before` is {key: existed} for the command's keys (PREPARE gives a
# few commands something else). A (class, event, key, db) names another
# database of the tenant (MOVE, COPY).

def _nothing(reply) -> bool:
    """A reply that says the command changed nothing (0, null, empty)."""
    return (reply is None or reply is NULL_ARRAY or reply is EMPTY_ARRAY or reply == 0
            or (isinstance(reply, list) and not reply))


def _new(out: list, db, before, key: bytes) -> None:
    # dbAdd's "new": the key did not exist before the command and does now.
    if not before.get(key) and key in db.data:
        out.append((NEW, b"new", key))


def _gone(out: list, db, key: bytes) -> None:
    # An emptied aggregate is deleted after its own event ("del", class g).
    if key not in db.data:
        out.append((GENERIC, b"del", key))


def _changed(cls: int, event: bytes, when_nothing_stop: bool = False):
    """The command's event on args[1], "new" first when it created the key."""
    def events(db, args, reply, before):
        if when_nothing_stop and _nothing(reply):
            return ()
        out: list = []
        _new(out, db, before, args[1])
        out.append((cls, event, args[1]))
        return out
    return events


def _removed(cls: int, event: bytes):
    """Elements removed from args[1] (reply: how many): the event, then
    "del" when the key was emptied."""
    def events(db, args, reply, before):
        if _nothing(reply):
            return ()
        out = [(cls, event, args[1])]
        _gone(out, db, args[1])
        return out
    return events


def _popped(cls: int, event: bytes, key_from_reply: bool = False):
    def events(db, args, reply, before):
        if _nothing(reply):
            return ()
        key = reply[0] if key_from_reply else args[1]
        out = [(cls, event, key)]
        _gone(out, db, key)
        return out
    return events


def _mpop(cls: int, first: int, events_by_side: dict):
    """LMPOP/ZMPOP (first = 1) and their blocking forms (first = 2):
    numkeys key... side; the reply names the key popped from."""
    def events(db, args, reply, before):
        if _nothing(reply):
            return ()
        numkeys = parse_int(args[first]) or 0
        event = events_by_side[args[first + 1 + numkeys].lower()]
        out = [(cls, event, reply[0])]
        _gone(out, db, reply[0])
        return out
    return events


def _stored(cls: int, event: bytes):
    """The STORE commands (destination args[1]): the event when the result
    was stored, "del" when an empty result removed the destination."""
    def events(db, args, reply, before):
        key = args[1]
        out: list = []
        if not _nothing(reply):
            _new(out, db, before, key)
            out.append((cls, event, key))
        elif before.get(key) and key not in db.data:
            out.append((GENERIC, b"del", key))
        return out
    return events


def _set(db, args, reply, before):
    # SET: stored unless NX found the key or XX did not (GET's reply is the
    # old value either way); "expire" after "set" with a time option.
    nx = xx = expire = False
    for word in args[3:] if len(args) > 3 else ():
        word = word.lower()
        if word == b"nx":
            nx = True
        elif word == b"xx":
            xx = True
        elif word in (b"ex", b"px", b"exat", b"pxat"):
            expire = True
    existed = before.get(args[1])
    if (nx and existed) or (xx and not existed):
        return ()
    out: list = []
    _new(out, db, before, args[1])
    out.append((STRING, b"set", args[1]))
    if expire:
        out.append((GENERIC, b"expire", args[1]))
    return out


def _setex(db, args, reply, before):
    out: list = []
    _new(out, db, before, args[1])
    out += [(STRING, b"set", args[1]), (GENERIC, b"expire", args[1])]
    return out


def _mset(db, args, reply, before):
    if reply == 0:   # MSETNX that found a key
        return ()
    out: list = []
    seen = dict(before)
    for key in args[1::2]:
        _new(out, db, seen, key)
        seen[key] = True
        out.append((STRING, b"set", key))
    return out


def _getex_prepare(db, args):
    return {args[1]: db.get(args[1]) is not None, b"ttl": args[1] in db.expires}


def _getex(db, args, reply, before):
    if reply is None:
        return ()
    key = args[1]
    options = {word.lower() for word in args[2:]}
    if options & {b"ex", b"px", b"exat", b"pxat"}:
        return [(GENERIC, b"expire" if key in db.data else b"del", key)]
    if b"persist" in options and before.get(b"ttl"):
        return [(GENERIC, b"persist", key)]
    return ()


def _setrange(db, args, reply, before):
    if not args[3]:
        return ()   # setting nothing changes nothing
    return _changed(STRING, b"setrange")(db, args, reply, before)


def _bitop(db, args, reply, before):
    key = args[2]
    if reply:
        out: list = []
        _new(out, db, before, key)
        out.append((STRING, b"set", key))
        return out
    if before.get(key) and key not in db.data:
        return [(GENERIC, b"del", key)]
    return ()


def _del(db, args, reply, before):
    if not reply:
        return ()
    return [(GENERIC, b"del", key) for key in dict.fromkeys(args[1:])
            if before.get(key) and key not in db.data]


def _expire(db, args, reply, before):
    if reply != 1:
        return ()
    # A time already past deletes the key (expire.c: "del").
    return [(GENERIC, b"expire" if args[1] in db.data else b"del", args[1])]


def _rename(db, args, reply, before):
    if _nothing(reply) or args[1] == args[2]:
        return ()
    # dbAdd of the destination ("new", even over a key it replaced), then the pair.
    return [(NEW, b"new", args[2]), (GENERIC, b"rename_from", args[1]),
            (GENERIC, b"rename_to", args[2])]


def _lmove(db, args, reply, before):
    if reply is None:
        return ()
    name = args[0].lower()
    if name in (b"rpoplpush", b"brpoplpush"):
        from_head, to_head = False, True
    else:
        from_head, to_head = args[3].lower() == b"left", args[4].lower() == b"left"
    src, dst = args[1], args[2]
    out: list = []
    _new(out, db, before, dst)
    out.append((LIST, b"lpush" if to_head else b"rpush", dst))
    out.append((LIST, b"lpop" if from_head else b"rpop", src))
    _gone(out, db, src)
    return out


def _ltrim(db, args, reply, before):
    if not before.get(args[1]):
        return ()
    out = [(LIST, b"ltrim", args[1])]
    _gone(out, db, args[1])
    return out


def _smove_prepare(db, args):
    dst = db.data.get(args[2]) if db.get(args[2]) is not None else None
    try:
        member_in_dst = dst is not None and args[3] in dst
    except TypeError:   # not a set: SMOVE fails with WRONGTYPE
        member_in_dst = False
    return {args[1]: db.get(args[1]) is not None, args[2]: dst is not None,
            b"member": member_in_dst}


def _smove(db, args, reply, before):
    if reply != 1 or args[1] == args[2]:
        return ()
    src, dst = args[1], args[2]
    out = [(SET, b"srem", src)]
    _gone(out, db, src)
    _new(out, db, before, dst)
    if not before.get(b"member"):
        out.append((SET, b"sadd", dst))
    return out


def _zadd_prepare(db, args):
    """Whether the key exists, and the score of each member named before
    ZADD runs: its event is sent only if one was added or changed."""
    key = args[1]
    z = db.get(key)
    i = 2
    while i < len(args) and args[i].lower() in (b"nx", b"xx", b"gt", b"lt", b"ch", b"incr"):
        i += 1
    members = args[i + 1::2]
    score = getattr(z, "score", None)
    return {key: z is not None,
            b"scores": [score(m) for m in members] if score is not None else None,
            b"members": members, b"incr": any(a.lower() == b"incr" for a in args[2:i])}


def _xadd_prepare(db, args):
    """Whether the stream exists, and its length (did XADD's trim remove any?)."""
    s = db.get(args[1])
    return {args[1]: s is not None, b"length": len(s) if type(s) is Stream else 0}


def _xadd(db, args, reply, before):
    if reply is None:
        return ()   # NOMKSTREAM on a missing key
    key = args[1]
    out: list = []
    _new(out, db, before, key)
    out.append((STREAM, b"xadd", key))
    s = db.data.get(key)
    if s is not None and len(s) < before[b"length"] + 1:
        out.append((STREAM, b"xtrim", key))
    return out


def _group_of(db, key: bytes, name: bytes):
    s = db.data.get(key)
    groups = s.groups if type(s) is Stream else None
    return groups.get(name) if groups else None


def _consumers_prepare(db, args):
    """XREADGROUP / XCLAIM / XAUTOCLAIM: which (key, consumer) existed, for
    their "xgroup-createconsumer" (streamCreateConsumer's event)."""
    if args[0].lower() == b"xreadgroup":
        lowered = [a.lower() for a in args]
        at = lowered.index(b"group") if b"group" in lowered else -1
        if at < 0 or at + 2 >= len(args) or b"streams" not in lowered:
            return {}
        group, consumer = args[at + 1], args[at + 2]
        start = lowered.index(b"streams") + 1
        keys = args[start:start + (len(args) - start) // 2]
    else:
        group, consumer, keys = args[2], args[3], args[1:2]
    out = {b"consumer": (group, consumer)}
    for key in keys:
        g = _group_of(db, key, group)
        out[key] = g is not None and consumer in g.consumers
    return out


def _consumers_created(db, args, reply, before):
    if not before or reply is None or reply is NULL_ARRAY:
        return ()
    group, consumer = before[b"consumer"]
    out = []
    for key, existed in before.items():
        if key == b"consumer" or existed:
            continue
        g = _group_of(db, key, group)
        if g is not None and consumer in g.consumers:
            out.append((STREAM, b"xgroup-createconsumer", key))
    return out


def _xgroup_prepare(db, args):
    if len(args) < 4:
        return {}
    out = {args[2]: args[2] in db.data}
    if len(args) > 4:
        g = _group_of(db, args[2], args[3])
        out[b"consumer"] = g is not None and args[4] in g.consumers
    return out


def _xgroup(db, args, reply, before):
    """XGROUP's events (t_stream.c): a MKSTREAM's "new", then its own."""
    sub = args[1].lower()
    key = args[2] if len(args) > 2 else None
    out: list = []
    if sub == b"create":
        _new(out, db, before, key)
        out.append((STREAM, b"xgroup-create", key))
    elif sub == b"setid":
        out.append((STREAM, b"xgroup-setid", key))
    elif sub == b"destroy" and reply == 1:
        out.append((STREAM, b"xgroup-destroy", key))
    elif sub == b"createconsumer" and reply == 1:
        out.append((STREAM, b"xgroup-createconsumer", key))
    elif sub == b"delconsumer" and before.get(b"consumer"):
        out.append((STREAM, b"xgroup-delconsumer", key))
    return out


def _zadd(db, args, reply, before):
    key = args[1]
    z = db.data.get(key)
    score = getattr(z, "score", None)
    if score is None:
        return ()
    old = before[b"scores"]
    members = before[b"members"]
    if old is not None and all(score(m) == s for m, s in zip(members, old)):
        return ()
    out: list = []
    _new(out, db, before, key)
    out.append((ZSET, b"zincr" if before[b"incr"] else b"zadd", key))
    return out


def _geoadd_prepare(db, args):
    """_zadd_prepare for GEOADD's arguments: [NX|XX|CH]... then
    longitude, latitude, member triples (its events are ZADD's: Redis runs
    ZADD for it)."""
    key = args[1]
    z = db.get(key)
    i = 2
    while i < len(args) and args[i].lower() in (b"nx", b"xx", b"ch"):
        i += 1
    members = args[i + 2::3]
    score = getattr(z, "score", None)
    return {key: z is not None,
            b"scores": [score(m) for m in members] if score is not None else None,
            b"members": members, b"incr": False}


def _georadius_stored(db, args, reply, before):
    """GEORADIUS[BYMEMBER] ... STORE: as a STORE command on its STORE key."""
    key = georadius_store_key(args)
    if key is None:
        return ()
    out: list = []
    if not _nothing(reply):
        _new(out, db, before, key)
        out.append((ZSET, b"georadiusstore", key))
    elif before.get(key) and key not in db.data:
        out.append((GENERIC, b"del", key))
    return out


def _spop(db, args, reply, before):
    if _nothing(reply):
        return ()
    out = [(SET, b"spop", args[1])]
    _gone(out, db, args[1])
    return out


def _bitfield(db, args, reply, before):
    # A SET or INCRBY that left every bit as it was does not come here
    # (observers: MAY_CHANGE_NOTHING); only GETs change nothing either.
    if not any(word.lower() in (b"set", b"incrby") for word in args[2:]):
        return ()
    return _changed(STRING, b"setbit")(db, args, reply, before)


def _restore(db, args, reply, before):
    # restoreCommand: dbAdd's "new" (REPLACE deleted the old value first,
    # silently), then "restore"; a TTL already past adds nothing, and the
    # value REPLACE deleted is a "del".
    key = args[1]
    if key in db.data:
        return [(NEW, b"new", key), (GENERIC, b"restore", key)]
    if before.get(key):
        return [(GENERIC, b"del", key)]
    return ()


def _sort_destination(args):
    found = sort_procedure(args)
    return (args[found[1][0]],) if len(found) > 1 else ()


def _sort(db, args, reply, before):
    # SORT ... STORE: "sortstore" (class l) when a list was stored, "del"
    # when an empty result removed the destination; nothing without STORE.
    keys = _sort_destination(args)
    if not keys or type(reply) is not int:
        return ()
    key = keys[0]
    out: list = []
    if reply > 0:
        _new(out, db, before, key)
        out.append((LIST, b"sortstore", key))
    elif before.get(key) and key not in db.data:
        out.append((GENERIC, b"del", key))
    return out


EVENTS = {
    # strings
    "set": _set, "setnx": _changed(STRING, b"set", True), "setex": _setex, "psetex": _setex,
    "getset": _changed(STRING, b"set"), "getdel": lambda db, args, reply, before:
        [(GENERIC, b"del", args[1])] if reply is not None else (), "getex": _getex,
    "mset": _mset, "msetnx": _mset, "append": _changed(STRING, b"append"),
    "setrange": _setrange, "incr": _changed(STRING, b"incrby"),
    "decr": _changed(STRING, b"incrby"), "incrby": _changed(STRING, b"incrby"),
    "decrby": _changed(STRING, b"incrby"), "incrbyfloat": _changed(STRING, b"incrbyfloat"),
    "setbit": _changed(STRING, b"setbit"), "bitfield": _bitfield, "bitop": _bitop,
    # PFMERGE announces itself as a PFADD, as Redis (a mass add)
    "pfadd": _changed(STRING, b"pfadd", True), "pfmerge": _changed(STRING, b"pfadd"),
    # keys
    "del": _del, "unlink": _del, "expire": _expire, "pexpire": _expire,
    "expireat": _expire, "pexpireat": _expire,
    "persist": lambda db, args, reply, before: [(GENERIC, b"persist", args[1])] if reply == 1 else (),
    "rename": _rename, "renamenx": _rename, "restore": _restore,
    # lists
    "lpush": _changed(LIST, b"lpush"), "rpush": _changed(LIST, b"rpush"),
    "lpushx": _changed(LIST, b"lpush", True), "rpushx": _changed(LIST, b"rpush", True),
    "linsert": lambda db, args, reply, before:
        [(LIST, b"linsert", args[1])] if type(reply) is int and reply > 0 else (),
    "lset": lambda db, args, reply, before: [(LIST, b"lset", args[1])],
    "lpop": _popped(LIST, b"lpop"), "rpop": _popped(LIST, b"rpop"),
    "blpop": _popped(LIST, b"lpop", True), "brpop": _popped(LIST, b"rpop", True),
    "lmpop": _mpop(LIST, 1, {b"left": b"lpop", b"right": b"rpop"}),
    "blmpop": _mpop(LIST, 2, {b"left": b"lpop", b"right": b"rpop"}),
    "ltrim": _ltrim, "lrem": _removed(LIST, b"lrem"),
    "lmove": _lmove, "blmove": _lmove, "rpoplpush": _lmove, "brpoplpush": _lmove,
    # hashes
    "hset": _changed(HASH, b"hset"), "hmset": _changed(HASH, b"hset"),
    "hsetnx": _changed(HASH, b"hset", True), "hincrby": _changed(HASH, b"hincrby"),
    "hincrbyfloat": _changed(HASH, b"hincrbyfloat"), "hdel": _removed(HASH, b"hdel"),
    # sets
    "sadd": _changed(SET, b"sadd", True), "srem": _removed(SET, b"srem"), "smove": _smove,
    "spop": _spop, "sinterstore": _stored(SET, b"sinterstore"),
    "sunionstore": _stored(SET, b"sunionstore"), "sdiffstore": _stored(SET, b"sdiffstore"),
    # sorted sets
    "zadd": _zadd, "zincrby": _changed(ZSET, b"zincr"), "zrem": _removed(ZSET, b"zrem"),
    "zremrangebyrank": _removed(ZSET, b"zremrangebyrank"),
    "zremrangebyscore": _removed(ZSET, b"zremrangebyscore"),
    "zremrangebylex": _removed(ZSET, b"zremrangebylex"),
    "zpopmin": _popped(ZSET, b"zpopmin"), "zpopmax": _popped(ZSET, b"zpopmax"),
    "bzpopmin": _popped(ZSET, b"zpopmin", True), "bzpopmax": _popped(ZSET, b"zpopmax", True),
    "zmpop": _mpop(ZSET, 1, {b"min": b"zpopmin", b"max": b"zpopmax"}),
    "bzmpop": _mpop(ZSET, 2, {b"min": b"zpopmin", b"max": b"zpopmax"}),
    "zunionstore": _stored(ZSET, b"zunionstore"), "zinterstore": _stored(ZSET, b"zinterstore"),
    "zdiffstore": _stored(ZSET, b"zdiffstore"), "zrangestore": _stored(ZSET, b"zrangestore"),
    # streams (t_stream.c): XADD's "xadd" then "xtrim" when its trim removed
    # entries (its length grew by less than the one entry it added)
    "xadd": _xadd, "xdel": lambda db, args, reply, before:
        [(STREAM, b"xdel", args[1])] if reply else (),
    "xtrim": lambda db, args, reply, before: [(STREAM, b"xtrim", args[1])] if reply else (),
    "xsetid": lambda db, args, reply, before: [(STREAM, b"xsetid", args[1])],
    # geo: GEOADD is ZADD in Redis
    "geoadd": _zadd, "geosearchstore": _stored(ZSET, b"geosearchstore"),
    "georadius": _georadius_stored, "georadiusbymember": _georadius_stored,
    "sort": _sort,
    # consumer groups: XGROUP's subcommands; a consumer that XREADGROUP,
    # XCLAIM or XAUTOCLAIM created (XACK and the deliveries send none)
    "xgroup": _xgroup, "xreadgroup": _consumers_created, "xclaim": _consumers_created,
    "xautoclaim": _consumers_created,
    # MOVE and COPY write another database: Notifier._other_db.
    # FLUSHDB / FLUSHALL emit nothing (Redis 7.0 neither).
}

# What a few commands need to know before they run (else: which of their
# keys exist).
PREPARE = {"getex": _getex_prepare, "smove": _smove_prepare, "zadd": _zadd_prepare,
           "xadd": _xadd_prepare, "geoadd": _geoadd_prepare, "xgroup": _xgroup_prepare,
           "xreadgroup": _consumers_prepare, "xclaim": _consumers_prepare,
           "xautoclaim": _consumers_prepare}

# Commands whose events depend on which keys existed before they ran (NX/XX,
# deleting, a destination an empty result removes); the others look at it
# only for "new", so with class n off their `before` is not taken.
NEEDS_BEFORE = frozenset(("set", "del", "unlink", "ltrim", "bitop", "sinterstore",
                          "sunionstore", "sdiffstore", "zunionstore", "zinterstore",
                          "zdiffstore", "zrangestore", "restore", "geosearchstore", "georadius",
                          "georadiusbymember", "sort", *PREPARE))

# The keys whose existence a command's events look at, when not its first
# key alone (or all of its keys: DEL, MSET).
_BEFORE_KEYS = {
    "bitop": lambda args: (args[2],), "mset": lambda args: args[1::2],
    "msetnx": lambda args: args[1::2], "del": lambda args: args[1:],
    "unlink": lambda args: args[1:], "rename": lambda args: (args[2],),
    "renamenx": lambda args: (args[2],), "lmove": lambda args: (args[2],),
    "blmove": lambda args: (args[2],), "rpoplpush": lambda args: (args[2],),
    "brpoplpush": lambda args: (args[2],), "sort": _sort_destination,
    "georadius": lambda args: tuple(k for k in (georadius_store_key(args),) if k is not None),
    "georadiusbymember": lambda args: tuple(k for k in (georadius_store_key(args),) if k is not None),
}
_NOTHING_BEFORE: dict = {}

# The records a blocked client served later is logged as
# (dispatch/blocking.served): what its pop emits.
_SERVED = {b"LPOP": "lpop", b"RPOP": "rpop", b"ZPOPMIN": "zpopmin", b"ZPOPMAX": "zpopmax",
           b"LMPOP": "lmpop", b"ZMPOP": "zmpop"}


class Notifier:
    """The server's notification state: its setting, which tenants have
    their own that publishes, and the publishing itself."""

    def __init__(self, tenants: dict, events) -> None:
        self.tenants = tenants          # the server's: name -> Tenant (db.owner -> tenant)
        self.events = events            # dispatch/observers.KeyEvents
        self.server_flags = 0
        self.own: set = set()           # names of tenants whose own setting publishes
        self.own_misses: set = set()    # ... and has keymiss (m)

    # -- settings ----------------------------------------------------------------------

    def set_server(self, flags: int) -> None:
        self.server_flags = flags
        self._update()

    def set_tenant(self, tenant, flags) -> None:
        """A tenant's own setting (None: the server's again)."""
        tenant.notify = flags
        for names, wanted in ((self.own, publishes(flags)),
                              (self.own_misses, publishes(flags) and flags & KEY_MISS)):
            if wanted:
                names.add(tenant.name)
            else:
                names.discard(tenant.name)
        self._update()

    def flags_of(self, tenant) -> int:
        flags = tenant.notify
        return self.server_flags if flags is None else flags

    def _update(self) -> None:
        tenants = self.tenants
        server = self.server_flags
        on = publishes(server) or any(name in tenants for name in self.own)
        self.events.set_notifier(self if on else None)
        # keymiss is reported by the read lookups themselves (keyspace/
        # database.py), which test this hook only when they miss.
        misses = (publishes(server) and server & KEY_MISS) or \
            any(name in tenants for name in self.own_misses)
        self.events.stats.on_miss = self.missed if misses else None

    # -- from the write wrappers (dispatch/observers.py) -----------------------------

    def listening(self, conn) -> int:
        """The flags to notify `conn`'s write with, 0 when nobody could hear:
        notifications off for its tenant, no subscriber in its tenant, or the
        log's replay (the internal client, with no transport)."""
        tenant = conn.tenant
        channels = tenant.channels
        if channels is None or channels.empty() or conn.transport is None:
            return 0
        flags = tenant.notify
        if flags is None:
            flags = self.server_flags
        return flags if publishes(flags) else 0

    @staticmethod
    def before(cmd, db, args, flags: int):
        """What `cmd`'s events need to know of its keys before it runs."""
        name = cmd.name
        if not flags & NEW and name not in NEEDS_BEFORE:
            return _NOTHING_BEFORE
        prepare = PREPARE.get(name)
        if prepare is not None:
            return prepare(db, args)
        keys = _BEFORE_KEYS.get(name)
        if keys is None:   # its first key (the blocking pops and MPOPs: none needed)
            return {args[1]: db.get(args[1]) is not None} if cmd.first_key == 1 else {}
        return {key: db.get(key) is not None for key in keys(args)}

    def after(self, conn, db, cmd, args, reply, before, flags: int) -> None:
        if type(reply) is Deferred:
            # A long command running in slices (dispatch/slices.py: a big
            # SINTERSTORE): its events when it is done, from its real reply.
            def done(future):
                if future.cancelled() or future.exception() is not None:
                    return
                try:
                    final = reply.finish(future.result())
                except CommandError:
                    return
                self.after(conn, db, cmd, args, final, before, flags)
            reply.future.add_done_callback(done)
            return
        name = cmd.name
        events = EVENTS.get(name)
        if events is not None:
            self.send(conn.tenant, db.index, flags, events(db, args, reply, before))
        elif name in ("move", "copy") and reply == 1:
            self._other_db(conn, db, args, flags)

    def _other_db(self, conn, db, args, flags: int) -> None:
        tenant = conn.tenant
        if args[0].lower() == b"move":
            target = parse_int(args[2])
            key = args[1]
            self.send(tenant, target, flags, [(NEW, b"new", key)])
            self.send(tenant, db.index, flags, [(GENERIC, b"move_from", key)])
            self.send(tenant, target, flags, [(GENERIC, b"move_to", key)])
            return
        target = db.index
        for i in range(3, len(args) - 1):
            if args[i].lower() == b"db":
                target = parse_int(args[i + 1])
        self.send(tenant, target, flags, [(NEW, b"new", args[2]),
                                          (GENERIC, b"copy_to", args[2])])

    def served(self, conn, db, record: list) -> None:
        """A blocked client was served (dispatch/blocking.served): the events
        of what it did, logged as `record` (LPOP key, LMOVE src dst ...)."""
        flags = self.listening(conn)
        if not flags:
            return
        name = record[0]
        if name == b"LMOVE":
            src, dst = record[1], record[2]
            out: list = []
            value = db.data.get(dst)
            if src != dst and value is not None and len(value) == 1:
                out.append((NEW, b"new", dst))   # it holds only what was pushed
            out.append((LIST, b"lpush" if record[4] == b"LEFT" else b"rpush", dst))
            out.append((LIST, b"lpop" if record[3] == b"LEFT" else b"rpop", src))
            _gone(out, db, src)
        else:
            event = _SERVED.get(name)
            if event is None:
                return
            if event in ("lmpop", "zmpop"):
                key = record[2]
                side = record[3].lower()
                event = {b"left": "lpop", b"right": "rpop", b"min": "zpopmin",
                         b"max": "zpopmax"}[side]
            else:
                key = record[1]
            out = [(LIST if event in ("lpop", "rpop") else ZSET, event.encode(), key)]
            _gone(out, db, key)
        self.send(conn.tenant, db.index, flags, out)

    # -- from the keyspace and the memory accounting ----------------------------------

    def missed(self, db, key: bytes) -> None:
        self._keyspace(db, key, KEY_MISS, b"keymiss")

    def expired(self, db, key: bytes) -> None:
        self._keyspace(db, key, EXPIRED, b"expired")

    def evicted(self, db, key: bytes) -> None:
        self._keyspace(db, key, EVICTED, b"evicted")

    def _keyspace(self, db, key: bytes, cls: int, event: bytes) -> None:
        tenant = self.tenants.get(db.owner)
        if tenant is None or tenant.channels is None:
            return
        flags = self.flags_of(tenant)
        if flags & cls and publishes(flags):
            self.send(tenant, db.index, flags, [(cls, event, key)])

    # -- publishing -----------------------------------------------------------------------

    @staticmethod
    def send(tenant, index: int, flags: int, events) -> None:
        """Publish `events` [(class, event, key), ...] of database `index`
        of `tenant` within that tenant, as notifyKeyspaceEvent."""
        for cls, event, key in events:
            if not flags & cls:
                continue
            if flags & KEYSPACE:
                publish(tenant, b"__keyspace@%d__:%s" % (index, key), event)
            if flags & KEYEVENT:
                publish(tenant, b"__keyevent@%d__:%s" % (index, event), key)
