"""Hash commands: HSET and friends, counters, HRANDFIELD, HSCAN.

A hash starts as a PackedHash (keyspace/hashpack.py: one immutable buffer,
Redis's "listpack") and becomes a plain dict (field bytes -> value bytes,
"hashtable") once a write takes it past hash-max-listpack-entries /
hash-max-listpack-value, and never back (as Redis). A write to a PackedHash
builds a new buffer and stores it under the key (`_store`); a dict is
changed in place. Both keep insertion order, a listpack's order, so
HKEYS/HGETALL of a small hash answer in Redis's order. An empty hash is
deleted. Each command tests `type(h) is dict` first: the big form's path
stays as short as it was before there was a small one.
"""

import random

from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.keyspace import hashpack
from tenantkv.keyspace.hashpack import EMPTY, PackedHash
from tenantkv.keyspace.types import register_type
from tenantkv.protocol.encoder import OK
from tenantkv.util.numbers import (
    LLONG_MAX,
    LLONG_MIN,
    incr_long_double,
    int_arg,
    parse_int,
)
from tenantkv.util.sampling import check_random_count, random_distinct, random_member, random_repeated

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
# HMGET / HDEL of more fields than this on a PackedHash go through a dict made
# once: each field alone would scan (HDEL: and copy) the whole buffer, so a
# request naming a million fields would cost a million scans.
_MANY = 2 + 8

_get = hashpack.get
_put = hashpack.put
_count = hashpack.count
_split = hashpack.split
_BOUND = hashpack.ENTRIES_BOUND

register_type(PackedHash, "hash", lambda value: "listpack")
database.COMPACT_OF[PackedHash] = dict


def _store(conn, db, key: bytes, buf: bytes, longest: int, added: int) -> None:
    """Store the new buffer of a small hash under `key` (the TTL stays), or
    its dict when it is past the limits, as Redis's hashTypeConvert would
    convert it (a field or value longer than -value, more fields than
    -entries): for good. `longest`: the longest field or value just written;
    `added`: whether the write added a field."""
    values = conn.server.config.values
    entries = values[_ENTRIES]
    # Fields are counted only when there could be too many: the buffer holds
    # 2 marker bytes a field, and a write that added none had at most
    # ENTRIES_BOUND (hashpack.py).
    if longest > values[_VALUE] or len(buf) > PACKED_MAX_BYTES or (
            len(buf) > 2 * entries and (added or entries < _BOUND[0])
            and _count(buf) > entries):
        db.data[key] = dict(zip(*_split(buf)))
    else:
        if entries > _BOUND[0]:
            _BOUND[0] = entries
        db.data[key] = PackedHash(buf)


def _set_pairs(conn, args: list, name: str):
    if len(args) % 2:
        raise CommandError(errors.wrong_arity(name))
    db = conn.db
    key = args[1]
    h = db.write_typed(key, dict)
    if type(h) is dict:
        before = len(h)
        it = iter(args)
        next(it)
        next(it)
        h.update(zip(it, it))
        return len(h) - before
    if len(args) == 4:
        field, value = args[2], args[3]
        buf, added = _put(EMPTY if h is None else h, field, value)
        _store(conn, db, key, buf, len(field) if len(field) > len(value) else len(value), added)
        return added
    # Several pairs: through a dict (one rebuild, not one copy of the buffer
    # a pair), which keeps the listpack's order: old fields, then new ones.
    d = {} if h is None else h.to_dict()
    before = len(d)
    it = iter(args)
    next(it)
    next(it)
    d.update(zip(it, it))
    values = conn.server.config.values
    entries = values[_ENTRIES]
    if len(d) > entries or max(map(len, args[2:])) > values[_VALUE]:
        db.data[key] = d
    else:
        packed = hashpack.from_pairs(d.items())
        if len(packed) > PACKED_MAX_BYTES:
            db.data[key] = d
        else:
            if entries > _BOUND[0]:
                _BOUND[0] = entries
            db.data[key] = packed
    return len(d) - before


@command("hset")
def hset(conn, args):
    if len(args) != 4:
        return _set_pairs(conn, args, "hset")
    # one pair, the usual HSET: _set_pairs written out (a call shows here)
    db = conn.db
    key, field, value = args[1], args[2], args[3]
    h = db.write_typed(key, dict)
    if type(h) is dict:
        if field in h:
            h[field] = value
            return 0
        h[field] = value
        return 1
    buf, added = _put(EMPTY if h is None else h, field, value)
    _store(conn, db, key, buf, len(field) if len(field) > len(value) else len(value), added)
    return added


@command("hmset")
def hmset(conn, args):
    _set_pairs(conn, args, "hmset")
    return OK


@command("hsetnx")
def hsetnx(conn, args):
    db = conn.db
    key, field, value = args[1], args[2], args[3]
    h = db.write_typed(key, dict)
    if type(h) is dict:
        if field in h:
            return 0
        h[field] = value
        return 1
    if h is not None and hashpack.has(h, field):
        return 0
    buf, _ = _put(EMPTY if h is None else h, field, value)
    _store(conn, db, key, buf, max(len(field), len(value)), 1)
    return 1


@command("hget")
def hget(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        return h.get(args[2])
    return None if h is None else _get(h, args[2])


@command("hmget")
def hmget(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if h is None:
        return [None] * (len(args) - 2)
    if type(h) is dict or len(args) > _MANY:
        get = h.get if type(h) is dict else h.to_dict().get
        return [get(field) for field in args[2:]]
    return [_get(h, field) for field in args[2:]]


@command("hdel")
def hdel(conn, args):
    db = conn.db
    key = args[1]
    h = db.write_typed(key, dict)
    if h is None:
        return 0
    removed = 0
    if type(h) is dict:
        for field in args[2:]:
            if h.pop(field, None) is not None:
                removed += 1
                if not h:
                    break   # Redis stops here too: the key is gone
        if not h:
            db.delete(key)
        return removed
    if len(args) > _MANY:   # one rebuild, not one copy of the buffer a field
        d = h.to_dict()
        for field in args[2:]:
            if d.pop(field, None) is not None:
                removed += 1
        if not d:
            db.delete(key)
        elif removed:
            db.data[key] = hashpack.from_pairs(d.items())
        return removed
    buf = h
    for field in args[2:]:
        new = hashpack.remove(buf, field)
        if new is not None:
            removed += 1
            buf = new
            if not buf:
                break
    if not buf:
        db.delete(key)
    elif removed:
        db.data[key] = PackedHash(buf)
    return removed


@command("hlen")
def hlen(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        return len(h)
    return 0 if h is None else _count(h)


@command("hstrlen")
def hstrlen(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if h is None:
        return 0
    value = h.get(args[2]) if type(h) is dict else _get(h, args[2])
    return 0 if value is None else len(value)


@command("hexists")
def hexists(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        return 1 if args[2] in h else 0
    return 1 if h is not None and hashpack.has(h, args[2]) else 0


@command("hkeys")
def hkeys(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        if len(h) > slices.BIG:   # encoded in slices (a snapshot: one C call)
            return slices.run(conn, slices.array_job(list(h), conn.resp3))
        return list(h)
    return [] if h is None else _split(h)[0]


@command("hvals")
def hvals(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        if len(h) > slices.BIG:
            return slices.run(conn, slices.array_job(list(h.values()), conn.resp3))
        return list(h.values())
    return [] if h is None else _split(h)[1]


@command("hgetall")
def hgetall(conn, args):
    h = conn.db.read_typed(args[1], dict)
    if type(h) is dict:
        if len(h) > slices.BIG:   # encoded in slices, from snapshots of its fields and values
            return slices.run(conn, slices.array_job(
                list(h), conn.resp3, b"%" if conn.resp3 else b"*", list(h.values())))
        return dict(h)   # a copy: the reply may be encoded after later writes
    if h is None:
        return {}
    # The buffer's elements are the reply's, in order. RESP2 encodes a map as
    # the flat array: the split is the reply, without a dict the encoder would
    # take apart again. (Not a pre-encoded Raw: the connection counts the size
    # of a list's encoding against its output limits, not a Raw's.)
    parts = h.replace(hashpack.VAL, hashpack.KEY).split(hashpack.KEY)
    del parts[0]
    if not h.isascii():
        parts = [hashpack.unescape(part) for part in parts]
    if conn.resp3:
        return dict(zip(parts[::2], parts[1::2]))
    return parts


# -- counters --------------------------------------------------------------------

@command("hincrby")
def hincrby(conn, args):
    increment = int_arg(args[3])
    db = conn.db
    key, field = args[1], args[2]
    h = db.write_typed(key, dict)
    if type(h) is dict:
        current = h.get(field)
    else:   # one scan for the read and the write
        if h is None:
            h = EMPTY
        needle, start, end = hashpack.slot(h, field)
        current = None if start < 0 else hashpack.value_at(h, start, end)
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
    if type(h) is dict:
        h[field] = text
    else:
        _store(conn, db, key, hashpack.put_slot(h, needle, start, end, text),
               len(field) if len(field) > len(text) else len(text), start < 0)
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
    if type(h) is dict:
        current = h.get(field)
    else:
        if h is None:
            h = EMPTY
        needle, start, end = hashpack.slot(h, field)
        current = None if start < 0 else hashpack.value_at(h, start, end)
    try:
        text = incr_long_double(current, increment)
    except CommandError as exc:
        if exc.message == errors.NOT_FLOAT:   # the increment parsed: the stored value did not
            raise CommandError(errors.HASH_NOT_FLOAT) from None
        raise
    if type(h) is dict:
        h[field] = text
    else:
        _store(conn, db, key, hashpack.put_slot(h, needle, start, end, text),
               len(field) if len(field) > len(text) else len(text), start < 0)
    return text


# -- HRANDFIELD ------------------------------------------------------------------

@command("hrandfield")
def hrandfield(conn, args):
    if len(args) == 2:
        h = conn.db.read_typed(args[1], dict)
        if not h:
            return None
        if type(h) is PackedHash:
            return random.choice(_split(h)[0])
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
        names, values = _split(h)
        h = dict(zip(names, values)) if withvalues else None
    if count < 0 or count == 1:
        picks = -count if count < 0 else 1
        if picks > MAX_RANDOM_PICKS:
            raise CommandError(errors.OUT_OF_RANGE)
        check_random_count(conn, picks, withvalues)
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
                           lambda db, key, h: _split(h)[0] if type(h) is PackedHash else None,
                           lambda h: h.get if type(h) is dict else h.to_dict().get)
