"""Redis's DUMP payload: one value in the RDB encoding, as DUMP and RESTORE move it.

    payload = type byte + RDB value + RDB version (2 bytes LE) + CRC64 (8 bytes LE)

The CRC64 is Redis's (crc64.c: Jones polynomial, reflected, init 0) of all
bytes before it. So values move between redis-server and tenantkv.

What DUMP emits (`dump_steps`), as redis-server 7.0 does (RDB version 10):
a string as an int-encoded string when it is a canonical int32 of at most
11 characters, else raw, LZF-compressed when longer than 20 bytes and LZF
saves at least 4 of them (only up to LZF_MAX, 8 KB: Python's LZF runs at
~1 MB/s and is one step; a longer string, or a list node holding one big
element, is stored raw, which RESTORE reads on both servers);
a list as QUICKLIST_2 of listpacks cut as a list built by RPUSH is (8 KB
nodes, list-max-listpack-size -2); an IntSet as INTSET; any other set as
SET (7.0 has no set listpack); a PackedHash as HASH_LISTPACK, a dict as
HASH; a PackedZSet as ZSET_LISTPACK, a ZSet as ZSET_2 (highest first, as
Redis's skiplist walk); a Stream as STREAM_LISTPACKS_2, its live entries in
listpack nodes cut as XADD cuts them. Where Redis's bytes depend on its
hash tables' order (SET, HASH) or on a value's history (a list's node cuts
after pushes at the head, a stream's XDEL tombstones), the payload differs
from redis-server's but loads the same.

What RESTORE reads (`load_steps`): every value type encoding of RDB 1..11
(Redis up to 7.2): STRING (int, LZF), LIST, SET, ZSET (string scores),
ZSET_2, HASH, HASH_ZIPMAP, LIST_ZIPLIST, SET_INTSET, ZSET_ZIPLIST,
HASH_ZIPLIST, LIST_QUICKLIST, HASH_LISTPACK, ZSET_LISTPACK,
LIST_QUICKLIST_2, SET_LISTPACK, STREAM_LISTPACKS (_2, _3) with their
consumer groups (keyspace/streamgroups.py; 7.2's consumer active time is
read and dropped). Not modules.

Validation, as deep as Redis's sanitize-dump-payload yes and as the kdb
loader's (persistence/kdb/format.py): every length is checked against the
bytes left before anything is sliced or allocated (a claimed 2**60 costs
nothing), an LZF length beyond what its input can expand to is refused
before decompressing, listpacks / ziplists / zipmaps / intsets are walked
whole (header sizes, counts, back lengths, terminators), and the value must
be one a command could have made: not empty (a stream may be), no repeated member or field,
no NaN score, no byte left over. Any failure is RdbError (RESTORE's "Bad
data format"). The decoded size is counted against `room` (the caller's
memory quota / maxmemory) as it grows: RoomExceeded.

Both directions are generators (dispatch/slices.py): they yield every few
thousand elements or 64 KB of checksum, so a big value does not hold the
loop; `run_whole` drives one to its end.
"""

import struct
from array import array
from itertools import chain

from tenantkv.keyspace.database import shared
from tenantkv.keyspace.hashpack import PackedHash, compact_hash
from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.packedset import PackedSet, compact_set
from tenantkv.keyspace import streamgroups
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.stream import MAX_SEQ, Stream
from tenantkv.keyspace.zset import PACKED_MAX_BYTES, PackedZSet, ZSet
from tenantkv.util.numbers import parse_float

RDB_VERSION = 10        # what DUMP writes: redis-server 7.0's
READ_VERSION = 11       # the newest RESTORE reads: 7.2's (adds SET_LISTPACK)

# Value types (rdb.h)
STRING, LIST, SET, ZSET, HASH, ZSET_2 = 0, 1, 2, 3, 4, 5
MODULE, MODULE_2 = 6, 7
HASH_ZIPMAP, LIST_ZIPLIST, SET_INTSET, ZSET_ZIPLIST, HASH_ZIPLIST = 9, 10, 11, 12, 13
LIST_QUICKLIST, STREAM_LISTPACKS, HASH_LISTPACK, ZSET_LISTPACK = 14, 15, 16, 17
LIST_QUICKLIST_2, STREAM_LISTPACKS_2, SET_LISTPACK, STREAM_LISTPACKS_3 = 18, 19, 20, 21

# Quicklist 2 node containers
_PLAIN, _PACKED = 1, 2

STEP = 2048             # elements between two yields
CRC_STEP = 1 << 16      # bytes of checksum between two yields
LZF_MAX = 8192          # DUMP compresses strings up to this size: ~7 ms (see the docstring)
DECODED_PER_ELEMENT = 64   # what the room counts per decoded element beyond its bytes


class RdbError(Exception):
    """The payload is not a value Redis or tenantkv could have dumped."""


class VersionError(Exception):
    """The footer's version is newer than READ_VERSION, or the CRC is wrong."""


class RoomExceeded(Exception):
    """The decoded value would pass the room it was given."""


def run_whole(steps):
    """Drive a generator of this module to its end: its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


# -- CRC64 (Redis's crc64.c: Jones, reflected in and out, init 0, xorout 0) -------

def _crc_table() -> list:
    poly = 0x95AC9329AC4BC9B5   # 0xad93d23594c935a9 reflected
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC = _crc_table()


def _slice_tables(t0: list) -> list:
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[b] >> 8) ^ t0[prev[b] & 0xFF] for b in range(256)])
    return tables


# Slicing-by-8 (crcspeed's method) with 16-bit tables: eight bytes per step
# of the Python loop in four lookups (~20 MB/s idle; a byte at a time ~11).
# The four tables (2 MB as arrays of uint64) are made on first use (~60 ms).
_T = _slice_tables(_CRC)
_WIDE: list = []
_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def _wide_tables() -> list:
    if not _WIDE:
        for k in range(4):
            low, high = _T[7 - 2 * k], _T[6 - 2 * k]
            _WIDE.append(array("Q", [low[x & 0xFF] ^ high[x >> 8] for x in range(65536)]))
    return _WIDE


def _crc_chunk(view, crc: int) -> int:
    """crc64 over a memoryview (its words, then its last bytes)."""
    size = len(view)
    words = size & ~7 if _LITTLE and size >= 16 else 0
    if words:
        u0, u1, u2, u3 = _WIDE or _wide_tables()
        for w in view[:words].cast("Q"):
            crc ^= w
            crc = (u0[crc & 0xFFFF] ^ u1[(crc >> 16) & 0xFFFF]
                   ^ u2[(crc >> 32) & 0xFFFF] ^ u3[crc >> 48])
    if words != size:
        t0 = _CRC
        for byte in view[words:]:
            crc = t0[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def crc64_steps(data, crc: int = 0):
    """Redis's crc64(crc, data): a generator yielding every CRC_STEP bytes
    (a multiple of 8: only the last chunk has bytes past its words)."""
    view = memoryview(data)
    for at in range(0, len(view), CRC_STEP):
        crc = _crc_chunk(view[at:at + CRC_STEP], crc)
        yield
    return crc


def crc64(data, crc: int = 0) -> int:
    if len(data) <= CRC_STEP:
        return _crc_chunk(memoryview(data), crc)
    return run_whole(crc64_steps(data, crc))


# -- LZF (Redis's lzf_c.c / lzf_d.c) -------------------------------------------------

LZF_TOKENS = 1 << 14   # LZF control tokens decoded between two yields


def lzf_decompress_steps(data: bytes, size: int):
    """Generator: the `size` bytes `data` decompresses to; RdbError if it
    does not decompress to exactly that (a back reference before the
    start, a run past the end of either buffer)."""
    out = bytearray()
    i, n = 0, len(data)
    tokens = 0
    while i < n:
        tokens += 1
        if not tokens % LZF_TOKENS:
            yield
        ctrl = data[i]
        i += 1
        if ctrl < 32:   # a literal run of ctrl + 1 bytes
            run = ctrl + 1
            if i + run > n or len(out) + run > size:
                raise RdbError("LZF literal run out of bounds")
            out += data[i:i + run]
            i += run
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= n:
                raise RdbError("LZF truncated")
            length += data[i]
            i += 1
        length += 2
        if i >= n:
            raise RdbError("LZF truncated")
        back = ((ctrl & 0x1F) << 8) + data[i] + 1
        i += 1
        start = len(out) - back
        if start < 0 or len(out) + length > size:
            raise RdbError("LZF back reference out of bounds")
        if back >= length:
            out += out[start:start + length]
        else:   # overlapping: the last `back` bytes repeated
            chunk = out[start:]
            out += (chunk * (length // back + 1))[:length]
    if len(out) != size:
        raise RdbError("LZF length mismatch")
    return bytes(out)


def lzf_decompress(data: bytes, size: int) -> bytes:
    return run_whole(lzf_decompress_steps(data, size))


class _Slots(dict):
    __slots__ = ()

    def __missing__(self, slot) -> int:
        return 0


def lzf_compress(data: bytes, out_len: int):
    """lzf_compress(data, out_len) as Redis's lzf_c.c (HLOG 16, VERY_FAST,
    a zeroed hash table): the compressed bytes, or None when they would
    not fit in `out_len` bytes."""
    in_len = len(data)
    if not in_len or not out_len:
        return None
    # slot -> position, 0: empty (a match never starts at offset 0); a dict
    # for a short input, where making 64K slots would cost more than the work
    htab = [0] * 65536 if in_len > 1024 else _Slots()
    op = bytearray(out_len + 3)   # room for the C code's op[-lit-1] writes
    o = 1   # the start of a literal run
    lit = 0
    ip = 0
    in_end = in_len
    hval = (data[0] << 8) | data[1] if in_len > 1 else 0
    while ip < in_end - 2:
        hval = ((hval << 8) | data[ip + 2]) & 0xFFFFFFFF
        slot = ((hval >> 8) - hval * 5) & 0xFFFF
        ref = htab[slot]
        htab[slot] = ip
        off = ip - ref - 1
        if ref > 0 and off < 8192 and data[ref + 2] == data[ip + 2] \
                and data[ref] == data[ip] and data[ref + 1] == data[ip + 1]:
            length = 2
            maxlen = in_end - ip - length
            if maxlen > 264:
                maxlen = 264
            if o + 4 >= out_len and o - (not lit) + 4 >= out_len:
                return None
            op[o - lit - 1] = lit - 1 & 0xFF
            o -= not lit
            matched = True
            if maxlen > 16:   # the C code's unrolled compares: no maxlen check
                for _ in range(16):
                    length += 1
                    if data[ref + length] != data[ip + length]:
                        matched = False
                        break
            if matched:
                while True:
                    length += 1
                    if length >= maxlen or data[ref + length] != data[ip + length]:
                        break
            length -= 2
            ip += 1
            if length < 7:
                op[o] = (off >> 8) + (length << 5)
                o += 1
            else:
                op[o] = (off >> 8) + (7 << 5)
                op[o + 1] = length - 7
                o += 2
            op[o] = off & 0xFF
            o += 1
            lit = 0
            o += 1
            ip += length + 1
            if ip >= in_end - 2:
                break
            ip -= 2
            hval = (data[ip] << 8) | data[ip + 1]
            hval = ((hval << 8) | data[ip + 2]) & 0xFFFFFFFF
            htab[((hval >> 8) - hval * 5) & 0xFFFF] = ip
            ip += 1
            hval = ((hval << 8) | data[ip + 2]) & 0xFFFFFFFF
            htab[((hval >> 8) - hval * 5) & 0xFFFF] = ip
            ip += 1
        else:
            if o >= out_len:
                return None
            lit += 1
            op[o] = data[ip]
            o += 1
            ip += 1
            if lit == 32:
                op[o - lit - 1] = lit - 1
                lit = 0
                o += 1
    if o + 3 > out_len:
        return None
    while ip < in_end:
        lit += 1
        op[o] = data[ip]
        o += 1
        ip += 1
        if lit == 32:
            op[o - lit - 1] = lit - 1
            lit = 0
            o += 1
    op[o - lit - 1] = lit - 1 & 0xFF
    o -= not lit
    return bytes(op[:o])


# -- encoding (DUMP) ---------------------------------------------------------------

def _len(n: int) -> bytes:
    if n < 64:
        return bytes((n,))
    if n < 16384:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def _canonical_int(s: bytes):
    """The int `s` is the canonical decimal form of (string2ll), or None."""
    if not s or len(s) > 20:
        return None
    first = s[0]
    if first == 45:   # '-'
        if len(s) == 1 or s[1] == 48 or not s[1:].isdigit():
            return None
    elif not s.isdigit() or (first == 48 and len(s) > 1):
        return None
    value = int(s)
    if -(1 << 63) <= value < (1 << 63):
        return value
    return None


def _string(s: bytes) -> bytes:
    """rdbSaveRawString: int-encoded, LZF, or raw."""
    n = len(s)
    if n <= 11:
        value = _canonical_int(s)
        if value is not None:
            if -128 <= value <= 127:
                return b"\xc0" + struct.pack("<b", value)
            if -32768 <= value <= 32767:
                return b"\xc1" + struct.pack("<h", value)
            if -(1 << 31) <= value < (1 << 31):
                return b"\xc2" + struct.pack("<i", value)
    if 20 < n <= LZF_MAX:
        packed = lzf_compress(s, n - 4)
        if packed is not None:
            return b"\xc3" + _len(len(packed)) + _len(n) + packed
    return _len(n) + s


def _backlen(size: int) -> bytes:
    if size <= 127:
        return bytes((size,))
    if size < 16383:
        return bytes((size >> 7, (size & 127) | 128))
    if size < 2097151:
        return bytes((size >> 14, ((size >> 7) & 127) | 128, (size & 127) | 128))
    if size < 268435455:
        return bytes((size >> 21, ((size >> 14) & 127) | 128, ((size >> 7) & 127) | 128,
                      (size & 127) | 128))
    return bytes((size >> 28, ((size >> 21) & 127) | 128, ((size >> 14) & 127) | 128,
                  ((size >> 7) & 127) | 128, (size & 127) | 128))


def _lp_int(v: int) -> bytes:
    if 0 <= v <= 127:
        return bytes((v, 1))
    if -4096 <= v <= 4095:
        if v < 0:
            v += 1 << 13
        return bytes(((v >> 8) | 0xC0, v & 0xFF, 2))
    if -32768 <= v <= 32767:
        return b"\xf1" + struct.pack("<h", v) + b"\x03"
    if -(1 << 23) <= v < (1 << 23):
        return b"\xf2" + (v & 0xFFFFFF).to_bytes(3, "little") + b"\x04"
    if -(1 << 31) <= v < (1 << 31):
        return b"\xf3" + struct.pack("<i", v) + b"\x05"
    return b"\xf4" + struct.pack("<q", v) + b"\x09"


def lp_entry(s: bytes) -> bytes:
    """One listpack entry (encoding, data, back length) as lpAppend makes it."""
    value = _canonical_int(s)
    if value is not None:
        return _lp_int(value)
    n = len(s)
    if n < 64:
        head = bytes((0x80 | n,))
    elif n < 4096:
        head = bytes((0xE0 | (n >> 8), n & 0xFF))
    else:
        head = b"\xf0" + n.to_bytes(4, "little")
    return head + s + _backlen(len(head) + n)


def listpack(entries: list) -> bytes:
    """A listpack of already encoded entries."""
    body = b"".join(entries)
    count = len(entries)
    return ((len(body) + 7).to_bytes(4, "little") + min(count, 65535).to_bytes(2, "little")
            + body + b"\xff")


def _score_string(score: float) -> bytes:
    """A listpack zset's score as zzlInsertAt stores it (d2string of 7.0)."""
    if score != score:
        return b"nan"
    if -(1 << 62) <= score <= (1 << 62) and score == int(score):
        return b"%d" % int(score)
    if score in (float("inf"), float("-inf")):
        return b"inf" if score > 0 else b"-inf"
    return b"%.17g" % score


_QL_LIMIT = 8192   # list-max-listpack-size -2
_QL_OVERHEAD = 8   # SIZE_ESTIMATE_OVERHEAD


def _list_steps(value):
    items = iter(value)   # a QuickList decodes a chunk at a time
    nodes = []
    entries: list = []
    size = 7   # an empty listpack's bytes
    for n, item in enumerate(items, 1):
        if entries and size + len(item) + _QL_OVERHEAD > _QL_LIMIT:
            nodes.append(listpack(entries))
            entries, size = [], 7
        entry = lp_entry(item)
        entries.append(entry)
        size += len(entry)
        if not n % STEP:
            yield
    if entries:
        nodes.append(listpack(entries))
    out = [bytes((LIST_QUICKLIST_2,)), _len(len(nodes))]
    for node in nodes:   # up to 8 KB each: LZF takes up to ~8 ms a node
        out.append(b"\x02")
        out.append(_string(node))
        yield
    return out


LZF_WORK = 4096   # bytes LZF may compress between two yields (~4 ms)


def _strings_steps(out: list, items):
    """out.append(_string(item)) for each item, yielding every STEP items
    or LZF_WORK bytes compressed."""
    work = 0
    for n, item in enumerate(items, 1):
        out.append(_string(item))
        if 20 < len(item) <= LZF_MAX:
            work += len(item)
        if work > LZF_WORK or not n % STEP:
            work = 0
            yield


_STREAM_NODE_BYTES = 4096     # stream-node-max-bytes, Redis's default
_STREAM_NODE_ENTRIES = 100    # stream-node-max-entries
_SAMEFIELDS, _DELETED = 2, 1  # stream entry flags (t_stream.c)


def _id_len(sid: int) -> bytes:
    return _len(sid >> 64) + _len(sid & MAX_SEQ)


def _stream_steps(value):
    """STREAM_LISTPACKS_2 as redis-server 7.0 writes it: the live entries
    cut into listpack nodes as XADD cuts them (4096 bytes, 100 entries),
    so a stream built by XADD alone has Redis's bytes. (XDEL leaves
    tombstones in Redis's nodes; here deleted entries are gone.)"""
    nodes = []   # (master id, [entries])
    master = None
    fields_of_master: list = []
    entries: list = []
    size = 0
    count = 0

    def close():
        head = [_lp_int(count), _lp_int(0), _lp_int(len(fields_of_master))]
        head += [lp_entry(f) for f in fields_of_master]
        head.append(_lp_int(0))
        nodes.append((master, listpack(head + entries)))

    for n, (sid, fields) in enumerate(value.entries(), 1):
        names = fields[0::2]
        total = sum(map(len, fields))
        if master is None or size + total >= _STREAM_NODE_BYTES or count >= _STREAM_NODE_ENTRIES:
            if master is not None:
                close()
            master, fields_of_master, entries, count = sid, names, [], 0
            size = len(listpack([_lp_int(1), _lp_int(0), _lp_int(len(names))]
                                + [lp_entry(f) for f in names] + [_lp_int(0)]))
        same = names == fields_of_master
        ms_diff = (sid >> 64) - (master >> 64)
        seq_diff = ((sid & MAX_SEQ) - (master & MAX_SEQ)) & MAX_SEQ
        if seq_diff >= 1 << 63:
            seq_diff -= 1 << 64   # stored as int64, as Redis's lpAppendInteger does
        parts = [_lp_int(_SAMEFIELDS if same else 0), _lp_int(ms_diff), _lp_int(seq_diff)]
        if same:
            parts += [lp_entry(v) for v in fields[1::2]]
            lp_count = 3 + len(names)
        else:
            parts.append(_lp_int(len(names)))
            parts += [lp_entry(x) for x in fields]
            lp_count = 3 + len(names) + len(names) + 1
        parts.append(_lp_int(lp_count))
        entries += parts
        size += sum(map(len, parts))
        count += 1
        if not n % STEP:
            yield
    if master is not None:
        close()
    out = [bytes((STREAM_LISTPACKS_2,)), _len(len(nodes))]
    for sid, lp in nodes:
        out.append(_string(struct.pack(">QQ", sid >> 64, sid & MAX_SEQ)))
        out.append(_string(lp))
        yield
    out.append(_len(value.length))
    out.append(_id_len(value.last_id))
    out.append(_id_len(value.first_id()))
    out.append(_id_len(value.max_deleted_id))
    out.append(_len(value.entries_added))
    _groups_out(value.groups or {}, out)
    return out


def _raw_id(sid: int) -> bytes:
    return struct.pack(">QQ", sid >> 64, sid & MAX_SEQ)


def _groups_out(groups: dict, out: list) -> None:
    """The consumer groups as rdbSaveObject writes them (7.0, RDB 10): in
    rax order (memcmp of the names), each with its last id, entries-read
    (-1 as 2**64-1), its PEL (raw id, delivery time, count) and its
    consumers (name, seen time, the ids of their PEL)."""
    out.append(_len(len(groups)))
    for name in sorted(groups):
        group = groups[name]
        out.append(_string(name))
        out.append(_id_len(group.last_id))
        out.append(_len(group.entries_read & MAX_SEQ))
        out.append(_len(len(group.pel)))
        for sid, nack in group.pel.items():
            out.append(_raw_id(sid))
            out.append(struct.pack("<q", nack.delivery_time))
            out.append(_len(nack.delivery_count))
        out.append(_len(len(group.consumers)))
        for cname in sorted(group.consumers):
            consumer = group.consumers[cname]
            out.append(_string(cname))
            out.append(struct.pack("<q", consumer.seen_time))
            out.append(_len(len(consumer.pel)))
            out.extend(map(_raw_id, consumer.pel))


# The value classes DUMP has an RDB form for.
DUMPABLE = frozenset((bytes, QuickList, IntSet, set, PackedSet, PackedHash, dict, PackedZSet,
                      ZSet, Stream))


def dump_steps(value):
    """Generator: the DUMP payload of `value`, a DUMPABLE value."""
    kind = type(value)
    if kind is bytes:
        out = [b"\x00", _string(value)]
    elif kind is QuickList:
        out = yield from _list_steps(value)
    elif kind is IntSet:
        width = value.itemsize
        numbers = value.numbers()
        blob = (width.to_bytes(4, "little") + len(numbers).to_bytes(4, "little")
                + struct.pack("<%d%s" % (len(numbers), {2: "h", 4: "i", 8: "q"}[width]), *numbers))
        out = [bytes((SET_INTSET,)), _string(blob)]
    elif kind is set or kind is PackedSet:
        members = list(value)
        out = [bytes((SET,)), _len(len(members))]
        yield from _strings_steps(out, members)
    elif kind is PackedHash:
        entries = []
        for field, val in value.items():
            entries.append(lp_entry(field))
            entries.append(lp_entry(val))
        out = [bytes((HASH_LISTPACK,)), _string(listpack(entries))]
    elif kind is dict:
        out = [bytes((HASH,)), _len(len(value))]
        yield from _strings_steps(out, chain.from_iterable(list(value.items())))
    elif kind is PackedZSet:
        entries = []
        for member, score in value.items():
            entries.append(lp_entry(member))
            entries.append(lp_entry(_score_string(score)))
        out = [bytes((ZSET_LISTPACK,)), _string(listpack(entries))]
    elif kind is ZSet:
        # highest first, as Redis walks its skiplist from the tail; by rank
        # windows of STEP (the whole reversed list of 2M pairs took ~0.5 s)
        high = len(value)
        out = [bytes((ZSET_2,)), _len(high)]
        pack = struct.Struct("<d").pack
        work = 0
        while high > 0:
            low = max(0, high - STEP)
            for score, member in value.pairs(low, high, reverse=True):
                out.append(_string(member))
                out.append(pack(score))
                if 20 < len(member) <= LZF_MAX:
                    work += len(member)
                    if work > LZF_WORK:
                        work = 0
                        yield
            high = low
            yield
    elif kind is Stream:
        out = yield from _stream_steps(value)
    else:
        raise TypeError("DUMP of a %s is not supported" % kind.__name__)
    out.append(RDB_VERSION.to_bytes(2, "little"))
    body = b"".join(out)
    crc = yield from crc64_steps(body)
    return body + crc.to_bytes(8, "little")


# -- decoding (RESTORE) ---------------------------------------------------------------

def verify_steps(payload: bytes):
    """Generator: VersionError unless the footer's version is one this
    server reads and the CRC64 matches (verifyDumpPayload)."""
    if len(payload) < 10:
        raise VersionError()
    version = int.from_bytes(payload[-10:-8], "little")
    if version > READ_VERSION:
        raise VersionError()
    body = memoryview(payload)[:-8]
    if len(body) <= CRC_STEP:
        crc = _crc_chunk(body, 0)
    else:
        crc = yield from crc64_steps(body)
    if crc != int.from_bytes(payload[-8:], "little"):
        raise VersionError()
    return version


class _In:
    """Bounds-checked reads of data[pos:end]; counts the decoded bytes
    against `room`."""
    __slots__ = ("data", "pos", "end", "room", "max_string")

    def __init__(self, data: bytes, end: int, room, max_string: int) -> None:
        self.data, self.pos, self.end = data, 0, end
        self.room = room
        self.max_string = max_string

    def spend(self, size: int) -> None:
        if self.room is not None:
            self.room -= size
            if self.room < 0:
                raise RoomExceeded()

    def take(self, n: int) -> bytes:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise RdbError("%d bytes needed, %d left" % (n, self.end - start))
        self.pos = start + n
        return self.data[start:start + n]

    def byte(self) -> int:
        if self.pos >= self.end:
            raise RdbError("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def length(self, encoded_ok: bool = False):
        """rdbLoadLen: (length, is_encoded)."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            if not encoded_ok:
                raise RdbError("an encoded length where a length is needed")
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise RdbError("unknown length encoding 0x%02x" % first)

    def count(self, per_element: int = 1) -> int:
        """A number of elements: each takes at least `per_element` bytes, so
        more than the bytes left allow cannot be (no loop runs on a
        claimed 2**60)."""
        n = self.length()[0]
        if n * per_element > self.end - self.pos:
            raise RdbError("a count of %d with %d bytes left" % (n, self.end - self.pos))
        return n

    def string(self):
        """rdbGenericLoadStringObject: int-encoded, LZF or raw. The plain
        form returns bytes; an LZF one a generator (decompressed in steps)."""
        n, encoded = self.length(True)
        if not encoded:
            if n > self.max_string:
                raise RdbError("string longer than proto-max-bulk-len")
            value = self.take(n)
            self.spend(n)
            return value
        if n == 0:
            return b"%d" % struct.unpack("<b", self.take(1))[0]
        if n == 1:
            return b"%d" % struct.unpack("<h", self.take(2))[0]
        if n == 2:
            return b"%d" % struct.unpack("<i", self.take(4))[0]
        if n == 3:
            clen = self.length()[0]
            size = self.length()[0]
            # One control byte of 3 makes at most 264 bytes: a longer claim is a lie.
            if size == 0 or clen == 0 or size > clen * 88 or size > self.max_string:
                raise RdbError("bad LZF lengths")
            packed = self.take(clen)
            self.spend(size)
            return lzf_decompress_steps(packed, size)
        raise RdbError("unknown string encoding %d" % n)

    def string_steps(self):
        """Generator: string(), an LZF one decompressed in steps."""
        value = self.string()
        if type(value) is not bytes:
            value = yield from value
        return value

    def double_string(self) -> float:
        """rdbLoadDoubleValue: a length byte (253 NaN, 254 +inf, 255 -inf), then ASCII."""
        n = self.byte()
        if n == 253:
            return float("nan")
        if n == 254:
            return float("inf")
        if n == 255:
            return float("-inf")
        value = parse_float(self.take(n))
        if value is None:
            raise RdbError("bad score")
        return value


# -- the small encodings' walkers: generators returning lists of bytes ---------------

def _lp_elements(buf: bytes, spend):
    """The elements of a listpack (lpValidateIntegrity, deep), as bytes."""
    size = len(buf)
    if size < 7 or int.from_bytes(buf[:4], "little") != size or buf[-1] != 0xFF:
        raise RdbError("bad listpack header")
    claimed = int.from_bytes(buf[4:6], "little")
    out = []
    append = out.append
    p = 6
    end = size - 1
    while p < end:
        if out and not len(out) % STEP:
            spend(STEP * DECODED_PER_ELEMENT)
            yield
        first = buf[p]
        if first < 0x80:
            append(b"%d" % first)
            head, data_len = 1, 0
        elif first < 0xC0:
            head, data_len = 1, first & 0x3F
            append(buf[p + 1:p + 1 + data_len])
        elif first < 0xE0:
            if p + 2 > end:
                raise RdbError("listpack truncated")
            v = ((first & 0x1F) << 8) | buf[p + 1]
            if v >= 1 << 12:
                v -= 1 << 13
            append(b"%d" % v)
            head, data_len = 2, 0
        elif first < 0xF0:
            if p + 2 > end:
                raise RdbError("listpack truncated")
            head, data_len = 2, ((first & 0x0F) << 8) | buf[p + 1]
            append(buf[p + 2:p + 2 + data_len])
        elif first == 0xF0:
            if p + 5 > end:
                raise RdbError("listpack truncated")
            head, data_len = 5, int.from_bytes(buf[p + 1:p + 5], "little")
            append(buf[p + 5:p + 5 + data_len])
        elif 0xF1 <= first <= 0xF4:
            width = (2, 3, 4, 8)[first - 0xF1]
            if p + 1 + width > end:
                raise RdbError("listpack truncated")
            append(b"%d" % int.from_bytes(buf[p + 1:p + 1 + width], "little", signed=True))
            head, data_len = 1 + width, 0
        else:
            raise RdbError("bad listpack entry encoding 0x%02x" % first)
        entry = head + data_len
        q = p + entry
        if entry < 128:   # a one-byte back length: the common case, inline
            if q >= end or buf[q] != entry:
                raise RdbError("bad listpack back length")
            p = q + 1
            continue
        back = _backlen(entry)
        if q + len(back) > end or buf[q:q + len(back)] != back:
            raise RdbError("bad listpack back length")
        p = q + len(back)
    if p != end:
        raise RdbError("listpack overrun")
    if claimed != 65535 and claimed != len(out):
        raise RdbError("listpack count mismatch")
    spend(len(out) % STEP * DECODED_PER_ELEMENT)
    return out


_ZL_INT_WIDTH = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}


def _zl_elements(buf: bytes, spend):
    """The elements of a ziplist (ziplistValidateIntegrity, deep), as bytes."""
    size = len(buf)
    if size < 11 or int.from_bytes(buf[:4], "little") != size or buf[-1] != 0xFF:
        raise RdbError("bad ziplist header")
    tail = int.from_bytes(buf[4:8], "little")
    claimed = int.from_bytes(buf[8:10], "little")
    out = []
    append = out.append
    p = 10
    end = size - 1
    prev_size = 0
    last = 10
    while p < end:
        if out and not len(out) % STEP:
            spend(STEP * DECODED_PER_ELEMENT)
            yield
        if buf[p] < 254:
            prevlen, pl = buf[p], 1
        elif buf[p] == 254:
            if p + 5 > end:
                raise RdbError("ziplist truncated")
            prevlen, pl = int.from_bytes(buf[p + 1:p + 5], "little"), 5
        else:
            raise RdbError("bad ziplist prevlen")
        if prevlen != prev_size:
            raise RdbError("ziplist prevlen mismatch")
        q = p + pl
        if q >= end:
            raise RdbError("ziplist truncated")
        enc = buf[q]
        kind = enc >> 6
        if kind == 0:
            head, data_len, text = 1, enc & 0x3F, True
        elif kind == 1:
            if q + 2 > end:
                raise RdbError("ziplist truncated")
            head, data_len, text = 2, ((enc & 0x3F) << 8) | buf[q + 1], True
        elif kind == 2:
            if enc != 0x80 or q + 5 > end:
                raise RdbError("bad ziplist string encoding")
            head, data_len, text = 5, int.from_bytes(buf[q + 1:q + 5], "big"), True
        else:
            text = False
            width = _ZL_INT_WIDTH.get(enc)
            if width is not None:
                head, data_len = 1, width
            elif 0xF1 <= enc <= 0xFD:
                head, data_len = 1, 0
            else:
                raise RdbError("bad ziplist entry encoding 0x%02x" % enc)
        start = q + head
        stop = start + data_len
        if stop > end:
            raise RdbError("ziplist entry out of bounds")
        if text:
            append(buf[start:stop])
        elif data_len:
            append(b"%d" % int.from_bytes(buf[start:stop], "little", signed=True))
        else:
            append(b"%d" % ((enc & 0x0F) - 1))
        last = p
        prev_size = stop - p
        p = stop
    if p != end:
        raise RdbError("ziplist overrun")
    if (tail != last) or (claimed != 65535 and claimed != len(out)):
        raise RdbError("ziplist tail or count mismatch")
    spend(len(out) % STEP * DECODED_PER_ELEMENT)
    return out


def _zipmap_pairs(buf: bytes, spend):
    """A zipmap's fields and values, flat (zipmapValidateIntegrity)."""
    size = len(buf)
    if size < 2 or buf[-1] != 0xFF:
        raise RdbError("bad zipmap")
    out = []
    p = 1
    end = size - 1
    while p < end:
        if out and not len(out) % STEP:
            spend(STEP * DECODED_PER_ELEMENT)
            yield
        for is_value in (False, True):
            if p >= end:
                raise RdbError("zipmap truncated")
            n = buf[p]
            if n < 254:
                p += 1
            elif n == 254:
                if p + 5 > end:
                    raise RdbError("zipmap truncated")
                n = int.from_bytes(buf[p + 1:p + 5], "little")
                p += 5
            else:
                raise RdbError("bad zipmap length")
            free = 0
            if is_value:
                if p >= end:
                    raise RdbError("zipmap truncated")
                free = buf[p]
                p += 1
            if p + n + free > end:
                raise RdbError("zipmap entry out of bounds")
            out.append(buf[p:p + n])
            p += n + free
    if p != end:
        raise RdbError("zipmap overrun")
    spend(len(out) % STEP * DECODED_PER_ELEMENT)
    return out


def _intset_members(buf: bytes, spend):
    """An intset's members as bytes (intsetValidateIntegrity, deep: sorted, distinct)."""
    if len(buf) < 8:
        raise RdbError("bad intset")
    width = int.from_bytes(buf[:4], "little")
    count = int.from_bytes(buf[4:8], "little")
    code = {2: "<h", 4: "<i", 8: "<q"}.get(width)
    if code is None or 8 + count * width != len(buf) or count == 0:
        raise RdbError("bad intset header")
    spend(count * DECODED_PER_ELEMENT)
    out = []
    last = None
    view = memoryview(buf)[8:]
    step = STEP * width
    for at in range(0, len(view), step):
        numbers = [v for (v,) in struct.iter_unpack(code, view[at:at + step])]
        if last is not None and numbers[0] <= last or any(
                a >= b for a, b in zip(numbers, numbers[1:])):
            raise RdbError("intset not sorted")
        last = numbers[-1]
        out.extend(b"%d" % v for v in numbers)
        yield
    return out


def _score(raw: bytes) -> float:
    value = parse_float(raw)
    if value is None or value != value:
        raise RdbError("bad score")
    return value


class Limits:
    """The loading server's encoding limits (config values), Redis's defaults without."""
    __slots__ = ("hash_entries", "hash_value", "set_entries", "set_value", "intset_entries",
                 "zset_entries", "zset_value")

    def __init__(self, values=None) -> None:
        get = (values or {}).get
        self.hash_entries = get((None, "hash-max-listpack-entries"), 128)
        self.hash_value = get((None, "hash-max-listpack-value"), 64)
        self.set_entries = get((None, "set-max-listpack-entries"), 128)
        self.set_value = get((None, "set-max-listpack-value"), 64)
        self.intset_entries = get((None, "set-max-intset-entries"), 512)
        self.zset_entries = get((None, "zset-max-listpack-entries"), 128)
        self.zset_value = get((None, "zset-max-listpack-value"), 64)


# -- building the value, as this server's commands would have: generators,
# STEP elements per step (a set or dict of millions built in one C call
# holds the loop for a second).

def _make_list(items: list):
    if len(items) <= STEP:
        return QuickList(items)
    value = QuickList()
    for at in range(0, len(items), STEP):
        value.extend(items[at:at + STEP])
        yield
    return value


def _make_set(members: list, limits: Limits):
    if len(members) <= max(limits.intset_entries, limits.set_entries):
        if len(set(members)) != len(members):
            raise RdbError("a set member appears twice")
        ints = IntSet.from_members(members, limits.intset_entries)
        if ints is not None:
            return ints
        packed = compact_set(members, limits.set_entries, limits.set_value)
        if packed is not None:
            return packed
    value: set = set()
    for at in range(0, len(members), STEP):
        value.update(members[at:at + STEP])
        yield
    if len(value) != len(members):
        raise RdbError("a set member appears twice")
    return value


def _make_hash(flat: list, limits: Limits):
    if len(flat) % 2:
        raise RdbError("odd number of hash elements")
    value: dict = {}
    for at in range(0, len(flat), 2 * STEP):
        chunk = flat[at:at + 2 * STEP]
        value.update(zip(chunk[0::2], chunk[1::2]))
        yield
    if len(value) * 2 != len(flat):
        raise RdbError("a hash field appears twice")
    return compact_hash(value, limits.hash_entries, limits.hash_value)


def _make_zset(members: list, scores: list, limits: Limits):
    n = len(members)
    scores_of: dict = {}
    for at in range(0, n, STEP):
        chunk = scores[at:at + STEP]
        check = sum(chunk)   # NaN if one is NaN (or inf and -inf meet: then look)
        if check != check and any(s != s for s in chunk):
            raise RdbError("a NaN score")
        # -0.0 as 0, as ZADD stores it
        scores_of.update(zip(members[at:at + STEP], [s + 0.0 for s in chunk]))
        yield
    if len(scores_of) != n:
        raise RdbError("a sorted set member appears twice")
    if n <= limits.zset_entries and max(map(len, members), default=0) <= limits.zset_value \
            and sum(map(len, members)) + 9 * n <= PACKED_MAX_BYTES:
        return PackedZSet.from_pairs(sorted(zip(scores_of.values(), scores_of)))
    z = ZSet()
    z.scores = scores_of
    pairs = list(zip(scores_of.values(), scores_of))
    for at in range(0, n, STEP):
        z.order.update(pairs[at:at + STEP])
        yield
    return z


_BLOBS = {LIST_ZIPLIST: _zl_elements, ZSET_ZIPLIST: _zl_elements, HASH_ZIPLIST: _zl_elements,
          SET_LISTPACK: _lp_elements, ZSET_LISTPACK: _lp_elements, HASH_LISTPACK: _lp_elements,
          HASH_ZIPMAP: _zipmap_pairs, SET_INTSET: _intset_members}


def _as_int(raw: bytes) -> int:
    """A listpack element that must be an integer (listpack ints decode
    to their decimal text here)."""
    value = _canonical_int(raw)
    if value is None:
        raise RdbError("a stream listpack integer expected")
    return value


def _stream_node(master: int, items: list, out: list) -> int:
    """The live entries of one stream listpack node (streamValidateListpackIntegrity,
    deep), appended to `out` as (id, fields); returns how many there were."""
    n = len(items)
    if n < 4:
        raise RdbError("stream node too short")
    live, dead, nfields = _as_int(items[0]), _as_int(items[1]), _as_int(items[2])
    if live < 0 or dead < 0 or nfields < 0 or 3 + nfields >= n:
        raise RdbError("bad stream master entry")
    master_fields = items[3:3 + nfields]
    if items[3 + nfields] != b"0":
        raise RdbError("bad stream master entry terminator")
    p = 4 + nfields
    seen = seen_dead = 0
    ms0, seq0 = master >> 64, master & MAX_SEQ
    while p < n:
        if p + 3 > n:
            raise RdbError("stream entry truncated")
        flags = _as_int(items[p])
        if flags & ~(_SAMEFIELDS | _DELETED):
            raise RdbError("bad stream entry flags")
        ms = ms0 + _as_int(items[p + 1])
        seq = (seq0 + _as_int(items[p + 2])) & MAX_SEQ
        if not 0 <= ms <= MAX_SEQ:
            raise RdbError("bad stream entry id")
        p += 3
        if flags & _SAMEFIELDS:
            if p + nfields > n:
                raise RdbError("stream entry truncated")
            values = items[p:p + nfields]
            fields = [x for pair in zip(master_fields, values) for x in pair]
            p += nfields
            expected = 3 + nfields
        else:
            if p >= n:
                raise RdbError("stream entry truncated")
            k = _as_int(items[p])
            if k < 0 or p + 1 + 2 * k > n:
                raise RdbError("stream entry truncated")
            fields = items[p + 1:p + 1 + 2 * k]
            p += 1 + 2 * k
            expected = 3 + 2 * k + 1
        if p >= n or _as_int(items[p]) != expected:
            raise RdbError("bad stream entry lp-count")
        p += 1
        if not fields:
            raise RdbError("a stream entry without fields")
        if flags & _DELETED:
            seen_dead += 1
        else:
            seen += 1
            out.append((ms << 64 | seq, fields))
    if seen != live or seen_dead != dead or seen + seen_dead == 0:
        raise RdbError("stream node counts mismatch")
    return seen


def _stream_steps_load(src, kind: int, spend, values):
    n = src.count()
    entries: list = []
    for _ in range(n):
        key = yield from src.string_steps()
        if len(key) != 16:
            raise RdbError("stream node key is not an id")
        hi, lo = struct.unpack(">QQ", key)
        blob = yield from src.string_steps()
        items = yield from _lp_elements(blob, spend)
        before = len(entries)
        _stream_node(hi << 64 | lo, items, entries)
        if entries[before:] and entries[before][0] < (hi << 64 | lo):
            raise RdbError("stream entry below its node's master id")
        yield
    length = src.length()[0]
    last_id = src.length()[0] << 64 | src.length()[0]
    if kind == STREAM_LISTPACKS:
        max_deleted, added = 0, length
    else:
        src.length()   # first id: recomputed from the entries
        src.length()
        max_deleted = src.length()[0] << 64 | src.length()[0]
        added = src.length()[0]
    ngroups = src.count(4)
    if length != len(entries) or added < length:
        raise RdbError("stream length or counters inconsistent")
    get = (values or {}).get
    max_entries = get((None, "stream-node-max-entries"), _STREAM_NODE_ENTRIES)
    max_bytes = get((None, "stream-node-max-bytes"), _STREAM_NODE_BYTES)
    stream = Stream()
    last = 0
    for i, (sid, fields) in enumerate(entries, 1):
        if sid <= last:
            raise RdbError("stream entry ids out of order")
        stream.add(sid, fields, max_entries, max_bytes)
        last = sid
        if not i % STEP:
            yield
    if last_id < last or max_deleted > last_id:
        raise RdbError("stream last id below its entries")
    stream.last_id = last_id
    stream.entries_added = added
    stream.max_deleted_id = max_deleted
    if ngroups:
        yield from _groups_in(src, kind, stream, ngroups)
    return stream


def _read_id(src) -> int:
    hi, lo = struct.unpack(">QQ", src.take(16))
    return hi << 64 | lo


def _groups_in(src, kind: int, stream, ngroups: int):
    """The consumer groups of a stream payload, validated as Redis's deep
    sanitization does: no group, consumer or pending id twice, every id of
    a consumer's PEL in its group's PEL and owned by one consumer only,
    every pending entry owned; and within tenantkv's bounds of groups and
    consumers."""
    sg = streamgroups
    try:
        for _ in range(ngroups):
            name = yield from src.string_steps()
            last_id = src.length()[0] << 64 | src.length()[0]
            if kind == STREAM_LISTPACKS:
                entries_read = sg.estimate_distance(stream, last_id)
            else:
                entries_read = src.length()[0]
                if entries_read == MAX_SEQ:
                    entries_read = sg.INVALID
                elif entries_read >= 1 << 63:
                    raise RdbError("bad entries-read")
            group = sg.create_group(stream, name, last_id, entries_read)
            if group is None:
                raise RdbError("a consumer group twice")
            pel = group.pel
            for i in range(1, src.count(25) + 1):
                sid = _read_id(src)
                (when,) = struct.unpack("<q", src.take(8))
                if sid in pel:
                    raise RdbError("a pending entry twice")
                pel[sid] = sg.Nack(None, when, src.length()[0])
                if not i % STEP:
                    yield
            for _ in range(src.count(10)):
                cname = yield from src.string_steps()
                (seen,) = struct.unpack("<q", src.take(8))
                if kind == STREAM_LISTPACKS_3:
                    src.take(8)   # 7.2's active time: not kept here
                consumer = group.create_consumer(cname, seen)
                if consumer is None:
                    raise RdbError("a consumer twice")
                for i in range(1, src.count(16) + 1):
                    sid = _read_id(src)
                    nack = pel.get(sid)
                    if nack is None or nack.consumer is not None:
                        raise RdbError("a consumer's pending entry not in its group's")
                    group.claim(sid, nack, consumer)
                    if not i % STEP:
                        yield
            if any(nack.consumer is None for nack in pel.values()):
                raise RdbError("a pending entry without a consumer")
            yield
    except sg.GroupLimit:
        raise RdbError("more consumer groups or consumers than this server keeps") from None


def load_steps(payload: bytes, values=None, room=None, max_string: int = 512 << 20):
    """Generator: the value of a verified DUMP payload (verify_steps first).
    `values`: the server's config values (encoding limits). RdbError on bad
    data, RoomExceeded past `room` decoded bytes."""
    src = _In(payload, len(payload) - 10, room, max_string)
    kind = src.byte()
    if kind == STRING:   # the common case, first
        value = src.string()
        if type(value) is not bytes:
            value = yield from value
        if src.pos != src.end:
            raise RdbError("%d bytes left after the value" % (src.end - src.pos))
        return shared(value)
    limits = Limits(values)
    spend = src.spend
    string = src.string
    if kind in (LIST, SET, HASH, ZSET, ZSET_2):
        n = src.count(2 if kind in (HASH, ZSET, ZSET_2) else 1)
        if n == 0:
            raise RdbError("empty value")
        items: list = []
        append = items.append
        scores: list = []
        score = scores.append
        unpack = struct.Struct("<d").unpack
        for i in range(1, n + 1):
            item = string()
            append(item if type(item) is bytes else (yield from item))
            if kind == HASH:
                item = string()
                append(item if type(item) is bytes else (yield from item))
            elif kind == ZSET:
                score(src.double_string())
            elif kind == ZSET_2:
                score(unpack(src.take(8))[0])
            if not i % STEP:
                spend(STEP * DECODED_PER_ELEMENT)
                yield
        spend(n % STEP * DECODED_PER_ELEMENT)
        if kind == LIST:
            value = yield from (_make_list(items))
        elif kind == SET:
            value = yield from (_make_set(items, limits))
        elif kind == HASH:
            value = yield from (_make_hash(items, limits))
        else:
            value = yield from (_make_zset(items, scores, limits))
    elif kind in (LIST_QUICKLIST, LIST_QUICKLIST_2):
        n = src.count()
        items = []
        for _ in range(n):
            container = _PACKED
            if kind == LIST_QUICKLIST_2:
                container = src.length()[0]
                if container not in (_PLAIN, _PACKED):
                    raise RdbError("bad quicklist container %d" % container)
            blob = yield from src.string_steps()
            if container == _PLAIN:
                items.append(blob)
            elif kind == LIST_QUICKLIST_2:
                items.extend((yield from _lp_elements(blob, spend)))
            else:
                items.extend((yield from _zl_elements(blob, spend)))
            yield
        if not items:
            raise RdbError("empty list")
        value = yield from (_make_list(items))
    elif kind in _BLOBS:
        blob = yield from src.string_steps()
        items = yield from _BLOBS[kind](blob, spend)
        if not items:
            raise RdbError("empty value")
        if kind == LIST_ZIPLIST:
            make = _make_list(items)
        elif kind in (SET_INTSET, SET_LISTPACK):
            make = _make_set(items, limits)
        elif kind in (HASH_ZIPLIST, HASH_LISTPACK, HASH_ZIPMAP):
            make = _make_hash(items, limits)
        else:
            if len(items) % 2:
                raise RdbError("odd number of sorted set elements")
            make = _make_zset(items[0::2], list(map(_score, items[1::2])), limits)
        value = yield from (make)
    elif kind in (STREAM_LISTPACKS, STREAM_LISTPACKS_2, STREAM_LISTPACKS_3):
        value = yield from _stream_steps_load(src, kind, spend, values)
    else:   # modules: never
        raise RdbError("unsupported value type %d" % kind)
    if src.pos != src.end:
        raise RdbError("%d bytes left after the value" % (src.end - src.pos))
    return value


def restore_steps(payload: bytes, values=None, room=None, max_string: int = 512 << 20):
    """verify_steps then load_steps."""
    yield from verify_steps(payload)
    return (yield from load_steps(payload, values, room, max_string))


__all__ = ["RdbError", "VersionError", "RoomExceeded", "DUMPABLE", "dump_steps", "restore_steps",
           "verify_steps", "load_steps", "crc64", "lzf_compress", "lzf_decompress",
           "run_whole", "RDB_VERSION"]
