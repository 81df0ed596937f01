"""Bitmap commands through redis-py against the real server: what a compat
transcript does not show well (sizes, limits, pipelines, reference checks).
The replies themselves are compared with redis-server in compat/sessions/bitmaps.txt."""

import random
import time

import pytest
import redis

from conftest import ServerProcess

OFFSET_ERROR = "bit offset is not an integer or out of range"
MB = 1024 * 1024


def bit_string(value: bytes) -> str:
    """The value as '0'/'1' characters, bit 0 first: the reference searches and counts these."""
    return format(int.from_bytes(value, "big"), "0%db" % (len(value) * 8)) if value else ""


def reference_range(length: int, start: int, end: int) -> tuple:
    """Redis's BITCOUNT/BITPOS index rule: (low, high) inclusive, maybe empty."""
    if start < 0:
        start += length
    if end < 0:
        end += length
    start, end = max(start, 0), max(end, 0)
    return start, min(end, length - 1)


def reference_bitcount(bits: str, start: int, end: int, unit: str) -> int:
    scale = 1 if unit == "BIT" else 8
    if start < 0 and end < 0 and start > end:
        return 0
    low, high = reference_range(len(bits) // scale, start, end)
    if low > high:
        return 0
    return bits.count("1", low * scale, (high + 1) * scale)


def reference_bitpos(bits: str, bit: int, start: int, end, unit: str) -> int:
    scale = 1 if unit == "BIT" else 8
    low, high = reference_range(len(bits) // scale, start, -1 if end is None else end)
    if low > high:
        return -1
    low, high = low * scale, (high + 1) * scale - 1
    found = bits.find(str(bit), low, high + 1)
    if found < 0 and bit == 0 and end is None:
        return high + 1
    return found


def sparse_value(rng: random.Random, size: int, fill: int, flips: int) -> bytes:
    value = bytearray([fill]) * size
    for _ in range(flips):
        value[rng.randrange(size)] ^= 1 << rng.randrange(8)
    return bytes(value)


# -- limits -------------------------------------------------------------------------

def test_huge_offsets_refused_quickly(r):
    started = time.monotonic()
    for offset in (4294967296, 2**40, 2**63 - 1):
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            r.setbit("k", offset, 1)
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            r.getbit("k", offset)
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            r.execute_command("BITFIELD", "k", "SET", "u8", offset, 1)
    for offset in ("#67108864", "#536870912", "#144115188075855872"):
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            r.execute_command("BITFIELD", "k", "SET", "i64", offset, 1)
    with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
        r.setbit("k", 2**64, 1)
    assert time.monotonic() - started < 2
    assert r.exists("k") == 0
    assert r.ping() is True


def test_hash_offset_wraps_as_c_does(r):
    # "#N" is N * bits in 64-bit arithmetic: (2**61 + 1) * 8 wraps to 8.
    r.set("k", b"\x00\x80")
    assert r.execute_command("BITFIELD", "k", "GET", "i8", "#2305843009213693953") == [-128]


def test_offsets_at_the_limit(tmp_path):
    """proto-max-bulk-len bounds the byte an offset reaches (1 MB here, for speed);
    BITFIELD checks only the field's first bit, so its string may end up to
    7 bytes longer, as in Redis."""
    with ServerProcess(tmp_path, "--proto-max-bulk-len", "1mb") as server:
        client = server.client()
        assert client.setbit("k", 8 * MB - 1, 1) == 0
        assert client.strlen("k") == MB
        assert client.getbit("k", 8 * MB - 1) == 1
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            client.setbit("k", 8 * MB, 1)
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            client.getbit("k", 8 * MB)
        assert client.execute_command("BITFIELD", "f", "SET", "i64", 8 * MB - 1, -1) == [0]
        assert client.strlen("f") == MB + 8
        with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
            client.execute_command("BITFIELD", "f", "GET", "u8", 8 * MB)
        assert client.bitcount("f") == 64
        assert client.bitpos("f", 1) == 8 * MB - 1
        client.config_set("proto-max-bulk-len", "2mb")   # read at each call
        assert client.setbit("k", 8 * MB, 1) == 0
        assert client.strlen("k") == MB + 1
        client.close()


def test_setbit_at_the_default_limit(r):
    """The last addressable bit (512 MB): allowed, as in Redis; one past it is refused."""
    assert r.setbit("big", 2**32 - 1, 1) == 0
    assert r.strlen("big") == 512 * MB
    assert r.getbit("big", 2**32 - 1) == 1
    assert r.bitpos("big", 1) == 2**32 - 1
    with pytest.raises(redis.ResponseError, match=OFFSET_ERROR):
        r.setbit("big", 2**32, 1)
    r.delete("big")
    assert r.ping() is True


# -- a rate limiter ------------------------------------------------------------------

def test_rate_limiter_saturating_counters(r):
    """Per-slot 4-bit counters that stick at 15, incremented from a pipeline."""
    r.set("rl", b"", ex=60)
    pipe = r.pipeline(transaction=False)
    for i in range(40):
        pipe.execute_command("BITFIELD", "rl", "OVERFLOW", "SAT", "INCRBY", "u4", "#%d" % (i % 3), 1)
    replies = pipe.execute()
    assert [reply[0] for reply in replies[:6]] == [1, 1, 1, 2, 2, 2]
    assert [reply[0] for reply in replies[-3:]] == [13, 13, 14]   # 40 = 14 (slot 0) + 13 + 13
    pipe = r.pipeline(transaction=False)
    for _ in range(5):
        pipe.execute_command("BITFIELD", "rl", "OVERFLOW", "SAT", "INCRBY", "u4", "#0", 1)
    assert [reply[0] for reply in pipe.execute()] == [15, 15, 15, 15, 15]
    assert r.execute_command("BITFIELD_RO", "rl", "GET", "u4", "#0", "GET", "u4", "#1", "GET", "u4", "#2") \
        == [15, 13, 13]
    assert r.strlen("rl") == 2
    assert 0 < r.ttl("rl") <= 60   # the counters' writes keep the key's TTL
    assert r.object("encoding", "rl") == b"raw"


def test_rate_limiter_fail_refuses_past_limit(r):
    """OVERFLOW FAIL: an increment that would leave u8 is refused (nil), nothing is written."""
    r.execute_command("BITFIELD", "quota", "SET", "u8", 0, 250)
    pipe = r.pipeline(transaction=False)
    for _ in range(8):
        pipe.execute_command("BITFIELD", "quota", "OVERFLOW", "FAIL", "INCRBY", "u8", 0, 1)
    replies = [reply[0] for reply in pipe.execute()]
    assert replies == [251, 252, 253, 254, 255, None, None, None]
    assert r.execute_command("BITFIELD", "quota", "GET", "u8", 0) == [255]


def test_bitfield_fail_is_null_in_resp3(r3):
    assert r3.execute_command("BITFIELD", "k", "OVERFLOW", "FAIL", "SET", "i8", 0, 200, "GET", "i8", 0) \
        == [None, 0]


# -- reference computations on values of a few MB ----------------------------------------------

@pytest.mark.parametrize("fill", [0x00, 0xff])
def test_bitcount_and_bitpos_match_reference(r, fill):
    rng = random.Random(fill)
    size = 3 * MB + 17
    value = sparse_value(rng, size, fill, 5)
    r.set("v", value)
    bits = bit_string(value)
    assert r.bitcount("v") == bits.count("1")
    for bit in (0, 1):
        assert r.bitpos("v", bit) == reference_bitpos(bits, bit, 0, None, "BYTE")
    for _ in range(60):
        unit = rng.choice(["BIT", "BYTE"])
        length = len(bits) if unit == "BIT" else size
        start = rng.randint(-length - 5, length + 5)
        end = rng.randint(-length - 5, length + 5)
        assert r.execute_command("BITCOUNT", "v", start, end, unit) \
            == reference_bitcount(bits, start, end, unit), (start, end, unit)
        for bit in (0, 1):
            assert r.execute_command("BITPOS", "v", bit, start, end, unit) \
                == reference_bitpos(bits, bit, start, end, unit), (bit, start, end, unit)
            byte_start = start // 8 if unit == "BIT" else start
            assert r.execute_command("BITPOS", "v", bit, byte_start) \
                == reference_bitpos(bits, bit, byte_start, None, "BYTE"), (bit, byte_start)


def test_bitpos_finds_one_bit_anywhere(r):
    """A single set (or clear) bit in a 4 MB run, before, on and after 64 KB boundaries."""
    size = 4 * MB
    for position in (0, 7, 8, 65535 * 8 + 7, 65536 * 8, 65537 * 8 + 3, size * 8 - 1):
        for fill, bit in ((0x00, 1), (0xff, 0)):
            value = bytearray([fill]) * size
            value[position >> 3] ^= 0x80 >> (position & 7)
            r.set("one", bytes(value))
            assert r.bitpos("one", bit) == position
            assert r.execute_command("BITPOS", "one", bit, position, -1, "BIT") == position
            assert r.execute_command("BITPOS", "one", bit, position + 1, -1, "BIT") == -1
            # From the next byte on (no end): no match; for bit 0 that is the
            # bit past the string, unless the range is empty.
            next_byte = (position >> 3) + 1
            expected = size * 8 if bit == 0 and next_byte < size else -1
            assert r.execute_command("BITPOS", "one", bit, next_byte) == expected
            assert r.bitcount("one") == (1 if bit == 1 else size * 8 - 1)


def test_bitop_matches_reference(r):
    rng = random.Random(7)
    sizes = {"a": 0, "b": 1, "c": 1000, "d": 2 * MB + 3, "e": 65537}
    values = {}
    for key, size in sizes.items():
        values[key] = rng.randbytes(size)
        r.set(key, values[key])
    names = list(sizes) + ["missing"]
    for op, combine in (("AND", lambda x, y: x & y), ("OR", lambda x, y: x | y),
                        ("XOR", lambda x, y: x ^ y)):
        for _ in range(4):
            chosen = rng.sample(names, rng.randint(1, 4))
            sources = [values.get(key, b"") for key in chosen]
            length = max(len(s) for s in sources)
            padded = [s + bytes(length - len(s)) for s in sources]
            expected = padded[0]
            for other in padded[1:]:
                expected = bytes(combine(x, y) for x, y in zip(expected, other))
            assert r.bitop(op, "dest", *chosen) == length
            assert r.get("dest") == (expected if length else None), (op, chosen)
    for key in names:
        source = values.get(key, b"")
        assert r.bitop("NOT", "dest", key) == len(source)
        assert r.get("dest") == (bytes(255 - x for x in source) if source else None)


# -- bookkeeping ------------------------------------------------------------------------------

def test_keyspace_hits_and_misses(r):
    """Read lookups count as Redis 7.0 counts them (measured there: 7 hits, 4 misses)."""
    r.config_resetstat()
    r.getbit("a", 0)
    r.set("s", "x")
    r.getbit("s", 0)
    r.setbit("s", 0, 1)
    r.setbit("nn", 0, 1)
    r.bitop("AND", "d", "s", "nn", "missing")
    r.execute_command("BITFIELD", "s", "GET", "i8", 0)
    r.execute_command("BITFIELD", "s", "SET", "i8", 0, 1)
    r.execute_command("BITFIELD_RO", "s", "GET", "i8", 0)
    r.bitcount("s")
    r.bitpos("s", 1)
    r.bitpos("missing", 1)
    r.bitcount("missing")
    stats = r.info("stats")
    assert (stats["keyspace_hits"], stats["keyspace_misses"]) == (7, 4)


def test_setbit_on_a_large_value_keeps_others_intact(r):
    value = random.Random(3).randbytes(MB)
    r.set("m", value)
    r.expire("m", 100)
    expected = bytearray(value)
    for offset in (0, 13, 4095 * 8 + 1, MB * 8 - 1):
        old = (expected[offset >> 3] >> (7 - (offset & 7))) & 1
        assert r.setbit("m", offset, 1 - old) == old
        expected[offset >> 3] ^= 0x80 >> (offset & 7)
    assert r.setbit("m", MB * 8 + 9, 1) == 0
    expected += b"\x00\x40"
    assert r.get("m") == bytes(expected)
    assert 0 < r.ttl("m") <= 100


def _changes(r) -> int:
    return r.info("persistence")["rdb_changes_since_last_save"]


def test_setbit_and_bitfield_that_change_nothing_are_not_changes(r, server):
    # As Redis's `dirty` (bitops.tcl): a SETBIT or BITFIELD that leaves the
    # value as it was is no change since the last save, is not logged, and
    # does not touch a WATCHed key.
    start = _changes(r)
    r.setbit("b", 0, 0)                                  # created: a change
    r.execute_command("BITFIELD", "f", "SET", "i5", 0, 0)
    assert _changes(r) == start + 2
    r.setbit("b", 0, 0)
    r.execute_command("BITFIELD", "f", "SET", "i5", 0, 0)
    r.execute_command("BITFIELD", "f", "INCRBY", "i5", 0, 0, "GET", "u8", 0)
    assert _changes(r) == start + 2
    r.setbit("b", 0, 1)
    r.setbit("b", 0, 1)
    r.execute_command("BITFIELD", "f", "SET", "i5", 0, 1)
    r.execute_command("BITFIELD", "f", "SET", "i5", 0, 1)
    assert _changes(r) == start + 4
    r.setbit("b", 90, 0)                                 # only the length changes
    assert _changes(r) == start + 5
    other = server.client()
    with r.pipeline(transaction=True) as pipe:
        pipe.watch("b", "f")
        other.setbit("b", 0, 1)
        other.execute_command("BITFIELD", "f", "SET", "i5", 0, 1)
        pipe.multi()
        pipe.ping()
        assert pipe.execute() == [True]
    with r.pipeline(transaction=True) as pipe:
        pipe.watch("b")
        other.setbit("b", 0, 0)
        pipe.multi()
        pipe.ping()
        with pytest.raises(redis.WatchError):
            pipe.execute()
    other.close()
