"""MEMORY USAGE, STATS, PURGE and HELP: how many bytes data takes.

An estimate, as Redis's is (object.c, objectComputeSize): the value's own
object (sys.getsizeof) plus its elements, where for a collection the first
SAMPLES elements (default 5, 0 for all) are measured and their average size
multiplied by the number of elements; then the key and its slot in the
database's dict. It is Python's memory, not Redis's, so the figures differ
from redis-server's while the reply is the same (an integer, nil for a
missing key, Redis's errors); the resources issue replaces it with exact
per-tenant accounting. A client only ever measures its own tenant's keys
(conn.db). MEMORY STATS is Redis's map, from the accounting of
server/memory.py: root sees the server's figures; any other user its own
tenant's (its data, its clients), without the allocator and RSS lines, which
describe the whole process. MEMORY DOCTOR and MALLOC-STATS describe
the whole server's allocator, so tenantkv does not have them.
"""

import sys
from itertools import islice

from tenantkv import errors
from tenantkv.dispatch.table import container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.footprint import DEFAULT_SAMPLES, DICT_ENTRY, footprint, value_size
from tenantkv.protocol.encoder import OK
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
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
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


@subcommand("memory", "purge")
def _memory_purge(conn, args):
    # Any user, as in Redis: it only hands free memory back, and
    # Memory.purge trims at most once a second, however many ask.
    conn.server.memory.purge()
    return OK


# Keys measured to estimate a tenant's data while the accounting is off (it
# is then not kept): MEMORY STATS stays O(1) on a tenant with a million keys.
STATS_SAMPLES = 64


def _dataset_estimate(dbs) -> int:
    total = 0
    for db in dbs:
        count = len(db.data)
        if count:
            sizes = [footprint(db, key, value)
                     for key, value in islice(db.data.items(), STATS_SAMPLES)]
            total += sum(sizes) * count // len(sizes)
    return total


@subcommand("memory", "stats")
def _memory_stats(conn, args):
    server = conn.server
    memory = server.memory
    root = conn.root
    dbs = ([db for tenant in server.tenants.values() for db in tenant.dbs] if root
           else list(conn.tenant.dbs))
    if memory.on:
        data = memory.data if root else conn.tenant.used_memory
        buffers = memory.buffers if root else memory.client_buffers(conn.tenant.clients)
    else:
        data = _dataset_estimate(dbs)
        buffers = memory.client_buffers(server.clients.values() if root else conn.tenant.clients)
    startup = memory.baseline if root else 0
    total = startup + data + buffers
    peak = max(memory.peak, total) if root else total
    reply = {
        b"peak.allocated": peak,
        b"total.allocated": total,
        b"startup.allocated": startup,
        b"replication.backlog": 0,
        b"clients.slaves": 0,
        b"clients.normal": buffers,
        b"cluster.links": 0,
        b"aof.buffer": 0,
        b"lua.caches": 0,
        b"functions.caches": 0,
    }
    overhead = startup + buffers
    keys = 0
    for db in dbs:
        count = len(db.data)
        if not count:
            continue
        keys += count
        main, expires = _getsizeof(db.data), _getsizeof(db.expires)
        overhead += main + expires
        reply[b"db.%d" % db.index] = {b"overhead.hashtable.main": main,
                                      b"overhead.hashtable.expires": expires,
                                      b"overhead.hashtable.slot-to-keys": 0}
    net = total - startup
    dataset = max(0, total - overhead)
    reply.update({
        b"overhead.total": overhead,
        b"keys.count": keys,
        b"keys.bytes-per-key": net // keys if keys else 0,
        b"dataset.bytes": dataset,
        b"dataset.percentage": dataset * 100.0 / net if net > 0 else 0.0,
        b"peak.percentage": total * 100.0 / peak if peak else 0.0,
    })
    if root:   # the process's own figures: no tenant's business
        rss = memory.rss()
        reply.update({
            b"allocator.allocated": total,
            b"allocator.active": total,
            b"allocator.resident": rss,
            b"allocator-fragmentation.ratio": 1.0,
            b"allocator-fragmentation.bytes": 0,
            b"allocator-rss.ratio": rss / total if total else 0.0,
            b"allocator-rss.bytes": rss - total,
            b"rss-overhead.ratio": 1.0,
            b"rss-overhead.bytes": 0,
            b"fragmentation": rss / total if total else 0.0,
            b"fragmentation.bytes": rss - total,
        })
    return reply
