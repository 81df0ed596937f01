"""Set commands: SADD and friends, SPOP/SRANDMEMBER, the algebra (SINTER,
SUNION, SDIFF and their STORE forms, SINTERCARD), SMOVE, SSCAN.

A set has three forms, as in Redis 7.2:

* an IntSet (keyspace/intset.py: a sorted array of int64, "intset") while
  every member is an integer (string2ll rules, util.numbers.parse_int) and it
  holds at most set-max-intset-entries members, exactly where Redis 7.0 (the
  reference server) keeps an intset;
* a PackedSet (keyspace/packedset.py: one buffer, "listpack") where 7.0
  makes a hashtable but 7.2 a listpack: at most set-max-listpack-entries
  members, none longer than set-max-listpack-value bytes (7.0.15 answers
  "hashtable" for these: README's differences list);
* a plain Python `set` of bytes ("hashtable") past those limits.

A write that breaks its form's rule converts it (an intset that gets a
non-integer member becomes a listpack if the result is small, as 7.2's
setTypeAddAux), never back to a smaller form, except where Redis itself
builds a new set (the STORE forms, SPOP's case 3). As 7.2, an SADD with more
members than set-max-listpack-entries makes a hashtable at once (its size
hint). All three answer the same interface (len, in, iteration, discard,
difference_update), so only the writes that add members and the random
picks tell them apart. An empty set is deleted.

Where 7.0 and 7.2 disagree, the intset follows 7.0 (so the reference
server's OBJECT ENCODING agrees): a listpack is never made where 7.0 makes
an intset (7.2's SPOP case 3 on a hashtable of integers makes a listpack),
and a set built whole (the STORE forms, SPOP's case 3, a new key) is a
listpack when it fits even if it holds more integers than
set-max-intset-entries (7.2 starts some of those as an intset, which
overflows to a hashtable): only when that setting is below
set-max-listpack-entries, which the defaults (512, 128) are not.

An intset iterates in numeric order, as Redis answers its members; a
listpack in insertion order (as 7.2); a hashtable's order is not defined.
"""


from tenantkv import errors
from tenantkv.commands.keys import scan_collection
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.packedset import PackedSet, compact_set
from tenantkv.keyspace.types import register_type
from tenantkv.protocol.encoder import SetReply
from tenantkv.util.numbers import LLONG_MAX, parse_int
from tenantkv.util.sampling import check_random_count, random_distinct, random_member, random_repeated

_INTSET_ENTRIES = (None, "set-max-intset-entries")
_LISTPACK_ENTRIES = (None, "set-max-listpack-entries")
_LISTPACK_VALUE = (None, "set-max-listpack-value")
# Past this many members named, SREM / SMISMEMBER on a listpack split it once
# instead of scanning it for each (a million members x 8 KB otherwise).
_MANY = 16
# SRANDMEMBER with a negative count replies with that many picks (Redis would
# try any count up to LONG_MAX and may die building the reply): past this one
# tenantkv refuses, as HRANDFIELD does.
MAX_RANDOM_PICKS = 1 << 24


# -- access and encodings ------------------------------------------------------------

# An intset and a listpack set are a set's compact forms: read_typed /
# write_typed(key, set) take them.
database.COMPACT_OF[IntSet] = set
database.COMPACT_OF[PackedSet] = set
register_type(PackedSet, "set", lambda value: "listpack")


def _is_set(value) -> bool:
    return type(value) is set or database.COMPACT_OF.get(type(value)) is set


def _limit(conn) -> int:
    return conn.server.config.values[_INTSET_ENTRIES]


def _new(conn, members, hint: int = 0):
    """A new set value holding `members` (bytes): an intset when it can be
    one (as Redis 7.0's setTypeCreate + setTypeAdd, and the algebra's STORE
    forms that start from an intset), else a listpack when small (7.2), else a
    set. `hint`: SADD's member count, 7.2's size hint (more than
    set-max-listpack-entries: a hashtable at once)."""
    values = conn.server.config.values
    value = IntSet.from_members(members, values[_INTSET_ENTRIES])
    if value is not None:
        return value
    entries = values[_LISTPACK_ENTRIES]
    if hint <= entries:
        if len(members) == 1:
            packed = compact_set(members, entries, values[_LISTPACK_VALUE])
        else:
            packed = compact_set(list(dict.fromkeys(members)), entries, values[_LISTPACK_VALUE])
        if packed is not None:
            return packed
    return set(members)


def _add(conn, db, key: bytes, s, members) -> int:
    """Add `members` to the set `s` under `key`; how many were new. A
    compact form that cannot take them is converted (setTypeAdd's rules)."""
    kind = type(s)
    if kind is set:   # first: the big sets of a heavy load
        before = len(s)
        s.update(members)
        return len(s) - before
    values = conn.server.config.values
    if kind is PackedSet:
        added = s.add_members(members, values[_LISTPACK_ENTRIES], values[_LISTPACK_VALUE])
        if added is not None:
            return added
        big = s.to_set()
        db.replace(key, big)   # keeps the TTL
        before = len(big)
        big.update(members)
        return len(big) - before
    before = len(s)
    ints = s.add_members(members, values[_INTSET_ENTRIES])
    if ints is not None:
        if ints is not s:   # a wider copy (a member needs more bytes)
            db.replace(key, ints)
        return len(ints) - before
    return _convert_intset(conn, db, key, s, members) - before


def _convert_intset(conn, db, key: bytes, s, members) -> int:
    """The members of the intset `s` under `key` plus `members`, which it
    cannot take all, stored as 7.2's setTypeAddAux leaves them adding one
    at a time: the integers before the first non-integer go into the
    intset (past set-max-intset-entries it becomes a set); that member makes
    a listpack if it fits (the intset has fewer members than
    set-max-listpack-entries, none of them longer than -value), which takes
    the rest while they fit; else a set. Returns the new size. (In bulk, not
    member by member: a big SADD under raised limits must not cost an
    intset insert each.)"""
    values = conn.server.config.values
    entries, longest = values[_LISTPACK_ENTRIES], values[_LISTPACK_VALUE]
    limit = values[_INTSET_ENTRIES]
    if len(members) <= limit:   # 7.2's size hint: more makes a hashtable at once
        i = 0
        for member in members:
            if parse_int(member) is None:
                break
            i += 1
        ints = s.add_members(members[:i], limit) if i else s
        if ints is not None and i < len(members):
            s, first = ints, members[i]
            if len(s) < entries and len(first) <= longest and (
                    not s or max(len(b"%d" % s[0]), len(b"%d" % s[-1])) <= longest):
                packed = PackedSet.from_members(list(s) + [first])
                rest = members[i + 1:]
                if not rest or packed.add_members(rest, entries, longest) is not None:
                    db.replace(key, packed)
                    return len(packed)
    big = s.to_set()
    big.update(members)
    db.replace(key, big)
    return len(big)


def _result_order(conn, members) -> list:
    """The order of a computed set (SUNION, SDIFF, SINTER; SPOP with a count
    that takes the whole set, which Redis 7.0 answers as SUNION key): Redis
    builds it as an intset while it can, so an all-integer result comes out
    sorted."""
    if type(members) is IntSet:
        return list(members)
    ints = IntSet.from_members(members, _limit(conn))
    return list(members) if ints is None else list(ints)


def _store(conn, db, key: bytes, result: set) -> int:
    """Store `result` under `key` (replacing any value, deleting the key if empty)."""
    if not result:
        db.delete(key)
        return 0
    db.set(key, _new(conn, result))
    return len(result)


# -- basic commands ------------------------------------------------------------------

@command("sadd")
def sadd(conn, args):
    db = conn.db
    key = args[1]
    members = args[2:]
    s = db.write_typed(key, set)
    if s is None:
        s = _new(conn, members, len(members))
        db.set(key, s)
        return len(s)
    return _add(conn, db, key, s, members)


@command("srem")
def srem(conn, args):
    db = conn.db
    s = db.write_typed(args[1], set)
    if s is None:
        return 0
    removed = 0
    if type(s) is set:
        for member in args[2:]:
            if member in s:
                s.discard(member)
                removed += 1
                if not s:
                    break   # Redis stops here too: the key is gone
    elif type(s) is PackedSet and len(args) > _MANY:
        removed = s.difference_update(args[2:])
    else:   # a compact form's discard says whether it was there: one lookup
        for member in args[2:]:
            if s.discard(member):
                removed += 1
                if not s:
                    break
    if not s:
        db.delete(args[1])
    return removed


@command("smembers")
def smembers(conn, args):
    db = conn.db
    s = db.read_typed(args[1], set)
    if s is None:
        return SetReply()
    if type(s) is PackedSet:
        return SetReply(s.members())   # insertion order, as 7.2's listpack
    if len(s) > slices.BIG:   # encoded in slices (a snapshot: one C call)
        return slices.run(conn, slices.array_job(list(s), conn.resp3,
                                                 b"~" if conn.resp3 else b"*"))
    return SetReply(list(s))   # an intset in numeric order


@command("sismember")
def sismember(conn, args):
    s = conn.db.read_typed(args[1], set)
    if type(s) is PackedSet:
        return 1 if s.contains(args[2]) else 0
    return 1 if s is not None and args[2] in s else 0


@command("smismember")
def smismember(conn, args):
    s = conn.db.read_typed(args[1], set)
    if s is None:
        return [0] * (len(args) - 2)
    if type(s) is PackedSet:
        if len(args) > _MANY:
            members = set(s.members())
            return [1 if m in members else 0 for m in args[2:]]
        contains = s.contains
        return [1 if contains(m) else 0 for m in args[2:]]
    return [1 if m in s else 0 for m in args[2:]]


@command("scard")
def scard(conn, args):
    s = conn.db.read_typed(args[1], set)
    return 0 if s is None else len(s)


# -- SPOP / SRANDMEMBER ----------------------------------------------------------------

def _random_member(s) -> bytes:
    if type(s) is IntSet or type(s) is PackedSet:
        return s.random_member()   # O(1): an array; O(n) for n <= 128
    return random_member(s)   # O(1) amortized: util/sampling.py


@command("spop")
def spop(conn, args):
    db = conn.db
    key = args[1]
    if len(args) == 2:
        s = db.write_typed(key, set)
        if s is None:
            return None
        if type(s) is PackedSet:
            member = s.pop_random()
        else:
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
        reply = _result_order(conn, s)   # Redis 7.0 answers SUNION key
        db.delete(key)
        return SetReply(reply)
    popped = random_distinct(s, count)
    s.difference_update(popped)
    if len(s) * 5 <= count:
        # Redis pops most of a set by building a new one from the few
        # members that stay (spopWithCountCommand, case 3): an intset again
        # when they all are integers (7.0), else a listpack when small (7.2),
        # a hashtable when they are more than the limits (lowered since).
        rebuilt = _new(conn, s)
        if type(rebuilt) is not type(s):
            db.replace(key, rebuilt)
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
        check_random_count(conn, -count)
        return random_repeated(s, -count)
    if count >= len(s):
        return list(s)   # the set's own order (numeric for an intset), as Redis 7.0
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
    if not _is_set(src) or (dst is not None and not _is_set(dst)):
        raise CommandError(errors.WRONGTYPE)
    if src is dst:
        return 1 if member in src else 0
    if member not in src:
        return 0
    src.discard(member)
    if not src:
        db.delete(src_key)
    if dst is None:
        db.set(dst_key, _new(conn, (member,), 1))
    else:
        _add(conn, db, dst_key, dst, (member,))
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
    if not limit:   # set.intersection takes intsets too (it iterates them)
        if type(smallest) is not set:
            return set(smallest).intersection(*others)
        return smallest.intersection(*others) if others else set(smallest)
    result = set()
    for member in smallest:
        for other in others:
            if member not in other:
                break
        else:
            result.add(member)
            if limit and len(result) >= limit:
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


def _algebra(conn, op, sets: list, store_key=None):
    """SINTER/SUNION/SDIFF's reply, or with `store_key` their STORE's count.
    Inputs of more than slices.BIG members in all run as a job."""
    if sum(len(s) for s in sets if s is not None) > slices.BIG:
        return slices.run(conn, _algebra_job(conn, op, sets, store_key))
    result = op(sets)
    if store_key is not None:
        return _store(conn, conn.db, store_key, result)
    return SetReply(_result_order(conn, result))


def _algebra_job(conn, op, sets: list, store_key):
    """The algebra in chunks of slices.STEP members (each a C call on a
    list snapshot of a source: the sources' objects are kept, whatever
    happens to their keys meanwhile), then the reply encoded in slices or
    the result stored, at the very end."""
    step = slices.STEP
    result = set()
    if op is _union:
        for s in sets:
            if s is not None:
                members = list(s)
                yield
                for start in range(0, len(members), step):
                    result.update(members[start:start + step])
                    yield
    elif op is _intersection or op is _difference:
        if op is _intersection:
            if any(s is None for s in sets):
                sets = []
            else:
                sets = sorted(sets, key=len)
        elif sets[0] is None:
            sets = []
        if sets:
            first, others = sets[0], [s for s in sets[1:] if s is not None]
            members = list(first)
            yield
            keep = set.intersection if op is _intersection else set.difference
            for start in range(0, len(members), step):
                result.update(keep(set(members[start:start + step]), *others))
                yield
    if store_key is not None:
        db = conn.db
        values = conn.server.config.values
        if len(result) > max(values[_INTSET_ENTRIES], values[_LISTPACK_ENTRIES]):
            db.set(store_key, result)   # a hashtable (_new's answer) without its copy
            return len(result)
        return _store(conn, db, store_key, result)
    items = _result_order(conn, result)
    yield
    return (yield from slices.array_job(items, conn.resp3, b"~" if conn.resp3 else b"*"))


@command("sinter")
def sinter(conn, args):
    return _algebra(conn, _intersection, _sets(conn.db, args[1:]))


@command("sinterstore")
def sinterstore(conn, args):
    return _algebra(conn, _intersection, _sets(conn.db, args[2:]), args[1])


@command("sunion")
def sunion(conn, args):
    return _algebra(conn, _union, _sets(conn.db, args[1:]))


@command("sunionstore")
def sunionstore(conn, args):
    return _algebra(conn, _union, _sets(conn.db, args[2:]), args[1])


@command("sdiff")
def sdiff(conn, args):
    return _algebra(conn, _difference, _sets(conn.db, args[1:]))


@command("sdiffstore")
def sdiffstore(conn, args):
    return _algebra(conn, _difference, _sets(conn.db, args[2:]), args[1])


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
    # An intset or a listpack is answered whole, whatever the cursor and
    # COUNT (as Redis).
    return scan_collection(conn, args, lambda db, key: db.read_typed(key, set),
                           lambda db, key, s: list(s) if type(s) is not set else None,
                           None)
