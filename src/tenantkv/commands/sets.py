"""Set commands: SADD and friends, SPOP/SRANDMEMBER, the algebra (SINTER,
SUNION, SDIFF and their STORE forms, SINTERCARD), SMOVE, SSCAN.

A set is a plain Python `set` of bytes in db.data; an empty set is deleted.
OBJECT ENCODING follows Redis 7.0: "intset" while every member is an integer
(string2ll rules, util.numbers.parse_int) and the set holds at most
set-max-intset-entries members, "hashtable" once a write breaks either rule,
and never back. (Redis 7.2 adds "listpack" for small non-integer sets; the
reference server here is 7.0.15, which has none, so neither has tenantkv.)
A conversion is recorded with db.mark_encoding; an unmarked set is judged by
types.encoding from its contents with the default limit (512).

An intset is sorted, so Redis answers its members in numeric order; tenantkv
does the same. A hashtable's order is not defined.
"""


from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import SetReply
from tenantkv.util.numbers import LLONG_MAX, parse_int
from tenantkv.util.sampling import random_distinct, random_member, random_repeated

_INTSET_ENTRIES = (None, "set-max-intset-entries")
_DEFAULT_INTSET_ENTRIES = 512   # what types.encoding assumes for an unmarked set
# SRANDMEMBER with a negative count replies with that many picks (Redis would
# try any count up to LONG_MAX and may die building the reply): past this one
# tenantkv refuses, as HRANDFIELD does.
MAX_RANDOM_PICKS = 1 << 24


# -- access and encodings ------------------------------------------------------------

def _track(conn, db, key: bytes, s: set, added) -> None:
    """After `added` members went into the set under `key`: convert it to
    "hashtable" as Redis's setTypeAdd would (a non-integer member, or more
    than set-max-intset-entries members), once and for good."""
    marked = db.marked_encoding(key, s) if db.encodings else None
    if marked == "hashtable":
        return
    limit = conn.server.config.values[_INTSET_ENTRIES]
    if len(s) > limit or any(parse_int(m) is None for m in added):
        db.mark_encoding(key, s, "hashtable")
    elif marked is None and len(s) > _DEFAULT_INTSET_ENTRIES:
        # Still an intset under a raised limit: say so, or the guess from the
        # contents (default limit) would call it a hashtable.
        db.mark_encoding(key, s, "intset")


def _is_intset(db, key: bytes, s: set) -> bool:
    marked = db.marked_encoding(key, s) if db.encodings else None
    if marked is not None:
        return marked == "intset"
    return len(s) <= _DEFAULT_INTSET_ENTRIES and all(parse_int(m) is not None for m in s)


def _members(db, key: bytes, s: set) -> list:
    """The members in the order Redis would walk them: numeric for an intset."""
    if _is_intset(db, key, s):
        return sorted(s, key=int)
    return list(s)


def _result_order(conn, members: set) -> list:
    """The order of a computed set (SUNION, SDIFF, SINTER): Redis builds it as an
    intset while it can, so an all-integer result comes out sorted."""
    if len(members) <= conn.server.config.values[_INTSET_ENTRIES]:
        ints = []
        for m in members:
            if parse_int(m) is None:
                return list(members)
            ints.append(m)
        return sorted(ints, key=int)
    return list(members)


def _store(conn, db, key: bytes, result: set) -> int:
    """Store `result` under `key` (replacing any value, deleting the key if empty)."""
    if not result:
        db.delete(key)
        return 0
    db.set(key, result)
    _track(conn, db, key, result, result)
    return len(result)


# -- basic commands ------------------------------------------------------------------

@command("sadd")
def sadd(conn, args):
    db = conn.db
    key = args[1]
    s = db.write_typed(key, set)
    if s is None:
        s = set()
        db.set(key, s)
    before = len(s)
    members = args[2:]
    s.update(members)
    added = len(s) - before
    if added:
        _track(conn, db, key, s, members)
    return added


@command("srem")
def srem(conn, args):
    db = conn.db
    s = db.write_typed(args[1], set)
    if s is None:
        return 0
    removed = 0
    for member in args[2:]:
        if member in s:
            s.discard(member)
            removed += 1
            if not s:
                break   # Redis stops here too: the key is gone
    if not s:
        db.delete(args[1])
    return removed


@command("smembers")
def smembers(conn, args):
    db = conn.db
    s = db.read_typed(args[1], set)
    if s is None:
        return SetReply()
    return SetReply(_members(db, args[1], s))


@command("sismember")
def sismember(conn, args):
    s = conn.db.read_typed(args[1], set)
    return 1 if s is not None and args[2] in s else 0


@command("smismember")
def smismember(conn, args):
    s = conn.db.read_typed(args[1], set)
    if s is None:
        return [0] * (len(args) - 2)
    return [1 if m in s else 0 for m in args[2:]]


@command("scard")
def scard(conn, args):
    s = conn.db.read_typed(args[1], set)
    return 0 if s is None else len(s)


# -- SPOP / SRANDMEMBER ----------------------------------------------------------------

def _random_member(s: set) -> bytes:
    return random_member(s)   # O(1) amortized: util/sampling.py


@command("spop")
def spop(conn, args):
    db = conn.db
    key = args[1]
    if len(args) == 2:
        s = db.write_typed(key, set)
        if s is None:
            return None
        member = _random_member(s)
        s.discard(member)
        if not s:
            db.delete(key)
        return member
    if len(args) > 3:
        raise CommandError(errors.SYNTAX)
    count = parse_int(args[2])
    if count is None or count < 0:
        raise CommandError(errors.NOT_POSITIVE)
    s = db.write_typed(key, set)
    if s is None or count == 0:
        return SetReply()
    if count >= len(s):
        reply = _members(db, key, s)
        db.delete(key)
        return SetReply(reply)
    popped = random_distinct(s, count)
    s.difference_update(popped)
    return SetReply(popped)


@command("srandmember")
def srandmember(conn, args):
    db = conn.db
    key = args[1]
    if len(args) == 2:
        s = db.read_typed(key, set)
        if not s:
            return None
        return _random_member(s)
    if len(args) > 3:
        raise CommandError(errors.SYNTAX)
    count = parse_int(args[2])
    if count is None:
        raise CommandError(errors.NOT_INTEGER)
    if count < -LLONG_MAX:
        raise CommandError(errors.out_of_range(-LLONG_MAX, LLONG_MAX))
    s = db.read_typed(key, set)
    if not s or count == 0:
        return []
    if count < 0:
        if -count > MAX_RANDOM_PICKS:
            raise CommandError(errors.OUT_OF_RANGE)
        return random_repeated(s, -count)
    if count >= len(s):
        return _members(db, key, s)
    return random_distinct(s, count)


# -- SMOVE -------------------------------------------------------------------------------

@command("smove")
def smove(conn, args):
    db = conn.db
    src_key, dst_key, member = args[1], args[2], args[3]
    src = db.get(src_key)
    dst = db.get(dst_key)
    if src is None:
        return 0
    if type(src) is not set or (dst is not None and type(dst) is not set):
        raise CommandError(errors.WRONGTYPE)
    if src is dst:
        return 1 if member in src else 0
    if member not in src:
        return 0
    src.discard(member)
    if not src:
        db.delete(src_key)
    if dst is None:
        dst = set()
        db.set(dst_key, dst)
    if member not in dst:
        dst.add(member)
        _track(conn, db, dst_key, dst, (member,))
    return 1


# -- the algebra ---------------------------------------------------------------------------

def _sets(db, keys) -> list:
    """The sets under `keys` (None for a missing key), every key looked up
    before any answer: a key of another type anywhere is WRONGTYPE. Each is a
    keyspace hit or miss, also for the STORE forms (as Redis 7.0 counts them)."""
    return [db.read_typed(key, set) for key in keys]


def _intersection(sets: list, limit: int = 0) -> set:
    if any(s is None for s in sets):
        return set()
    ordered = sorted(sets, key=len)
    smallest, others = ordered[0], ordered[1:]
    if not limit:
        return smallest.intersection(*others) if others else set(smallest)
    result = set()
    for member in smallest:
        for other in others:
            if member not in other:
                break
        else:
            result.add(member)
            if len(result) >= limit:
                break
    return result


def _union(sets: list) -> set:
    result = set()
    for s in sets:
        if s is not None:
            result.update(s)
    return result


def _difference(sets: list) -> set:
    first = sets[0]
    if first is None:
        return set()
    result = set(first)
    for s in sets[1:]:
        if s is not None:
            result.difference_update(s)
            if not result:
                break
    return result


@command("sinter")
def sinter(conn, args):
    return SetReply(_result_order(conn, _intersection(_sets(conn.db, args[1:]))))


@command("sinterstore")
def sinterstore(conn, args):
    db = conn.db
    return _store(conn, db, args[1], _intersection(_sets(db, args[2:])))


@command("sunion")
def sunion(conn, args):
    return SetReply(_result_order(conn, _union(_sets(conn.db, args[1:]))))


@command("sunionstore")
def sunionstore(conn, args):
    db = conn.db
    return _store(conn, db, args[1], _union(_sets(db, args[2:])))


@command("sdiff")
def sdiff(conn, args):
    return SetReply(_result_order(conn, _difference(_sets(conn.db, args[1:]))))


@command("sdiffstore")
def sdiffstore(conn, args):
    db = conn.db
    return _store(conn, db, args[1], _difference(_sets(db, args[2:])))


# SINTERCARD's keys follow numkeys (Redis's movablekeys); the registry's
# (first, last, step) cannot say so, so none are declared (COMMAND GETKEYS
# SINTERCARD answers "no key arguments"; Redis finds them).
@command("sintercard")
def sintercard(conn, args):
    numkeys = parse_int(args[1])
    if numkeys is None or numkeys <= 0:
        raise CommandError(errors.NUMKEYS_POSITIVE)
    if numkeys > len(args) - 2:
        raise CommandError(errors.NUMKEYS_TOO_MANY)
    limit = 0
    i = 2 + numkeys
    while i < len(args):
        if args[i].lower() == b"limit" and i + 1 < len(args):
            value = parse_int(args[i + 1])
            if value is None or value < 0:
                raise CommandError(errors.LIMIT_NEGATIVE)
            limit = value
            i += 2
        else:
            raise CommandError(errors.SYNTAX)
    return len(_intersection(_sets(conn.db, args[2:2 + numkeys]), limit))


# -- SSCAN -----------------------------------------------------------------------------------

@command("sscan")
def sscan(conn, args):
    # An intset is answered whole, whatever the cursor and COUNT (as Redis).
    return scan_collection(conn, args, lambda db, key: db.read_typed(key, set),
                           lambda db, key, s: sorted(s, key=int) if _is_intset(db, key, s) else None,
                           None)
