"""Redis 7.0's geohash arithmetic (geohash.c, geohash_helper.c), ported
operation for operation so that scores, boxes, distances and the formatted
replies are bit-identical to redis-server's: the same IEEE double
operations in the same order, the same libm calls (Python's math module is
glibc's libm), the same 64-bit integer wrap-arounds.

A point's score in its sorted set is its 52-bit geohash: the latitude and
longitude, each scaled to 26 bits over Redis's ranges (latitude limited to
+-85.05112878, the Web Mercator limits), interleaved (latitude in the even
bits, longitude in the odd ones).
"""

import math

LONG_MIN, LONG_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26   # 26 * 2 = 52 bits

D_R = math.pi / 180.0
EARTH_RADIUS_IN_METERS = 6372797.560856
MERCATOR_MAX = 20037726.37

_MASK64 = (1 << 64) - 1
_EVEN = 0x5555555555555555
_ODD = 0xaaaaaaaaaaaaaaaa

# interleave64's spreading of a 32-bit value to the even bits, a byte at a time.
_SPREAD = [0] * 256
for _b in range(256):
    _v = 0
    for _i in range(8):
        if _b >> _i & 1:
            _v |= 1 << (2 * _i)
    _SPREAD[_b] = _v
del _b, _v, _i


def _spread(x: int) -> int:
    s = _SPREAD
    return s[x & 0xff] | s[x >> 8 & 0xff] << 16 | s[x >> 16 & 0xff] << 32 | s[x >> 24 & 0xff] << 48


def interleave64(xlo: int, ylo: int) -> int:
    """x in the even bits, y in the odd bits (both uint32)."""
    return _spread(xlo) | _spread(ylo) << 1


def deinterleave64(interleaved: int) -> int:
    """interleave64 undone: the even bits in the low 32 bits, the odd ones above."""
    x = interleaved
    y = interleaved >> 1
    x = (x | (x >> 0)) & 0x5555555555555555
    y = (y | (y >> 0)) & 0x5555555555555555
    x = (x | (x >> 1)) & 0x3333333333333333
    y = (y | (y >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    y = (y | (y >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    y = (y | (y >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    y = (y | (y >> 8)) & 0x0000FFFF0000FFFF
    x = (x | (x >> 16)) & 0x00000000FFFFFFFF
    y = (y | (y >> 16)) & 0x00000000FFFFFFFF
    return x | (y << 32)


# deinterleave64 a 16-bit piece at a time: its even bits and its odd bits, compacted.
_EVEN16 = [0] * 65536
_ODD16 = [0] * 65536
for _w in range(256):
    _ODD16[_SPREAD[_w] << 1] = _EVEN16[_SPREAD[_w]] = _w
for _w in range(65536):
    _EVEN16[_w] = _EVEN16[_w & _EVEN]
    _ODD16[_w] = _ODD16[_w & _ODD]
del _w

def encode(longitude: float, latitude: float, step: int = STEP_MAX,
           lat_min: float = LAT_MIN, lat_max: float = LAT_MAX) -> int | None:
    """geohashEncode over [-180, 180] x [lat_min, lat_max]: the hash's bits,
    or None outside Redis's limits."""
    if longitude > LONG_MAX or longitude < LONG_MIN or latitude > LAT_MAX or latitude < LAT_MIN:
        return None
    if latitude < lat_min or latitude > lat_max:
        return None
    lat_offset = (latitude - lat_min) / (lat_max - lat_min)
    long_offset = (longitude - LONG_MIN) / (LONG_MAX - LONG_MIN)
    scale = float(1 << step)
    # C converts the doubles to uint32_t by truncation
    return interleave64(int(lat_offset * scale) & 0xffffffff, int(long_offset * scale) & 0xffffffff)


def area(bits: int, step: int, lat_min: float = LAT_MIN, lat_max: float = LAT_MAX) -> tuple:
    """geohashDecode: (long min, long max, lat min, lat max) of the box."""
    e, o = _EVEN16, _ODD16
    w0, w1, w2, w3 = bits & 0xffff, bits >> 16 & 0xffff, bits >> 32 & 0xffff, bits >> 48 & 0xffff
    ilato = e[w0] | e[w1] << 8 | e[w2] << 16 | e[w3] << 24   # deinterleave64's low half
    ilono = o[w0] | o[w1] << 8 | o[w2] << 16 | o[w3] << 24
    lat_scale = lat_max - lat_min
    long_scale = LONG_MAX - LONG_MIN
    div = float(1 << step)
    return (LONG_MIN + (ilono * 1.0 / div) * long_scale,
            LONG_MIN + (((ilono + 1) & 0xffffffff) * 1.0 / div) * long_scale,
            lat_min + (ilato * 1.0 / div) * lat_scale,
            lat_min + (((ilato + 1) & 0xffffffff) * 1.0 / div) * lat_scale)


def score_bits(score: float) -> int:
    """(uint64_t)score as gcc compiles it on x86-64 (a score ZADD set need
    not be a geohash): truncation, a negative wrapping around, an
    out-of-range value giving cvttsd2si's 0x8000000000000000."""
    if score < 9223372036854775808.0:
        if score <= -9223372036854775809.0 or score != score:
            return 1 << 63
        return int(score) & _MASK64
    rest = score - 9223372036854775808.0
    if rest >= 9223372036854775808.0:
        return 0   # (1 << 63) with its top bit flipped back
    return int(rest) ^ (1 << 63)


_LAT_SCALE = LAT_MAX - LAT_MIN
_LONG_SCALE = LONG_MAX - LONG_MIN
_DIV26 = float(1 << STEP_MAX)
_TWO52 = float(1 << 52)


def decode_score(score: float) -> tuple:
    """decodeGeohash: (longitude, latitude) of a score, the center of its
    52-bit box (geohashDecode's arithmetic), clamped to the limits. On the
    path of every candidate of a search: written out."""
    if 0.0 <= score <= _TWO52:
        b = int(score)
    else:
        b = score_bits(score)
    e, o = _EVEN16, _ODD16
    w0, w1, w2, w3 = b & 0xffff, b >> 16 & 0xffff, b >> 32 & 0xffff, b >> 48 & 0xffff
    ilato = e[w0] | e[w1] << 8 | e[w2] << 16 | e[w3] << 24
    ilono = o[w0] | o[w1] << 8 | o[w2] << 16 | o[w3] << 24
    x = ((LONG_MIN + (ilono / _DIV26) * _LONG_SCALE)
         + (LONG_MIN + (((ilono + 1) & 0xffffffff) / _DIV26) * _LONG_SCALE)) / 2
    if x > LONG_MAX:
        x = LONG_MAX
    elif x < LONG_MIN:
        x = LONG_MIN
    y = ((LAT_MIN + (ilato / _DIV26) * _LAT_SCALE)
         + (LAT_MIN + (((ilato + 1) & 0xffffffff) / _DIV26) * _LAT_SCALE)) / 2
    if y > LAT_MAX:
        y = LAT_MAX
    elif y < LAT_MIN:
        y = LAT_MIN
    return x, y


_ALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"


def standard_hash(score: float) -> bytes:
    """GEOHASH's 11 characters: the position decoded, encoded again over
    the standard latitude range [-90, 90], the last character '0'."""
    x, y = decode_score(score)
    bits = encode(x, y, STEP_MAX, -90.0, 90.0)
    if bits is None:   # cannot happen for a clamped position; Redis would print its zeroed hash
        bits = 0
    return bytes([_ALPHABET[(bits >> (52 - (i + 1) * 5)) & 0x1f] for i in range(10)]) + b"0"


# -- distances ---------------------------------------------------------------------------

_sin, _cos, _asin, _sqrt = math.sin, math.cos, math.asin, math.sqrt


def lat_distance(lat1d: float, lat2d: float) -> float:
    return EARTH_RADIUS_IN_METERS * abs(lat2d * D_R - lat1d * D_R)


def distance(lon1d: float, lat1d: float, lon2d: float, lat2d: float) -> float:
    """geohashGetDistance: haversine on Redis's Earth radius."""
    v = _sin((lon2d * D_R - lon1d * D_R) / 2)
    if v == 0.0:
        return EARTH_RADIUS_IN_METERS * abs(lat2d * D_R - lat1d * D_R)
    lat1r = lat1d * D_R
    lat2r = lat2d * D_R
    u = _sin((lat2r - lat1r) / 2)
    a = u * u + _cos(lat1r) * _cos(lat2r) * v * v
    s = _sqrt(a)
    # C's asin of more than 1 (rounding, near the antipode) is NaN, not an error
    return 2.0 * EARTH_RADIUS_IN_METERS * _asin(s) if s <= 1.0 else math.nan


def format_distance(d: float) -> bytes:
    """fixedpoint_d2string(d, 4): llrint(d * 10000) (ties to even, as
    Python's round) printed with four decimals."""
    if d == 0:
        return b"0.0000"
    v = round(d * 10000.0)
    sign = b"-" if v < 0 else b""
    whole, frac = divmod(abs(v), 10000)
    return b"%s%d.%04d" % (sign, whole, frac)


def format_coordinate(value: float) -> bytes:
    """ld2string(LD_STR_HUMAN) of a double: "%.17f" with the trailing zeros
    (and a bare dot) removed, "-0" as "0"."""
    text = b"%.17f" % value
    text = text.rstrip(b"0")
    if text[-1:] == b".":
        text = text[:-1]
    if text == b"-0":
        return b"0"
    return text


# -- the boxes a search reads ---------------------------------------------------------------

def estimate_steps(range_meters: float, lat: float) -> int:
    """geohashEstimateStepsByRadius."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    if step < 1:
        step = 1
    if step > 26:
        step = 26
    return step


def _move(bits: int, step: int, d: int, lane: int, other: int) -> int:
    """geohash_move_x / geohash_move_y: one cell along the bits of `lane`
    (_ODD: longitude, _EVEN: latitude), the bits of `other` kept."""
    v = bits & lane
    zz = other >> (64 - step * 2)
    if d > 0:
        v = (v + (zz + 1)) & _MASK64
    else:
        v = v | zz
        v = (v - (zz + 1)) & _MASK64
    v &= lane >> (64 - step * 2)
    return v | (bits & other)


def _move_x(bits: int, step: int, d: int) -> int:
    return _move(bits, step, d, _ODD, _EVEN)


def _move_y(bits: int, step: int, d: int) -> int:
    return _move(bits, step, d, _EVEN, _ODD)


def _cos_c(x: float) -> float:
    """cos as C's: NaN (not an exception) for an infinite argument (a radius of inf)."""
    return _cos(x) if x - x == 0 else math.nan


def bounding_box(longitude: float, latitude: float, width: float, height: float) -> tuple:
    """geohashBoundingBox of a shape whose half width and half height (in
    meters, already converted) are `width` and `height`: (min long, min
    lat, max long, max lat)."""
    lat_delta = (height / EARTH_RADIUS_IN_METERS) / D_R
    long_delta_top = (width / EARTH_RADIUS_IN_METERS / _cos_c((latitude + lat_delta) * D_R)) / D_R
    long_delta_bottom = (width / EARTH_RADIUS_IN_METERS / _cos_c((latitude - lat_delta) * D_R)) / D_R
    if latitude < 0:
        return (longitude - long_delta_bottom, latitude - lat_delta,
                longitude + long_delta_bottom, latitude + lat_delta)
    return (longitude - long_delta_top, latitude - lat_delta,
            longitude + long_delta_top, latitude + lat_delta)


def search_boxes(longitude: float, latitude: float, half_width: float, half_height: float,
                 radius_meters: float) -> tuple:
    """geohashCalculateAreasByShapeWGS84 and membersOfAllNeighbors' walk:
    (step, [(min, max, bits), ...]): the boxes' [min, max) score ranges to
    read, in Redis's order (the center box, then N, S, E, W, NE, NW, SE,
    SW), without the neighbours it excludes and without a box equal to the
    one read just before it."""
    min_lon, min_lat, max_lon, max_lat = bounding_box(longitude, latitude, half_width, half_height)
    steps = estimate_steps(radius_meters, latitude)
    hash_bits = encode(longitude, latitude, steps) or 0
    neighbors = _neighbors(hash_bits, steps)
    north, south, east, west = neighbors[0], neighbors[1], neighbors[2], neighbors[3]
    if (area(north, steps)[3] < max_lat or area(south, steps)[2] > min_lat
            or area(east, steps)[1] < max_lon or area(west, steps)[0] > min_lon):
        if steps > 1:
            steps -= 1
            hash_bits = encode(longitude, latitude, steps) or 0
            neighbors = _neighbors(hash_bits, steps)
    boxes = [hash_bits] + neighbors   # N S E W NE NW SE SW
    if steps >= 2:
        lon_lo, lon_hi, lat_lo, lat_hi = area(hash_bits, steps)
        if lat_lo < min_lat:
            boxes[2] = boxes[7] = boxes[8] = None   # south, south west, south east
        if lat_hi > max_lat:
            boxes[1] = boxes[5] = boxes[6] = None
        if lon_lo < min_lon:
            boxes[4] = boxes[8] = boxes[6] = None
        if lon_hi > max_lon:
            boxes[3] = boxes[7] = boxes[5] = None
    shift = 52 - steps * 2
    ranges = []
    last = 0
    for i, bits in enumerate(boxes):
        if bits is None:   # GZERO'd (bits 0, step 0)
            continue
        # a box equal to the last one read (the center is never compared: last_processed 0)
        if last and bits == boxes[last]:
            continue
        ranges.append((float(bits << shift), float((bits + 1) << shift), bits))
        last = i
    return steps, ranges


def _neighbors(bits: int, step: int) -> list:
    """[N, S, E, W, NE, NW, SE, SW] of a box."""
    return [_move_y(bits, step, 1), _move_y(bits, step, -1),
            _move_x(bits, step, 1), _move_x(bits, step, -1),
            _move_y(_move_x(bits, step, 1), step, 1), _move_y(_move_x(bits, step, -1), step, 1),
            _move_y(_move_x(bits, step, 1), step, -1), _move_y(_move_x(bits, step, -1), step, -1)]


# -- a search's candidates ------------------------------------------------------------------
#
# geoWithinShape over a batch of (score, member) pairs, with decodeGeohash and
# geohashGetDistance written out (the same operations in the same order as
# decode_score and distance above: a call per candidate showed in profiles).

# Below this radius (meters) Redis's step estimate is at least 6, so the nine
# boxes span less than 180 degrees of longitude and no candidate is near the
# antipode, where rounding can make the haversine's asin argument pass 1 (a
# NaN distance, which Redis keeps). Only then may a candidate be dropped on
# its latitude alone (below).
PREFILTER_RADIUS = 300_000.0


def _cell_gaps(cell: tuple, cx: float, cy: float) -> tuple:
    """(the smallest latitude difference, the smallest longitude difference,
    around the antimeridian too; the smallest cosine of a latitude) from
    (cx, cy) to the points of `cell` (an area()), in radians."""
    lon0, lon1, lat0, lat1 = cell
    dlat = 0.0 if lat0 <= cy <= lat1 else min(abs(cy - lat0), abs(cy - lat1))
    if lon0 <= cx <= lon1:
        dlon = 0.0
    else:   # the nearer edge, either way round (the haversine sees no difference)
        d0, d1 = abs(cx - lon0), abs(cx - lon1)
        dlon = min(d0, 360.0 - d0, d1, 360.0 - d1)
    return dlat * D_R, dlon * D_R, min(_cos(lat0 * D_R), _cos(lat1 * D_R))


def circle_misses(cell: tuple, cx: float, cy: float, radius: float) -> bool:
    """Whether no point of `cell` can be within `radius` meters of (cx, cy)
    by Redis's haversine: a lower bound of the distance (haversine's terms,
    each at its smallest over the cell) past the radius by a margin far
    above rounding. For radii below PREFILTER_RADIUS only (see there)."""
    dlat, dlon, cmin = _cell_gaps(cell, cx, cy)
    h = _sin(dlat / 2)
    v = _sin(dlon / 2)
    a = h * h + _cos(cy * D_R) * cmin * v * v
    low = 2.0 * EARTH_RADIUS_IN_METERS * _asin(min(1.0, _sqrt(a)))
    return low > radius * (1 + 1e-9) + 1e-6


def box_misses(cell: tuple, cx: float, cy: float, width: float, height: float) -> bool:
    """The same for geohashGetDistanceIfInRectangle's two tests: every point
    of `cell` is farther than height/2 in latitude or than width/2 along
    its own parallel."""
    dlat, dlon, cmin = _cell_gaps(cell, cx, cy)
    if EARTH_RADIUS_IN_METERS * dlat > (height / 2) * (1 + 1e-9) + 1e-6:
        return True
    low = 2.0 * EARTH_RADIUS_IN_METERS * _asin(min(1.0, cmin * _sin(dlon / 2)))
    return low > (width / 2) * (1 + 1e-9) + 1e-6


def scan_circle(pairs, cx: float, cy: float, radius: float, out: tuple, limit: int) -> bool:
    """Append the points of `pairs` within `radius` meters of (cx, cy) to
    the lists `out` (members, scores, longitudes, latitudes, distances);
    True once they hold `limit` points (0: no limit)."""
    members, scores, xs, ys, dists = out
    e, o = _EVEN16, _ODD16
    cxr = cx * D_R
    cyr = cy * D_R
    cos1 = _cos(cyr)
    # The great-circle distance is at least the latitude's arc: a point whose
    # latitude arc is past the radius (with a margin far above the rounding
    # of either computation) is out without its longitude and haversine.
    far = radius * (1 + 1e-9) + 1e-6 if radius < PREFILTER_RADIUS else math.inf
    radius_earth = EARTH_RADIUS_IN_METERS
    for score, member in pairs:
        b = int(score) if 0.0 <= score <= _TWO52 else score_bits(score)
        w0, w1, w2, w3 = b & 0xffff, b >> 16 & 0xffff, b >> 32 & 0xffff, b >> 48 & 0xffff
        ilato = e[w0] | e[w1] << 8 | e[w2] << 16 | e[w3] << 24
        y = ((LAT_MIN + (ilato / _DIV26) * _LAT_SCALE)
             + (LAT_MIN + (((ilato + 1) & 0xffffffff) / _DIV26) * _LAT_SCALE)) / 2
        if y > LAT_MAX:
            y = LAT_MAX
        elif y < LAT_MIN:
            y = LAT_MIN
        lat2r = y * D_R
        if radius_earth * abs(lat2r - cyr) > far:
            continue
        ilono = o[w0] | o[w1] << 8 | o[w2] << 16 | o[w3] << 24
        x = ((LONG_MIN + (ilono / _DIV26) * _LONG_SCALE)
             + (LONG_MIN + (((ilono + 1) & 0xffffffff) / _DIV26) * _LONG_SCALE)) / 2
        if x > LONG_MAX:
            x = LONG_MAX
        elif x < LONG_MIN:
            x = LONG_MIN
        v = _sin((x * D_R - cxr) / 2)
        if v == 0.0:
            d = radius_earth * abs(lat2r - cyr)
        else:
            u = _sin((lat2r - cyr) / 2)
            s = _sqrt(u * u + cos1 * _cos(lat2r) * v * v)
            d = 2.0 * radius_earth * _asin(s) if s <= 1.0 else math.nan
        if d > radius:
            continue
        members.append(member)
        scores.append(score)
        xs.append(x)
        ys.append(y)
        dists.append(d)
        if limit and len(members) >= limit:
            return True
    return False


def scan_box(pairs, cx: float, cy: float, width: float, height: float, out: tuple,
             limit: int) -> bool:
    """scan_circle for geohashGetDistanceIfInRectangle: `width` x `height`
    meters centered on (cx, cy)."""
    members, scores, xs, ys, dists = out
    half_height = height / 2
    half_width = width / 2
    for score, member in pairs:
        x, y = decode_score(score)
        if lat_distance(y, cy) > half_height:
            continue
        if distance(x, y, cx, y) > half_width:
            continue
        members.append(member)
        scores.append(score)
        xs.append(x)
        ys.append(y)
        dists.append(distance(cx, cy, x, y))
        if limit and len(members) >= limit:
            return True
    return False
