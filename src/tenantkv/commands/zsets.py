"""Sorted set commands: ZADD and friends, ranges by rank/score/lex, pops,
ZRANGESTORE, ZRANDMEMBER, ZMPOP, ZSCAN, and the blocking pops (BZPOPMIN,
BZPOPMAX, BZMPOP; parking: dispatch/blocking.py).

A sorted set is a keyspace.zset.PackedZSet (OBJECT ENCODING "listpack")
while within zset-max-listpack-entries / zset-max-listpack-value, and a ZSet
("skiplist") once a write takes it past either, never back (as Redis 7.0's
zsetAdd; the STORE forms pick the form of their result, as Redis's). Reads
use the interface both offer; a write to a PackedZSet builds a new one and
stores it back under the key (keeping the TTL). An empty set is deleted.
Scores reply as Redis 7.0 prints them ("%.17g": 0.1 is 0.10000000000000001),
bulk strings in RESP2 and doubles in RESP3.
"""

import math
import random
import re

from hiredis import pack_command
from sortedcontainers import SortedList

from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch import slices
from tenantkv.dispatch.blocking import mpop_args, parse_timeout, pop_or_block
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.keyspace.types import register_type
from tenantkv.keyspace.zset import EMPTY, PACKED_MAX_BYTES, PackedZSet, ZSet, score_key
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, Raw
from tenantkv.util.numbers import LLONG_MAX, float_arg, int_arg, parse_float, parse_int
from tenantkv.util.options import NUMKEYS, Flag, Options, Value, choice
from tenantkv.util.ranges import rank_range
from tenantkv.util.sampling import check_random_count

_ENTRIES = (None, "zset-max-listpack-entries")
_VALUE = (None, "zset-max-listpack-value")
MAX_RANDOM_PICKS = 1 << 24
_EMPTY = EMPTY
# A PackedZSet finds a member by scanning its buffer: a command naming more
# members than this (ZREM, ZMSCORE) reads it into a dict once instead, so a
# long argument list costs O(members + size), not O(members * size).
_BATCH = 8

register_type(ZSet, "zset", lambda value: "skiplist")
register_type(PackedZSet, "zset", lambda value: "listpack")
database.COMPACT_OF[PackedZSet] = ZSet


# -- helpers ---------------------------------------------------------------------

def format_score(score: float) -> bytes:
    return b"%.17g" % score   # also b"inf" and b"-inf", as Redis prints them


def _score(conn, score: float):
    """A score reply: a bulk string (RESP2) or a double (RESP3)."""
    if conn.resp3:
        return Raw(b",%s\r\n" % format_score(score))
    return format_score(score)


def _pairs(conn, pairs, withscores: bool, nested: bool = True):
    """Members of (score, member) pairs, with scores flat (RESP2) or as
    [member, score] pairs (RESP3, or `nested` forced)."""
    if not withscores:
        return [m for _, m in pairs]
    if conn.resp3 or nested is None:
        return [[m, _score(conn, s)] for s, m in pairs]
    # RESP2, flat: all bytes, which the encoder sends in one C call.
    return [x for s, m in pairs for x in (m, b"%.17g" % s)]


def _fits(conn, length: int, members) -> bool:
    """Whether a result of `length` members (`members`) is a listpack in Redis."""
    values = conn.server.config.values
    if length > values[_ENTRIES]:
        return False
    limit = values[_VALUE]
    total = 0
    for member in members:
        if len(member) > limit:
            return False
        total += len(member) + 9   # its separator and at most 8 bytes of score
    return total <= PACKED_MAX_BYTES


def _store_new(conn, db, key: bytes, pairs: list, added: bool = False) -> int:
    """Store a freshly built set of distinct (score, member) `pairs`, in
    order, under `key` (replacing any value): a PackedZSet if it fits.
    `added`: the pairs in the order Redis adds them one by one to a new
    listpack (ZRANGESTORE, REV: reversed), so those added before it became
    a skiplist lost the sign of a -0 score."""
    db.delete(key)
    if pairs:
        members = [m for _, m in pairs]
        if added:
            if len(pairs) <= conn.server.config.values[_ENTRIES]:
                limit = conn.server.config.values[_VALUE]
                first_long = next((i for i, m in enumerate(members) if len(m) > limit),
                                  len(pairs))
                pairs = [(s + 0.0, m) for s, m in pairs[:first_long]] + pairs[first_long:]
            pairs.sort()
        if _fits(conn, len(pairs), members):
            db.set(key, PackedZSet.from_pairs(pairs))
        else:
            z = ZSet()
            z.update(pairs)
            db.set(key, z)
    return len(pairs)


def _put(db, key: bytes, z) -> None:
    """Store back the new value of a write to a PackedZSet (its TTL kept), or
    delete the key if it is empty."""
    if len(z):
        db.data[key] = z
    else:
        db.delete(key)


_STRTOD = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)", re.IGNORECASE)


def _strtod(raw: bytes):
    """strtod as zslParseRange uses it: leading spaces skipped, no trailing junk,
    out of range saturates, "" is 0; None if refused (or NaN)."""
    text = raw.lstrip(b" \t\n\r\v\f")
    if not text:
        return 0.0
    value = parse_float(text)
    if value is not None:
        return value
    if b"\0" in text or _STRTOD.fullmatch(text) is None:
        return None
    return float(text)


def _score_item(raw: bytes):
    if raw[:1] == b"(":
        value, excl = _strtod(raw[1:]), True
    else:
        value, excl = _strtod(raw), False
    if value is None or math.isnan(value):
        raise CommandError(errors.RANGE_NOT_FLOAT)
    return value, excl


def _score_range(low: bytes, high: bytes) -> tuple:
    lo, lo_excl = _score_item(low)
    hi, hi_excl = _score_item(high)
    return lo, lo_excl, hi, hi_excl


_MINUS, _PLUS = object(), object()


def _lex_item(raw: bytes):
    if raw == b"+":
        return _PLUS
    if raw == b"-":
        return _MINUS
    if raw[:1] == b"(":
        return raw[1:], True
    if raw[:1] == b"[":
        return raw[1:], False
    raise CommandError(errors.RANGE_NOT_LEX)


def _lex_range(low: bytes, high: bytes) -> tuple:
    return _lex_item(low), _lex_item(high)


def _score_indexes(z: ZSet, rng: tuple) -> tuple:
    lo, lo_excl, hi, hi_excl = rng
    if lo > hi or (lo == hi and (lo_excl or hi_excl)):
        return 0, 0
    return z.score_bounds(lo, lo_excl, hi, hi_excl)


def _lex_indexes(z: ZSet, rng: tuple) -> tuple:
    low, high = rng
    if low is _PLUS or high is _MINUS:
        return 0, 0
    low = None if low is _MINUS else low
    high = None if high is _PLUS else high
    if low is not None and high is not None and (
            low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1]))):
        return 0, 0
    return z.lex_bounds(low, high)


# -- ZADD / ZINCRBY / ZREM -----------------------------------------------------------

def _zadd(conn, key: bytes, pairs: list, nx=False, xx=False, gt=False, lt=False,
          ch=False, incr=False):
    db = conn.db
    z = db.write_typed(key, ZSet)
    new = z is None
    if new:
        if xx:
            return None if incr else 0
        values = conn.server.config.values
        # Redis 7.0: a listpack unless the limits are 0 or the first member is too long
        if values[_ENTRIES] and len(pairs[0][1]) <= values[_VALUE]:
            z = _EMPTY
    if z is not None and type(z) is PackedZSet:
        return _zadd_packed(conn, db, key, z, pairs, nx, xx, gt, lt, ch, incr)
    if new:
        z = ZSet()
    added = updated = 0
    result = None
    scores = z.scores
    keys = z.keys
    for score, member in pairs:
        current = scores.get(member)
        if current is not None:
            if nx:
                continue
            if incr:
                score = current + score
                if math.isnan(score):
                    if new and len(z):
                        db.set(key, z)
                    raise CommandError(errors.NAN_SCORE)
            if (lt and score >= current) or (gt and score <= current):
                continue
            result = score
            if score != current:
                # ZSet.add written out: ZADD's usual case is this move in a big set
                scores[member] = score
                keys.remove(score_key(current, member))
                keys.add(score_key(score, member))
                updated += 1
        elif not xx:
            scores[member] = score
            keys.add(score_key(score, member))
            added += 1
            result = score
    if new:
        if not len(z):
            return None if incr else 0
        db.set(key, z)
    if incr:
        return None if result is None else _score(conn, result)
    return added + updated if ch else added


def _zadd_packed(conn, db, key: bytes, z: PackedZSet, pairs: list, nx, xx, gt, lt, ch, incr):
    """_zadd on a PackedZSet (`key` missing if it is empty): each change makes
    a new buffer; adding past the limits converts it to a ZSet for the rest
    of the pairs, as zsetAdd does."""
    values = conn.server.config.values
    limit_entries, limit_value = values[_ENTRIES], values[_VALUE]
    if len(pairs) > 1 and len(pairs) * 4 >= len(z):   # many pairs for its size: one rebuild
        return _zadd_packed_many(conn, db, key, z, pairs, nx, xx, gt, lt, ch,
                                 limit_entries, limit_value)
    added = updated = 0
    result = None
    for k, (score, member) in enumerate(pairs):
        current = z.score(member)
        if current is not None:
            if nx:
                continue
            if incr:
                score = current + score
                if math.isnan(score):
                    _put(db, key, z)
                    raise CommandError(errors.NAN_SCORE)
            if (lt and score >= current) or (gt and score <= current):
                continue
            result = score
            if score != current:
                z = z.with_score(member, score)
                updated += 1
        elif not xx:
            if (len(z) + 1 > limit_entries or len(member) > limit_value
                    or _nbytes(z) + len(member) > PACKED_MAX_BYTES):
                _put_big(db, key, z.to_zset())
                reply = _zadd(conn, key, pairs[k:], nx, xx, gt, lt, ch, incr)
                if incr:
                    return reply
                return reply + (added + updated if ch else added)
            z = z.with_score(member, score)
            added += 1
            result = score
    _put(db, key, z)
    if incr:
        return None if result is None else _score(conn, result)
    return added + updated if ch else added


def _zadd_packed_many(conn, db, key: bytes, z: PackedZSet, pairs: list, nx, xx, gt, lt, ch,
                      limit_entries: int, limit_value: int):
    """_zadd_packed of several pairs (no INCR): the changes made to a dict,
    one new buffer at the end (not one per pair: quicker, and no short-lived
    buffers of every size in between to fragment the heap)."""
    scores = dict(z.items())
    size = _nbytes(z)
    added = updated = 0
    for k, (score, member) in enumerate(pairs):
        current = scores.get(member)
        if current is not None:
            if nx or (lt and score >= current) or (gt and score <= current):
                continue
            if score != current:
                scores[member] = score + 0.0
                updated += 1
        elif not xx:
            if (len(scores) + 1 > limit_entries or len(member) > limit_value
                    or size + len(member) > PACKED_MAX_BYTES):
                big = ZSet()
                big.update([(s, m) for m, s in scores.items()])
                _put_big(db, key, big)
                reply = _zadd(conn, key, pairs[k:], nx, xx, gt, lt, ch)
                return reply + (added + updated if ch else added)
            scores[member] = score + 0.0   # a listpack stores -0 as 0
            size += len(member) + 9
            added += 1
    if added or updated:
        _put(db, key, PackedZSet.from_pairs(sorted([(s, m) for m, s in scores.items()])))
    return added + updated if ch else added


_nbytes = bytes.__len__   # a PackedZSet's size in bytes (its len() counts members)


def _put_big(db, key: bytes, big: ZSet) -> None:
    """Replace a PackedZSet under `key` by its ZSet form (TTL kept); a new key if none."""
    if key in db.data:
        db.data[key] = big
    else:
        db.set(key, big)


# zaddGenericCommand: the flags lead, up to the first token that is none; then
# the pairs are counted, then the flags' rules (XX is compatible with GT or LT).
ZADD_OPTIONS = Options(
    Flag("NX"), Flag("XX"), Flag("GT"), Flag("LT"), Flag("CH"), Flag("INCR"),
    incompatible=[(("NX", "XX"), errors.ZADD_XX_AND_NX),
                  (("GT", "LT", "NX"), errors.ZADD_GT_LT_NX)])


@command("zadd")
def zadd(conn, args):
    if len(args) == 4:   # one pair, no flag: the usual ZADD, without the option parser
        score = parse_float(args[2])
        if score is not None and score == score:
            return _zadd(conn, args[1], [(score, args[3])])
    options, i = ZADD_OPTIONS.parse_prefix(args, 2)
    elements = len(args) - i
    if elements % 2 or not elements:
        raise CommandError(errors.SYNTAX)
    if options:
        ZADD_OPTIONS.check(options)
        if "incr" in options and elements > 2:
            raise CommandError(errors.ZADD_INCR_PAIRS)
    pairs = [(float_arg(args[j]), args[j + 1]) for j in range(i, len(args), 2)]
    if not options:
        return _zadd(conn, args[1], pairs)
    return _zadd(conn, args[1], pairs, "nx" in options, "xx" in options, "gt" in options,
                 "lt" in options, "ch" in options, "incr" in options)


@command("zincrby")
def zincrby(conn, args):
    return _zadd(conn, args[1], [(float_arg(args[2]), args[3])], incr=True)


@command("zrem")
def zrem(conn, args):
    db = conn.db
    z = db.write_typed(args[1], ZSet)
    if z is None:
        return 0
    if type(z) is PackedZSet:
        length = len(z)
        if len(args) - 2 > _BATCH:   # one rebuild, not a scan of the buffer per member
            scores = dict(z.items())
            for member in args[2:]:
                scores.pop(member, None)
            z = PackedZSet.from_pairs(sorted([(s, m) for m, s in scores.items()]))
        else:
            for member in args[2:]:
                z = z.without(member)
        _put(db, args[1], z)
        return length - len(z)
    removed = 0
    for member in args[2:]:
        if z.discard(member):
            removed += 1
            if not len(z):
                break
    if not len(z):
        db.delete(args[1])
    return removed


# -- reads -----------------------------------------------------------------------------

@command("zcard")
def zcard(conn, args):
    z = conn.db.read_typed(args[1], ZSet)
    return 0 if z is None else len(z)


@command("zscore")
def zscore(conn, args):
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return None
    score = z.score(args[2])
    return None if score is None else _score(conn, score)


@command("zmscore")
def zmscore(conn, args):
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return [None] * (len(args) - 2)
    get = dict(z.items()).get if type(z) is PackedZSet and len(args) - 2 > _BATCH else z.score
    reply = []
    for member in args[2:]:
        score = get(member)
        reply.append(None if score is None else _score(conn, score))
    return reply


def _zrank(conn, args, reverse: bool):
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withscore"):
        raise CommandError(errors.SYNTAX)
    withscore = len(args) == 4
    z = conn.db.read_typed(args[1], ZSet)
    rank = None if z is None else z.rank(args[2])
    if rank is None:
        return NULL_ARRAY if withscore else None
    if reverse:
        rank = len(z) - 1 - rank
    if withscore:
        return [rank, _score(conn, z.score(args[2]))]
    return rank


# WITHSCORE is Redis 7.2's (the record is 7.0's): the arity and arguments as 7.2 has them.
_ZRANK_72 = dict(arity=-3, history=[["7.2.0", "Added the optional `WITHSCORE` argument."]],
                 arguments=[{"name": "key", "type": "key", "key_spec_index": 0},
                            {"name": "member", "type": "string"},
                            {"name": "withscore", "type": "pure-token", "token": "WITHSCORE",
                             "flags": ["optional"]}])


@command("zrank", **_ZRANK_72)
def zrank(conn, args):
    return _zrank(conn, args, False)


@command("zrevrank", **_ZRANK_72)
def zrevrank(conn, args):
    return _zrank(conn, args, True)


@command("zcount")
def zcount(conn, args):
    rng = _score_range(args[2], args[3])
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return 0
    first, end = _score_indexes(z, rng)
    return end - first


@command("zlexcount")
def zlexcount(conn, args):
    rng = _lex_range(args[2], args[3])
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return 0
    first, end = _lex_indexes(z, rng)
    return end - first


# -- ZRANGE and its older forms ------------------------------------------------------------

_RANK, _SCORE, _LEX = "rank", "score", "lex"

# zrangeGenericCommand: ZRANGE says how to read the range (BYSCORE or BYLEX,
# once, not both; REV once); the older forms say it with their name, so those
# tokens are syntax errors there. ZRANGESTORE has no WITHSCORES.
_WITHSCORES = Flag("WITHSCORES")
_LIMIT = Value("LIMIT", 2, parse=int_arg)
_HOW = (Flag("REV", once=True), Flag("BYSCORE", dest="by", once=True),
        Flag("BYLEX", dest="by", once=True))
ZRANGE_OPTIONS = Options(_WITHSCORES, _LIMIT, *_HOW, exclusive=[("BYSCORE", "BYLEX")])
ZRANGESTORE_OPTIONS = Options(_LIMIT, *_HOW, exclusive=[("BYSCORE", "BYLEX")])
ZRANGE_OLD_OPTIONS = Options(_WITHSCORES, _LIMIT)   # ZREVRANGE, Z[REV]RANGEBY{SCORE,LEX}
_BY = {None: None, "byscore": _SCORE, "bylex": _LEX}


def _zrange(conn, args, start: int, store: bool, rangetype, reverse):
    """zrangeGenericCommand: `start` is the index of the source key."""
    if rangetype is None:   # ZRANGE, ZRANGESTORE
        options = (ZRANGESTORE_OPTIONS if store else ZRANGE_OPTIONS).parse(args, start + 3)
        rangetype = _BY[options.get("by")]
        reverse = "rev" in options
    else:
        options = ZRANGE_OLD_OPTIONS.parse(args, start + 3)
    withscores = "withscores" in options
    offset, limit = options.get("limit", (0, -1))
    rangetype = rangetype or _RANK
    if limit != -1 and rangetype is _RANK:
        raise CommandError(errors.ZRANGE_LIMIT_RANK)
    if withscores and rangetype is _LEX:
        raise CommandError(errors.ZRANGE_WITHSCORES_BYLEX)
    low, high = args[start + 1], args[start + 2]
    if reverse and rangetype is not _RANK:
        low, high = high, low
    if rangetype is _RANK:
        rng = (int_arg(low), int_arg(high))
    elif rangetype is _SCORE:
        rng = _score_range(low, high)
    else:
        rng = _lex_range(low, high)
    db = conn.db
    z = db.read_typed(args[start], ZSet)
    if z is None:
        if store:
            db.delete(args[1])
            return 0
        return []
    length = len(z)
    if rangetype is _RANK:
        first, end = rank_range(length, rng[0], rng[1])
        if reverse:
            first, end = length - end, length - first
    else:
        if offset < 0 or (offset > 0 and offset >= length):
            first = end = 0
        elif rangetype is _SCORE:
            first, end = _score_indexes(z, rng)
        else:
            first, end = _lex_indexes(z, rng)
        if first < end:
            if reverse:
                end -= offset
            else:
                first += offset
            if limit >= 0:
                if reverse:
                    first = max(first, end - limit)
                else:
                    end = min(end, first + limit)
    if end - first > slices.BIG and type(z) is ZSet:
        # In slices, from a snapshot of the range's index keys (one C call).
        keys = list(z.keys.islice(first, end, reverse=reverse))
        if not store:
            return slices.run(conn, _scored_reply(conn, keys, z.scores, withscores))
        if len(keys) > conn.server.config.values[_ENTRIES]:
            if reverse:
                keys.reverse()
            return slices.run(conn, _store_keys(db, args[1], keys, z.scores, None))
    pairs = z.pairs(first, end, reverse) if first < end else []
    if store:
        return _store_new(conn, db, args[1], pairs, added=True)
    return _pairs(conn, pairs, withscores, nested=False)


# -- big replies and results, in slices (dispatch/slices.py) ----------------------------------

def _scored_reply(conn, keys: list, scores: dict, withscores: bool):
    """Job: the reply of the members of the index `keys` (in reply order),
    with their `scores` if asked: _pairs's reply, encoded STEP members at a
    time (RESP2 flat, all bytes, by pack_command; RESP3 [member, score]
    pairs, formatted directly: the encoder's bytes for them)."""
    step = slices.STEP
    n = len(keys)
    resp3 = conn.resp3
    if not withscores or not resp3:
        yield slices.Piece(b"*%d\r\n" % (2 * n if withscores else n))
    else:
        yield slices.Piece(b"*%d\r\n" % n)
    for start in range(0, n, step):
        members = [key[8:] for key in keys[start:start + step]]
        if not withscores:
            packed = pack_command(tuple(members))
        elif not resp3:
            packed = pack_command(tuple([x for m in members for x in (m, b"%.17g" % scores[m])]))
        else:
            yield slices.Piece(b"".join([b"*2\r\n$%d\r\n%s\r\n,%.17g\r\n" % (len(m), m, scores[m])
                                         for m in members]))
            continue
        yield slices.Piece(packed[packed.index(b"\n") + 1:])
    return Raw(b"")


def _store_keys(db, key: bytes, keys: list, scores: dict, owned):
    """Job: store under `key` the skiplist of the sorted, distinct index
    `keys` whose members' scores are in `scores` (`owned`: that dict if it is
    the job's own, to take as is); its size. The SortedList is filled as
    SortedList.update fills an empty one, a few sublists per step, so that
    no single call sorts or copies the whole index (sortedcontainers'
    layout: _lists of at most _load keys, _maxes their last keys)."""
    step = slices.STEP
    if owned is None:
        owned = {}
        for start in range(0, len(keys), step):
            for k in keys[start:start + step]:
                m = k[8:]
                owned[m] = scores[m]
            yield
    index = SortedList()
    load = index._load
    lists = index._lists
    for start in range(0, len(keys), load * 16):
        lists.extend(keys[pos:pos + load] for pos in range(start, min(start + load * 16, len(keys)), load))
        yield
    index._maxes.extend(sub[-1] for sub in lists)
    index._len = len(keys)
    z = ZSet()
    z.scores = owned
    z.keys = index
    db.delete(key)
    db.set(key, z)
    return len(keys)


@command("zrange")
def zrange(conn, args):
    return _zrange(conn, args, 1, False, None, None)


@command("zrangestore")
def zrangestore(conn, args):
    return _zrange(conn, args, 2, True, None, None)


@command("zrevrange")
def zrevrange(conn, args):
    return _zrange(conn, args, 1, False, _RANK, True)


@command("zrangebyscore")
def zrangebyscore(conn, args):
    return _zrange(conn, args, 1, False, _SCORE, False)


@command("zrevrangebyscore")
def zrevrangebyscore(conn, args):
    return _zrange(conn, args, 1, False, _SCORE, True)


@command("zrangebylex")
def zrangebylex(conn, args):
    return _zrange(conn, args, 1, False, _LEX, False)


@command("zrevrangebylex")
def zrevrangebylex(conn, args):
    return _zrange(conn, args, 1, False, _LEX, True)


# -- removal by range -----------------------------------------------------------------------

def _remove_range(conn, key: bytes, indexes) -> int:
    db = conn.db
    z = db.write_typed(key, ZSet)
    if z is None:
        return 0
    first, end = indexes(z)
    if first >= end:
        return 0
    if type(z) is PackedZSet:
        _put(db, key, z.without_range(first, end))
        return end - first
    scores = z.scores
    for _, member in z.order.islice(first, end):
        del scores[member]
    del z.order[first:end]
    if not len(z):
        db.delete(key)
    return end - first


@command("zremrangebyrank")
def zremrangebyrank(conn, args):
    start, stop = int_arg(args[2]), int_arg(args[3])
    return _remove_range(conn, args[1], lambda z: rank_range(len(z), start, stop))


@command("zremrangebyscore")
def zremrangebyscore(conn, args):
    rng = _score_range(args[2], args[3])
    return _remove_range(conn, args[1], lambda z: _score_indexes(z, rng))


@command("zremrangebylex")
def zremrangebylex(conn, args):
    rng = _lex_range(args[2], args[3])
    return _remove_range(conn, args[1], lambda z: _lex_indexes(z, rng))


# -- pops -----------------------------------------------------------------------------------

def _pop(db, key: bytes, z, count: int, maximum: bool) -> list:
    if type(z) is PackedZSet:
        pairs, rest = z.popped(count, maximum)
        _put(db, key, rest)
        return pairs
    # Pops at an end of the index: no positional lookup (which would build,
    # and then have every later ZADD maintain, SortedList's position tree).
    pop_key = z.keys.pop
    pop_score = z.scores.pop
    end = -1 if maximum else 0
    pairs = []
    for _ in range(min(count, len(z))):
        member = pop_key(end)[8:]
        pairs.append((pop_score(member), member))
    if not len(z):
        db.delete(key)
    return pairs


def _zpop(conn, args, maximum: bool):
    if len(args) > 3:
        raise CommandError(errors.SYNTAX)
    count = 1
    if len(args) == 3:
        count = parse_int(args[2])
        if count is None or count < 0:
            raise CommandError(errors.NOT_POSITIVE)
    db = conn.db
    z = db.write_typed(args[1], ZSet)
    if z is None or count == 0:
        return EMPTY_ARRAY
    pairs = _pop(db, args[1], z, count, maximum)
    if len(args) == 3:
        return _pairs(conn, pairs, True, nested=False)
    s, m = pairs[0]
    return [m, _score(conn, s)]


@command("zpopmin")
def zpopmin(conn, args):
    if len(args) == 2 and args[1] not in conn.db.data:   # popping an emptied set: no more
        return EMPTY_ARRAY
    return _zpop(conn, args, False)


@command("zpopmax")
def zpopmax(conn, args):
    return _zpop(conn, args, True)


@command("zmpop")
def zmpop(conn, args):
    numkeys = parse_int(args[1])
    if numkeys is None or numkeys <= 0:
        raise CommandError(errors.NUMKEYS_POSITIVE)
    where = 2 + numkeys
    if numkeys > len(args) - 3:
        raise CommandError(errors.SYNTAX)
    side = args[where].lower()
    if side not in (b"min", b"max"):
        raise CommandError(errors.SYNTAX)
    count = 1
    j = where + 1
    counted = False
    while j < len(args):
        if args[j].lower() == b"count" and not counted and j + 1 < len(args):
            count = parse_int(args[j + 1])
            if count is None or count <= 0:
                raise CommandError(errors.COUNT_POSITIVE)
            counted = True
            j += 2
        else:
            raise CommandError(errors.SYNTAX)
    db = conn.db
    for key in args[2:where]:
        z = db.write_typed(key, ZSet)
        if z is None:
            continue
        pairs = _pop(db, key, z, count, side == b"max")
        return [key, [[m, _score(conn, s)] for s, m in pairs]]
    return NULL_ARRAY


# -- blocking pops: BZPOPMIN, BZPOPMAX, BZMPOP -----------------------------------------------
#
# Try once as ZPOPMIN/ZPOPMAX/ZMPOP, else park the client until a ZADD
# (dispatch/blocking.py). Replies as Redis 7.0's: BZPOP* [key, member, score],
# BZMPOP [key, [[member, score], ...]]; a null array on timeout.

def _blocking_zpop(conn, args, maximum: bool):
    timeout = parse_timeout(args[-1])

    def pop(conn, key):
        db = conn.db
        z = db.write_typed(key, ZSet)
        if not z:
            return None
        (score, member), = _pop(db, key, z, 1, maximum)
        return [key, member, _score(conn, score)]

    name = b"ZPOPMAX" if maximum else b"ZPOPMIN"
    return pop_or_block(conn, args[1:-1], ZSet, pop, lambda key, reply: [name, key], timeout)


@command("bzpopmin")
def bzpopmin(conn, args):
    return _blocking_zpop(conn, args, False)


@command("bzpopmax")
def bzpopmax(conn, args):
    return _blocking_zpop(conn, args, True)


@command("bzmpop")
def bzmpop(conn, args):
    timeout, keys, side, count = mpop_args(args, (b"min", b"max"))

    def pop(conn, key):
        db = conn.db
        z = db.write_typed(key, ZSet)
        if not z:
            return None
        pairs = _pop(db, key, z, count, side == 1)
        return [key, [[m, _score(conn, s)] for s, m in pairs]]

    def record(key, reply):
        return [b"ZMPOP", b"1", key, b"MAX" if side == 1 else b"MIN", b"COUNT", b"%d" % len(reply[1])]
    return pop_or_block(conn, keys, ZSet, pop, record, timeout)


# -- ZRANDMEMBER ---------------------------------------------------------------------------

@command("zrandmember")
def zrandmember(conn, args):
    if len(args) == 2:
        z = conn.db.read_typed(args[1], ZSet)
        if not z:
            return None
        rank = random.randrange(len(z))
        return z.pairs(rank, rank + 1)[0][1]
    count = parse_int(args[2])
    if count is None:
        raise CommandError(errors.NOT_INTEGER)
    if count < -LLONG_MAX:
        raise CommandError(errors.out_of_range(-LLONG_MAX, LLONG_MAX))
    if len(args) > 4 or (len(args) == 4 and args[3].lower() != b"withscores"):
        raise CommandError(errors.SYNTAX)
    withscores = len(args) == 4
    if withscores and (count < -(LLONG_MAX // 2) or count > LLONG_MAX // 2):
        raise CommandError(errors.OUT_OF_RANGE)
    z = conn.db.read_typed(args[1], ZSet)
    if not z or count == 0:
        return []
    packed = type(z) is PackedZSet
    order = z.pairs() if packed else z.order
    n = len(order)
    if count < 0 or count == 1:
        picks = -count if count < 0 else 1
        if picks > MAX_RANDOM_PICKS:
            raise CommandError(errors.OUT_OF_RANGE)
        check_random_count(conn, picks, withscores)
        pairs = random.choices(order, k=picks)   # the loop in C
    elif count >= n:
        pairs = order if packed else list(order)
    else:
        pairs = [order[i] for i in random.sample(range(n), count)]
    return _pairs(conn, pairs, withscores, nested=False)


# -- ZSCAN -----------------------------------------------------------------------------------

@command("zscan")
def zscan(conn, args):
    # A listpack is answered whole, in score order, whatever the cursor and COUNT.
    def values(z):
        if type(z) is PackedZSet:
            scores = dict(z.items())
            get = scores.get
        else:
            get = z.scores.get

        def score_of(member):
            score = get(member)
            return None if score is None else format_score(score)
        return score_of
    return scan_collection(conn, args, lambda db, key: db.read_typed(key, ZSet),
                           lambda db, key, z: z.members() if type(z) is PackedZSet else None,
                           values, names=lambda z: z.scores)


# -- ZUNION / ZINTER / ZDIFF, their STORE forms, ZINTERCARD -------------------------------------
#
# zunionInterDiffGenericCommand: numkeys, then every source key looked up (a
# keyspace hit or miss, also for the STORE forms, as Redis 7.0 counts them; a
# plain set is an input with every score 1), then the options. Union and
# intersection walk the inputs from the smallest to the largest (Redis's
# qsort by cardinality), which fixes the order scores are summed in.

_SUM, _MIN, _MAX = b"sum", b"min", b"max"
_AGGREGATE_BY_NAME = {"sum": _SUM, "min": _MIN, "max": _MAX}
_UNION, _INTER, _DIFF = "union", "inter", "diff"


def _aggregate(target: float, value: float, how) -> float:
    """zunionInterAggregate: a NaN sum is 0; MIN/MAX ignore a NaN value."""
    if how is _SUM:
        target = target + value
        return 0.0 if target != target else target
    if how is _MIN:
        return value if value < target else target
    return value if value > target else target


def _source_items(value):
    """(member, score) pairs of a source (a ZSet, a set, or None)."""
    if value is None:
        return ()
    if type(value) is ZSet or type(value) is dict:   # (dict: a PackedZSet's items)
        return value.items()
    return ((m, 1.0) for m in value)


def _source_score(value, member: bytes):
    if type(value) is ZSet:
        return value.scores.get(member)
    if type(value) is dict:
        return value.get(member)
    return 1.0 if member in value else None


def _weight(raw: bytes) -> float:
    weight = parse_float(raw)
    if weight is None or math.isnan(weight):
        raise CommandError(errors.WEIGHT_NOT_FLOAT)
    return weight


def _intercard_limit(raw: bytes) -> int:
    limit = parse_int(raw)
    if limit is None or limit < 0:
        raise CommandError(errors.LIMIT_NEGATIVE)
    return limit


# The options after the keys: WEIGHTS (one per key) and AGGREGATE for union and
# intersection, WITHSCORES where there is a reply of members, LIMIT for
# ZINTERCARD only; repeated, the last one counts.
_WEIGHTS = Value("WEIGHTS", NUMKEYS, parse=_weight)
_AGGREGATE = Value("AGGREGATE", parse=choice("SUM", "MIN", "MAX"))
_ZSETOP_OPTIONS = {
    # (op is _DIFF, store, cardinality) -> the options
    (False, False, False): Options(_WEIGHTS, _AGGREGATE, _WITHSCORES),   # ZUNION, ZINTER
    (False, True, False): Options(_WEIGHTS, _AGGREGATE),                 # ZUNIONSTORE, ZINTERSTORE
    (True, False, False): Options(_WITHSCORES),                          # ZDIFF
    (True, True, False): Options(),                                      # ZDIFFSTORE
    (False, False, True): Options(Value("LIMIT", parse=_intercard_limit)),   # ZINTERCARD
}


def _zsetop(conn, args, op, numkeys_index: int, store: bool, cardinality: bool = False):
    """The reply (or the STORE count) of ZUNION/ZINTER/ZDIFF[STORE]/ZINTERCARD."""
    name = args[0].decode("latin-1").lower()
    numkeys = int_arg(args[numkeys_index])
    if numkeys < 1:
        raise CommandError(errors.zsetop_no_keys(name))
    if numkeys > len(args) - numkeys_index - 1:
        raise CommandError(errors.SYNTAX)
    db = conn.db
    first = numkeys_index + 1
    sources = []
    for key in args[first:first + numkeys]:
        value = db.read(key)
        # a set source (or its compact form) counts each member with score 1
        if value is not None and type(value) is not ZSet and type(value) is not set \
                and database.COMPACT_OF.get(type(value)) not in (set, ZSet):
            raise CommandError(errors.WRONGTYPE)
        if type(value) is PackedZSet:   # looked up member by member below: a dict
            value = dict(value.items())
        sources.append(value)
    options = _ZSETOP_OPTIONS[op is _DIFF, store, cardinality].parse(
        args, first + numkeys, numkeys=numkeys)
    weights = options.get("weights") or [1.0] * numkeys
    how = _AGGREGATE_BY_NAME[options.get("aggregate", "sum")]
    withscores = "withscores" in options
    limit = options.get("limit", 0)

    result = {}
    steps = _zsetop_gen(result, op, sources, weights, how, cardinality, limit)
    if sum(len(s) for s in sources if s) > slices.BIG:
        if cardinality:
            return slices.run(conn, steps, lambda _: len(result))
        return slices.run(conn, _zsetop_job(conn, steps, result, store and args[1], withscores))
    for _ in steps:   # small inputs: at once
        pass
    if cardinality:
        return len(result)
    if store:
        # A skiplist result keeps a -0 score as computed (a listpack stores it as 0).
        return _store_new(conn, db, args[1],
                          sorted((score, member) for member, score in result.items()))
    pairs = sorted((score, member) for member, score in result.items())
    return _pairs(conn, pairs, withscores)


def _chunks(source):
    """The (member, score) pairs of a source, slices.STEP at a time, from a
    list snapshot (one C call) of its items or members."""
    step = slices.STEP
    if type(source) is ZSet or type(source) is dict:
        items = list(source.items())
        for start in range(0, len(items), step):
            yield items[start:start + step]
    else:
        members = list(source)
        for start in range(0, len(members), step):
            yield [(m, 1.0) for m in members[start:start + step]]


def _zsetop_gen(result: dict, op, sources, weights, how, cardinality: bool, limit: int):
    """zunionInterGenericCommand's and zdiff's algebra into `result`
    (member -> score), yielding between chunks of slices.STEP members: a
    job's steps for big inputs, run at once for small ones."""
    if op is _DIFF:
        base = sources[0]
        if base:
            others = [s for s in sources[1:] if s]
            for chunk in _chunks(base):
                for member, score in chunk:
                    if not any(_source_score(o, member) is not None for o in others):
                        result[member] = score
                yield
        return
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]) if sources[i] else 0)
    sources = [sources[i] for i in order]
    weights = [weights[i] for i in order]
    if op is _UNION:
        for source, weight in zip(sources, weights):
            if not source:
                continue
            for chunk in _chunks(source):
                for member, score in chunk:
                    score = weight * score
                    if score != score:
                        score = 0.0
                    current = result.get(member)
                    result[member] = score if current is None else _aggregate(current, score, how)
                yield
        return
    if not sources[0]:
        return
    smallest, others = sources[0], sources[1:]
    if not all(others):
        return
    for chunk in _chunks(smallest):
        for member, score in chunk:
            score = weights[0] * score
            if score != score:
                score = 0.0
            for other, weight in zip(others, weights[1:]):
                if other is smallest:
                    value = _source_score(smallest, member)
                else:
                    value = _source_score(other, member)
                    if value is None:
                        break
                score = _aggregate(score, value * weight, how)
            else:
                if cardinality:
                    result[member] = None
                    if limit and len(result) >= limit:
                        return
                else:
                    result[member] = score
        yield


def _zsetop_job(conn, steps, result: dict, store_key, withscores: bool):
    """ZUNION/ZINTER/ZDIFF[STORE] on big inputs: the algebra, then the
    result's index keys sorted (slices.sort_job: (score, member) order, as
    the whole run's sort, a -0 sorting as 0 both ways), then the reply
    encoded or the result stored, all in slices."""
    yield from steps
    step = slices.STEP
    items = list(result.items())
    keys = []
    for start in range(0, len(items), step):
        keys += [score_key(s, m) for m, s in items[start:start + step]]
        yield
    del items
    keys = yield from slices.sort_job(keys)
    if not store_key:
        return (yield from _scored_reply(conn, keys, result, withscores))
    if not result:
        conn.db.delete(store_key)
        return 0
    if len(keys) <= conn.server.config.values[_ENTRIES]:   # a listpack (raised limits)
        return _store_new(conn, conn.db, store_key, [(result[k[8:]], k[8:]) for k in keys])
    return (yield from _store_keys(conn.db, store_key, keys, result, result))


# Their keys follow numkeys (Redis's movablekeys): the registry's (first, last,
# step) cannot say so, so only the STORE forms' destination is declared (as
# Redis's COMMAND INFO: 1 1 1 for those, 0 0 0 for the others), as SINTERCARD.
@command("zunionstore")
def zunionstore(conn, args):
    return _zsetop(conn, args, _UNION, 2, True)


@command("zinterstore")
def zinterstore(conn, args):
    return _zsetop(conn, args, _INTER, 2, True)


@command("zdiffstore")
def zdiffstore(conn, args):
    return _zsetop(conn, args, _DIFF, 2, True)


@command("zunion")
def zunion(conn, args):
    return _zsetop(conn, args, _UNION, 1, False)


@command("zinter")
def zinter(conn, args):
    return _zsetop(conn, args, _INTER, 1, False)


@command("zdiff")
def zdiff(conn, args):
    return _zsetop(conn, args, _DIFF, 1, False)


@command("zintercard")
def zintercard(conn, args):
    return _zsetop(conn, args, _INTER, 1, False, cardinality=True)
