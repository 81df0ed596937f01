"""Hash commands: HSET and friends, counters, HRANDFIELD, HSCAN.

A hash starts as a PackedHash (keyspace/packed.py: one buffer, Redis's
"listpack") and becomes a plain dict (field bytes -> value bytes, "hashtable")
once a write takes it past hash-max-listpack-entries / hash-max-listpack-value,
and never back (as Redis). Both offer the same dict interface (get, [], in,
len, pop, update, items, values, iteration), so commands seldom ask which form
they hold. Both keep insertion order, a listpack's order, so HKEYS/HGETALL of
a small hash answer in Redis's order. An empty hash is deleted.
"""

import random


from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.keyspace.packed import PackedHash
from tenantkv.keyspace.types import register_type
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
# A PackedHash is copied whole on every write and scanned on every lookup: past
# this size (4x the largest the default limits allow, 512 x 64-byte pairs) it
# becomes a dict whatever root set the limits to, so raised limits cannot make
# writes quadratic in practice. Redis's own cap (LISTPACK_MAX_SAFETY_SIZE) is 1 GB.
PACKED_MAX_BYTES = 1 << 18
# HRANDFIELD with a negative count replies with that many picks; Redis would
# try to build any count (up to LONG_MAX). Past this one the reply could not be
# held in memory, so tenantkv refuses it.
MAX_RANDOM_PICKS = 1 << 24
_LONG_MAX = LLONG_MAX


register_type(PackedHash, "hash", lambda value: "listpack")
database.COMPACT_OF[PackedHash] = dict


def _new(db, key: bytes) -> PackedHash:
    h = PackedHash()
    db.set(key, h)
    return h


def _track(conn, db, key: bytes, h, longest: int) -> None:
    """After a write of fields/values at most `longest` bytes long: convert a
    PackedHash to a dict as Redis's hashTypeConvert would (too many entries,
    or a field or value too long), once and for good."""
    if type(h) is PackedHash:
        values = conn.server.config.values
        if h.n > values[_ENTRIES] or longest > values[_VALUE] or len(h.buf) > PACKED_MAX_BYTES:
            db.replace(key, h.to_dict())   # keeps the TTL


def _set_pairs(conn, args: list, name: str):
    if len(args) % 2:
        raise CommandError(errors.wrong_arity(name))
    db = conn.db
    key = args[1]
    h = db.write_typed(key, dict)
    if h is None:
        h = _new(db, key)
    before = len(h)
    if len(args) == 4:   # one pair, the usual HSET: no iterator, no update() loop
        h[args[2]] = args[3]
        longest = max(len(args[2]), len(args[3]))
    else:
        it = iter(args)
        next(it)
        next(it)
        h.update(zip(it, it))
        longest = max(map(len, args[2:]))
    _track(conn, db, key, h, longest)
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
        h = _new(db, key)
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
    if h is None:
        return {}
    # a copy: the reply may be encoded after later writes
    return dict(h) if type(h) is dict else h.to_dict()


# -- counters --------------------------------------------------------------------

@command("hincrby")
def hincrby(conn, args):
    increment = int_arg(args[3])
    db = conn.db
    key, field = args[1], args[2]
    h = db.write_typed(key, dict)
    if h is None:
        h = _new(db, key)
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
        h = _new(db, key)
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
        if type(h) is PackedHash:
            return random.choice(h.keys())
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
    packed = type(h) is PackedHash
    if packed:   # a list of its fields, and a dict for the values: small
        names = h.keys()
        h = dict(zip(names, h.values())) if withvalues else None
    if count < 0 or count == 1:
        picks = -count if count < 0 else 1
        if picks > MAX_RANDOM_PICKS:
            raise CommandError(errors.OUT_OF_RANGE)
        fields = random.choices(names, k=picks) if packed else random_repeated(h, picks)
    elif count >= (len(names) if packed else len(h)):
        fields = names if packed else list(h)   # the whole hash, in its order
    else:
        fields = random.sample(names, count) if packed else random_distinct(h, count)
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
                           lambda db, key, h: h.keys() if type(h) is PackedHash else None,
                           lambda h: h.get if type(h) is dict else h.to_dict().get)
