"""HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST.

An HLL is a string value in Redis's own bytes (keyspace/hll.py), so GET,
SET, DUMP and the persistence see a plain string. Every command checks the
header first (Redis's isHLLObjectOrReply: WRONGTYPE with its HLL text) and
answers INVALIDOBJ for a sparse body that does not cover 16,384 registers.

PFCOUNT of one key answers the cached cardinality while it is valid and
writes it back when it recomputes it (as Redis: GET then shows the cache).
PFCOUNT and PFMERGE of several keys, and PFADD of many elements, run as
sliced jobs (dispatch/slices.py): a key's merge costs ~0.1 ms, an element's
hash ~1 us, so a tenant naming thousands of either cannot hold the others.
They write only at their end.
"""

import math
import random
import re
import struct

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.keyspace import hll
from tenantkv.protocol.encoder import OK, Status

_SPARSE_MAX = (None, "hll-sparse-max-bytes")
_EMBSTR_MAX = 44
_ADD_CHUNK = 1024   # elements between two yields of a big PFADD
_LLONG = 1 << 63
_NONZERO = re.compile(rb"[^\x00]")
_ZEROS = bytes(hll.REGISTERS)
_DENSE_SIZE = hll.DENSE_SIZE
_DENSE_MAGIC = hll.DENSE_MAGIC
_Q_BIT = 1 << hll.Q
_murmur = hll.murmur64a
_card = struct.Struct("<Q").unpack_from


def _signed(card: int) -> int:
    return card - (1 << 64) if card >= _LLONG else card


def _hll(value: bytes) -> bytes:
    if not hll.is_hll(value):
        raise CommandError(errors.HLL_WRONGTYPE)
    return value


def _store(db, key: bytes, value: bytes, created: bool) -> None:
    """The key's new HLL (TTL kept): an HLL is a raw string in Redis, even
    a short sparse one (createHLLObject, dbUnshareStringValue)."""
    if created:
        db.set(key, value)
    else:
        db.replace(key, value)
    if len(value) <= _EMBSTR_MAX:
        db.mark_encoding(key, value, "raw")


def _add(value: bytes, elements, max_bytes: int):
    """(new value or None, registers updated, corrupt) after adding `elements`."""
    if value[4] == hll.DENSE:
        new = hll.dense_add(value, elements)
        return new, new is not None, False
    return hll.sparse_add(value, elements, max_bytes)


# -- PFADD -----------------------------------------------------------------------

@command("pfadd")
def pfadd(conn, args):
    db = conn.db
    key = args[1]
    value = db.data.get(key)
    if type(value) is not bytes or db.expires:   # write_typed, unless plainly a string
        value = db.write_typed(key, bytes)
    if len(args) == 3 and value is not None and len(value) == _DENSE_SIZE \
            and value[:5] == _DENSE_MAGIC:
        # The common case, written out: one element into a dense HLL, which
        # most of the time raises no register (then no copy, reply 0).
        h = _murmur(args[2])
        x = (h >> 14) | _Q_BIT
        index = (h & 16383) * 6
        pos = 16 + (index >> 3)
        fb = index & 7
        if (x & -x).bit_length() <= ((value[pos] >> fb) | (value[pos + 1] << (8 - fb)) if pos < 12303
                                     else value[pos] >> fb) & 63:
            return 0
        _store(db, key, hll.dense_add(value, (args[2],)), False)
        return 1
    created = value is None
    value = hll.EMPTY if created else _hll(value)
    # A corrupt sparse body too long to decode is walked per element as
    # Redis's scan does (up to 16,384 opcodes each, ~3 ms in Python): one
    # element per step of the job.
    oversized = value[4] == hll.SPARSE and len(value) - hll.HDR > hll.SPARSE_BODY_MAX
    if len(args) > _ADD_CHUNK + 2 or (oversized and len(args) > 3):
        return slices.run(conn, _pfadd_job(conn, db, key, value, created, args,
                                           1 if oversized else _ADD_CHUNK))
    new, updated, corrupt = _add(value, args[2:], conn.server.config.values[_SPARSE_MAX])
    return _pfadd_done(db, key, value, new, created, updated, corrupt)


def _pfadd_done(db, key, value, new, created, updated, corrupt) -> int:
    if new is not None:
        _store(db, key, new, created)
    elif created:   # a creation counts as an update: the cache is marked invalid
        _store(db, key, hll.EMPTY_INVALID, True)
    if corrupt:
        raise CommandError(errors.HLL_INVALID)
    return 1 if (updated or created) else 0


def _pfadd_job(conn, db, key, value, created, args, chunk: int):
    max_bytes = conn.server.config.values[_SPARSE_MAX]
    start = value
    any_update = False
    for at in range(2, len(args), chunk):
        new, updated, corrupt = _add(value, args[at:at + chunk], max_bytes)
        if new is not None:
            value = new
        any_update = any_update or bool(updated)
        if corrupt:
            break
        yield
    return _pfadd_done(db, key, start, value if value is not start else None,
                       created, any_update, corrupt)


# -- PFCOUNT / PFMERGE ------------------------------------------------------------

def _union(db, keys: list, dense_seen: list):
    """The registers (one per byte) of the union of the HLLs at `keys`, or
    None if none exists; WRONGTYPE / INVALIDOBJ at the first bad key, as
    Redis's loop. A generator: one key per step."""
    raw = None
    for key in keys:
        value = db.read_typed(key, bytes)
        if value is None:
            continue
        _hll(value)
        if value[4] == hll.DENSE:
            dense_seen.append(True)
        registers = hll.raw_of(value)
        if registers is None:
            raise CommandError(errors.HLL_INVALID)
        raw = registers if raw is None else hll.raw_max(raw, registers)
        yield
    return raw


def _count_job(db, keys: list):
    raw = yield from _union(db, keys, [])
    return hll.estimate(hll.histogram(raw if raw is not None else _ZEROS))


@command("pfcount")
def pfcount(conn, args):
    db = conn.db
    if len(args) > 2:
        return slices.run(conn, _count_job(db, args[1:]))
    key = args[1]
    value = db.data.get(key)
    # The hot case inline (a dense HLL with a valid cache, no TTL in the
    # database), counted as read_typed would count it.
    if type(value) is bytes and not db.expires and len(value) == _DENSE_SIZE \
            and not value[15] & 0x80 and value[:5] == _DENSE_MAGIC:
        db.hits += 1
        return _card(value, 8)[0]
    value = db.read_typed(key, bytes)
    if value is None:
        return 0
    if len(value) != _DENSE_SIZE or value[:5] != _DENSE_MAGIC:
        _hll(value)
        if len(value) <= _EMBSTR_MAX:
            db.mark_encoding(key, value, "raw")
    if not value[15] & 0x80:   # the cached cardinality is valid
        return int.from_bytes(value[8:16], "little")
    card = hll.count(value)
    if card is None:
        raise CommandError(errors.HLL_INVALID)
    # Written back as Redis does (a read-only command that updates the
    # value's cache); the key keeps its TTL. A modified key for WATCH and
    # client tracking, as Redis's signalModifiedKey here.
    _store(db, key, hll.with_card(value, card), False)
    conn.server.events.written(((db, key),), conn)
    return _signed(card)


def _merge_job(conn, db, args):
    dense_seen: list = []
    raw = yield from _union(db, args[1:], dense_seen)
    if raw is None:
        raw = _ZEROS
    key = args[1]
    dest = db.write_typed(key, bytes)
    created = dest is None
    if created:
        dest = hll.EMPTY
    if dense_seen and dest[4] == hll.SPARSE:
        dest = hll.to_dense(dest)
        if dest is None:
            raise CommandError(errors.HLL_INVALID)
    if dest[4] == hll.SPARSE:
        dest = _merge_sparse(dest, raw, conn.server.config.values[_SPARSE_MAX])
    else:
        # Every source (the destination among them) is in `raw`, so setting
        # each register to its max is writing `raw`.
        dest = dest[:hll.HDR] + hll.raw_dense(raw)
    _store(db, key, b"".join((dest[:15], bytes((dest[15] | 0x80,)), dest[16:])), created)
    return OK


def _merge_sparse(dest: bytes, raw: bytes, max_bytes: int) -> bytes:
    """PFMERGE's hllSparseSet of every non-zero register in index order,
    byte for byte (the splits and merges depend on that order); promoted to
    dense like Redis when a value or the size calls for it."""
    sb = hll.new_sparse_buffer(dest)
    path: list = []
    for match in _NONZERO.finditer(raw):
        index = match.start()
        result = hll.sparse_set(sb, index, raw[index], max_bytes, path)
        if result == hll.PROMOTE:
            current = hll.sparse_value(sb)
            dense = hll.to_dense(current, raw)
            return dense if dense is not None else current
    return hll.sparse_value(sb)


@command("pfmerge")
def pfmerge(conn, args):
    return slices.run(conn, _merge_job(conn, conn.db, args))


# -- PFDEBUG / PFSELFTEST ---------------------------------------------------------

@command("pfdebug")
def pfdebug(conn, args):
    sub = args[1].lower()
    db = conn.db
    key = args[2]
    value = db.write_typed(key, bytes)
    if value is None:
        raise CommandError(errors.PFDEBUG_NO_KEY)
    _hll(value)
    if sub == b"getreg":
        if value[4] == hll.SPARSE:
            dense = hll.to_dense(value)
            if dense is None:
                raise CommandError(errors.HLL_INVALID)
            _store(db, key, dense, False)
            value = dense
        return list(hll.dense_raw(value))
    if sub == b"decode":
        if value[4] != hll.SPARSE:
            raise CommandError(errors.PFDEBUG_NOT_SPARSE)
        return _decode(value)
    if sub == b"encoding":
        return Status("dense" if value[4] == hll.DENSE else "sparse")
    if sub == b"todense":
        if value[4] == hll.DENSE:
            return 0
        dense = hll.to_dense(value)
        if dense is None:
            raise CommandError(errors.HLL_INVALID)
        _store(db, key, dense, False)
        return 1
    raise CommandError(errors.pfdebug_unknown(args[1]))


_DECODE_MAX = 1 << 20


def _decode(value: bytes) -> bytes:
    """PFDEBUG DECODE's text: z:len, Z:len, v:value,len (a trailing lone
    XZERO byte reads the zero after it, as Redis reads sds's terminator).
    A valid sparse body is at most ~32 KB; a corrupt one is decoded up to
    _DECODE_MAX bytes (a root-only debugging command, but one Python step
    per opcode: 512 MB of garbage would hold the server for minutes)."""
    out = []
    body = value[hll.HDR:hll.HDR + _DECODE_MAX] + b"\x00"
    p, end = 0, len(body) - 1
    while p < end:
        b = body[p]
        if b < 0x40:
            out.append(b"z:%d" % (b + 1))
            p += 1
        elif b < 0x80:
            out.append(b"Z:%d" % ((((b & 0x3f) << 8) | body[p + 1]) + 1))
            p += 2
        else:
            out.append(b"v:%d,%d" % (((b >> 2) & 0x1f) + 1, (b & 3) + 1))
            p += 1
    return b" ".join(out)


_SELFTEST_CHECKPOINTS = 100_000   # Redis goes to 10,000,000: too long in Python


@command("pfselftest")
def pfselftest(conn, args):
    return slices.run(conn, _selftest_job(conn.server.config.values[_SPARSE_MAX]))


def _selftest_job(max_bytes: int):
    """PFSELFTEST's two tests, smaller: registers written and read back
    through the packing (a few rounds of random values), then the estimate
    of dense and sparse HLLs fed the same elements, compared with each other
    and with the true count at 1, 10, ... 100,000 elements."""
    rng = random.Random()
    for _ in range(8):
        raw = bytes(rng.getrandbits(6) for _ in range(hll.REGISTERS))
        dense = bytearray(hll.DENSE_SIZE)
        dense[:hll.HDR] = hll.MAGIC + bytes(12)
        dense[hll.HDR:] = hll.raw_dense(raw)
        back = hll.dense_raw(dense)
        for index in range(0, hll.REGISTERS, 97):
            hll.dense_set(dense, index, raw[index])
            if hll.dense_get(dense, index) != raw[index]:
                raise CommandError(errors.pfselftest_failed(
                    f"Register {index} should be {raw[index]} but is {hll.dense_get(dense, index)}"))
        if back != raw:
            index = next(i for i in range(hll.REGISTERS) if back[i] != raw[i])
            raise CommandError(errors.pfselftest_failed(
                f"Register {index} should be {raw[index]} but is {back[index]}"))
        yield
    dense = bytearray(hll.to_dense(hll.EMPTY))
    sparse = hll.EMPTY
    relerr = 1.04 / hll.REGISTERS ** 0.5
    seed = rng.getrandbits(64)
    checkpoint = 1
    batch = []
    for j in range(1, _SELFTEST_CHECKPOINTS + 1):
        element = (j ^ seed).to_bytes(8, "little")
        batch.append(element)
        if j != checkpoint:
            continue
        grown = hll.dense_add(bytes(dense), batch)
        if grown is not None:
            dense = bytearray(grown)
        new, _, corrupt = _add(sparse, batch, max_bytes)
        if new is not None:
            sparse = new
        batch = []
        if j < max_bytes // 2 and sparse[4] != hll.SPARSE:
            raise CommandError(errors.pfselftest_failed("sparse encoding not used"))
        estimate = hll.count(bytes(dense))
        if estimate != hll.count(sparse):
            raise CommandError(errors.pfselftest_failed("dense/sparse disagree"))
        maxerr = 1 if j == 10 else math.ceil(relerr * 6 * checkpoint)
        if abs(checkpoint - estimate) > maxerr:
            raise CommandError(errors.pfselftest_failed(
                f"Too big error. card:{checkpoint} abserr:{abs(checkpoint - estimate)}"))
        checkpoint *= 10
        yield
    return OK
