"""The .kdb snapshot format: every tenant's databases in one checksummed file.

The byte layout is documented in docs/kdb-format.md. The API (stable: the
append-only log's rewrite uses it for its base file):

    dump(tenants, fileobj, now_ms=None) -> int
        Write a whole .kdb file to `fileobj` (anything with .write(bytes)).
        `tenants`: tenant name -> Tenant (or any object with `.dbs`, a list of
        objects with `.data` and `.expires` dicts), or -> a list of (data,
        expires) pairs as load() returns them. Keys already expired at
        `now_ms` (default: now) are left out. Returns the number of keys written.

    dumps(tenants, now_ms=None) -> bytes
        The same, as bytes (KDB EXPORT, tests).

    load(fileobj_or_bytes, now_ms=None, databases=None)
        -> {tenant name: [(data dict, expires dict), ...]}  (one pair per database,
           up to the highest the tenant has keys in: missing ones are empty)
        Parse and verify a whole file; raises KdbError on anything wrong, and
        nothing is returned (nothing is half-loaded) unless every checksum
        matched. With `now_ms`, keys expired by then are dropped. `databases`:
        the number of databases a tenant has here; a file holding a higher
        database index is refused (default: the highest index in the file + 1).

    read_file(path, now_ms=None, databases=None, nofollow=False) -> LoadResult
        load() the file at `path`; the result's `tenants` is what load()
        returns, with the figures of the load (keys, expired, size...).
        `nofollow` (a client's file name): a symlink or a non-regular file
        is refused (OSError), not followed.

    write_snapshot(server_or_tenants, path, now_ms=None) -> int
        dump() into `temp-<pid>.kdb` beside `path` (created O_EXCL|O_NOFOLLOW,
        never written through a planted symlink), flush, fsync, rename over
        `path` (a rename replaces a symlink there, it does not follow it),
        fsync the directory. On any error the temp file is removed and
        `path` is untouched. Returns the number of keys written.

    KdbError(message, offset)
        A refused file: `offset` is the byte offset where the problem was found.

Making a file's data the running server's dataset is the snapshot's
lifecycle: kdb/snapshot.py (`load_into`, `install`).

Columnar blocks (all keys of a chunk, then all their values, each as one array
of lengths plus one joined blob) keep the per-key Python work to a few C-level
operations: array('I', map(len, ...)), b"".join, list slicing, dict(zip(...)).
"""

from __future__ import annotations

import gc
import os
import struct
import sys
import time
import zlib
from array import array
from itertools import accumulate, islice

from tenantkv.keyspace.hashpack import HASH_MAX_ENTRIES, HASH_MAX_VALUE, PackedHash, compact_hash
from tenantkv.keyspace.hashpack import split as split_hash
from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.packedset import SET_MAX_ENTRIES, SET_MAX_VALUE, PackedSet, compact_set
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.stream import MAX_SEQ, Stream
from tenantkv.keyspace.streamgroups import Consumer, ConsumerGroup, Nack
from tenantkv.keyspace.zset import PACKED_MAX_BYTES, PackedZSet, ZSet
from tenantkv.persistence.files import create_exclusive, fsync_dir, open_regular
from tenantkv.util.steps import run_whole

MAGIC = b"\x89KDB\r\n\x1a\n"   # PNG-style: catches text-mode and 7-bit mangling
# Version 2 adds a tenant's FUNCTION libraries (a FUNCTIONS block); a file
# without any is still written as version 1, which older servers read.
VERSION = 1
VERSION_FUNCTIONS = 2
# Version 3 adds stream blocks (kind 6); a file without a stream keeps the
# lower version, which older servers read.
VERSION_STREAMS = 3
SUPPORTED_VERSIONS = (1, 2, 3)

# Block kinds. The value kinds use Redis's object type numbers (OBJ_STRING ...),
# the same numbers DEBUG DIGEST mixes in.
STRING, LIST, SET, ZSET_, HASH, STREAM = 0, 1, 2, 3, 4, 6
EXPIRES = 0x40
FUNCTIONS = 0x50   # version 2: a tenant's FUNCTION libraries, `strs(codes)`
END = 0xFF
KIND_NAMES = {STRING: "string", LIST: "list", SET: "set", ZSET_: "zset", HASH: "hash",
              STREAM: "stream", EXPIRES: "expires", FUNCTIONS: "functions", END: "end"}

HEADER = struct.Struct("<8sHHIQI")        # magic, version, flags, databases, created ms, tenants
HEADER_CRC = struct.Struct("<I")
SECTION = struct.Struct("<4sI")           # b"TSEC", name length
BLOCK = struct.Struct("<B3xIIQ")          # kind, db index, count, payload length
TRAILER = struct.Struct("<4sQI")          # b"KEND", keys, crc32 of every byte before the crc
CRC = struct.Struct("<I")

CHUNK = 65536   # keys per block: bounds the memory a writer holds at once
_SWAP = sys.byteorder == "big"   # the file is little-endian


class RoomExceeded(Exception):
    """An import's decoded data would not fit the room it was given
    (parse_steps' `room`): refused before the block that passes it is
    decoded, so a payload too big for maxmemory or a quota never sits in
    memory whole (a 24 MB one decodes to ~150 MB)."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


# The estimate behind `room`: a block's bytes, plus per key what the
# accounting charges beyond them (keyspace/footprint.py: two bytes objects'
# headers and the dict entry, ~130 B).
DECODED_PER_KEY = 130


class KdbError(Exception):
    """A .kdb file (or export payload) refused: `message`, found at byte `offset`."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message, offset)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return "%s at offset %d" % (self.message, self.offset)


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- encoding -------------------------------------------------------------------

def _lengths(items) -> bytes:
    """A width byte (4 or 8) and the little-endian lengths of `items`."""
    lens = array("I")
    try:
        lens.extend(map(len, items))
        width = b"\x04"
    except OverflowError:   # a value of 4 GB or more
        lens = array("Q", map(len, items))
        width = b"\x08"
    if _SWAP:
        lens.byteswap()
    return width + lens.tobytes()


def _ints(numbers, code: str = "I") -> bytes:
    values = array(code, numbers)
    if _SWAP:
        values.byteswap()
    return values.tobytes()


def _strs(parts: list, items) -> None:
    """Append a string column (lengths, then the joined bytes) to `parts`."""
    parts.append(_lengths(items))
    parts.append(b"".join(items))


def _block(kind: int, db: int, count: int, payload: list) -> list:
    size = sum(map(len, payload))
    return [BLOCK.pack(kind, db, count, size), *payload]


def _chunks(items: list):
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _db_blocks(index: int, data: dict, expires: dict, now: int, delay_us: int = 0):
    """Yield (blocks as lists of bytes, keys) for one database."""
    if expires:
        dead = {k for k, when in expires.items() if when <= now}
    else:
        dead = ()
    values = list(data.values())
    if not dead and all(type(v) is bytes for v in values):   # all strings: no Python loop
        groups = {STRING: (list(data), values)}
    else:
        groups = {}
        for key, value in data.items():
            if dead and key in dead:
                continue
            kind = type(value)
            group = groups.get(kind)
            if group is None:
                group = groups[kind] = ([], [])
            group[0].append(key)
            group[1].append(value)
        # Python types -> block kinds; two types may share a kind (set and IntSet)
        by_kind = {}
        for kind, group in groups.items():
            code = _KIND_OF[kind]
            if code in by_kind:
                by_kind[code][0].extend(group[0])
                by_kind[code][1].extend(group[1])
            else:
                by_kind[code] = group
        groups = by_kind
    for kind, (keys, vals) in groups.items():
        for start in range(0, len(keys), CHUNK):
            ks = keys[start:start + CHUNK]
            vs = vals[start:start + CHUNK]
            if delay_us:
                time.sleep(delay_us * len(ks) / 1e6)
            yield _ENCODERS[kind](index, ks, vs), len(ks)
    live = [k for k in expires if k not in dead] if dead else list(expires)
    for ks in _chunks(live):
        payload = []
        _strs(payload, ks)
        payload.append(_ints(map(expires.__getitem__, ks), "q"))
        yield _block(EXPIRES, index, len(ks), payload), 0


def _enc_strings(db, keys, values):
    payload = []
    _strs(payload, keys)
    _strs(payload, values)
    return _block(STRING, db, len(keys), payload)


def _enc_sequences(kind):
    def encode(db, keys, values):
        payload = []
        _strs(payload, keys)
        payload.append(_ints(map(len, values)))
        elements = []
        extend = elements.extend
        for value in values:
            extend(value)
        _strs(payload, elements)
        return _block(kind, db, len(keys), payload)
    return encode


def _enc_zsets(db, keys, values):
    payload = []
    _strs(payload, keys)
    payload.append(_ints(map(len, values)))
    members = []
    scores = array("d")
    for z in values:
        if type(z) is PackedZSet:
            for score, member in z.pairs():
                members.append(member)
                scores.append(score)
        else:
            members.extend(z.scores)
            scores.extend(z.scores.values())
    if _SWAP:
        scores.byteswap()
    _strs(payload, members)
    payload.append(scores.tobytes())
    return _block(ZSET_, db, len(keys), payload)


def _enc_hashes(db, keys, values):
    payload = []
    _strs(payload, keys)
    counts = []
    fields = []
    vals = []
    for h in values:
        if type(h) is PackedHash:   # a buffer: its len() is its size in bytes
            f, v = split_hash(h)
            counts.append(len(f))
            fields.extend(f)
            vals.extend(v)
        else:
            counts.append(len(h))
            fields.extend(h)
            vals.extend(h.values())
    payload.append(_ints(counts))
    _strs(payload, fields)
    _strs(payload, vals)
    return _block(HASH, db, len(keys), payload)


def _enc_streams(db, keys, values):
    """Stream block (docs/kdb-format.md): keys; per key its last id, entries
    added, max deleted id (u64 x 5), entry count and group count (u32);
    per entry its id (u64 x 2) and item count (u32); the items; then the
    groups of the keys that have some (none yet: consumer groups extend
    the block after the items, keys in order)."""
    payload = []
    _strs(payload, keys)
    meta = []
    counts = []
    groups = []
    ids = []
    sizes = []
    items = []
    for s in values:
        meta += (s.last_id >> 64, s.last_id & MAX_SEQ, s.entries_added,
                 s.max_deleted_id >> 64, s.max_deleted_id & MAX_SEQ)
        counts.append(s.length)
        groups.append(len(s.groups) if s.groups else 0)
        for sid, fields in s.entries():
            ids += (sid >> 64, sid & MAX_SEQ)
            sizes.append(len(fields))
            items += fields
    payload.append(_ints(meta, "Q"))
    payload.append(_ints(counts))
    payload.append(_ints(groups))
    payload.append(_ints(ids, "Q"))
    payload.append(_ints(sizes))
    _strs(payload, items)
    encode_groups = STREAM_GROUP_CODEC[0]
    if any(groups):
        payload.append(encode_groups([s for s in values if s.groups]))
    return _block(STREAM, db, len(keys), payload)


def _enc_groups(streams) -> bytes:
    """The consumer groups of `streams` (those with groups, in the block's
    key order): names; per group its last id (u64 x 2), entries read (i64),
    consumer and pending counts (u32 x 2); the consumers' names; per
    consumer its seen-time (i64); per pending entry its id (u64 x 2),
    delivery time (i64), delivery count (u64) and owner (u32: the index of
    its consumer in its group). A consumer's own PEL is the group's entries
    it owns, so it is not written twice."""
    names, meta, read, sizes = [], [], [], []
    consumer_names, seen = [], []
    pel_ids, times, deliveries, owners = [], [], [], []
    for s in streams:
        for name, group in s.groups.items():
            names.append(name)
            meta += (group.last_id >> 64, group.last_id & MAX_SEQ)
            read.append(group.entries_read)
            sizes += (len(group.consumers), len(group.pel))
            index = {}
            for i, consumer in enumerate(group.consumers.values()):
                index[consumer] = i
                consumer_names.append(consumer.name)
                seen.append(consumer.seen_time)
            for sid, nack in group.pel.items():
                pel_ids += (sid >> 64, sid & MAX_SEQ)
                times.append(nack.delivery_time)
                deliveries.append(nack.delivery_count)
                owners.append(index[nack.consumer])
    parts: list = []
    _strs(parts, names)
    parts += [_ints(meta, "Q"), _ints(read, "q"), _ints(sizes)]
    _strs(parts, consumer_names)
    parts += [_ints(seen, "q"), _ints(pel_ids, "Q"), _ints(times, "q"), _ints(deliveries, "Q"),
              _ints(owners)]
    return b"".join(parts)


def _dec_groups(r, streams) -> None:
    """Read `_enc_groups`'s part into `streams`, [(stream, group count)]:
    every count and owner checked against what was written."""
    at = r.pos
    total = sum(count for _, count in streams)
    names = r.strs(total)
    meta = r.ints(2 * total, "Q")
    read = r.ints(total, "q")
    sizes = r.ints(2 * total)
    consumers_total = sum(sizes[0::2])
    pel_total = sum(sizes[1::2])
    consumer_names = r.strs(consumers_total)
    seen = r.ints(consumers_total, "q")
    pel_ids = r.ints(2 * pel_total, "Q")
    times = r.ints(pel_total, "q")
    deliveries = r.ints(pel_total, "Q")
    owners = r.ints(pel_total)
    g = c = p = 0
    for s, count in streams:
        s.groups = {}
        for _ in range(count):
            name = names[g]
            if name in s.groups:
                raise KdbError("a stream has two consumer groups named %s" % _show(name), at)
            if read[g] < -1:
                raise KdbError("consumer group %s has entries-read %d" % (_show(name), read[g]), at)
            group = s.groups[name] = ConsumerGroup(meta[2 * g] << 64 | meta[2 * g + 1], read[g])
            members = []
            for _ in range(sizes[2 * g]):
                consumer = Consumer(consumer_names[c], seen[c])
                if group.consumers.setdefault(consumer.name, consumer) is not consumer:
                    raise KdbError("consumer group %s has two consumers named %s"
                                   % (_show(name), _show(consumer.name)), at)
                group.names += len(consumer.name)
                members.append(consumer)
                c += 1
            last = -1
            for _ in range(sizes[2 * g + 1]):
                sid = pel_ids[2 * p] << 64 | pel_ids[2 * p + 1]
                if sid <= last or owners[p] >= len(members):
                    raise KdbError("consumer group %s has a bad pending entry" % _show(name), at)
                owner = members[owners[p]]
                nack = Nack(owner, times[p], deliveries[p])
                group.pel[sid] = nack
                owner.pel[sid] = nack
                last = sid
                p += 1
            g += 1


# Consumer groups' part of a stream block: (encode(streams) -> bytes,
# decode(reader, [(stream, group count)]) -> None).
STREAM_GROUP_CODEC: list = [_enc_groups, _dec_groups]


# Stream entries decoded between two yields of _parse_steps.
_STREAM_STEP = 4096


def _dec_streams(r, count, data):
    """A stream block, as a generator: a yield every _STREAM_STEP entries,
    so a KDB IMPORT of a long stream runs in slices like a big string block."""
    at = r.pos
    keys = r.strs(count)
    meta = r.ints(5 * count, "Q")
    counts = r.ints(count)
    groups = r.ints(count)
    total = sum(counts)
    ids = r.ints(2 * total, "Q")
    sizes = r.ints(total)
    items = r.strs(sum(sizes))
    streams = []
    e = 0   # entry index
    f = 0   # item index
    for k, key in enumerate(keys):
        s = Stream()
        last = 0
        for _ in range(counts[k]):
            sid = ids[2 * e] << 64 | ids[2 * e + 1]
            size = sizes[e]
            if sid <= last:   # ascending, and above 0-0
                raise KdbError("the stream at key %s has entry ids out of order" % _show(key), at)
            if size < 2 or size & 1:
                raise KdbError("the stream at key %s has an entry of %d items" % (_show(key), size), at)
            s.add(sid, items[f:f + size])
            last = sid
            e += 1
            f += size
            if not e % _STREAM_STEP:
                yield
        m = meta[5 * k:5 * k + 5]
        s.last_id = m[0] << 64 | m[1]
        s.entries_added = m[2]
        s.max_deleted_id = m[3] << 64 | m[4]
        if s.last_id < last or s.entries_added < s.length:
            raise KdbError("the stream at key %s has a last id or entries-added below its "
                           "entries" % _show(key), at)
        streams.append(s)
    if any(groups):
        decode_groups = STREAM_GROUP_CODEC[1]
        if decode_groups is None:
            raise KdbError("stream consumer groups are not supported by this version", at)
        decode_groups(r, [(s, g) for s, g in zip(streams, groups) if g])
    data.update(zip(keys, streams))


# An intset is written as a set (its members as decimal text) and read back as
# Redis's rdbLoad makes one: an intset when every member is an integer and
# there are at most INTSET_ENTRIES (the default set-max-intset-entries).
_KIND_OF = {bytes: STRING, QuickList: LIST, set: SET, IntSet: SET, ZSet: ZSET_, dict: HASH,
            PackedHash: HASH, PackedSet: SET, PackedZSet: ZSET_, Stream: STREAM}
_ENCODERS = {STRING: _enc_strings, LIST: _enc_sequences(LIST), SET: _enc_sequences(SET),
             ZSET_: _enc_zsets, HASH: _enc_hashes, STREAM: _enc_streams}


class _Writer:
    """Writes to `fileobj` keeping the whole-file CRC (and a section's)."""

    def __init__(self, fileobj) -> None:
        self.out = fileobj
        self.crc = 0
        self.section_crc = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.section_crc = zlib.crc32(data, self.section_crc)


def _dbs_of(tenant) -> list:
    """[(data, expires), ...] of a Tenant, or of a list of databases or of
    (data, expires) pairs (what load() returns)."""
    if hasattr(tenant, "dbs"):
        # A Tenant's Databases yields only the databases made so far; each
        # pair must sit at its database's index.
        out = [({}, {})] * len(tenant.dbs)
        for db in tenant.dbs:
            out[db.index] = (db.data, db.expires)
        return out
    return [(db.data, db.expires) if hasattr(db, "data") else db for db in tenant]


def _codes_of(tenant) -> list:
    """The FUNCTION LOAD payloads of a Tenant's libraries (scripting/functions.py)."""
    libs = getattr(tenant, "functions", None)
    if libs is None or not libs.libs:
        return []
    return [libs.libs[name].code for name in sorted(libs.libs)]


def dump(tenants: dict, fileobj, now_ms: int | None = None, key_save_delay_us: int = 0) -> int:
    """Write a whole .kdb file holding `tenants` to `fileobj`; returns keys written.
    `key_save_delay_us` (rdb-key-save-delay, for tests) sleeps that long per key."""
    enabled = gc.isenabled()
    gc.disable()   # as in parse_file: the lists built here hold no cycles
    try:
        return _dump(tenants, fileobj, now_ms, key_save_delay_us)
    finally:
        if enabled:
            gc.enable()


def _dump(tenants: dict, fileobj, now_ms, key_save_delay_us) -> int:
    now = _now_ms() if now_ms is None else now_ms
    items = [(name, _dbs_of(t), _codes_of(t)) for name, t in tenants.items()]
    items = [(name, dbs, codes) for name, dbs, codes in items
             if codes or any(data for data, _ in dbs)]
    databases = max((len(dbs) for _, dbs, _ in items), default=0)
    writer = _Writer(fileobj)
    version = VERSION_FUNCTIONS if any(codes for _, _, codes in items) else VERSION
    if any(Stream in set(map(type, data.values())) for _, dbs, _ in items for data, _ in dbs):
        version = VERSION_STREAMS
    head = HEADER.pack(MAGIC, version, 0, databases, now, len(items))
    writer.write(head + HEADER_CRC.pack(zlib.crc32(head)))
    total = 0
    for name, dbs, codes in items:
        encoded = name.encode("utf-8", "surrogateescape")
        writer.section_crc = 0
        writer.write(SECTION.pack(b"TSEC", len(encoded)) + encoded)
        if codes:
            payload: list = []
            _strs(payload, codes)
            writer.write(b"".join(_block(FUNCTIONS, 0, len(codes), payload)))
        for db_index, (data, expires) in enumerate(dbs):
            if not data:
                continue
            for block, keys in _db_blocks(db_index, data, expires, now, key_save_delay_us):
                writer.write(b"".join(block))
                total += keys
        writer.write(BLOCK.pack(END, 0, 0, 0))
        writer.write(CRC.pack(writer.section_crc))
    tail = TRAILER.pack(b"KEND", total, 0)[:-4]
    writer.write(tail)
    fileobj.write(CRC.pack(writer.crc))
    return total


class _Buffer:
    def __init__(self) -> None:
        self.parts: list = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


def dumps(tenants: dict, now_ms: int | None = None) -> bytes:
    buffer = _Buffer()
    dump(tenants, buffer, now_ms)
    return b"".join(buffer.parts)


# -- decoding -------------------------------------------------------------------

class _Reader:
    """Bounds-checked reads from one verified region [pos, end) of `data`."""
    __slots__ = ("data", "pos", "end", "what", "limits")

    def __init__(self, data: bytes, pos: int, end: int, what: str, limits=None) -> None:
        self.data, self.pos, self.end, self.what = data, pos, end, what
        # the loading server's config values (Config.values), for the
        # listpack limits a compact form is built with; None: Redis's defaults
        self.limits = limits

    def need(self, size: int) -> int:
        start = self.pos
        if size < 0 or start + size > self.end:
            raise KdbError("%s: %d bytes needed, %d left" % (self.what, size, self.end - start), start)
        self.pos = start + size
        return start

    def lengths(self, count: int) -> array:
        start = self.need(1)
        width = self.data[start]
        if width not in (4, 8):
            raise KdbError("%s: bad length width %d" % (self.what, width), start)
        start = self.need(count * width)
        lens = array("I" if width == 4 else "Q")
        if lens.itemsize != width:   # platforms where 'I' is not 4 bytes
            lens = array("L" if width == 4 else "Q")
        lens.frombytes(self.data[start:self.pos])
        if _SWAP:
            lens.byteswap()
        return lens

    def strs(self, count: int) -> list:
        lens = self.lengths(count)
        start = self.pos
        self.need(sum(lens))
        offsets = list(accumulate(lens, initial=start))
        data = self.data
        return [data[a:b] for a, b in zip(offsets, islice(offsets, 1, None))]

    def ints(self, count: int, code: str = "I") -> array:
        values = array(code)
        start = self.need(count * values.itemsize)
        values.frombytes(self.data[start:self.pos])
        if _SWAP:
            values.byteswap()
        return values


def _split(flat: list, counts) -> list:
    offsets = list(accumulate(counts, initial=0))
    return [flat[a:b] for a, b in zip(offsets, islice(offsets, 1, None))]


# -- validation -------------------------------------------------------------------
# A payload's structure can be right while its values are not values any
# command could have made: an empty list, a set or hash holding a member twice,
# a sorted set whose dict and sorted list disagree (a repeated member, a NaN
# score). Commands assume these never exist (LPOP, SPOP, ZRANK... fail on
# them), so every way data enters the server whole (start-up, KDB LOAD, DEBUG
# RELOAD, KDB IMPORT, a log's .kdb base, RESTORE later) refuses them here, in
# the decoders, before anything is installed. The checks run once per block in
# C (`in`, array comparison, sum); only a refusal walks the elements in Python.

def _show(name: bytes) -> str:
    """A key, member or field for an error message, cut to 64 bytes."""
    return repr(name[:64])[1:] + ("..." if len(name) > 64 else "")


def _repeat(items):
    """The first item seen twice, or None."""
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _check_collections(what: str, element: str, keys: list, counts, values,
                       elements: list, at: int) -> None:
    """`values` (one per key) were built from `elements` split by `counts`:
    refuse an empty one, and one that holds fewer distinct elements than the
    payload listed (`values` None: lists, where repeats are fine)."""
    if 0 in counts:
        raise KdbError("the %s at key %s is empty" % (what, _show(keys[counts.index(0)])), at)
    if values is None:
        return
    sizes = array(counts.typecode, map(len, values))
    if sizes != counts:
        i = next(i for i, (a, b) in enumerate(zip(sizes, counts)) if a != b)
        start = sum(counts[:i])
        twice = _repeat(elements[start:start + counts[i]])
        raise KdbError("the %s at key %s holds %s %s twice"
                       % (what, _show(keys[i]), element, _show(twice)), at)


def _dec_strings(r, count, data):
    keys = r.strs(count)
    data.update(zip(keys, r.strs(count)))
    return keys


# Keys of a string block decoded between two yields of _parse_steps.
_STRING_STEP = 8192


def _dec_strings_steps(r, count, data):
    """_dec_strings as a generator: the same reads and checks, in the same
    order, then the keys made and installed a few thousand at a time (a
    block of 65,536 keys took 30-150 ms in one go on a busy machine)."""
    klens = r.lengths(count)
    kstart = r.pos
    r.need(sum(klens))
    vlens = r.lengths(count)
    vstart = r.pos
    r.need(sum(vlens))
    koffsets = list(accumulate(klens, initial=kstart))
    voffsets = list(accumulate(vlens, initial=vstart))
    raw = r.data
    for at in range(0, count, _STRING_STEP):
        stop = min(count, at + _STRING_STEP)
        keys = [raw[a:b] for a, b in zip(koffsets[at:stop], koffsets[at + 1:stop + 1])]
        values = [raw[a:b] for a, b in zip(voffsets[at:stop], voffsets[at + 1:stop + 1])]
        data.update(zip(keys, values))
        yield


def _dec_sequences(kind, what, element):
    def decode(r, count, data):
        at = r.pos
        keys = r.strs(count)
        counts = r.ints(count)
        elements = r.strs(sum(counts))
        values = list(map(kind, _split(elements, counts)))
        _check_collections(what, element, keys, counts, None if kind is QuickList else values,
                           elements, at)
        data.update(zip(keys, values))
        return keys
    return decode


# A sorted set is read back as Redis's rdbLoad makes one: a listpack (a
# PackedZSet) within zset-max-listpack-entries / -value (the server's, else
# Redis's defaults) and PACKED_MAX_BYTES, as ZADD would build it; else a skiplist.
ZSET_ENTRIES = 128
ZSET_VALUE = 64
_ZSET_ENTRIES = (None, "zset-max-listpack-entries")
_ZSET_VALUE = (None, "zset-max-listpack-value")


def _zset(members, scores, entries: int = ZSET_ENTRIES, longest: int = ZSET_VALUE):
    if len(members) <= entries and max(map(len, members), default=0) <= longest \
            and sum(map(len, members)) + 9 * len(members) <= PACKED_MAX_BYTES:
        scores_of = dict(zip(members, scores))   # (a repeated member: fewer, as the check wants)
        return PackedZSet.from_pairs(sorted(zip(scores_of.values(), scores_of)))
    z = ZSet()
    z.scores = dict(zip(members, scores))
    z.order.update(zip(scores, members))
    return z


_NEG_ZERO = struct.pack("<d", -0.0)


def _dec_zsets(r, count, data):
    at = r.pos
    keys = r.strs(count)
    counts = r.ints(count)
    total = sum(counts)
    members = r.strs(total)
    first = r.pos
    scores = r.ints(total, "d").tolist()
    check = sum(scores)   # NaN if a score is NaN (or if inf and -inf meet: then look)
    if check != check:
        for i, score in enumerate(scores):
            if score != score:
                key = next(k for k, end in zip(keys, accumulate(counts)) if end > i)
                raise KdbError("the sorted set at key %s has a NaN score (member %s)"
                               % (_show(key), _show(members[i])), at)
    # -0.0 is stored as 0 (ZSet.add), so that ZSCORE replies 0 as Redis does.
    # The bytes of -0.0 found at any alignment is a cheap "maybe".
    if r.data.find(_NEG_ZERO, first, r.pos) >= 0:
        scores = [score + 0.0 for score in scores]
    limits = r.limits or {}
    entries = [limits.get(_ZSET_ENTRIES, ZSET_ENTRIES)] * count
    longest = [limits.get(_ZSET_VALUE, ZSET_VALUE)] * count
    values = list(map(_zset, _split(members, counts), _split(scores, counts), entries, longest))
    _check_collections("sorted set", "member", keys, counts, values, members, at)
    data.update(zip(keys, values))
    return keys


def _dec_hashes(r, count, data):
    at = r.pos
    keys = r.strs(count)
    counts = r.ints(count)
    total = sum(counts)
    fields = r.strs(total)
    values = r.strs(total)
    hashes = list(map(dict, map(zip, _split(fields, counts), _split(values, counts))))
    _check_collections("hash", "field", keys, counts, hashes, fields, at)
    limits = r.limits
    if limits is None:
        data.update(zip(keys, map(compact_hash, hashes)))
    else:   # as this server's HSET would have built them
        entries = limits.get(_HASH_ENTRIES, HASH_MAX_ENTRIES)
        longest = limits.get(_HASH_VALUE, HASH_MAX_VALUE)
        data.update(zip(keys, [compact_hash(h, entries, longest) for h in hashes]))
    return keys


_HASH_ENTRIES = (None, "hash-max-listpack-entries")
_HASH_VALUE = (None, "hash-max-listpack-value")


INTSET_ENTRIES = 512
_INTSET_ENTRIES = (None, "set-max-intset-entries")
_SET_ENTRIES = (None, "set-max-listpack-entries")
_SET_VALUE = (None, "set-max-listpack-value")
_dec_set_values = _dec_sequences(set, "set", "member")


def _dec_sets(r, count, data):
    keys = _dec_set_values(r, count, data)
    limits = r.limits or {}
    int_entries = limits.get(_INTSET_ENTRIES, INTSET_ENTRIES)
    entries = limits.get(_SET_ENTRIES, SET_MAX_ENTRIES)
    longest = limits.get(_SET_VALUE, SET_MAX_VALUE)
    for key in keys:
        ints = IntSet.from_members(data[key], int_entries)
        if ints is not None:
            data[key] = ints
        else:   # else a listpack within the limits, as Redis 7.2's rdbLoad
            packed = compact_set(data[key], entries, longest)
            if packed is not None:
                data[key] = packed
    return keys


_DECODERS = {STRING: _dec_strings, LIST: _dec_sequences(QuickList, "list", "element"),
             SET: _dec_sets, ZSET_: _dec_zsets, HASH: _dec_hashes,
             STREAM: _dec_streams}   # (a generator: _parse_steps runs it)


def _repeated_key(data: bytes, start: int, stop: int, index: int, expiry: bool):
    """The first key that the value blocks (or the expiry blocks) of database
    `index` of the section at `start` hold twice. Only on a refusal: it
    decodes their keys again."""
    name_len = SECTION.unpack_from(data, start)[1]
    r = _Reader(data, start + SECTION.size + name_len, stop, "block")
    seen: set = set()
    while True:
        at = r.need(BLOCK.size)
        kind, db, count, psize = BLOCK.unpack_from(data, at)
        if kind == END:
            return None
        if db == index and (kind == EXPIRES) == expiry:
            for key in _Reader(data, r.pos, r.pos + psize, "block").strs(count):
                if key in seen:
                    return key
                seen.add(key)
        r.pos += psize


class LoadResult:
    def __init__(self, tenants: dict, keys: int, expired: int, created_ms: int, size: int) -> None:
        self.tenants = tenants      # name -> [(data, expires), ...]
        self.functions: dict = {}   # name -> [FUNCTION LOAD payload, ...] (version 2)
        self.keys = keys            # keys loaded (after dropping expired ones)
        self.expired = expired      # keys dropped because they had expired
        self.created_ms = created_ms
        self.size = size


def _walk_section(data: bytes, start: int, end: int) -> int:
    """Offset just past the END block of the section at `start` (before its CRC):
    hops from block header to block header, so that the section's checksum is
    verified before anything inside it is parsed."""
    r = _Reader(data, start, end, "section header")
    head = r.need(SECTION.size)
    tag, name_len = SECTION.unpack_from(data, head)
    if tag != b"TSEC":
        raise KdbError("expected a tenant section (TSEC), found %r" % tag, head)
    r.what = "tenant name"
    r.need(name_len)
    r.what = "block header"
    while True:
        at = r.need(BLOCK.size)
        kind, _db, _count, size = BLOCK.unpack_from(data, at)
        if kind == END:
            if _db or _count or size:
                raise KdbError("malformed end-of-section block", at)
            return r.pos
        if kind not in KIND_NAMES:
            raise KdbError("unknown block kind %d" % kind, at)
        r.what = "%s block of %d bytes" % (KIND_NAMES[kind], size)
        r.need(size)
        r.what = "block header"


def parse_file(data: bytes, now_ms: int | None = None, databases: int | None = None,
               limits=None) -> LoadResult:
    """load() on the bytes of a whole file. `limits`: the server's config
    values (Config.values), whose *-max-listpack-* limits decide which
    values load compact; None: Redis's defaults."""
    # Decoding creates millions of containers; each few hundred allocations
    # would start a collection that walks the whole (growing) heap: with the
    # collector on, loading one million mixed keys took 3.5 s instead of 1.
    # Nothing built here can form a reference cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_file(data, now_ms, databases, limits)
    finally:
        if enabled:
            gc.enable()


def _parse_file(data: bytes, now_ms, databases, limits=None) -> LoadResult:
    return run_whole(_parse_steps(data, now_ms, databases, limits))


# Bytes checksummed between two yields of _parse_steps.
_CRC_STEP = 4 << 20


def _crc(data: bytes, start: int, stop: int):
    """zlib.crc32 of data[start:stop], a generator yielding every _CRC_STEP bytes."""
    view = memoryview(data)
    value = 0
    for at in range(start, stop, _CRC_STEP):
        value = zlib.crc32(view[at:min(stop, at + _CRC_STEP)], value)
        yield
    return value


def parse_steps(data: bytes, now_ms: int | None = None, databases: int | None = None,
                limits=None, room: int | None = None):
    """parse_file as a generator (dispatch/slices.py: KDB IMPORT decodes in
    slices): yields after each block and every few MB of checksum, returns
    the LoadResult. The collector is off while each step runs, as in
    parse_file, and on between steps (other clients run there). With
    `room` (bytes), RoomExceeded once the decoded data would pass it."""
    steps = _parse_steps(data, now_ms, databases, limits, room)
    while True:
        enabled = gc.isenabled()
        gc.disable()
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        finally:
            if enabled:
                gc.enable()
        yield


def _parse_steps(data: bytes, now_ms, databases, limits=None, room=None):
    size = len(data)
    needed = 0
    if data[:8] != MAGIC:
        if size < 8 and MAGIC.startswith(data):
            raise KdbError("truncated header: %d bytes" % size, size)
        raise KdbError("not a .kdb file (bad magic)", 0)
    if size < HEADER.size + HEADER_CRC.size:
        raise KdbError("truncated header: %d bytes" % size, size)
    magic, version, flags, _dbs, created, tenant_count = HEADER.unpack_from(data, 0)
    if version not in SUPPORTED_VERSIONS:
        raise KdbError("unsupported .kdb version %d (this server reads %s)"
                       % (version, ", ".join(map(str, SUPPORTED_VERSIONS))), 8)
    (header_crc,) = HEADER_CRC.unpack_from(data, HEADER.size)
    if zlib.crc32(data[:HEADER.size]) != header_crc:
        raise KdbError("header checksum mismatch", HEADER.size)
    if flags:
        raise KdbError("unknown header flags 0x%04x" % flags, 10)
    pos = HEADER.size + HEADER_CRC.size
    end = size
    sections = []
    for _ in range(tenant_count):
        stop = _walk_section(data, pos, end)
        if stop + CRC.size > end:
            raise KdbError("section checksum: 4 bytes needed, %d left" % (end - stop), stop)
        (stored,) = CRC.unpack_from(data, stop)
        if (yield from _crc(data, pos, stop)) != stored:
            name_len = SECTION.unpack_from(data, pos)[1]
            name = data[pos + SECTION.size:pos + SECTION.size + name_len].decode("utf-8", "replace")
            raise KdbError("checksum mismatch in the section of tenant %r (bytes %d-%d)"
                           % (name, pos, stop - 1), pos)
        sections.append((pos, stop))
        pos = stop + CRC.size
    if pos + TRAILER.size > end:
        raise KdbError("truncated: the end marker needs %d bytes, %d left"
                       % (TRAILER.size, end - pos), pos)
    tag, key_total, file_crc = TRAILER.unpack_from(data, pos)
    if tag != b"KEND":
        raise KdbError("expected the end marker (KEND), found %r" % tag, pos)
    if pos + TRAILER.size != end:
        raise KdbError("%d unexpected bytes after the end marker" % (end - pos - TRAILER.size),
                       pos + TRAILER.size)
    if (yield from _crc(data, 0, end - CRC.size)) != file_crc:
        raise KdbError("file checksum mismatch", end - CRC.size)

    now = now_ms
    tenants: dict = {}
    functions: dict = {}
    keys_seen = 0
    loaded = 0
    expired_count = 0
    for start, stop in sections:
        name_len = SECTION.unpack_from(data, start)[1]
        name_at = start + SECTION.size
        try:
            name = data[name_at:name_at + name_len].decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:   # surrogateescape accepts any bytes; kept for safety
            raise KdbError("tenant name is not UTF-8", name_at)
        if name in tenants:
            raise KdbError("tenant %r appears twice" % name, start)
        dbs: dict = {}   # index -> [data, expires]
        r = _Reader(data, name_at + name_len, stop, "block")
        while True:
            at = r.need(BLOCK.size)
            kind, index, count, psize = BLOCK.unpack_from(data, at)
            if kind == END:
                break
            if kind == FUNCTIONS:
                if version < VERSION_FUNCTIONS:
                    raise KdbError("a functions block in a version %d file" % version, at)
                if name in functions or index:
                    raise KdbError("a second or misplaced functions block in tenant %r" % name, at)
                block = _Reader(data, r.pos, r.pos + psize, "functions block")
                r.pos += psize
                # Only stored here: each is checked again as FUNCTION LOAD
                # checks it when the server installs it (snapshot.install).
                functions[name] = block.strs(count)
                if block.pos != block.end:
                    raise KdbError("%d unread bytes in a functions block"
                                   % (block.end - block.pos), block.pos)
                yield
                continue
            if databases is not None and index >= databases:
                raise KdbError("database %d in tenant %r: this server has %d databases"
                               % (index, name, databases), at)
            if room is not None:
                needed += psize + count * DECODED_PER_KEY
                if needed > room:
                    raise RoomExceeded(needed)
            entry = dbs.get(index)
            if entry is None:
                entry = dbs[index] = [{}, {}]
            if kind == STREAM and version < VERSION_STREAMS:
                raise KdbError("a stream block in a version %d file" % version, at)
            block = _Reader(data, r.pos, r.pos + psize, "%s block" % KIND_NAMES.get(kind, kind),
                            limits)
            r.pos += psize
            where = "database %d of tenant %r" % (index, name)
            if kind == EXPIRES:
                keys = block.strs(count)
                times = block.ints(count, "q")
                expires = entry[1]
                before = len(expires)
                expires.update(zip(keys, times))
                if len(expires) != before + count:
                    raise KdbError("two expiry times for key %s in %s" % (
                        _show(_repeated_key(data, start, stop, index, True)), where), at)
                if times and min(times) < 0:
                    i = next(i for i, t in enumerate(times) if t < 0)
                    raise KdbError("negative expiry time %d for key %s in %s"
                                   % (times[i], _show(keys[i]), where), at)
            else:
                decoder = _DECODERS.get(kind)
                if decoder is None:
                    raise KdbError("unknown block kind %d" % kind, at)
                values = entry[0]
                before = len(values)
                try:
                    if kind == STRING:   # the common block: decoded in steps
                        yield from _dec_strings_steps(block, count, values)
                    elif kind == STREAM:   # one stream can hold millions of entries
                        yield from _dec_streams(block, count, values)
                    else:
                        decoder(block, count, values)
                except KdbError as exc:
                    exc.message = "%s, in %s" % (exc.message, where)
                    raise
                if len(values) != before + count:
                    raise KdbError("key %s appears twice in %s" % (
                        _show(_repeated_key(data, start, stop, index, False)), where), at)
                keys_seen += count
            if block.pos != block.end:
                raise KdbError("%d unread bytes in a %s block" % (block.end - block.pos,
                                                                  KIND_NAMES[kind]), block.pos)
            yield
        for index in sorted(dbs):
            values, expires = dbs[index]
            if not expires.keys() <= values.keys():
                missing = next(k for k in expires if k not in values)
                raise KdbError("an expiry time for key %s, which is not in database %d of "
                               "tenant %r" % (_show(missing), index, name), start)
            if now is not None and expires:
                dead = [k for k, when in expires.items() if when <= now]
                for key in dead:
                    del values[key]
                    del expires[key]
                expired_count += len(dead)
            loaded += len(values)
        # Only up to the highest database the tenant uses: a pair of empty
        # dicts for each of 16 databases costs 2 KB a tenant, which a load
        # of many small tenants leaves behind in the allocator.
        per_db = [({}, {}) for _ in range(max(dbs, default=-1) + 1)]
        for index, (values, expires) in dbs.items():
            per_db[index] = (values, expires)
        tenants[name] = per_db
    if keys_seen != key_total:
        raise KdbError("the end marker counts %d keys, the sections hold %d" % (key_total, keys_seen), pos)
    result = LoadResult(tenants, loaded, expired_count, created, size)
    result.functions = functions
    return result


def _read_all(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return source.read()


def load(source, now_ms: int | None = None, databases: int | None = None,
         limits=None) -> dict:
    """Parse and verify a whole .kdb file (a file object or bytes): see the module docstring."""
    return parse_file(_read_all(source), now_ms, databases, limits).tenants


def read_file(path: str, now_ms: int | None = None, databases: int | None = None,
              nofollow: bool = False, limits=None) -> LoadResult:
    """`nofollow`: for a name a client gave, refuse a symlink or anything but
    a regular file (files.open_regular) instead of following it."""
    with (open_regular(path) if nofollow else open(path, "rb")) as handle:
        data = handle.read()
    return parse_file(data, now_ms, databases, limits)


def write_snapshot(server_or_tenants, path: str, now_ms: int | None = None,
                   key_save_delay_us: int = 0) -> int:
    """Atomically replace `path` with a snapshot: see the module docstring."""
    tenants = getattr(server_or_tenants, "tenants", server_or_tenants)
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, "temp-%d.kdb" % os.getpid())
    try:
        # The temp name is predictable: never write through what is there.
        with create_exclusive(temp, buffering=1 << 20) as handle:
            keys = dump(tenants, handle, now_ms, key_save_delay_us)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_dir(directory)
    return keys
