"""The append-only log's records, and base files written as records.

Records are RESP arrays of bulk strings, exactly as clients send commands,
plus one pseudo-command clients cannot send (it is in no command table):
`@context <tenant key> <db index>`, written whenever the tenant or database of
the next record differs from the previous record's. A MULTI ... EXEC pair
around the records of one EXEC makes the transaction all-or-nothing at load.
docs/aof-format.md describes the whole format.

A base file (what a rewrite writes: the data set at some moment) is a .kdb
snapshot (aof-use-rdb-preamble yes, persistence/kdb/format.py) or the data set
as records (`write_base`); `key_records` also logs values set wholesale.
"""

import os

from tenantkv.keyspace import database as database_module
from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.hashpack import PackedHash
from tenantkv.keyspace.packedset import PackedSet
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.stream import Stream, format_id
from tenantkv.keyspace.zset import PackedZSet, ZSet
from tenantkv.persistence.kdb.format import MAGIC as KDB_MAGIC

CONTEXT = b"@context"
ITEMS_PER_COMMAND = 64     # as Redis's AOF_REWRITE_ITEMS_PER_CMD
READ_CHUNK = 1 << 20


def encode_command(args) -> bytes:
    n = len(args)
    if n == 3:   # SET, INCRBY, LPUSH one element...: the most common shapes, one format
        a, b, c = args
        return b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(a), a, len(b), b, len(c), c)
    if n == 2:
        a, b = args
        return b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(a), a, len(b), b)
    return b"*%d\r\n%s" % (n, b"".join([b"$%d\r\n%s\r\n" % (len(a), a) for a in args]))


MULTI_RECORD = encode_command([b"MULTI"])
EXEC_RECORD = encode_command([b"EXEC"])


# -- base files: the data set as commands --------------------------------------------

def is_kdb(path: str) -> bool:
    """A base file written as a .kdb snapshot (aof-use-rdb-preamble yes): by
    its name, or by its first bytes (as Redis finds an RDB preamble)."""
    if path.endswith(".kdb"):
        return True
    with open(path, "rb") as f:
        return f.read(len(KDB_MAGIC)) == KDB_MAGIC


def _score(value: float) -> bytes:
    if value == float("inf"):
        return b"inf"
    if value == float("-inf"):
        return b"-inf"
    return repr(value).encode()


def key_records(key: bytes, value, when):
    """Yield the encoded records that create `key` holding `value` (expiring at `when`)."""
    kind = type(value)
    if kind is bytes:
        yield encode_command([b"SET", key, value])
    elif kind is dict or kind is PackedHash:
        items = [x for pair in value.items() for x in pair]
        step = 2 * ITEMS_PER_COMMAND
        for i in range(0, len(items), step):
            yield encode_command([b"HSET", key, *items[i:i + step]])
    elif kind is QuickList:
        items = list(value)
        for i in range(0, len(items), ITEMS_PER_COMMAND):
            yield encode_command([b"RPUSH", key, *items[i:i + ITEMS_PER_COMMAND]])
    elif kind is set or kind is IntSet or kind is PackedSet:
        items = list(value)
        for i in range(0, len(items), ITEMS_PER_COMMAND):
            yield encode_command([b"SADD", key, *items[i:i + ITEMS_PER_COMMAND]])
    elif kind is ZSet or kind is PackedZSet:
        items = [x for score, member in value.pairs() for x in (_score(score), member)]
        step = 2 * ITEMS_PER_COMMAND
        for i in range(0, len(items), step):
            yield encode_command([b"ZADD", key, *items[i:i + step]])
    elif kind is Stream:
        yield from stream_records(key, value)
    else:
        raise TypeError("cannot write a %s value to the AOF" % kind.__name__)
    if when is not None:
        yield encode_command([b"PEXPIREAT", key, b"%d" % when])


def stream_records(key: bytes, s):
    """A stream as Redis's rewrite writes one: an XADD of each entry with
    its id (an empty stream: XADD MAXLEN 0 of a dummy entry), then XSETID
    with the last id, entries added and max deleted id. Its consumer
    groups follow (STREAM_GROUP_RECORDS, set by the module keeping them)."""
    if not s.length:
        yield encode_command([b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])
    for sid, fields in s.entries():
        yield encode_command([b"XADD", key, format_id(sid), *fields])
    yield encode_command([b"XSETID", key, format_id(s.last_id), b"ENTRIESADDED",
                          b"%d" % s.entries_added, b"MAXDELETEDID", format_id(s.max_deleted_id)])
    if s.groups and STREAM_GROUP_RECORDS[0] is not None:
        yield from STREAM_GROUP_RECORDS[0](key, s)


def group_records(key: bytes, s):
    """A stream's consumer groups as Redis's rewriteStreamObject writes them:
    XGROUP CREATE ... ENTRIESREAD, XGROUP CREATECONSUMER for each consumer,
    then an XCLAIM ... FORCE JUSTID with its time and count for each pending
    entry (one whose stream entry was deleted cannot be written so: as in
    Redis, a rewrite drops it)."""
    for name, group in s.groups.items():
        yield encode_command([b"XGROUP", b"CREATE", key, name, format_id(group.last_id),
                              b"ENTRIESREAD", b"%d" % group.entries_read])
        for consumer in group.consumers.values():
            yield encode_command([b"XGROUP", b"CREATECONSUMER", key, name, consumer.name])
        last = format_id(group.last_id)
        for sid, nack in group.pel.items():
            if sid not in s:
                continue
            yield encode_command([b"XCLAIM", key, name, nack.consumer.name, b"0", format_id(sid),
                                  b"TIME", b"%d" % nack.delivery_time,
                                  b"RETRYCOUNT", b"%d" % nack.delivery_count,
                                  b"FORCE", b"JUSTID", b"LASTID", last])


# records(key, stream) -> encoded records of its consumer groups
STREAM_GROUP_RECORDS: list = [group_records]


def dataset_records(tenants: dict):
    """Yield the encoded records that rebuild every tenant's data (a base file)."""
    now = database_module.now_ms()
    for name, tenant in tenants.items():
        libs = getattr(tenant, "functions", None)
        if libs is not None and libs.libs:   # its FUNCTION libraries, as Redis's rewrite
            yield encode_command([CONTEXT, name.encode("utf-8", "surrogateescape"), b"0"])
            for lib_name in sorted(libs.libs):
                yield encode_command([b"FUNCTION", b"LOAD", libs.libs[lib_name].code])
        for db in tenant.dbs:
            if not db.data:
                continue
            yield encode_command([CONTEXT, name.encode("utf-8", "surrogateescape"),
                                  b"%d" % db.index])
            expires = db.expires
            for key, value in list(db.data.items()):
                when = expires.get(key)
                if when is not None and when <= now:
                    continue   # expired: left out (Redis's rewrite does the same)
                yield from key_records(key, value, when)


def write_base(tenants: dict, path: str) -> int:
    """Write a base file (temp name, fsync, rename); returns its size."""
    temp = path + ".tmp"
    size = 0
    with open(temp, "wb", buffering=0) as f:
        parts, pending = [], 0
        for record in dataset_records(tenants):
            parts.append(record)
            pending += len(record)
            if pending >= READ_CHUNK:
                f.write(b"".join(parts))
                size += pending
                parts, pending = [], 0
        if parts:
            f.write(b"".join(parts))
            size += pending
        os.fsync(f.fileno())
    os.replace(temp, path)
    return size
