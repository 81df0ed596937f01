"""What the append-only log records for each write command.

Determinism: a record must do at replay exactly what the command did live.
Commands whose effect depends on the clock or on chance are logged as their
effect (docs/aof-format.md has the list and the reasons): relative expiries
become absolute, SPOP becomes SREM of what it popped, INCRBYFLOAT the SET of
its result, a blocking pop its non-blocking form. Keys that expire (lazily or
by the active cycle) are logged as DEL (Journal.expired), as Redis propagates
them: replay runs with expiry suspended (replay.py), so that `SET k v PXAT t`
followed by `APPEND k x` at any later time loads as it ran.

recorder(conn, db, args, reply) -> list of argument lists to log. Commands
without one are logged as sent, unless they are in UNCHANGED_ON_ZERO and
replied 0 / null (they changed nothing). State-based recorders read the key
after the command ran and log what it is now: always right whatever the
options (NX, XX, GET, GT, LT...) did.
"""

from tenantkv.persistence.aof.format import ITEMS_PER_COMMAND
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, OK


def nothing(reply) -> bool:
    return (reply is None or reply is NULL_ARRAY or reply is EMPTY_ARRAY
            or (type(reply) is int and reply == 0) or (type(reply) is list and not reply))


def _key_state(db, key: bytes) -> list:
    """The string under `key` now, with its expiry: SET [PXAT], or DEL."""
    value = db.data.get(key)
    if value is None:
        return [[b"DEL", key]]
    when = db.expires.get(key)
    if type(value) is not bytes:   # not a string (cannot happen after SET): its TTL only
        return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]
    if when is None:
        return [[b"SET", key, value]]
    return [[b"SET", key, value, b"PXAT", b"%d" % when]]


def _set_state(conn, db, args, reply):
    if len(args) == 3:   # plain SET k v (SETEX and PSETEX have 4): as sent
        return (args,)
    return _key_state(db, args[1])


def _expire_state(conn, db, args, reply):
    """EXPIRE & co., GETEX with an option: the key's expiry now, absolute."""
    if nothing(reply):
        return ()
    key = args[1]
    if key not in db.data:
        return [[b"DEL", key]]   # a time in the past deleted it
    when = db.expires.get(key)
    return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]


def _getex(conn, db, args, reply):
    if reply is None or len(args) == 2:
        return ()   # a missing key, or no option: nothing changed
    return _expire_state(conn, db, args, 1)


def _spop(conn, db, args, reply):
    if nothing(reply):
        return ()
    members = [reply] if type(reply) is bytes else list(reply)
    return [[b"SREM", args[1], *members[i:i + ITEMS_PER_COMMAND]]
            for i in range(0, len(members), ITEMS_PER_COMMAND)]


def _incrbyfloat(conn, db, args, reply):
    return [[b"SET", args[1], reply, b"KEEPTTL"]]


def _hincrbyfloat(conn, db, args, reply):
    return [[b"HSET", args[1], args[2], reply]]


def _blpop(name: bytes):
    def record(conn, db, args, reply):
        return () if nothing(reply) else [[name, reply[0]]]
    return record


def _blmove(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], args[3], args[4]]]


def _brpoplpush(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], b"RIGHT", b"LEFT"]]


def _mpop(name: bytes):
    # BLMPOP timeout numkeys key... side [COUNT n] -> LMPOP 1 key side COUNT popped
    def record(conn, db, args, reply):
        if nothing(reply):
            return ()
        numkeys = int(args[2])
        side = args[3 + numkeys]
        return [[name, b"1", reply[0], side, b"COUNT", b"%d" % len(reply[1])]]
    return record


def _stream_length(db, key: bytes) -> bytes:
    value = db.data.get(key)
    return b"%d" % (len(value) if value is not None else 0)


def _xadd(conn, db, args, reply):
    """XADD as its effect: the id it gave (`*`, `ms-*`), and a trim as
    MAXLEN = the length it left (`~` and LIMIT depend on how the entries
    sat in blocks), as Redis rewrites it for its AOF and replicas."""
    if reply is None:
        return ()   # NOMKSTREAM on a missing key
    # the reply is the id's RESP bulk string (pre-encoded by XADD)
    sid = bytes(reply[reply.index(b"\n") + 1:-2]) if reply[:1] == b"$" else reply
    i = 2
    trims = False
    while True:   # the options, already checked by the command
        opt = args[i].lower()
        if opt in (b"maxlen", b"minid"):
            trims = True
            i += 3 if args[i + 1] in (b"~", b"=") else 2
        elif opt == b"limit":
            i += 2
        elif opt == b"nomkstream":
            i += 1
        else:
            break
    key = args[1]
    if trims:
        return [[b"XADD", key, b"MAXLEN", b"=", _stream_length(db, key), sid, *args[i + 1:]]]
    return [[b"XADD", key, sid, *args[i + 1:]]]


def _xtrim(conn, db, args, reply):
    if nothing(reply):
        return ()
    return [[b"XTRIM", args[1], b"MAXLEN", b"=", _stream_length(db, args[1])]]


def restore_records(db, key: bytes, payload: bytes, changed: bool = True) -> list:
    """What the log records for a RESTORE (commands/dump.py): the key's
    state now, its expiry absolute, REPLACE so that a replay does the same
    whatever the key held then; DEL when it is not there (a TTL already
    past: REPLACE deleted the old value, or nothing changed)."""
    if key not in db.data:
        return [[b"DEL", key]] if changed else []
    when = db.expires.get(key)
    return [[b"RESTORE", key, b"%d" % (when or 0), payload, b"ABSTTL", b"REPLACE"]]


def _restore(conn, db, args, reply):
    if reply is not OK:
        return ()   # a sliced RESTORE (a Deferred) logs itself at its end
    return restore_records(db, args[1], args[3])


RECORDERS = {
    "set": _set_state, "setex": _set_state, "psetex": _set_state,
    "expire": _expire_state, "pexpire": _expire_state,
    "expireat": _expire_state, "pexpireat": _expire_state,
    "getex": _getex,
    "spop": _spop,
    "incrbyfloat": _incrbyfloat, "hincrbyfloat": _hincrbyfloat,
    "blpop": _blpop(b"LPOP"), "brpop": _blpop(b"RPOP"),
    "bzpopmin": _blpop(b"ZPOPMIN"), "bzpopmax": _blpop(b"ZPOPMAX"),
    "blmove": _blmove, "brpoplpush": _brpoplpush,
    "blmpop": _mpop(b"LMPOP"), "bzmpop": _mpop(b"ZMPOP"),
    "restore": _restore,
    "xadd": _xadd, "xtrim": _xtrim,
}
