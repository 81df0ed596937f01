"""Hash commands: HSET and friends, counters, HRANDFIELD, HSCAN.

A hash is a plain dict (field bytes -> value bytes) in db.data; an empty hash
is deleted. OBJECT ENCODING follows Redis: "listpack" while the hash is within
hash-max-listpack-entries / hash-max-listpack-value, "hashtable" once a write
takes it past either, and never back. The dict keeps insertion order, which
is also a listpack's order, so HKEYS/HGETALL of a small hash answer in Redis's
order.
"""


from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import OK
from tenantkv.util.numbers import (
    LLONG_MAX,
    LLONG_MIN,
    incr_long_double,
    int_arg,
    parse_int,
)
from tenantkv.util.sampling import random_distinct, random_member, random_repeated

_ENTRIES = (None, "hash-max-listpack-entries")
_VALUE = (None, "hash-max-listpack-value")
# The limits types.encoding assumes for a hash nobody marked (Redis's defaults).
_DEFAULT_ENTRIES = 512
_DEFAULT_VALUE = 64
# HRANDFIELD with a negative count replies with that many picks; Redis would
# try to build any count (up to LONG_MAX). Past this one the reply could not be
# held in memory, so tenantkv refuses it.
MAX_RANDOM_PICKS = 1 << 24
_LONG_MAX = LLONG_MAX


def _track(conn, db, key: bytes, h: dict, longest: int) -> None:
    """After a write of fields/values at most `longest` bytes long: convert to
    "hashtable" as Redis's hashTypeSet would (too many entries, or a field or
    value too long), once and for good."""
    marked = db.marked_encoding(key, h) if db.encodings else None
    if marked == "hashtable":
        return
    values = conn.server.config.values
    if len(h) > values[_ENTRIES] or longest > values[_VALUE]:
        db.mark_encoding(key, h, "hashtable")
    elif marked is None and (len(h) > _DEFAULT_ENTRIES or longest > _DEFAULT_VALUE):
        # Still a listpack under raised limits: say so, or types.encoding's
        # guess from the contents (default limits) would call it a hashtable.
        db.mark_encoding(key, h, "listpack")


def _is_listpack(db, key: bytes, h: dict) -> bool:
    marked = db.marked_encoding(key, h) if db.encodings else None
    if marked is not None:
        return marked == "listpack"
    return len(h) <= _DEFAULT_ENTRIES and all(
        len(f) <= _DEFAULT_VALUE and len(v) <= _DEFAULT_VALUE for f, v in h.items())


def _set_pairs(conn, args: list, name: str):
    if len(args) % 2:
        raise CommandError(errors.wrong_arity(name))
    db = conn.db
    key = args[1]
    h = db.write_typed(key, dict)
    if h is None:
        h = {}
        db.set(key, h)
    before = len(h)
    it = iter(args)
    next(it)
    next(it)
    h.update(zip(it, it))
    _track(conn, db, key, h, max(map(len, args[2:])))
    return len(h) - before


@command("hset")
def hset(conn, args):
    return _set_pairs(conn, args, "hset")


@command("hmset")
def hmset(conn, args):
    _set_pairs(conn, args, "hmset")
    return OK


@command("hsetnx")
def hsetnx(conn, args):
    db = conn.db
    key = args[1]
    h = db.write_typed(key, dict)
    if h is None:
        h = {}
        db.set(key, h)
    if args[2] in h:
        return 0
    h[args[2]] = args[3]
    _track(conn, db, key, h, max(len(args[2]), len(args[3])))
    return 1


@command("hget")
def hget(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return None if h is None else h.get(args[2])


@command("hmget")
def hmget(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if h is None:
        return [None] * (len(args) - 2)
    get = h.get
    return [get(field) for field in args[2:]]


@command("hdel")
def hdel(conn, args):
    db = conn.db
    h = db.write_typed(args[1], dict)
    if h is None:
        return 0
    removed = 0
    for field in args[2:]:
        if h.pop(field, None) is not None:
            removed += 1
            if not h:
                break   # Redis stops here too: the key is gone
    if not h:
        db.delete(args[1])
    return removed


@command("hlen")
def hlen(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return 0 if h is None else len(h)


@command("hstrlen")
def hstrlen(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if h is None:
        return 0
    value = h.get(args[2])
    return 0 if value is None else len(value)


@command("hexists")
def hexists(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return 1 if h is not None and args[2] in h else 0


@command("hkeys")
def hkeys(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return [] if h is None else list(h)


@command("hvals")
def hvals(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return [] if h is None else list(h.values())


@command("hgetall")
def hgetall(conn, args):
    h = conn.db.read_typed(args[1], dict)
    return {} if h is None else dict(h)   # a copy: the reply may be encoded after later writes


# -- counters --------------------------------------------------------------------

@command("hincrby")
def hincrby(conn, args):
    increment = int_arg(args[3])
    db = conn.db
    key, field = args[1], args[2]
    h = db.write_typed(key, dict)
    if h is None:
        h = {}
        db.set(key, h)
    current = h.get(field)
    if current is None:
        old = 0
    else:
        old = parse_int(current)
        if old is None:
            raise CommandError(errors.HASH_NOT_INTEGER)
    if (increment < 0 and old < 0 and increment < LLONG_MIN - old) or \
            (increment > 0 and old > 0 and increment > LLONG_MAX - old):
        raise CommandError(errors.OVERFLOW)
    result = old + increment
    text = b"%d" % result
    h[field] = text
    _track(conn, db, key, h, max(len(field), len(text)))
    return result


@command("hincrbyfloat")
def hincrbyfloat(conn, args):
    increment = args[3]
    # As Redis: the increment first (not a float, then NaN/Infinity), then the key.
    try:
        incr_long_double(None, increment)
    except CommandError as exc:
        if exc.message == errors.INCR_NAN:
            raise CommandError(errors.NAN_OR_INFINITY) from None
        raise
    db = conn.db
    key, field = args[1], args[2]
    h = db.write_typed(key, dict)
    if h is None:
        h = {}
        db.set(key, h)
    current = h.get(field)
    try:
        text = incr_long_double(current, increment)
    except CommandError as exc:
        if exc.message == errors.NOT_FLOAT:   # the increment parsed: the stored value did not
            raise CommandError(errors.HASH_NOT_FLOAT) from None
        raise
    h[field] = text
    _track(conn, db, key, h, max(len(field), len(text)))
    return text


# -- HRANDFIELD ------------------------------------------------------------------

@command("hrandfield")
def hrandfield(conn, args):
    if len(args) == 2:
        h = conn.db.read_typed(args[1], dict)
        if not h:
            return None
        return random_member(h)   # O(1) amortized: util/sampling.py
    # As Redis's hrandfieldCommand: the count (within +-LONG_MAX) and the
    # option are checked before the key is looked up.
    count = parse_int(args[2])
    if count is None:
        raise CommandError(errors.NOT_INTEGER)
    if count < -_LONG_MAX:
        raise CommandError(errors.out_of_range(-_LONG_MAX, _LONG_MAX))
    withvalues = False
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withvalues"):
        raise CommandError(errors.SYNTAX)
    if len(args) == 4:
        withvalues = True
        if count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2:
            raise CommandError(errors.OUT_OF_RANGE)
    h = conn.db.read_typed(args[1], dict)
    if not h or count == 0:
        return []
    resp3 = conn.resp3
    if count < 0 or count == 1:
        picks = -count if count < 0 else 1
        if picks > MAX_RANDOM_PICKS:
            raise CommandError(errors.OUT_OF_RANGE)
        fields = random_repeated(h, picks)
    elif count >= len(h):
        fields = list(h)   # the whole hash, in its order
    else:
        fields = random_distinct(h, count)
    if not withvalues:
        return fields
    if resp3:
        return [[f, h[f]] for f in fields]
    reply = []
    for f in fields:
        reply.append(f)
        reply.append(h[f])
    return reply


# -- HSCAN -------------------------------------------------------------------------

@command("hscan")
def hscan(conn, args):
    # A listpack is answered whole, whatever the cursor and COUNT (as Redis).
    return scan_collection(conn, args, lambda db, key: db.read_typed(key, dict),
                           lambda db, key, h: list(h) if _is_listpack(db, key, h) else None,
                           lambda h: h.get)
