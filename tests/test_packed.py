"""keyspace/packed.py and keyspace/hashpack.py: the compact buffers against
a dict doing the same operations (random fields and values, 0xff/0xfe/0xfd/
0x00/0x01/0x02 bytes included: the bytes the markers and escapes are made of)."""

import random

from tenantkv.keyspace import hashpack
from tenantkv.keyspace.hashpack import PackedHash
from tenantkv.keyspace.packed import (
    KEY,
    VAL,
    escape,
    find_pair,
    pack_pairs,
    pack_single,
    split_pairs,
    split_single,
    unescape,
)

_ALPHABET = b"ab\xff\xfe\xfd\x00\x01\x02"


def _word(rng, longest=6) -> bytes:
    return bytes(rng.choice(_ALPHABET) for _ in range(rng.randrange(longest + 1)))


def test_escape_round_trip_and_no_markers_inside():
    rng = random.Random(1)
    for _ in range(2000):
        word = _word(rng, 10)
        escaped = escape(word)
        assert unescape(escaped) == word
        assert KEY not in escaped and VAL not in escaped


def test_packed_hash_matches_dict():
    rng = random.Random(2)
    for _ in range(300):
        model, packed = {}, hashpack.EMPTY
        fields = [_word(rng, 3) for _ in range(8)]
        for _ in range(60):
            field, value = rng.choice(fields), _word(rng)
            op = rng.randrange(3)
            if op == 0:
                buf, added = hashpack.put(packed, field, value)
                assert added == (field not in model)
                model[field] = value
                packed = PackedHash(buf)
            elif op == 1:
                buf = hashpack.remove(packed, field)
                assert (buf is None) == (field not in model)
                model.pop(field, None)
                if buf is not None:
                    packed = PackedHash(buf)
            assert hashpack.get(packed, field) == model.get(field)
            assert hashpack.has(packed, field) == (field in model)
            assert hashpack.count(packed) == len(model)
            assert packed.keys() == list(model)   # insertion order, as a listpack
            assert list(packed.items()) == list(model.items())
            assert packed.values() == list(model.values())
            assert hashpack.from_pairs(model.items()) == packed
        assert packed.to_dict() == model and packed.copy() is packed


def test_hash_escape_round_trip_and_no_markers_inside():
    rng = random.Random(4)
    for _ in range(2000):
        word = _word(rng, 10)
        escaped = hashpack.escape(word)
        assert hashpack.unescape(escaped) == word
        assert hashpack.KEY not in escaped and hashpack.VAL not in escaped


def test_value_equal_to_a_field_is_not_a_field():
    # a value spelled like a field must not be found as that field
    packed = hashpack.from_pairs([(b"x", b"name"), (b"name\xff", b"v"), (b"\xfd", b"\xfe")])
    assert hashpack.get(packed, b"name") is None and not hashpack.has(packed, b"name")
    assert hashpack.get(packed, b"name\xff") == b"v"
    assert hashpack.get(packed, b"\xfd") == b"\xfe"
    assert hashpack.get(packed, b"") is None


def test_compact_hash_limits():
    small = {b"f%d" % i: b"v" for i in range(5)}
    assert type(hashpack.compact_hash(small)) is PackedHash
    assert hashpack.compact_hash(small, 4, 64) is small
    assert hashpack.compact_hash(small, 5, 1) is small
    assert hashpack.compact_hash(small, 5, 2) == hashpack.from_pairs(small.items())
    assert hashpack.compact_hash(small, 5, 2, max_bytes=10) is small


def test_find_pair_and_singles():
    buf = pack_pairs([(b"k\xff", b"v\xff"), (b"k2", b"")])
    start, at, end = find_pair(buf, b"k2")
    assert buf[start:end] == KEY + b"k2" + VAL and at == end
    assert split_pairs(buf) == ([b"k\xff", b"k2"], [b"v\xff", b""])
    elements = [b"", b"\xff\x01", b"plain", b"\xfe"]
    assert split_single(pack_single(elements)) == elements
