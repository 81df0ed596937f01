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
describe the whole process. MEMORY DOCTOR is Redis's report read from the
same figures (a tenant's own, for a non-root user: its data, clients and
scripts; the process's fragmentation for root only). MEMORY MALLOC-STATS
answers as a Redis built without jemalloc does: pymalloc has no such
report, and the allocator's state would describe every tenant.
"""

import sys
from itertools import islice

from tenantkv import errors
from tenantkv.dispatch.table import container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.footprint import DEFAULT_SAMPLES, DICT_ENTRY, footprint, value_size
from tenantkv.protocol.encoder import OK, Verbatim
from tenantkv.util.numbers import parse_int

_getsizeof = sys.getsizeof


def usage(db, key: bytes, samples=DEFAULT_SAMPLES):
    """MEMORY USAGE's figure for `key` in `db`, None when there is no such key."""
    value = db.get(key)
    if value is None:
        return None
    return value_size(value, samples) + _getsizeof(key) + DICT_ENTRY


MEMORY_HELP = [
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
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


@subcommand("memory", "malloc-stats")
def _memory_malloc_stats(conn, args):
    return b"Stats not supported for the current allocator"   # Redis without jemalloc


# MEMORY DOCTOR's texts, Redis 7.0's (object.c, getMemoryDoctorReport).
_DOCTOR_FINE = ("Hi Sam, I can't find any memory issue in your instance. "
                "I can only account for what occurs on this base.\n")
_DOCTOR_EMPTY = ("Hi Sam, this instance is empty or is using very little memory, "
                 "my issues detector can't be used in these conditions. "
                 "Please, leave for your mission on Earth and fill it with some data. "
                 "The new Sam and I will be back to our programming as soon as I "
                 "finished rebooting.\n")
_DOCTOR_HEAD = "Sam, I detected a few issues in this Redis instance memory implants:\n\n"
_DOCTOR_TAIL = "I'm here to keep you safe, Sam. I want to help you.\n"
_DOCTOR_ISSUES = {
    "big_peak": " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n",  # noqa: E501
    "high_frag": " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"pymalloc\".\n\n",  # noqa: E501
    "high_alloc_rss": " * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n",  # noqa: E501
    "big_client_buf": " * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n",  # noqa: E501
    "many_scripts": " * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n",  # noqa: E501
}


def _scripts_cached(tenants) -> int:
    return sum(len(t.scripts.bodies) for t in tenants if t.scripts is not None)


@subcommand("memory", "doctor")
def _memory_doctor(conn, args):
    """Redis's checks on MEMORY STATS's figures: the tenant's own for a
    non-root user (its data, its clients' buffers, its scripts), so the
    report says nothing about other tenants; the process's RSS for root."""
    stats = _memory_stats(conn, args)
    total, peak = stats[b"total.allocated"], stats[b"peak.allocated"]
    server = conn.server
    if total < 5 * 1024 * 1024:
        return Verbatim(_DOCTOR_EMPTY.encode())
    found = []
    if total and peak / total > 1.5:
        found.append("big_peak")
    if conn.root:   # the allocator's figures describe the process: root's only
        if stats[b"fragmentation"] > 1.4 and stats[b"fragmentation.bytes"] > 10 << 20:
            found.append("high_frag")
        if stats[b"allocator-rss.ratio"] > 1.1 and stats[b"allocator-rss.bytes"] > 10 << 20:
            found.append("high_alloc_rss")
    clients = len(server.clients) if conn.root else len(conn.tenant.clients)
    if clients and stats[b"clients.normal"] // clients > 200 * 1024:
        found.append("big_client_buf")
    tenants = server.tenants.values() if conn.root else (conn.tenant,)
    if _scripts_cached(tenants) > 1000:
        found.append("many_scripts")
    if not found:
        return Verbatim(_DOCTOR_FINE.encode())
    return Verbatim((_DOCTOR_HEAD + "".join(_DOCTOR_ISSUES[name] for name in found)
                     + _DOCTOR_TAIL).encode())
