"""keyspace/packed.py: the compact buffer against a dict doing the same
operations (random fields and values, 0xff/0xfe/0x01/0x02 bytes included:
the bytes the markers and the escape are made of)."""

import random

from tenantkv.keyspace.packed import (
    KEY,
    VAL,
    PackedHash,
    escape,
    find_pair,
    pack_single,
    split_pairs,
    split_single,
    unescape,
)

_ALPHABET = b"ab\xff\xfe\x01\x02"


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
        model, packed = {}, PackedHash()
        fields = [_word(rng, 3) for _ in range(8)]
        for _ in range(60):
            field, value = rng.choice(fields), _word(rng)
            op = rng.randrange(4)
            if op == 0:
                model[field] = value
                packed[field] = value
            elif op == 1:
                assert packed.pop(field, None) == model.pop(field, None)
            elif op == 2:
                pairs = [(rng.choice(fields), _word(rng)) for _ in range(3)]
                model.update(pairs)
                packed.update(pairs)
            else:
                assert packed.get(field) == model.get(field)
                assert (field in packed) == (field in model)
            assert len(packed) == len(model)
            assert list(packed) == list(model)   # insertion order, as a listpack
            assert list(packed.items()) == list(model.items())
            assert packed.values() == list(model.values())
        assert packed.to_dict() == model
        copy = packed.copy()
        copy[b"new"] = b"x"
        assert packed.to_dict() == model
        if model:
            assert packed.longest() == max(len(x) for kv in model.items() for x in kv)


def test_missing_field_and_getitem():
    packed = PackedHash.from_pairs([(b"a", b"1"), (b"ab", b"2")])
    assert packed.get(b"b") is None and b"b" not in packed
    assert packed[b"ab"] == b"2"
    try:
        packed[b"zz"]
    except KeyError:
        pass
    else:
        raise AssertionError("no KeyError")


def test_value_equal_to_a_field_is_not_a_field():
    # a value spelled like a field must not be found as that field
    packed = PackedHash.from_pairs([(b"x", b"name"), (b"name\xff", b"v")])
    assert b"name" not in packed
    assert packed.get(b"name\xff") == b"v"


def test_find_pair_and_singles():
    buf = PackedHash.from_pairs([(b"k\xff", b"v\xff"), (b"k2", b"")]).buf
    start, at, end = find_pair(buf, b"k2")
    assert buf[start:end] == KEY + b"k2" + VAL and at == end
    assert split_pairs(buf) == ([b"k\xff", b"k2"], [b"v\xff", b""])
    elements = [b"", b"\xff\x01", b"plain", b"\xfe"]
    assert split_single(pack_single(elements)) == elements


def test_index_of_a_big_hash_follows_writes():
    # past INDEX_MIN fields, repeated reads use a dict: every write must show
    from tenantkv.keyspace import packed as packed_module
    pairs = [(b"f%d" % i, b"v%d" % i) for i in range(packed_module.INDEX_MIN + 5)]
    model, h = dict(pairs), PackedHash.from_pairs(pairs)
    rng = random.Random(3)
    for _ in range(500):
        field = b"f%d" % rng.randrange(len(pairs) + 3)
        op = rng.randrange(4)
        if op == 0:
            model[field] = h[field] = b"w%d" % rng.randrange(9)
        elif op == 1 and len(model) > packed_module.INDEX_MIN + 1:
            assert h.pop(field, None) == model.pop(field, None)
        else:
            for _ in range(3):   # reads in a row: the index is built and used
                assert h.get(field) == model.get(field)
                assert (field in h) == (field in model)
    assert any(entry[0] is h and entry[2] is not None
               for entry in packed_module._indexes.values())
