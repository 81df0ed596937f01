"""SORT and SORT_RO, as Redis 7.0's sort.c.

SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
[ALPHA] [STORE destination]. A pattern's `*` is replaced by the element
and names a key of the caller's own database (conn.db: its tenant, its
SELECTed db), so patterns never reach another tenant; `pattern->field`
reads a hash field, `#` is the element itself. Redis's refinements kept:

- numeric sorting breaks ties by the elements' bytes (deterministic), a
  missing BY key weighs 0, an unparsable weight (strtod's rules: leading
  blanks and "" accepted, NaN not) answers Redis's error after sorting;
- ALPHA compares bytes (Redis under the C locale); with BY, a missing
  weight sorts first, and ties keep the input's order (glibc's qsort is a
  merge sort: stable, as Python's sort);
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

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.hashpack import PackedHash, get as packed_get
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.types import type_name
from tenantkv.util.numbers import parse_float, parse_int

# GET patterns one SORT may take: each is a key lookup per element returned
# (tenantkv's bound; Redis has none).
MAX_GETS = 256

# How many lookups a job does between two looks at the clock.
_YIELD_EVERY = 256

_C_SPACE = b" \t\n\v\f\r"


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
    return parse_float(stripped)   # None for garbage, overflow, NaN


class _Pattern:
    """A BY/GET pattern, split once: prefix `*` postfix [-> field]."""
    __slots__ = ("itself", "prefix", "postfix", "field")

    def __init__(self, pattern: bytes) -> None:
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

    def lookup(self, db, element: bytes):
        """The string (or hash field) the pattern names for `element`, or None."""
        if self.itself:
            return element
        if self.prefix is None:
            return None
        value = db.read(self.prefix + element + self.postfix)   # lookupKeyRead: a hit or miss
        if value is None:
            return None
        field = self.field
        kind = type(value)
        if field is None:
            return value if kind is bytes else None
        if kind is dict:
            return value.get(field)
        if kind is PackedHash:
            return packed_get(value, field)
        return None


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

    if store is None and not readonly:
        # SORT is a write command: without STORE it writes nothing, so it
        # is not logged and touches no WATCHed key (dispatch/observers.py).
        conn.server.stats.unchanged_writes += 1
    db = conn.db
    value = db.read(args[1])
    kind = type_name(value) if value is not None else "list"
    if kind not in ("list", "set", "zset"):
        raise CommandError(errors.WRONGTYPE)

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
    # Lookups per element: one per GET, one for BY while sorting.
    work = max(end - start + 1, 0) * (len(gets) + 1) + (n if sortby and not dontsort else 0)
    job = _job(conn, db, value, kind, n, start, end, desc, alpha, dontsort,
               _Pattern(sortby) if sortby is not None and not dontsort else None,
               gets, store, work > slices.BIG)
    if work > slices.BIG or n > slices.BIG:
        return slices.run(conn, job)
    try:
        while True:
            next(job)
    except StopIteration as done:
        return done.value


def _elements(value, kind: str, n: int, start: int, end: int, desc: bool, dontsort: bool) -> list:
    """The elements to sort (or, not sorting a list or sorted set, the
    range asked for, in order: then start is 0 in the vector)."""
    if value is None:
        return []
    ranged = dontsort and kind != "set"
    if kind == "list":
        if not ranged:
            return value.range(0, n) if n else []
        if end < start:
            return []
        if desc:
            part = value.range(n - 1 - end, n - start)
            part.reverse()
            return part
        return value.range(start, end + 1)
    if kind == "zset":
        if not ranged:
            return list(value.members())
        if end < start:
            return []
        if desc:
            pairs = value.pairs(n - 1 - end, n - start, reverse=True)
        else:
            pairs = value.pairs(start, end + 1)
        return [member for _, member in pairs]
    return list(value)


def _job(conn, db, value, kind, n, start, end, desc, alpha, dontsort, by, gets, store, big):
    elements = _elements(value, kind, n, start, end, desc, dontsort)
    if dontsort and kind != "set" and end >= start:
        start, end = 0, end - start   # the range is the vector
    if big:
        yield
    bad = False
    if not dontsort:
        if alpha and by is None:
            keyed = None   # the elements themselves, compared as bytes
        elif alpha:
            # A missing weight first; ties in input order (stable sort)
            keyed = []
            for i, element in enumerate(elements):
                weight = by.lookup(db, element)
                keyed.append((weight is not None, weight or b""))
                if big and not i % _YIELD_EVERY:
                    yield
        else:
            keyed = []
            for i, element in enumerate(elements):
                raw = element if by is None else by.lookup(db, element)
                if raw is None:
                    score = 0.0
                else:
                    score = _weight(raw)
                    if score is None:
                        bad, score = True, 0.0
                keyed.append(score)
                if big and not i % _YIELD_EVERY:
                    yield
        if keyed is None:
            if big:
                elements = yield from slices.sort_job(elements)
                if desc:
                    elements.reverse()   # equal elements are equal bytes: order moot
            else:
                elements.sort(reverse=desc)
        elif not alpha:
            # Ties broken by the elements' bytes, as sort.c does.
            pairs = list(zip(keyed, elements))
            if big:
                pairs = yield from slices.sort_job(pairs)
                if desc:
                    pairs.reverse()
            else:
                pairs.sort(reverse=desc)
            elements = [element for _, element in pairs]
        else:
            order = list(range(len(elements)))
            if big:
                # sort_job's order is total: the position (negated under
                # DESC, which reverses it) keeps ties in input order.
                sign = -1 if desc else 1
                ranked = yield from slices.sort_job(
                    [(keyed[i], sign * i) for i in order])
                if desc:
                    ranked.reverse()
                order = [abs(i) for _, i in ranked]
            else:
                order.sort(key=keyed.__getitem__, reverse=desc)
            elements = [elements[i] for i in order]
    if bad:
        raise CommandError(errors.SORT_NOT_DOUBLE)
    chosen = elements[start:end + 1] if end >= start else []
    if gets:
        out = []
        for i, element in enumerate(chosen):
            for pattern in gets:
                out.append(pattern.lookup(db, element))
            if big and not i % _YIELD_EVERY:
                yield
    else:
        out = chosen
    if store is None:
        if big and len(out) > slices.BIG:
            return (yield from slices.array_job(out, conn.resp3))
        return out
    if out:
        if gets:
            out = [b"" if item is None else item for item in out]
        db.set(store, QuickList(out))
    else:
        db.delete(store)
    return len(out)


@command("sort")
def sort(conn, args):
    return _sort(conn, args, False)


@command("sort_ro")
def sort_ro(conn, args):
    return _sort(conn, args, True)

