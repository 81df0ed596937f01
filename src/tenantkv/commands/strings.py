"""String commands: SET and friends, counters, ranges."""

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import SHARED_INTS, now_ms, shared
from tenantkv.protocol.encoder import OK
from tenantkv.util.numbers import LLONG_MAX, LLONG_MIN, incr_long_double, int_arg, parse_int
from tenantkv.util.options import Flag, Options, Value

MAX_STRING = 512 * 1024 * 1024

# parseExtendedStringArgumentsOrReply (Redis's t_string.c): SET and GETEX share
# the expiry options and their rule; NX, XX, GET and KEEPTTL are SET's, PERSIST
# is GETEX's. An option may repeat (the last EX wins); NX/XX, and the expiry
# kinds with KEEPTTL or PERSIST, exclude each other (a syntax error).
_EXPIRY = ("EX", "PX", "EXAT", "PXAT")
SET_OPTIONS = Options(
    Flag("NX", dest="condition"), Flag("XX", dest="condition"), Flag("GET"), Flag("KEEPTTL"),
    *(Value(unit, dest="expire") for unit in _EXPIRY),
    exclusive=[("NX", "XX"), (*_EXPIRY, "KEEPTTL")])
GETEX_OPTIONS = Options(
    Flag("PERSIST"), *(Value(unit, dest="expire") for unit in _EXPIRY),
    exclusive=[(*_EXPIRY, "PERSIST")])


def _expire_at(conn, unit: str, raw: bytes, command_name: str) -> int:
    """Absolute expiry in ms from an EX/PX/EXAT/PXAT argument.

    As Redis's getExpireMillisecondsOrReply: not positive, seconds that overflow
    in ms, or a relative time whose sum with now overflows, are all invalid."""
    value = parse_int(raw)
    if value is None:
        raise CommandError(errors.NOT_INTEGER)
    if value <= 0 or (unit in ("ex", "exat") and value > LLONG_MAX // 1000):
        raise CommandError(errors.invalid_expire(command_name))
    if unit in ("ex", "exat"):
        value *= 1000
    if unit in ("ex", "px"):
        value += now_ms()
        if value > LLONG_MAX:
            raise CommandError(errors.invalid_expire(command_name))
    return value


@command("set")
def set_(conn, args):
    db = conn.db
    key = args[1]
    if len(args) == 3:
        value = args[2]
        # shared() written out: short values are often numbers
        if len(value) < 5 and value.isdigit() and (value[0] != 48 or len(value) == 1):
            value = SHARED_INTS[int(value)]
        db.data[key] = value
        if db.expires:
            db.expires.pop(key, None)
        if db.encodings:
            db.encodings.pop(key, None)
        return OK
    options = SET_OPTIONS.parse(args, 3)
    expire = options.get("expire")
    when = _expire_at(conn, expire[0], expire[1], "set") if expire else None
    get = "get" in options
    condition = options.get("condition")
    old = db.read(key) if get else db.get(key)   # SET ... GET is a read lookup in Redis
    if get and old is not None and type(old) is not bytes:
        raise CommandError(errors.WRONGTYPE)
    if (condition == "nx" and old is not None) or (condition == "xx" and old is None):
        return old if get else None
    db.set(key, shared(args[2]), keep_ttl="keepttl" in options)
    if when is not None:
        db.set_expire(key, when)
    return old if get else OK


@command("get")
def get(conn, args):
    db = conn.db
    value = db.data.get(args[1])
    # The hot cases inline, each counted as read_typed would count it:
    if type(value) is bytes and not db.expires:
        db.hits += 1
        return value   # a hit, without a call: no TTL can apply
    if value is None:
        db.misses += 1
        if db.stats.on_miss is not None:   # keyspace notifications' keymiss
            db.stats.on_miss(db, args[1])
        return None    # a miss: not in data at all (an expired key stays in data until deleted)
    return db.read_typed(args[1], bytes)


@command("getdel")
def getdel(conn, args):
    db = conn.db
    value = db.read_typed(args[1], bytes)
    if value is not None:
        db.delete(args[1])
    return value


@command("getex")
def getex(conn, args):
    db = conn.db
    key = args[1]
    options = GETEX_OPTIONS.parse(args, 2)
    value = db.read_typed(key, bytes)
    if value is None:
        return None
    # Redis validates the time only once it has the key (a missing key is nil).
    expire = options.get("expire")
    when = _expire_at(conn, expire[0], expire[1], "getex") if expire else None
    if when is not None:
        if when <= now_ms():
            db.delete(key)
        else:
            db.set_expire(key, when)
    elif "persist" in options:
        db.persist(key)
    return value


@command("getset")
def getset(conn, args):
    db = conn.db
    old = db.read_typed(args[1], bytes)
    db.set(args[1], shared(args[2]))
    return old


@command("setnx")
def setnx(conn, args):
    db = conn.db
    if db.get(args[1]) is not None:
        return 0
    db.set(args[1], shared(args[2]))
    return 1


def _setex(conn, args, unit: str, name: str):
    when = _expire_at(conn, unit, args[2], name)
    conn.db.set(args[1], shared(args[3]))
    conn.db.set_expire(args[1], when)
    return OK


@command("setex")
def setex(conn, args):
    return _setex(conn, args, "ex", "setex")


@command("psetex")
def psetex(conn, args):
    return _setex(conn, args, "px", "psetex")


@command("mset")
def mset(conn, args):
    if len(args) % 2 == 0:
        raise CommandError(errors.wrong_arity("mset"))
    conn.db.set_many(args, 1)
    return OK


@command("msetnx")
def msetnx(conn, args):
    if len(args) % 2 == 0:
        raise CommandError(errors.wrong_arity("msetnx"))
    db = conn.db
    if any(db.get(args[i]) is not None for i in range(1, len(args), 2)):
        return 0
    db.set_many(args, 1)
    return 1


@command("mget")
def mget(conn, args):
    db = conn.db
    out = []
    for key in args[1:]:
        value = db.read(key)   # one hit or miss per key; a key of another type is a hit
        out.append(value if type(value) is bytes else None)
    return out


@command("append")
def append(conn, args):
    db = conn.db
    old = db.write_typed(args[1], bytes)
    if old is not None:
        memory = conn.server.memory
        if memory.on:   # refused before allocating (server/memory.py)
            memory.check_growth(conn, len(args[2]))
    value = args[2] if old is None else old + args[2]
    if len(value) > MAX_STRING:
        raise CommandError(errors.STRING_TOO_LONG)
    db.replace(args[1], value)
    if old is not None:
        db.mark_encoding(args[1], value, "raw")   # Redis appends to a raw copy
    return len(value)


@command("strlen")
def strlen(conn, args):
    value = conn.db.read_typed(args[1], bytes)
    return 0 if value is None else len(value)


@command("getrange")
def getrange(conn, args):
    start = int_arg(args[2])
    end = int_arg(args[3])
    value = conn.db.read_typed(args[1], bytes)
    if value is None:
        return b""
    length = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = max(0, length + start)
    if end < 0:
        end = max(0, length + end)
    end = min(end, length - 1)
    if start > end or length == 0:
        return b""
    return value[start:end + 1]


@command("substr")
def substr(conn, args):
    return getrange(conn, args)


@command("setrange")
def setrange(conn, args):
    offset = int_arg(args[2])
    if offset < 0:
        raise CommandError(errors.OFFSET_RANGE)
    db = conn.db
    old = db.write_typed(args[1], bytes)
    patch = args[3]
    if old is None:
        if not patch:
            return 0
        old = b""
    elif not patch:
        return len(old)
    if offset + len(patch) > MAX_STRING:
        raise CommandError(errors.STRING_TOO_LONG)
    memory = conn.server.memory
    if memory.on:   # refused before allocating (server/memory.py)
        memory.check_growth(conn, offset + len(patch) - len(old))
    if len(old) < offset:
        old = old + b"\x00" * (offset - len(old))
    value = old[:offset] + patch + old[offset + len(patch):]
    db.replace(args[1], value)
    db.mark_encoding(args[1], value, "raw")   # Redis writes into a raw copy
    return len(value)


def _incr(conn, key: bytes, delta: int) -> int:
    db = conn.db
    old = db.write_typed(key, bytes)
    if old is None:
        result = delta
    else:
        current = parse_int(old)
        if current is None:
            raise CommandError(errors.NOT_INTEGER)
        result = current + delta
        if not LLONG_MIN <= result <= LLONG_MAX:
            raise CommandError(errors.OVERFLOW)
    db.replace(key, SHARED_INTS[result] if 0 <= result < 10_000 else b"%d" % result)
    return result


@command("incr")
def incr(conn, args):
    db = conn.db
    key = args[1]
    old = db.data.get(key)
    # The hot case inline (counters are small plain digits, no TTL in this
    # database, no encoding note): what _incr would do, without three calls.
    if (type(old) is bytes and old.isdigit() and len(old) < 18 and (old[0] != 48 or len(old) == 1)
            and not db.expires and not db.encodings):
        result = int(old) + 1
        db.data[key] = SHARED_INTS[result] if result < 10_000 else b"%d" % result
        return result
    return _incr(conn, key, 1)


@command("decr")
def decr(conn, args):
    return _incr(conn, args[1], -1)


@command("incrby")
def incrby(conn, args):
    return _incr(conn, args[1], int_arg(args[2]))


@command("decrby")
def decrby(conn, args):
    delta = int_arg(args[2])
    if delta == LLONG_MIN:
        raise CommandError(errors.DECR_OVERFLOW)
    return _incr(conn, args[1], -delta)


@command("incrbyfloat")
def incrbyfloat(conn, args):
    db = conn.db
    # Redis adds in long double (80-bit on x86-64) and prints "%.17Lf", trimmed.
    text = incr_long_double(db.write_typed(args[1], bytes), args[2])
    db.replace(args[1], text)
    if len(text) <= 20 and parse_int(text) is not None:
        db.mark_encoding(args[1], text, "embstr")   # a new string object, never int
    return text


@command("lcs")
def lcs(conn, args):
    # As Redis: both keys are looked up (a keyspace hit or miss each) before
    # the options are parsed, so even a syntax error counts them.
    db = conn.db
    a = db.read(args[1])
    b = db.read(args[2])
    if (a is not None and type(a) is not bytes) or (b is not None and type(b) is not bytes):
        raise CommandError(errors.LCS_NOT_STRINGS)
    a = a or b""
    b = b or b""
    want_len = want_idx = with_match_len = False
    min_match = 0
    i = 3
    while i < len(args):
        option = args[i].lower()
        if option == b"len":
            want_len = True
        elif option == b"idx":
            want_idx = True
        elif option == b"withmatchlen":
            with_match_len = True
        elif option == b"minmatchlen" and i + 1 < len(args):
            min_match = max(0, int_arg(args[i + 1]))
            i += 1
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    if want_len and want_idx:
        raise CommandError(errors.LCS_LEN_AND_IDX)
    if len(a) * len(b) > 64 * 1024 * 1024:
        raise CommandError(errors.LCS_TOO_BIG)
    if not want_len and not conn.root and len(a) + len(b) > LCS_MAX_WALK:
        raise CommandError(errors.lcs_limit(LCS_MAX_WALK))
    return slices.run(conn, _lcs(a, b, want_len, want_idx, with_match_len, min_match))


# LCS with bit-parallel rows (Hyyrö 2004) instead of Redis's table of
# uint32: row i of the table is one Python int whose zero bits below j count
# dp[i][j], so a row costs a few big-int operations (C loops over 64-bit
# words), not a Python step per cell: two 8,000-byte strings take ~30 ms,
# not ~10 s. The walk back is Redis's, step for step (the same tie-break),
# reading dp from the rows with a popcount; it takes one Python step per
# character, hence the non-root limit on the two lengths for the forms that
# walk (LEN does not walk, and keeps only one row).
LCS_MAX_WALK = 64 * 1024
_MASK_CHUNK = 1 << 22   # characters of the long string turned into bits per slice


def _lcs(a: bytes, b: bytes, want_len: bool, want_idx: bool, with_match_len: bool,
         min_match: int):
    """LCS's job (dispatch/slices.py): yields between bounded pieces of work."""
    # Rows over the shorter string, bits over the longer one: fewer Python
    # steps. dp is symmetric, so dp(i, j) below reads either orientation.
    swapped = len(a) > len(b)
    short, long_ = (b, a) if swapped else (a, b)
    width = len(long_)
    ones = (1 << width) - 1
    masks = {}
    for c in set(short):
        table = bytearray(b"0" * 256)
        table[c] = 0x31
        bits = 0
        for start in range(0, width, _MASK_CHUNK):   # position j is bit j
            piece = long_[start:start + _MASK_CHUNK].translate(table)[::-1]
            bits |= int(piece, 2) << start
            yield
        masks[c] = bits
    v = ones
    rows = [v] if not want_len else None
    for n, c in enumerate(short, 1):
        u = v & masks.get(c, 0)
        v = ((v + u) | (v - u)) & ones
        if rows is not None:
            rows.append(v)
        if not n % 256:
            yield
    length = width - v.bit_count()
    if want_len:
        return length

    if swapped:   # rows[j] over b's positions bits of a: dp(i, j) = zeros of rows[j] below i
        def dp(i, j):
            return i - (rows[j] & ((1 << i) - 1)).bit_count()
    else:
        def dp(i, j):
            return j - (rows[i] & ((1 << j) - 1)).bit_count()
    # Walk back to collect the subsequence and the matched ranges (Redis's lcsCommand).
    result = bytearray()
    matches = []
    i, j = len(a), len(b)
    arange_start = arange_end = brange_start = brange_end = -1
    steps = 0
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result.append(a[i - 1])
            if arange_start == -1:
                arange_start = arange_end = i - 1
                brange_start = brange_end = j - 1
            elif arange_start == i and brange_start == j:
                arange_start -= 1
                brange_start -= 1
            else:
                emit = True
            if arange_start == 0 or brange_start == 0:
                emit = True
            i -= 1
            j -= 1
        else:
            if dp(i - 1, j) > dp(i, j - 1):
                i -= 1
            else:
                j -= 1
            if arange_start != -1:
                emit = True
        if emit:
            match_len = arange_end - arange_start + 1
            if min_match == 0 or match_len >= min_match:
                entry = [[arange_start, arange_end], [brange_start, brange_end]]
                if with_match_len:
                    entry.append(match_len)
                matches.append(entry)
            arange_start = arange_end = brange_start = brange_end = -1
        steps += 1
        if not steps % 1024:
            yield
    if want_idx:
        return {b"matches": matches, b"len": length}
    return bytes(reversed(result))
