"""SORT and SORT_RO, as Redis 7.0's sort.c.

SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
[ALPHA] [STORE destination]. A pattern's `*` is replaced by the element
and names a key of the caller's own database (conn.db: its tenant, its
SELECTed db), so patterns never reach another tenant; `pattern->field`
reads a hash field, `#` is the element itself. Redis's refinements kept:

- numeric sorting breaks ties by the elements' bytes (deterministic), a
  missing BY key weighs 0, an unparsable weight (strtod's rules: leading
  blanks and "" accepted, NaN not) answers Redis's error after sorting;
- ALPHA compares bytes (Redis under the C locale: strcoll, so up to a NUL
  byte, except under STORE; sorts of more than slices.BIG elements compare
  all the bytes); with BY, a missing weight sorts first, and ties keep the
  input's order (glibc's qsort is a merge sort: stable, as Python's sort);
- BY a pattern without `*` does not sort: a list or sorted set keeps its
  order (with LIMIT, only that range is read, from the end under DESC); a
  set is sorted ALPHA anyway under STORE or in a script, so that the log
  and replicas get the same result;
- STORE writes a list (replacing the destination and its TTL) or deletes
  the destination when the result is empty; the reply is its length.

Redis refuses BY/GET patterns to a user without access to every key; every
tenantkv user has all of its tenant's keys (commands/acl.py ignores key
patterns), so the rule always passes here.

Bounds: the work (elements x lookups) past slices.BIG runs as a job
(dispatch/slices.py), so sorting millions of elements holds only the
caller's tenant; the number of GET patterns is capped (MAX_GETS).
"""

import sys
from bisect import bisect_left, bisect_right
from itertools import repeat

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.hashpack import PackedHash, get as packed_get
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.types import type_name
from tenantkv.util.numbers import parse_float, parse_int
from tenantkv.util.steps import run_whole

# GET patterns one SORT may take: each is a key lookup per element returned
# (tenantkv's bound; Redis has none).
MAX_GETS = 256

_C_SPACE = b" \t\n\v\f\r"
_MIN_NORMAL = sys.float_info.min
_INF = float("inf")


def _weight(raw: bytes):
    """A numeric weight as sort.c reads it (strtod, the whole C string
    consumed, no ERANGE, no NaN): a float, or None."""
    if b"\0" in raw:
        raw = raw[:raw.index(b"\0")]   # strtod stops at the C string's end
    if not raw:
        return 0.0   # strtod converts nothing and stops at the end: accepted
    stripped = raw.lstrip(_C_SPACE)
    if not stripped:
        return None
    score = parse_float(stripped)   # None for garbage, overflow, NaN
    if score and -_MIN_NORMAL < score < _MIN_NORMAL and stripped[:2].lower() != b"0x" \
            and stripped[:3].lower() not in (b"-0x", b"+0x"):
        return None   # a decimal that underflows: glibc's strtod says ERANGE
    return score


class _Pattern:
    """A BY/GET pattern, split once: prefix `*` postfix [-> field]."""
    __slots__ = ("itself", "prefix", "postfix", "field", "cost")

    def __init__(self, pattern: bytes) -> None:
        self.cost = 1 + (len(pattern) >> 10)   # work units per lookup (dispatch/slices.py)
        self.itself = pattern == b"#"
        self.prefix = self.postfix = self.field = None
        star = pattern.find(b"*")
        if self.itself or star < 0:
            return   # `#`; or no `*`: a fixed key, which Redis never looks up
        arrow = pattern.find(b"->", star + 1)
        if arrow >= 0 and arrow + 2 < len(pattern):
            self.field = pattern[arrow + 2:]
            self.postfix = pattern[star + 1:arrow]
        else:
            self.postfix = pattern[star + 1:]
        self.prefix = pattern[:star]


def _in_script(conn) -> bool:
    scripts = conn.tenant.scripts
    return (scripts is not None and scripts.running is not None
            and getattr(scripts.running, "conn", None) is conn)


def _sort(conn, args, readonly: bool):
    desc = alpha = dontsort = False
    limit_start, limit_count = 0, -1
    sortby = store = None
    gets: list = []
    argc = len(args)
    j = 2
    while j < argc:   # sort.c's parser: the first error wins, before the key is read
        option = args[j].lower()
        left = argc - j - 1
        if option == b"asc":
            desc = False
        elif option == b"desc":
            desc = True
        elif option == b"alpha":
            alpha = True
        elif option == b"limit" and left >= 2:
            limit_start, limit_count = parse_int(args[j + 1]), parse_int(args[j + 2])
            if limit_start is None or limit_count is None:
                raise CommandError(errors.NOT_INTEGER)
            j += 2
        elif not readonly and option == b"store" and left >= 1:
            store = args[j + 1]
            j += 1
        elif option == b"by" and left >= 1:
            sortby = args[j + 1]
            # A weight without `*` is the same for all: nothing to sort.
            dontsort = b"*" not in sortby
            j += 1
        elif option == b"get" and left >= 1:
            if len(gets) >= MAX_GETS:
                raise CommandError(errors.SORT_TOO_MANY_GETS % MAX_GETS)
            gets.append(_Pattern(args[j + 1]))
            j += 1
        else:
            raise CommandError(errors.SYNTAX)
        j += 1

    db = conn.db
    value = db.read(args[1])
    kind = type_name(value) if value is not None else "list"
    if kind not in ("list", "set", "zset"):
        raise CommandError(errors.WRONGTYPE)
    unchanged = store is None and not readonly
    if unchanged:
        # SORT is a write command: without STORE it writes nothing, so it
        # is not logged, touches no WATCHed key (dispatch/observers.py) and
        # is no change for `save` (undone if it fails: a failure is none).
        conn.server.stats.unchanged_writes += 1

    if dontsort and kind == "set" and (store is not None or _in_script(conn)):
        dontsort, alpha, sortby = False, True, None   # a deterministic order

    n = len(value) if value is not None else 0
    start = min(max(limit_start, 0), n)
    count = min(max(limit_count, -1), n)
    end = n - 1 if count < 0 else start + count - 1
    if start >= n:
        start, end = n - 1, n - 2
    if end >= n:
        end = n - 1
    by = _Pattern(sortby) if sortby is not None and not dontsort else None
    # The work: an element each, and a lookup per GET (and BY), a long
    # pattern's key weighing a unit per KB it copies.
    work = (max(end - start + 1, 0) * (1 + sum(pattern.cost for pattern in gets))
            + (n * by.cost if by is not None else 0))
    job = _job(conn, db, value, kind, n, start, end, desc, alpha, dontsort,
               by, gets, store, work > slices.BIG, unchanged)
    if work > slices.BIG or n > slices.BIG:
        return slices.run(conn, job)
    return run_whole(job)


# Elements a job handles between two yields in its C-level steps (decoding,
# parsing, zipping, storing): ~1-3 ms each.
_CHUNK = 4 * slices.STEP


def _chunked(read, first: int, end: int, big: bool):
    """Job: read(first, end) (a list), a _CHUNK at a time when big."""
    if not big or end - first <= _CHUNK:
        return read(first, end)
    out: list = []
    for at in range(first, end, _CHUNK):
        out += read(at, min(at + _CHUNK, end))
        yield
    return out


def _elements(value, kind: str, n: int, start: int, end: int, desc: bool, dontsort: bool,
              big: bool):
    """Job: the elements to sort (or, not sorting a list or sorted set, the
    range asked for, in order: then start is 0 in the vector)."""
    if value is None:
        return []
    ranged = dontsort and kind != "set"
    if kind == "set":
        return list(value)
    if kind == "zset" and not ranged:
        return list(value.members())
    if not ranged:
        first, stop = 0, n
    elif end < start:
        return []
    elif desc:
        first, stop = n - 1 - end, n - start
    else:
        first, stop = start, end + 1
    if kind == "list":
        out = yield from _chunked(value.range, first, stop, big)
    else:
        pairs = yield from _chunked(value.pairs, first, stop, big)
        out = [member for _, member in pairs]
    if ranged and desc:
        out.reverse()
    return out


# Weights made only of these bytes and at most _PLAIN_LENGTH long (the
# common case, checked in two C passes over them all): if float() takes
# them it reads them exactly as strtod does, and none can overflow or
# underflow. (No newline inside one: float() would strip it, strtod not.)
_PLAIN_BYTES = b"0123456789.+-\n"
_NONE = type(None)
_STRING_OR_MISSING = frozenset((bytes, _NONE))
_PLAIN_LENGTH = 24


def _plain(raws: list, short: bool = True) -> bool:
    """Are `raws` all made of _PLAIN_BYTES (and with `short`, at most
    _PLAIN_LENGTH long: a float then neither overflows nor underflows)?"""
    joined = b"\n".join(raws)
    return (not joined.translate(None, _PLAIN_BYTES) and joined.count(b"\n") == len(raws) - 1
            and (not short or max(map(len, raws), default=0) <= _PLAIN_LENGTH))


def _scores(raws: list) -> tuple:
    """The numeric weights of `raws` (None: a missing weight, 0) and
    whether one of them is not a number."""
    if _NONE in set(map(type, raws)):   # (`None in raws` compares each)
        raws = [b"0" if raw is None else raw for raw in raws]
    if _plain(raws):
        try:
            return list(map(float, raws)), False
        except ValueError:
            pass   # "1-2", "": strtod's verdict below
    scores, bad = [], False
    for raw in raws:
        score = _weight(raw)
        if score is None:
            bad, score = True, 0.0
        scores.append(score)
    return scores, bad


def _has_nul(values: list) -> bool:
    return b"\0" in b"".join(values)


def _c_string(value: bytes) -> bytes:
    """What strcoll compares (Redis's ALPHA without STORE, under the C
    locale): the bytes up to the first NUL. STORE compares all the bytes."""
    return value.split(b"\0", 1)[0]


def _negated(raw: bytes) -> float:
    return -float(raw)


def _sorted_as_numbers(elements: list, desc: bool) -> bool:
    """Sort plain numbers in place by value, ties by their bytes (two
    stable sorts in C, no list of scores); False if they are not all
    plain numbers (then in some other order)."""
    if not elements or not _plain(elements, short=False):
        return False
    elements.sort(reverse=desc)
    try:
        elements.sort(key=float, reverse=desc)
    except ValueError:
        return False
    # What strtod would refuse (overflow, underflow) needs long elements,
    # which sort to the ends (inf) or around zero: look only there.
    key = _negated if desc else float
    if key(elements[0]) == -_INF or key(elements[-1]) == _INF:
        return False
    tiny = elements[bisect_right(elements, -_MIN_NORMAL, key=key):
                    bisect_left(elements, _MIN_NORMAL, key=key)]
    return max(map(len, tiny), default=0) <= _PLAIN_LENGTH


def _keys(pattern: _Pattern, elements: list):
    """The keys `pattern` names for `elements`, made one at a time as they
    are read (a long pattern or element must not be copied for every
    element at once), in C loops: this is most of SORT BY's cost."""
    keys = map(pattern.prefix.__add__, elements)
    if pattern.postfix:
        keys = map(bytes.__add__, keys, repeat(pattern.postfix))
    return keys


def _lookup_many(db, pattern: _Pattern, elements: list) -> list:
    """What `pattern` names for each element (None: no such string or
    field), as sort.c's lookupKeyByPattern: the keys read in one pass while
    none of them can have expired and nobody listens for misses."""
    if pattern.itself:
        return list(elements)
    if pattern.prefix is None:
        return [None] * len(elements)
    expires = db.expires
    if db.stats.on_miss is not None or (expires and not expires.keys().isdisjoint(
            _keys(pattern, elements))):
        values = [db.read(key) for key in _keys(pattern, elements)]   # expiry, keymiss
    else:
        values = list(map(db.data.get, _keys(pattern, elements)))
        kinds = set(map(type, values))
        missing = values.count(None) if _NONE in kinds else 0
        db.misses += missing
        db.hits += len(values) - missing
        if pattern.field is None and kinds <= _STRING_OR_MISSING:
            return values
    field = pattern.field
    if field is None:
        return [value if type(value) is bytes else None for value in values]
    out = []
    for value in values:
        kind = type(value)
        out.append(value.get(field) if kind is dict
                   else packed_get(value, field) if kind is PackedHash else None)
    return out


def _lookups(db, pattern: _Pattern, elements: list, big: bool):
    """Job: _lookup_many, a chunk at a time when big."""
    if not big:
        return _lookup_many(db, pattern, elements)
    out: list = []
    step = max(1, slices.STEP // 8 // pattern.cost)
    for first in range(0, len(elements), step):
        out += _lookup_many(db, pattern, elements[first:first + step])
        yield
    return out


def _job(conn, db, value, kind, n, start, end, desc, alpha, dontsort, by, gets, store, big,
         unchanged):
    elements = yield from _elements(value, kind, n, start, end, desc, dontsort, big)
    if dontsort and kind != "set" and end >= start:
        start, end = 0, end - start   # the range is the vector
    if big:
        yield
    bad = False
    if not dontsort:
        weights = None if by is None else (yield from _lookups(db, by, elements, big))
        if alpha and by is None:
            # the elements themselves, as bytes (equal ones are equal bytes)
            if big:
                elements = yield from slices.sort_job(elements)
                if desc:
                    elements.reverse()
            elif store is None and _has_nul(elements):
                elements.sort(key=_c_string, reverse=desc)
            else:
                elements.sort(reverse=desc)
        elif alpha:
            # A missing weight sorts first; ties keep the input's order
            # (stable sorts; DESC reverses the comparison, not the ties).
            missing = [i for i, weight in enumerate(weights) if weight is None]
            present = [i for i, weight in enumerate(weights) if weight is not None]
            if big:
                sign = -1 if desc else 1
                ranked = yield from slices.sort_job([(weights[i], sign * i) for i in present])
                if desc:
                    ranked.reverse()
                present = [abs(i) for _, i in ranked]
            elif store is None and _has_nul([weights[i] for i in present]):
                present.sort(key=lambda i: _c_string(weights[i]), reverse=desc)
            else:
                present.sort(key=weights.__getitem__, reverse=desc)
            order = present + missing if desc else missing + present
            elements = [elements[i] for i in order]
        elif by is None and not big and _sorted_as_numbers(elements, desc):
            pass
        else:
            raws = elements if by is None else weights
            if big:
                pairs = []
                for at in range(0, len(raws), _CHUNK):
                    part, wrong = _scores(raws[at:at + _CHUNK])
                    bad = bad or wrong
                    pairs += zip(part, elements[at:at + _CHUNK])
                    yield
                pairs = yield from slices.sort_job(pairs)
                if desc:
                    pairs.reverse()   # equal pairs are equal: order moot
                elements = yield from _chunked(
                    lambda at, stop: [element for _, element in pairs[at:stop]],
                    0, len(pairs), big)
            else:
                scores, bad = _scores(raws)
                # by the elements' bytes, then (stable) by score: ties in
                # bytes order, as sort.c breaks them
                order = sorted(range(len(elements)), key=elements.__getitem__, reverse=desc)
                order.sort(key=scores.__getitem__, reverse=desc)
                elements = list(map(elements.__getitem__, order))
    if bad:
        if unchanged:
            conn.server.stats.unchanged_writes -= 1
        raise CommandError(errors.SORT_NOT_DOUBLE)
    chosen = elements[start:end + 1] if end >= start else []
    if len(gets) == 1:
        out = yield from _lookups(db, gets[0], chosen, big)
    elif gets:
        columns = []
        for pattern in gets:
            columns.append((yield from _lookups(db, pattern, chosen, big)))
        out = [item for row in zip(*columns) for item in row]
    else:
        out = chosen
    if store is None:
        if big and len(out) > slices.BIG:
            return (yield from slices.array_job(out, conn.resp3))
        return out
    if out:
        if gets:
            out = [b"" if item is None else item for item in out]
        if big:
            stored = QuickList()
            for at in range(0, len(out), _CHUNK):
                stored.extend(out[at:at + _CHUNK])
                yield
        else:
            stored = QuickList(out)
        db.set(store, stored)
    else:
        db.delete(store)
    return len(out)


@command("sort")
def sort(conn, args):
    return _sort(conn, args, False)


@command("sort_ro")
def sort_ro(conn, args):
    return _sort(conn, args, True)

