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

from tenantkv import errors
from tenantkv.dispatch.table import container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.footprint import DEFAULT_SAMPLES, DICT_ENTRY, value_size
from tenantkv.util.numbers import parse_int

_getsizeof = sys.getsizeof


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

