"""How many bytes a value takes: MEMORY USAGE's estimate and the memory accounting's.

An estimate, as Redis's is (object.c, objectComputeSize): the value's own
object (sys.getsizeof) plus its elements, where for a collection the first
SAMPLES elements (default 5, None for all) are measured and their average size
multiplied by the number of elements. Exact for bytes and the compact forms
(one buffer each); O(1) for the big forms (a few elements sampled).

The accounting (server/memory.py) keeps each tenant's used_memory as the sum
of `footprint` over its keys, by deltas: the footprint of a command's keys
before it ran and after. Whatever the estimate's error, it is the SAME
function before and after, so the sum stays coherent (a key's share is the
footprint it had when last measured, and it leaves the sum whole when the key
goes).
"""

import sys
from collections import deque
from itertools import islice

from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.hashpack import PackedHash
from tenantkv.keyspace.packedset import PackedSet
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.stream import Stream
from tenantkv.keyspace.streamgroups import groups_size
from tenantkv.keyspace.zset import PackedZSet, ZSet

DEFAULT_SAMPLES = 5    # Redis's OBJ_COMPUTE_SIZE_DEF_SAMPLES
# A key's entry in the database's dict (CPython: its hash and the key and
# value pointers), as Redis adds sizeof(dictEntry).
DICT_ENTRY = 3 * 8
# A pointer to each element in a SortedList sublist (or chunk in a QuickList).
POINTER = 8

_getsizeof = sys.getsizeof


def _sampled(elements, count: int, samples, size_of) -> int:
    """The size of a collection's `count` elements, estimated from the first
    `samples` of them (None: all), as Redis averages its samples."""
    if not count:
        return 0
    sizes = [size_of(element) for element in islice(elements, samples)]
    return sum(sizes) * count // len(sizes)


def _pair_size(pair) -> int:
    return _getsizeof(pair[0]) + _getsizeof(pair[1])


def _zset_member_size(key: bytes) -> int:
    # an index key in the sorted list (8 bytes of score, then the member), the
    # member (8 bytes shorter than its key), its score in the scores dict, and
    # the list's pointer
    return 2 * _getsizeof(key) - 8 + _FLOAT + POINTER


_FLOAT = _getsizeof(0.0)


def value_size(value, samples=DEFAULT_SAMPLES) -> int:
    """The estimated size in bytes of a value (samples: None for all elements)."""
    kind = type(value)
    if kind is bytes:
        return _getsizeof(value)
    if kind is PackedHash:   # one buffer, as Redis counts a listpack
        return _getsizeof(value)
    if kind is dict:
        return _getsizeof(value) + _sampled(iter(value.items()), len(value), samples, _pair_size)
    if kind is set:
        return _getsizeof(value) + _sampled(iter(value), len(value), samples, _getsizeof)
    if kind is PackedSet:   # the object and its one buffer, as a PackedHash
        return _getsizeof(value) + _getsizeof(value.buf)
    if kind is IntSet:
        return _getsizeof(value)   # the array: header and 8 bytes a member, no objects
    if kind is QuickList:   # its chunks sampled, as Redis samples quicklist nodes
        chunks = value.chunks
        if type(chunks) is bytes:   # a small list: its one chunk, held alone
            return _getsizeof(value) + _getsizeof(chunks)
        return (_getsizeof(value) + _getsizeof(chunks)
                + _sampled(iter(chunks), len(chunks), samples, _getsizeof))
    if kind is PackedZSet:   # one buffer, as Redis counts a listpack
        return _getsizeof(value)
    if kind is ZSet:
        keys = value.keys
        return (_getsizeof(value) + _getsizeof(value.scores) + _getsizeof(keys)
                + _sampled(iter(keys), len(keys), samples, _zset_member_size))
    if kind is Stream:   # its own O(1) estimate (blocks, ids, entry bytes), its groups
        return value.memory() + groups_size(value)
    return _getsizeof(value)   # a type without an estimate of its own (yet)


_QUICKLIST = _getsizeof(QuickList())
# sys.getsizeof(b) == len(b) + BYTES for any bytes object (exact): a call
# to len is 5x cheaper than one to getsizeof.
BYTES = _getsizeof(b"")
# The tables of a big collection from its count alone (getsizeof costs a
# call; these are what CPython 3.11 averages over a table's fill): a deque
# holds 64 pointers a block; a dict ~42 bytes an entry (29 to 52 with its
# fill), a set ~48 (33 to 84).
_DEQUE_BLOCK = 528
_DEQUE = _getsizeof(deque()) - _DEQUE_BLOCK
_DICT, _DICT_SLOT = 64, 42
_SET, _SET_SLOT = 216, 48


def data_size(value) -> int:
    """value_size for the accounting, run twice per write: the same parts,
    but a big collection's elements are estimated from two of them at fixed
    places (O(1), no islice) and a bytes object's size is its len + BYTES,
    so it costs ~0.3 us instead of ~1.5. A pure function of the value, as
    the deltas need. Elements are bytes (fields, members, chunks)."""
    kind = type(value)
    if kind is bytes or kind is PackedHash or kind is PackedZSet:
        return len(value) + BYTES
    if kind is QuickList:
        chunks = value.chunks
        if type(chunks) is bytes:
            return _QUICKLIST + BYTES + len(chunks)
        # The end chunks are partly full; the inner ones are measured by the
        # two next to the ends.
        count = len(chunks)
        size = (_QUICKLIST + _DEQUE + (count // 64 + 1) * _DEQUE_BLOCK + 2 * BYTES
                + len(chunks[0]) + len(chunks[-1]))
        if count > 2:
            size += (count - 2) * (BYTES + (len(chunks[1]) + len(chunks[-2])) // 2)
        return size
    if kind is dict:
        count = len(value)
        if count < 2:
            return value_size(value)
        items = iter(value.items())
        field, item = next(items)
        size = len(field) + len(item)
        field, item = next(items)
        return _DICT + count * (_DICT_SLOT + 2 * BYTES + (size + len(field) + len(item)) // 2)
    if kind is set:
        count = len(value)
        if count < 2:
            return value_size(value)
        members = iter(value)
        size = len(next(members)) + len(next(members))
        return _SET + count * (_SET_SLOT + BYTES + size // 2)
    if kind is ZSet:
        keys = value.keys
        count = len(keys)
        if count < 2:
            return value_size(value)
        members = iter(keys)
        first, second = next(members), next(members)
        return (_getsizeof(value) + _getsizeof(value.scores) + _getsizeof(keys)
                + count * (_zset_member_size(first) + _zset_member_size(second)) // 2)
    return value_size(value)


# A key's share of its database beyond its bytes and its value: the dict slot
# (DICT_ENTRY) plus what CPython's dict really spends per entry on average
# (the index array and the free slots kept for growth: a dict is 1/3 to 2/3
# full), measured against RSS growth (tests/test_memory_quota.py).
KEY_OVERHEAD = DICT_ENTRY + 40
# A key with a TTL also holds an entry in `expires` and an int object.
EXPIRE_OVERHEAD = DICT_ENTRY + 40 + 32


def footprint(db, key: bytes, value) -> int:
    """The bytes the accounting charges for `key` holding `value` in `db`
    (0 for no value)."""
    if value is None:
        return 0
    size = data_size(value) + len(key) + BYTES + KEY_OVERHEAD
    expires = db.expires
    if expires and key in expires:
        size += EXPIRE_OVERHEAD
    return size
