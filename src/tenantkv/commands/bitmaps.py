"""Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO.

Bitmaps are plain string values (bytes), bit 0 being the most significant bit
of the first byte, as in Redis. Everything that scans a value stays in C:
popcounts through int.from_bytes(...).bit_count(), BITOP through big-integer
AND/OR/XOR (NOT through bytes.translate), BITPOS through memcmp-backed
bytes.startswith over 64 KB runs of 0x00 or 0xff, then one byte's bits.

A write keeps the value a bytes object, so SETBIT costs a copy of the value
(one bytes.join over memoryview slices). Writes keep the key's TTL, except
BITOP, which stores its result as a new value, and leave OBJECT ENCODING
"raw", as Redis's writes into an unshared sds string do.
"""

from tenantkv import errors
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.util.numbers import LLONG_MAX, int_arg, parse_int
from tenantkv.util.options import option_name as _option


_U64 = (1 << 64) - 1
_NOT_TABLE = bytes(255 - i for i in range(256))
_RUN = 1 << 16
_RUNS = {0x00: bytes(_RUN), 0xff: b"\xff" * _RUN}
_SINGLE = [bytes((i,)) for i in range(256)]


def _bit_offset(conn, raw: bytes, bits: int = 0) -> int:
    """A bit offset as getBitOffsetFromArgument reads it: a 64-bit integer, or
    with `bits` (BITFIELD) "#N" meaning N * bits (multiplied as C does, with
    64-bit wrap-around); refused if negative or past proto-max-bulk-len bytes."""
    hashed = bits > 0 and raw[:1] == b"#"
    offset = parse_int(raw[1:] if hashed else raw)
    if offset is None:
        raise CommandError(errors.BIT_OFFSET)
    if hashed:
        offset = (offset * bits) & _U64
        if offset > LLONG_MAX:
            offset -= 1 << 64
    if offset < 0 or (offset >> 3) >= conn.server.config["limits.proto_max_bulk_len"]:
        raise CommandError(errors.BIT_OFFSET)
    return offset


def _store(db, key: bytes, value: bytes) -> None:
    """The new value of `key` after a bit write: TTL kept, encoding raw."""
    db.replace(key, value)
    db.mark_encoding(key, value, "raw")


# -- SETBIT / GETBIT -------------------------------------------------------------

@command("setbit")
def setbit(conn, args):
    offset = _bit_offset(conn, args[2])
    on = parse_int(args[3])
    if on is None or on & ~1:
        raise CommandError(errors.BIT_VALUE)
    db = conn.db
    key = args[1]
    old = db.write_typed(key, bytes)
    if old is None:
        old = b""
    byte = offset >> 3
    mask = 0x80 >> (offset & 7)
    if byte >= len(old):
        memory = conn.server.memory
        if memory.on:   # refused before allocating (server/memory.py)
            memory.check_growth(conn, byte + 1 - len(old))
        value = b"".join((old, bytes(byte - len(old)), _SINGLE[mask if on else 0]))
        _store(db, key, value)
        return 0
    current = old[byte]
    previous = 1 if current & mask else 0
    if previous == on:
        db.mark_encoding(key, old, "raw")   # Redis unshares (makes raw) even when nothing changes
        conn.server.stats.unchanged_writes += 1
        return previous
    view = memoryview(old)
    value = b"".join((view[:byte], _SINGLE[current ^ mask], view[byte + 1:]))
    view.release()
    _store(db, key, value)
    return previous


@command("getbit")
def getbit(conn, args):
    offset = _bit_offset(conn, args[2])
    value = conn.db.read_typed(args[1], bytes)
    byte = offset >> 3
    if value is None or byte >= len(value):
        return 0
    return (value[byte] >> (7 - (offset & 7))) & 1


# -- BITCOUNT / BITPOS -------------------------------------------------------------

def _unit(raw: bytes) -> bool:
    """True for BIT, False for BYTE (case-insensitive), else a syntax error."""
    option = _option(raw)
    if option == b"bit":
        return True
    if option == b"byte":
        return False
    raise CommandError(errors.SYNTAX)


def _clip(start: int, end: int, total: int) -> tuple:
    """Redis's range rule for BITCOUNT/BITPOS: negative from the end, then
    clamped to 0..total-1 (start may stay past the end: an empty range)."""
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = max(end, 0)
    return start, min(end, total - 1)


@command("bitcount")
def bitcount(conn, args):
    # As Redis 7.0: the key first (missing is 0, whatever the arguments), then
    # the range; two negative indexes in the wrong order are 0 before the unit is read.
    value = conn.db.read_typed(args[1], bytes)
    if value is None:
        return 0
    argc = len(args)
    if argc == 2:
        return int.from_bytes(value, "big").bit_count()
    if argc not in (4, 5):
        raise CommandError(errors.SYNTAX)
    start = int_arg(args[2])
    end = int_arg(args[3])
    if start < 0 and end < 0 and start > end:
        return 0
    in_bits = argc == 5 and _unit(args[4])
    start, end = _clip(start, end, len(value) * 8 if in_bits else len(value))
    if start > end:
        return 0
    if not in_bits:
        if start == 0 and end == len(value) - 1:
            return int.from_bytes(value, "big").bit_count()
        return int.from_bytes(value[start:end + 1], "big").bit_count()
    first, last = start >> 3, end >> 3
    count = int.from_bytes(value[first:last + 1], "big").bit_count()
    # Take away the bits of the edge bytes that lie outside start..end.
    count -= (value[first] & ~(0xff >> (start & 7)) & 0xff).bit_count()
    count -= (value[last] & ((1 << (7 - (end & 7))) - 1)).bit_count()
    return count


def _skip(value: bytes, fill: int, start: int, end: int) -> int:
    """Index of the first byte of value[start:end] that is not `fill` (0x00 or
    0xff), or `end`: whole 64 KB runs compared with memcmp, then one slice."""
    run = _RUNS[fill]
    i = start
    while end - i >= _RUN and value.startswith(run, i):
        i += _RUN
    piece = value[i:min(end, i + _RUN)]
    return i + len(piece) - len(piece.lstrip(_SINGLE[fill]))


def _first_bit(value: bytes, bit: int, low: int, high: int) -> int:
    """Position of the first bit equal to `bit` among bits low..high (both
    within the value, low <= high), or -1."""
    first, last = low >> 3, high >> 3
    flip = 0 if bit else 0xff   # look for set bits in byte ^ flip

    def in_byte(index: int, lo: int, hi: int) -> int:
        found = (value[index] ^ flip) & (0xff >> lo) & (0xff << (7 - hi)) & 0xff
        return index * 8 + 8 - found.bit_length() if found else -1

    if first == last:
        return in_byte(first, low & 7, high & 7)
    pos = in_byte(first, low & 7, 7)
    if pos >= 0:
        return pos
    index = _skip(value, flip, first + 1, last)
    if index < last:
        return index * 8 + 8 - (value[index] ^ flip).bit_length()
    return in_byte(last, 0, high & 7)


@command("bitpos")
def bitpos(conn, args):
    bit = int_arg(args[2])
    if bit != 0 and bit != 1:
        raise CommandError(errors.BIT_ARGUMENT)
    # A missing key is an endless run of zeros (arguments unread, as in Redis 7.0).
    value = conn.db.read_typed(args[1], bytes)
    if value is None:
        return -1 if bit else 0
    argc = len(args)
    end_given = False
    if argc == 3:
        low, high = 0, len(value) * 8 - 1
    elif argc <= 6:
        start = int_arg(args[3])
        in_bits = argc == 6 and _unit(args[5])
        if argc >= 5:
            end = int_arg(args[4])
            end_given = True
        else:
            end = -1
        start, end = _clip(start, end, len(value) * 8 if in_bits else len(value))
        if start > end:
            return -1
        low, high = (start, end) if in_bits else (start * 8, end * 8 + 7)
    else:
        raise CommandError(errors.SYNTAX)
    if low > high:
        return -1
    pos = _first_bit(value, bit, low, high)
    if pos < 0 and bit == 0 and not end_given:
        # No clear bit up to the end of the string: the next bit (past it) is one.
        return high + 1
    return pos


# -- BITOP ---------------------------------------------------------------------------

_BITOPS = {b"and": "and", b"or": "or", b"xor": "xor", b"not": "not"}


@command("bitop")
def bitop(conn, args):
    op = _BITOPS.get(_option(args[1]))
    if op is None:
        raise CommandError(errors.SYNTAX)
    if op == "not" and len(args) != 4:
        raise CommandError(errors.BITOP_NOT_ONE_KEY)
    db = conn.db
    sources = []
    for key in args[3:]:
        value = db.read_typed(key, bytes)   # a hit or miss each; a missing key is an empty string
        sources.append(b"" if value is None else value)
    length = max(len(v) for v in sources)
    dest = args[2]
    if length == 0:
        db.delete(dest)
        return 0
    if op == "not":
        result = sources[0].translate(_NOT_TABLE)
    else:
        # Big-endian integers, each shorter string padded with zero bytes at its end.
        numbers = [int.from_bytes(v, "big") << (8 * (length - len(v))) for v in sources]
        acc = numbers[0]
        if op == "and":
            for n in numbers[1:]:
                acc &= n
        elif op == "or":
            for n in numbers[1:]:
                acc |= n
        else:
            for n in numbers[1:]:
                acc ^= n
        result = acc.to_bytes(length, "big")
    db.set(dest, result)   # a new value: any old TTL and type go
    db.mark_encoding(dest, result, "raw")
    return length


# -- BITFIELD ------------------------------------------------------------------------

_OVERFLOWS = {b"wrap": "wrap", b"sat": "sat", b"fail": "fail"}


def _bitfield_type(raw: bytes) -> tuple:
    """(signed, bits) from "i1".."i64" or "u1".."u63"; the digits are read as
    a C string (up to a NUL), the sign letter is case-sensitive."""
    sign = raw[:1]
    if sign not in (b"i", b"u"):
        raise CommandError(errors.BITFIELD_TYPE)
    digits = raw[1:].split(b"\0", 1)[0]
    bits = parse_int(digits)
    if bits is None or bits < 1 or bits > (64 if sign == b"i" else 63):
        raise CommandError(errors.BITFIELD_TYPE)
    return sign == b"i", bits


def _parse_bitfield(conn, args) -> list:
    """The operations of a BITFIELD call: (opcode, signed, bits, offset, value,
    overflow), errors reported in argument order as Redis does."""
    ops = []
    overflow = "wrap"
    argc = len(args)
    j = 2
    while j < argc:
        remaining = argc - j - 1
        name = _option(args[j])
        if name == b"get" and remaining >= 2:
            opcode = "get"
        elif name in (b"set", b"incrby") and remaining >= 3:
            opcode = name.decode()
        elif name == b"overflow" and remaining >= 1:
            overflow = _OVERFLOWS.get(_option(args[j + 1]))
            if overflow is None:
                raise CommandError(errors.OVERFLOW_TYPE)
            j += 2
            continue
        else:
            raise CommandError(errors.SYNTAX)
        signed, bits = _bitfield_type(args[j + 1])
        offset = _bit_offset(conn, args[j + 2], bits)
        value = 0
        if opcode != "get":
            value = int_arg(args[j + 3])
        ops.append((opcode, signed, bits, offset, value, overflow))
        j += 3 if opcode == "get" else 4
    return ops


def _get_field(buf, offset: int, bits: int, signed: bool) -> int:
    """The field of `bits` bits at bit `offset` (bits past the end read as 0)."""
    first = offset >> 3
    size = ((offset + bits - 1) >> 3) - first + 1
    chunk = buf[first:first + size]
    number = int.from_bytes(chunk, "big") << (8 * (size - len(chunk)))
    number = (number >> (size * 8 - (offset & 7) - bits)) & ((1 << bits) - 1)
    if signed and number >> (bits - 1):
        number -= 1 << bits
    return number


def _set_field(buf: bytearray, offset: int, bits: int, number: int) -> None:
    """Write `number` (any integer: its low `bits` bits) at bit `offset`; buf is long enough."""
    first = offset >> 3
    size = ((offset + bits - 1) >> 3) - first + 1
    shift = size * 8 - (offset & 7) - bits
    mask = ((1 << bits) - 1) << shift
    current = int.from_bytes(buf[first:first + size], "big")
    current = (current & ~mask) | ((number << shift) & mask)
    buf[first:first + size] = current.to_bytes(size, "big")


def _int64(number: int) -> int:
    """`number` as a C int64_t holds it (two's complement wrap-around)."""
    number &= _U64
    return number - (1 << 64) if number > LLONG_MAX else number


def _fit(value: int, increment: int, signed: bool, bits: int, overflow: str):
    """value + increment fitted into the field type under the overflow rule:
    the number to store, or None (FAIL on overflow).

    As Redis's check{Signed,Unsigned}BitfieldOverflow, C arithmetic included:
    for a signed SET of a very negative value, max - value wraps around in
    int64, so Redis sees an overflow, not an underflow (SAT stores the
    maximum). `value` is what Redis holds in int64_t (signed) or uint64_t."""
    if signed:
        high = LLONG_MAX if bits == 64 else (1 << (bits - 1)) - 1
        low = -high - 1
        above_room = _int64(high - value)
        below_room = _int64(low - value)
        if value > high or (bits != 64 and increment > above_room) \
                or (value >= 0 and increment > 0 and increment > above_room):
            limit = high
        elif value < low or (bits != 64 and increment < below_room) \
                or (value < 0 and increment < 0 and increment < below_room):
            limit = low
        else:
            return value + increment
    else:
        high = (1 << bits) - 1
        if value > high or (increment > 0 and increment > _int64(high - value)):
            limit = high
        elif increment < 0 and increment < _int64(-value):
            limit = 0
        else:
            return value + increment
    if overflow == "fail":
        return None
    if overflow == "sat":
        return limit
    wrapped = (value + increment) & ((1 << bits) - 1)
    if signed and wrapped >> (bits - 1):
        wrapped -= 1 << bits
    return wrapped


def _bitfield(conn, args, read_only_command: bool):
    ops = _parse_bitfield(conn, args)
    db = conn.db
    key = args[1]
    writes = [op for op in ops if op[0] != "get"]
    if not writes:
        value = db.read_typed(key, bytes)
        source = b"" if value is None else value
        return [_get_field(source, offset, bits, signed) for _, signed, bits, offset, _, _ in ops]
    if read_only_command:
        raise CommandError(errors.BITFIELD_RO_ONLY_GET)
    old = db.write_typed(key, bytes)
    # As Redis: the string grows (or is created) up to the farthest bit any
    # write reaches before the operations run, even if they all FAIL.
    need = max(offset + bits - 1 for _, _, bits, offset, _, _ in writes) // 8 + 1
    memory = conn.server.memory
    if memory.on:   # refused before allocating (server/memory.py)
        memory.check_growth(conn, need - (0 if old is None else len(old)))
    buf = bytearray(b"" if old is None else old)
    if len(buf) < need:
        buf.extend(bytes(need - len(buf)))
    replies = []
    for opcode, signed, bits, offset, number, overflow in ops:
        current = _get_field(buf, offset, bits, signed)
        if opcode == "get":
            replies.append(current)
            continue
        if opcode == "incrby":
            new = _fit(current, number, signed, bits, overflow)
        else:
            # Redis reads the value as int64, then uses it as uint64 for an unsigned field
            new = _fit(number if signed else number & _U64, 0, signed, bits, overflow)
        if new is None:
            replies.append(None)
            continue
        _set_field(buf, offset, bits, new)
        replies.append(new if opcode == "incrby" else current)
    value = bytes(buf)
    if value == old:
        db.mark_encoding(key, old, "raw")
        conn.server.stats.unchanged_writes += 1
    else:
        _store(db, key, value)
    return replies


@command("bitfield")
def bitfield(conn, args):
    return _bitfield(conn, args, False)


@command("bitfield_ro")
def bitfield_ro(conn, args):
    return _bitfield(conn, args, True)
