"""GEO commands: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
GEOSEARCHSTORE, GEORADIUS(_RO), GEORADIUSBYMEMBER(_RO), as Redis 7.0's geo.c.

A geo set is a sorted set (keyspace/zset.py, through commands/zsets.py's
ZADD and STORE internals) whose scores are 52-bit geohashes
(util/geohash.py). A search reads the score ranges of the nine boxes
around the center in Redis's order, keeps the points inside the shape,
sorts them as Redis (glibc's stable qsort, or Redis's pqsort for COUNT) and
replies with Redis's formatting, so replies are byte-identical.

A search over many members (a huge radius over millions of points) runs
as a sliced job (dispatch/slices.py): the candidates are read STEP at a
time from a snapshot of their range, then sorted, replied or stored in
slices, so the tenant's other clients wait and other tenants do not.
"""

from tenantkv import errors
from tenantkv.commands import zsets
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.zset import ZSet, score_key
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, Raw
from tenantkv.util import geohash
from tenantkv.util.numbers import parse_float, parse_int
from tenantkv.util.geohash import decode_score, distance, format_coordinate, format_distance

_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}

# A search reading more candidates than this runs as a job whose reply, sort
# and store go in slices too (below it, ~10 ms at most, it runs whole).
_BIG = slices.BIG


# -- argument helpers (geo.c's extract*OrReply) ---------------------------------------------

def _double(raw: bytes, message: str = errors.NOT_FLOAT) -> float:
    value = parse_float(raw)
    if value is None or value != value:
        raise CommandError(message)
    return value


def _lonlat(lon: bytes, lat: bytes) -> tuple:
    x = _double(lon)
    y = _double(lat)
    if x < geohash.LONG_MIN or x > geohash.LONG_MAX or y < geohash.LAT_MIN or y > geohash.LAT_MAX:
        raise CommandError(errors.geo_invalid_pair(x, y))
    return x, y


def _unit(raw: bytes) -> float:
    unit = _UNITS.get(raw.lower())
    if unit is None:
        raise CommandError(errors.GEO_UNIT)
    return unit


def _radius(value: bytes, unit: bytes) -> tuple:
    """(radius, conversion to meters)."""
    radius = _double(value, errors.GEO_NEED_RADIUS)
    if radius < 0:
        raise CommandError(errors.GEO_NEGATIVE_RADIUS)
    return radius, _unit(unit)


def _box(width: bytes, height: bytes, unit: bytes) -> tuple:
    """(width, height, conversion to meters)."""
    w = _double(width, errors.GEO_NEED_WIDTH)
    h = _double(height, errors.GEO_NEED_HEIGHT)
    if h < 0 or w < 0:
        raise CommandError(errors.GEO_NEGATIVE_BOX)
    return w, h, _unit(unit)


def _coordinate(conn, value: float):
    """addReplyHumanLongDouble: a bulk string (RESP2) or a double (RESP3)."""
    if conn.resp3:
        return Raw(b",%s\r\n" % format_coordinate(value))
    return format_coordinate(value)


# -- GEOADD / GEOPOS / GEOHASH / GEODIST ----------------------------------------------------

@command("geoadd")
def geoadd(conn, args):
    nx = xx = ch = False
    i = 2
    n = len(args)
    while i < n:
        option = args[i].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option == b"ch":
            ch = True
        else:
            break
        i += 1
    # Redis hands the rest to ZADD, which also refuses no element at all
    if (n - i) % 3 or (xx and nx) or n == i:
        raise CommandError(errors.SYNTAX)
    encode = geohash.encode
    pairs = []
    for j in range(i, n, 3):
        x, y = _lonlat(args[j], args[j + 1])
        pairs.append((float(encode(x, y)), args[j + 2]))
    return zsets._zadd(conn, args[1], pairs, nx, xx, ch=ch)


@command("geopos")
def geopos(conn, args):
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return [NULL_ARRAY] * (len(args) - 2)
    reply = []
    for member in args[2:]:
        score = z.score(member)
        if score is None:
            reply.append(NULL_ARRAY)
        else:
            x, y = decode_score(score)
            reply.append([_coordinate(conn, x), _coordinate(conn, y)])
    return reply


@command("geohash")
def geohash_(conn, args):
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return [None] * (len(args) - 2)
    reply = []
    for member in args[2:]:
        score = z.score(member)
        reply.append(None if score is None else geohash.standard_hash(score))
    return reply


@command("geodist")
def geodist(conn, args):
    to_meter = 1.0
    if len(args) == 5:
        to_meter = _unit(args[4])
    elif len(args) > 5:
        raise CommandError(errors.SYNTAX)
    z = conn.db.read_typed(args[1], ZSet)
    if z is None:
        return None
    score1 = z.score(args[2])
    score2 = z.score(args[3])
    if score1 is None or score2 is None:
        return None
    x1, y1 = decode_score(score1)
    x2, y2 = decode_score(score2)
    return format_distance(distance(x1, y1, x2, y2) / to_meter)


# -- the searches: georadiusGeneric -----------------------------------------------------------

_COORDS, _MEMBER, _NOSTORE, _SEARCH, _SEARCHSTORE = 1, 2, 4, 8, 16
_NONE, _ASC, _DESC = 0, 1, 2


class _Shape:
    __slots__ = ("x", "y", "circle", "radius", "width", "height", "conversion")

    def __init__(self) -> None:
        self.x = self.y = 0.0
        self.circle = True
        self.radius = self.width = self.height = 0.0
        self.conversion = 0.0


def _member_position(z, member: bytes) -> tuple:
    score = z.score(member)
    if score is None:
        raise CommandError(errors.GEO_MEMBER)
    return decode_score(score)


def _search(conn, args, src: int, flags: int):
    db = conn.db
    z = db.read_typed(args[src], ZSet)
    shape = _Shape()
    storekey = None
    storedist = False
    if flags & _COORDS:
        base = 6
        shape.x, shape.y = _lonlat(args[2], args[3])
        shape.radius, shape.conversion = _radius(args[4], args[5])
    elif flags & _MEMBER:
        base = 5
        if z is not None:   # no source: the options are still parsed, for the reply's kind
            shape.x, shape.y = _member_position(z, args[2])
            shape.radius, shape.conversion = _radius(args[3], args[4])
    else:
        base = 2
        if flags & _SEARCHSTORE:
            base = 3
            storekey = args[1]

    withdist = withhash = withcoords = False
    frommember = fromloc = byradius = bybox = False
    sort = _NONE
    any_ = False
    count = 0
    search = flags & _SEARCH
    remaining = len(args) - base
    i = 0
    while i < remaining:
        arg = args[base + i].lower()
        if arg == b"withdist":
            withdist = True
        elif arg == b"withhash":
            withhash = True
        elif arg == b"withcoord":
            withcoords = True
        elif arg == b"any":
            any_ = True
        elif arg == b"asc":
            sort = _ASC
        elif arg == b"desc":
            sort = _DESC
        elif arg == b"count" and i + 1 < remaining:
            count = parse_int(args[base + i + 1])
            if count is None:
                raise CommandError(errors.NOT_INTEGER)
            if count <= 0:
                raise CommandError(errors.GEO_COUNT)
            i += 1
        elif arg in (b"store", b"storedist") and i + 1 < remaining \
                and not flags & _NOSTORE and not search:
            storekey = args[base + i + 1]
            storedist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and search and flags & _SEARCHSTORE:
            storedist = True
        elif arg == b"frommember" and i + 1 < remaining and search and not fromloc:
            if z is not None:
                shape.x, shape.y = _member_position(z, args[base + i + 1])
            frommember = True
            i += 1
        elif arg == b"fromlonlat" and i + 2 < remaining and search and not frommember:
            shape.x, shape.y = _lonlat(args[base + i + 1], args[base + i + 2])
            fromloc = True
            i += 2
        elif arg == b"byradius" and i + 2 < remaining and search and not bybox:
            shape.radius, shape.conversion = _radius(args[base + i + 1], args[base + i + 2])
            shape.circle = True
            byradius = True
            i += 2
        elif arg == b"bybox" and i + 3 < remaining and search and not byradius:
            shape.width, shape.height, shape.conversion = _box(
                args[base + i + 1], args[base + i + 2], args[base + i + 3])
            shape.circle = False
            bybox = True
            i += 3
        else:
            raise CommandError(errors.SYNTAX)
        i += 1

    if storekey is None and not search and not flags & _NOSTORE:
        # GEORADIUS[BYMEMBER] without STORE: a write command that writes nothing
        # (not logged, no WATCH touched: dispatch/observers.py MAY_CHANGE_NOTHING)
        conn.server.stats.unchanged_writes += 1
    if storekey is not None and (withdist or withhash or withcoords):
        raise CommandError(errors.geo_store_options(bool(flags & _SEARCHSTORE)))
    if search and not (frommember or fromloc):
        raise CommandError(errors.geo_exactly_one_from(args[0]))
    if search and not (byradius or bybox):
        raise CommandError(errors.geo_exactly_one_by(args[0]))
    if any_ and not count:
        raise CommandError(errors.GEO_ANY_COUNT)

    if z is None:
        if storekey is not None:
            db.delete(storekey)
            return 0
        return EMPTY_ARRAY
    if count and sort == _NONE and not any_:
        sort = _ASC

    conversion = shape.conversion
    if shape.circle:
        half_width = half_height = conversion * shape.radius
        radius_meters = shape.radius * conversion
    else:
        half_width = conversion * (shape.width / 2)
        half_height = conversion * (shape.height / 2)
        w2, h2 = shape.width / 2, shape.height / 2
        radius_meters = geohash._sqrt(w2 * w2 + h2 * h2) * conversion
    steps, boxes = geohash.search_boxes(shape.x, shape.y, half_width, half_height, radius_meters)
    if radius_meters < geohash.PREFILTER_RADIUS:
        bounds = _pruned(z, boxes, steps, shape)
    else:
        bounds = [z.score_bounds(low, False, high, True) for low, high, _ in boxes]
    job = _search_job(conn, z, bounds, shape, count if any_ else 0, count, sort, storekey,
                      storedist, withdist, withhash, withcoords, flags & _SEARCH)
    return slices.run(conn, job)


# A box holding more candidates than this is read as its four quarters (the
# next step's boxes: consecutive score ranges, in order), leaving out those
# no point of which can be in the shape.
_SPLIT = 32


def _pruned(z, boxes: list, steps: int, shape: _Shape) -> list:
    """The [first, end) rank ranges of the candidates to read: Redis's
    boxes', less the quarters of the big ones whose points Redis would all
    reject (a lower bound of their distance: util/geohash.py). The points
    left, and their order, are the ones Redis keeps: the reply is the same,
    at a fraction of the candidates (a 5.6 km radius: ~870 -> ~330)."""
    x, y, conversion = shape.x, shape.y, shape.conversion
    if shape.circle:
        radius = shape.radius * conversion
        misses = lambda cell: geohash.circle_misses(cell, x, y, radius)  # noqa: E731
    else:
        width, height = shape.width * conversion, shape.height * conversion
        misses = lambda cell: geohash.box_misses(cell, x, y, width, height)  # noqa: E731
    area = geohash.area
    bounds = []
    for low, high, bits in boxes:
        first, end = z.score_bounds(low, False, high, True)
        if end - first <= _SPLIT or steps >= geohash.STEP_MAX:
            bounds.append((first, end))
            continue
        quarter = (high - low) / 4
        for c in range(4):
            if misses(area(bits * 4 + c, steps + 1)):
                continue
            bounds.append(z.score_bounds(low + c * quarter, False, low + (c + 1) * quarter, True))
    return bounds


def _search_job(conn, z, bounds: list, shape: _Shape, limit: int, count: int, sort: int,
                storekey, storedist: bool, withdist: bool, withhash: bool, withcoords: bool,
                search: int):
    """Job: membersOfAllNeighbors, then the sort and the reply or the store."""
    step = slices.STEP
    # found points: parallel lists (member, score, longitude, latitude, distance)
    members: list = []
    scores: list = []
    xs: list = []
    ys: list = []
    dists: list = []
    out = (members, scores, xs, ys, dists)
    cx, cy = shape.x, shape.y
    conversion = shape.conversion
    if shape.circle:
        radius = shape.radius * conversion
        scan = lambda pairs: geohash.scan_circle(pairs, cx, cy, radius, out, limit)  # noqa: E731
    else:
        width = shape.width * conversion
        height = shape.height * conversion
        scan = lambda pairs: geohash.scan_box(pairs, cx, cy, width, height, out, limit)  # noqa: E731
    big = sum(end - first for first, end in bounds) > _BIG
    for first, end in bounds:
        if limit and members and len(members) >= limit:
            break
        if not big:
            if scan(z.pairs(first, end)):
                break
            continue
        full = False
        for start in range(first, end, step):
            # a snapshot of STEP candidates (the set may change between two slices)
            full = scan(z.pairs(start, min(start + step, end)))
            if full:
                break
            yield
        if full:
            break

    found = len(members)
    if not found and storekey is None:
        return EMPTY_ARRAY
    returned = found if not count or found < count else count
    order = range(found)
    if sort != _NONE and found > 1:
        order = yield from _sorted(dists, sort == _DESC, returned)
    order = order[:returned]

    if storekey is None:
        return (yield from _reply(conn, order, members, scores, xs, ys, dists, conversion,
                                  withdist, withhash, withcoords))
    db = conn.db
    if not returned:
        db.delete(storekey)
        return 0
    result = {}
    for start in range(0, returned, step):
        for k in order[start:start + step]:
            result[members[k]] = dists[k] / conversion if storedist else scores[k]
        if returned > step:
            yield
    if len(result) <= slices.STEP:
        zsets._store_new(conn, db, storekey, sorted([(s, m) for m, s in result.items()]))
        return returned
    keys = []
    items = list(result.items())
    for start in range(0, len(items), step):
        keys += [score_key(s, m) for m, s in items[start:start + step]]
        yield
    del items
    keys = yield from slices.sort_job(keys)
    if len(keys) <= conn.server.config.values[zsets._ENTRIES]:
        zsets._store_new(conn, db, storekey, [(result[k[8:]], k[8:]) for k in keys])
        return returned
    yield from zsets._store_keys(db, storekey, keys, result, result)
    return returned


def _sorted(dists: list, desc: bool, returned: int):
    """Job: the indexes of the points in reply order: glibc's qsort (a
    stable merge sort) of them all, or, for a COUNT below their number,
    Redis's pqsort, whose order among equal distances is its own (without
    equal distances any sort gives the same first `returned`)."""
    found = len(dists)
    if returned < found and len(set(dists)) < found:
        order = list(range(found))
        yield from _pqsort(order, dists, desc, 0, found, 0, returned - 1)
        return order
    step = slices.STEP
    if found > step:   # (distance, index): the stable sort's order, in slices
        keyed = []
        for start in range(0, found, step):
            keyed += [((-d if desc else d), k) for k, d in enumerate(dists[start:start + step], start)]
            yield
        keyed = yield from slices.sort_job(keyed)
        order = []
        for start in range(0, found, step):
            order += [k for _, k in keyed[start:start + step]]
            yield
        return order
    return sorted(range(found), key=dists.__getitem__, reverse=desc)


def _cmp(a: float, b: float) -> int:
    """sort_gp_asc."""
    if a > b:
        return 1
    if a == b:
        return 0
    return -1


def _pqsort(v: list, dists: list, desc: bool, lo: int, n: int, lrange: int, rrange: int):
    """Job: Redis's pqsort.c (Bentley & McIlroy's qsort, sorting only the
    parts that hold [lrange, rrange]) on the indexes v[lo:lo + n], by
    distance (descending if `desc`), element for element as Redis's. The
    parts left to sort are kept on a list, not on the stack: they are
    disjoint, so the order they are done in changes nothing, and a crafted
    input that makes the C version recurse deeply cannot exhaust Python's."""
    sign = -1 if desc else 1

    def cmp(i: int, j: int) -> int:
        return sign * _cmp(dists[v[i]], dists[v[j]])

    def med3(a: int, b: int, c: int) -> int:
        if cmp(a, b) < 0:
            return b if cmp(b, c) < 0 else (c if cmp(a, c) < 0 else a)
        return b if cmp(b, c) > 0 else (a if cmp(a, c) < 0 else c)

    def vecswap(a: int, b: int, k: int) -> None:
        for t in range(k):
            v[a + t], v[b + t] = v[b + t], v[a + t]

    def wanted(left: int, right: int) -> bool:
        return not ((lrange < left and rrange < left) or (lrange > right and rrange > right))

    parts = [(lo, n)]
    work = 0
    while parts:
        a, n = parts.pop()
        if n < 7:
            for pm in range(a + 1, a + n):
                pl = pm
                while pl > a and cmp(pl - 1, pl) > 0:
                    v[pl], v[pl - 1] = v[pl - 1], v[pl]
                    pl -= 1
            continue
        pm = a + n // 2
        if n > 7:
            pl = a
            pn = a + n - 1
            if n > 40:
                d = n // 8
                pl = med3(pl, pl + d, pl + 2 * d)
                pm = med3(pm - d, pm, pm + d)
                pn = med3(pn - 2 * d, pn - d, pn)
            pm = med3(pl, pm, pn)
        v[a], v[pm] = v[pm], v[a]
        pa = pb = a + 1
        pc = pd = a + n - 1
        while True:
            while pb <= pc:
                r = cmp(pb, a)
                if r > 0:
                    break
                if r == 0:
                    v[pa], v[pb] = v[pb], v[pa]
                    pa += 1
                pb += 1
            while pb <= pc:
                r = cmp(pc, a)
                if r < 0:
                    break
                if r == 0:
                    v[pc], v[pd] = v[pd], v[pc]
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            v[pb], v[pc] = v[pc], v[pb]
            pb += 1
            pc -= 1
        pn = a + n
        r = min(pa - a, pb - pa)
        vecswap(a, pb - r, r)
        r = min(pd - pc, pn - pd - 1)
        vecswap(pb, pn - r, r)
        r = pb - pa
        if r > 1 and wanted(a, a + r - 1):
            parts.append((a, r))
        r = pd - pc
        if r > 1 and wanted(pn - r, pn - 1):
            parts.append((pn - r, r))
        work += n
        if work > slices.STEP * 8:
            work = 0
            yield


def _reply(conn, order, members, scores, xs, ys, dists, conversion: float,
           withdist: bool, withhash: bool, withcoords: bool):
    """Job: the reply of the points `order` (in reply order), built and
    encoded slices.STEP points at a time when there are more."""
    if not (withdist or withhash or withcoords):
        if len(order) <= slices.STEP:
            return [members[k] for k in order]
        return (yield from slices.array_job([members[k] for k in order], conn.resp3))
    step = slices.STEP
    items = []
    for start in range(0, len(order), step):
        for k in order[start:start + step]:
            item = [members[k]]
            if withdist:
                item.append(format_distance(dists[k] / conversion))
            if withhash:
                item.append(int(scores[k]))
            if withcoords:
                item.append([_coordinate(conn, xs[k]), _coordinate(conn, ys[k])])
            items.append(item)
        if len(order) > step:
            yield
    if len(items) > step:
        return (yield from slices.array_job(items, conn.resp3))
    return items


@command("georadius")
def georadius(conn, args):
    return _search(conn, args, 1, _COORDS)


@command("georadius_ro")
def georadius_ro(conn, args):
    return _search(conn, args, 1, _COORDS | _NOSTORE)


@command("georadiusbymember")
def georadiusbymember(conn, args):
    return _search(conn, args, 1, _MEMBER)


@command("georadiusbymember_ro")
def georadiusbymember_ro(conn, args):
    return _search(conn, args, 1, _MEMBER | _NOSTORE)


@command("geosearch")
def geosearch(conn, args):
    return _search(conn, args, 1, _SEARCH)


@command("geosearchstore")
def geosearchstore(conn, args):
    return _search(conn, args, 2, _SEARCH | _SEARCHSTORE)
