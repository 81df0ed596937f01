"""MEMORY USAGE and MEMORY HELP: how many bytes a key and its value take.

An estimate, as Redis's is (object.c, objectComputeSize): the value's own
object (sys.getsizeof) plus its elements, where for a collection the first
SAMPLES elements (default 5, 0 for all) are measured and their average size
multiplied by the number of elements; then the key and its slot in the
database's dict. It is Python's memory, not Redis's, so the figures differ
from redis-server's while the reply is the same (an integer, nil for a
missing key, Redis's errors); the resources issue replaces it with exact
per-tenant accounting. A client only ever measures its own tenant's keys
(conn.db). MEMORY DOCTOR, STATS, MALLOC-STATS and PURGE describe the whole
server's allocator, so tenantkv does not have them.
"""

import sys
from itertools import islice

from tenantkv import errors
from tenantkv.dispatch.table import container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.hashpack import PackedHash
from tenantkv.keyspace.packedset import PackedSet
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.zset import PackedZSet, ZSet
from tenantkv.util.numbers import parse_int

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
    return _getsizeof(value)   # a type without an estimate of its own (yet)


def usage(db, key: bytes, samples=DEFAULT_SAMPLES):
    """MEMORY USAGE's figure for `key` in `db`, None when there is no such key."""
    value = db.get(key)
    if value is None:
        return None
    return value_size(value, samples) + _getsizeof(key) + DICT_ENTRY


MEMORY_HELP = [
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
]

container("memory", help=MEMORY_HELP)


@subcommand("memory", "usage")
def _memory_usage(conn, args):
    samples = DEFAULT_SAMPLES
    i, argc = 3, len(args)
    while i < argc:   # options first, as Redis: errors even for a missing key
        if args[i].lower() == b"samples" and i + 1 < argc:
            count = parse_int(args[i + 1])
            if count is None:
                raise CommandError(errors.NOT_INTEGER)
            if count < 0:
                raise CommandError(errors.SYNTAX)
            samples = count or None   # 0: every element
            i += 2
        else:
            raise CommandError(errors.SYNTAX)
    return usage(conn.db, args[2], samples)

