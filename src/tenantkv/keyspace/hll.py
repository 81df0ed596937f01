"""HyperLogLog values in Redis 7.0's exact representation (hyperloglog.c).

An HLL is a plain string value, so GET answers Redis's bytes and a SET of
Redis's bytes is an HLL: a 16-byte header ("HYLL", the encoding byte, 0
dense or 1 sparse, three unused bytes, the cached cardinality as 8 bytes
little endian whose top bit says "invalid"), then

- dense: 16,384 six-bit registers packed from the least significant bit of
  each byte (12,288 bytes);
- sparse: opcodes, ZERO 00xxxxxx (1-64 zero registers), XZERO 01xxxxxx
  xxxxxxxx (1-16,384 zero registers), VAL 1vvvvvxx (1-4 registers of value
  1-32), that must cover exactly 16,384 registers.

Speed without a per-register Python loop: the dense registers are unpacked
to one byte per register ("raw", 16,384 bytes) with four slices and
bytes.translate, merged with SWAR arithmetic on big integers, counted eight
values at a time (translate + popcount), and packed back the same way; the
histogram of a dense HLL counted once is kept up to date by the PFADDs that
follow. The sparse in-place update (hllSparseSet) is ported byte for byte,
including its split and merge rules, because the bytes it leaves depend on
the history of updates, not only on the registers: one element finds its
opcode by walking the XZEROs with memchr and summing the runs between them
in C (`_locate`); many elements decode the body once into lists
(`SparseOps`: bisect, list slices).

A valid sparse body has at most 16,384 opcodes (each covers at least one
register), so counting, merging and the conversion to dense call a longer
one corrupt before reading it, and never allocate per claimed register.
(PFADD walks such a body as Redis's scan does, up to the opcode it needs;
commands/hll.py runs that one element per slice.)
"""

import math
import re
import struct
from bisect import bisect_right
from collections import Counter
from itertools import accumulate

HDR = 16
REGISTERS = 16384
DENSE_BYTES = REGISTERS * 6 // 8
DENSE_SIZE = HDR + DENSE_BYTES
DENSE, SPARSE = 0, 1
Q = 50
SPARSE_VAL_MAX = 32
SPARSE_BODY_MAX = 2 * REGISTERS   # more bytes than this cannot be a valid sparse body
PROMOTE = 2   # sparse_set's answer: the HLL must become dense for this update

_M64 = (1 << 64) - 1
_MUL = 0xc6a4a7935bd1e995
_SEED = 0xadc83b19
_ALPHA_INF = 0.721347520444481703680

MAGIC = b"HYLL"
DENSE_MAGIC = b"HYLL\x00"
# createHLLObject: sparse, cached cardinality 0 (valid), one XZERO of 16384.
EMPTY = MAGIC + b"\x01" + bytes(11) + b"\x7f\xff"
EMPTY_INVALID = MAGIC + b"\x01" + bytes(10) + b"\x80\x7f\xff"


# -- hashing ------------------------------------------------------------------

_UNPACK = [struct.Struct("<%dQ" % n).unpack_from for n in range(8)]
_START = [_SEED ^ ((n * _MUL) & _M64) for n in range(64)]


def murmur64a(data: bytes, _M=_M64, _MUL=_MUL, _START=_START, _UNPACK=_UNPACK,
              _from=int.from_bytes) -> int:
    """MurmurHash64A with Redis's seed, endian neutral as Redis's. A product
    is masked to 64 bits only where the bits above could come back down
    (before a right shift, at the end): XOR and the next product modulo
    2^64 do not read them."""
    n = len(data)
    if n < 64:
        h = _START[n]
        if n >= 8:
            for k in _UNPACK[n >> 3](data):
                k = (k * _MUL) & _M
                h = ((h ^ ((k ^ (k >> 47)) * _MUL)) * _MUL) & _M
    else:
        h = _SEED ^ ((n * _MUL) & _M)
        for k in struct.unpack_from("<%dQ" % (n >> 3), data):
            k = (k * _MUL) & _M
            h = ((h ^ ((k ^ (k >> 47)) * _MUL)) * _MUL) & _M
    if n & 7:
        h = ((h ^ _from(data[n & ~7:], "little")) * _MUL) & _M
    h = ((h ^ (h >> 47)) * _MUL) & _M
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple:
    """hllPatLen: (register index, length of the 000..1 run + 1)."""
    h = murmur64a(element)
    x = (h >> 14) | (1 << Q)
    return h & 16383, (x & -x).bit_length()


# -- header ---------------------------------------------------------------------

def is_hll(value: bytes) -> bool:
    """isHLLObjectOrReply's test of a string value."""
    return (len(value) >= HDR and value[:4] == MAGIC and value[4] <= 1
            and (value[4] == SPARSE or len(value) == DENSE_SIZE))


def with_card(value: bytes, card: int) -> bytes:
    new = b"".join((value[:8], (card & _M64).to_bytes(8, "little"), memoryview(value)[16:]))
    counts = forget(value)
    if counts is not None:
        remember(new, counts)
    return new


# -- dense registers ------------------------------------------------------------

_SINGLE = [bytes((i,)) for i in range(256)]


def _table(f) -> bytes:
    return bytes(f(i) & 0xff for i in range(256))


_AND63 = _table(lambda b: b & 63)
_SHR6 = _table(lambda b: b >> 6)
_LO4_SHL2 = _table(lambda b: (b & 15) << 2)
_SHR4 = _table(lambda b: b >> 4)
_LO2_SHL4 = _table(lambda b: (b & 3) << 4)
_SHR2 = _table(lambda b: b >> 2)
_SHL6 = _table(lambda b: b << 6)
_SHL4 = _table(lambda b: b << 4)
_SHL2 = _table(lambda b: b << 2)


def _or(a: bytes, b: bytes) -> bytes:
    """Bytewise OR of two equal-length strings whose set bits never meet."""
    return (int.from_bytes(a, "little") + int.from_bytes(b, "little")).to_bytes(len(a), "little")


def dense_raw(value) -> bytes:
    """The dense HLL's registers, one byte each (16,384 bytes): every 3
    bytes hold 4 registers, so four strided slices and translates do it."""
    regs = bytes(value[HDR:DENSE_SIZE])
    b0, b1, b2 = regs[0::3], regs[1::3], regs[2::3]
    raw = bytearray(REGISTERS)
    raw[0::4] = b0.translate(_AND63)
    raw[1::4] = _or(b0.translate(_SHR6), b1.translate(_LO4_SHL2))
    raw[2::4] = _or(b1.translate(_SHR4), b2.translate(_LO2_SHL4))
    raw[3::4] = b2.translate(_SHR2)
    return bytes(raw)


def raw_dense(raw: bytes) -> bytes:
    """The 12,288 packed bytes of 16,384 registers (each < 64) given one per byte."""
    r0, r1, r2, r3 = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    out = bytearray(DENSE_BYTES)
    out[0::3] = _or(r0, r1.translate(_SHL6))
    out[1::3] = _or(r1.translate(_SHR2), r2.translate(_SHL4))
    out[2::3] = _or(r2.translate(_SHR4), r3.translate(_SHL2))
    return bytes(out)


def dense_get(value, index: int) -> int:
    pos = HDR + (index * 6 >> 3)
    fb = index * 6 & 7
    b1 = value[pos + 1] if pos + 1 < len(value) else 0
    return ((value[pos] >> fb) | (b1 << (8 - fb))) & 63


def dense_set(buf: bytearray, index: int, count: int) -> None:
    """HLL_DENSE_SET_REGISTER (the byte after the last register is sds's
    terminator in Redis: only zero bits go there, so it is skipped)."""
    pos = HDR + (index * 6 >> 3)
    fb = index * 6 & 7
    buf[pos] = (buf[pos] & ~(63 << fb) & 0xff) | ((count << fb) & 0xff)
    if pos + 1 < DENSE_SIZE:
        fb8 = 8 - fb
        buf[pos + 1] = (buf[pos + 1] & ~(63 >> fb8) & 0xff) | (count >> fb8)


# -- the histogram cache ----------------------------------------------------------
# PFCOUNT needs the histogram of the 16,384 registers (~0.2 ms in Python,
# ~20 us in C). A PFADD knows which registers it raised, so the histogram
# of a dense HLL counted once is kept up to date by the PFADDs that follow:
# PFCOUNT after PFADD on a hot key is then O(64). Keyed by the identity of
# the immutable value (the entry holds it, so the id cannot be reused),
# bounded; an entry of a value no key holds any more just ages out.

_HISTOGRAMS: dict = {}
HISTOGRAMS_MAX = 256


def remember(value: bytes, counts: list) -> None:
    cache = _HISTOGRAMS
    if len(cache) >= HISTOGRAMS_MAX:
        del cache[next(iter(cache))]
    cache[id(value)] = (value, counts)


def known_histogram(value) -> list | None:
    entry = _HISTOGRAMS.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    return None


def forget(value) -> list | None:
    entry = _HISTOGRAMS.pop(id(value), None)
    if entry is not None and entry[0] is value:
        return entry[1]
    return None


def dense_add(value: bytes, elements) -> bytes | None:
    """The value after adding `elements` to a dense HLL (cache invalidated),
    or None if no register grew."""
    buf = None
    raised = None
    for element in elements:
        h = murmur64a(element)
        x = (h >> 14) | (1 << Q)
        count = (x & -x).bit_length()
        index = h & 16383
        if buf is None:
            old = dense_get(value, index)
            if count > old:
                buf = bytearray(value)
                dense_set(buf, index, count)
                raised = [(old, count)]
        else:
            old = dense_get(buf, index)
            if count > old:
                dense_set(buf, index, count)
                raised.append((old, count))
    if buf is None:
        return None
    buf[15] |= 0x80
    new = bytes(buf)
    counts = forget(value)
    if counts is not None:
        counts = counts[:]
        for old, count in raised:
            counts[old] -= 1
            counts[count] += 1
        remember(new, counts)
    return new


# -- sparse -----------------------------------------------------------------------

_XZERO = re.compile(rb"([\x40-\x7f][\x00-\xff])")
# One-byte opcode -> registers it covers, and -> its registers as raw bytes.
_SPAN = bytes(((b & 0x3f) + 1) if b < 0x40 else ((b & 3) + 1) if b >= 0x80 else 0
              for b in range(256))
_EXPAND = [bytes(b + 1) if b < 0x40 else bytes(((b >> 2) & 0x1f) + 1 for _ in range((b & 3) + 1))
           if b >= 0x80 else b"" for b in range(256)]


# 1 for the bytes that can only start an XZERO at an opcode boundary.
_XMARK = bytes(1 if 0x40 <= b < 0x80 else 0 for b in range(256))


def _tokens(value, strict: bool = False):
    """The sparse body as [single-byte opcodes, XZERO, single-byte opcodes,
    XZERO, ...], or None when it is too long to be valid. A trailing lone
    XZERO byte reads the zero after it (sds's terminator in Redis); with
    `strict`, such a body is None too.

    Outside an XZERO no opcode byte is in 0x40-0x7f, so the first such byte
    from a boundary starts one: a few XZEROs are found with memchr over a
    translated copy, many by one regex split (same tokens, C either way)."""
    value = bytes(value)
    if len(value) - HDR > SPARSE_BODY_MAX:
        return None
    marks = value.translate(_XMARK)
    if marks.count(1, HDR) > 8:
        tokens = _XZERO.split(value[HDR:])
        last = tokens[-1]
        # Only the very last byte of a run of one-byte opcodes can be an
        # XZERO byte the regex left (it had no second byte).
        if last and 0x40 <= last[-1] < 0x80:
            if strict:
                return None
            tokens[-1] = last[:-1]
            tokens += [last[-1:] + b"\x00", b""]
        return tokens
    tokens = []
    pos = HDR
    end = len(value)
    while True:
        q = marks.find(1, pos)
        if q < 0:
            tokens.append(value[pos:])
            return tokens
        tokens.append(value[pos:q])
        if q + 1 >= end:
            if strict:
                return None
            tokens += [value[q:] + b"\x00", b""]
            return tokens
        tokens.append(value[q:q + 2])
        pos = q + 2


def _xzero_len(token: bytes) -> int:
    return (((token[0] & 0x3f) << 8) | token[1]) + 1


def sparse_raw(value) -> bytes | None:
    """The sparse HLL's registers one per byte, or None if it is corrupt
    (its opcodes do not cover exactly 16,384 registers)."""
    tokens = _tokens(value)
    if tokens is None:
        return None
    parts = []
    total = 0
    expand = _EXPAND.__getitem__
    for i, token in enumerate(tokens):
        if i & 1:
            n = _xzero_len(token)
            parts.append(bytes(n) if total + n <= REGISTERS else b"")
            total += n
        elif token:
            total += sum(token.translate(_SPAN))
            if total <= REGISTERS:
                parts.append(b"".join(map(expand, token)))
        if total > REGISTERS:
            return None
    if total != REGISTERS:
        return None
    return b"".join(parts)


def new_sparse_buffer(value: bytes) -> list:
    """[buffer, length]: a sparse HLL's bytes with slack, as an sds string:
    the byte after the end reads zero, as the terminator of a fresh Redis
    value. (A corrupt body ending in a lone XZERO byte reads that byte as
    its second one; after a write that split that very opcode, Redis can
    read a stale byte of its allocation there, which no value carries.)"""
    return [bytearray(value) + bytes(16), len(value)]


def sparse_set(sb: list, index: int, count: int, max_bytes: int, path: list | None = None):
    """hllSparseSet on the buffer `sb` ([bytearray, length]): 1 updated, 0
    not, -1 corrupt, PROMOTE. With `path` (PFMERGE: increasing indexes) the
    (offset, first register) of the opcodes passed so far are kept there, so
    the next scan resumes at the last opcode a change may have touched
    (the one before the updated one: the merge starts there) instead of at
    the start."""
    if count > SPARSE_VAL_MAX:
        return PROMOTE
    buf, end = sb
    if len(buf) < end + 8:
        buf.extend(bytes(end + 16 - len(buf)))
    if path:
        p, first = path.pop()
        prev = path[-1][0] if path else -1
    else:
        p, first, prev = HDR, 0, -1
    span = 0
    oplen = 1
    while p < end:
        b = buf[p]
        if b < 0x40:
            span = b + 1
            oplen = 1
        elif b & 0x80:
            span = (b & 3) + 1
            oplen = 1
        else:
            span = (((b & 0x3f) << 8) | buf[p + 1]) + 1
            oplen = 2
        if index <= first + span - 1:
            break
        if path is not None:
            path.append((p, first))
        prev = p
        p += oplen
        first += span
    if span == 0 or p >= end:
        return -1
    nxt = p + oplen
    if nxt >= end:
        nxt = -1
    b = buf[p]
    runlen = span
    updated = False
    if b & 0x80:
        old = ((b >> 2) & 0x1f) + 1
        if old >= count:
            return 0
        if runlen == 1:
            buf[p] = ((count - 1) << 2) | 0x80
            updated = True
    elif b < 0x40 and runlen == 1:
        buf[p] = ((count - 1) << 2) | 0x80
        updated = True
    if not updated:
        last = first + span - 1
        seq = bytearray()
        if not b & 0x80:
            if index != first:
                n = index - first
                seq += bytes((((n - 1) >> 8) | 0x40, (n - 1) & 0xff)) if n > 64 else bytes((n - 1,))
            seq.append(((count - 1) << 2) | 0x80)
            if index != last:
                n = last - index
                seq += bytes((((n - 1) >> 8) | 0x40, (n - 1) & 0xff)) if n > 64 else bytes((n - 1,))
        else:
            cur = (((b >> 2) & 0x1f)) << 2 | 0x80
            if index != first:
                seq.append(cur | (index - first - 1))
            seq.append(((count - 1) << 2) | 0x80)
            if index != last:
                seq.append(cur | (last - index - 1))
        seqlen = len(seq)
        delta = seqlen - oplen
        if delta > 0 and end + delta > max_bytes:
            return PROMOTE
        if delta and nxt >= 0:
            buf[nxt + delta:end + delta] = buf[nxt:end]
        end += delta
        buf[end] = 0
        buf[p:p + seqlen] = seq
    # Step 4: merge adjacent VALs of one value (up to 5 opcodes from prev).
    q = prev if prev >= 0 else HDR
    scan = 5
    while q < end and scan:
        scan -= 1
        b = buf[q]
        if not b & 0x80:
            q += 1 if b < 0x40 else 2
            continue
        if q + 1 < end and buf[q + 1] & 0x80:
            b2 = buf[q + 1]
            if (b >> 2) & 0x1f == (b2 >> 2) & 0x1f:
                n = (b & 3) + (b2 & 3) + 2
                if n <= 4:
                    buf[q + 1] = (b & 0x7c) | 0x80 | (n - 1)
                    buf[q:end] = buf[q + 1:end + 1]
                    end -= 1
                    buf[end] = 0
                    continue
        q += 1
    buf[15] |= 0x80
    sb[1] = end
    return 1


class SparseOps:
    """A sparse HLL decoded to a list of its opcodes (each its bytes) and
    the first register each covers, for hllSparseSet at C-like speed: the
    opcode covering a register is a bisect, a split or a merge a slice of
    the lists (a memmove in C), the bytes one join. Only for bodies the
    byte-level `sparse_set` would read the same way: at most
    SPARSE_BODY_MAX bytes and no lone XZERO byte at the end (see `parse`)."""
    __slots__ = ("header", "ops", "firsts", "size")

    @classmethod
    def parse(cls, value: bytes):
        """The opcodes of a sparse HLL, or None when the body is too long
        or ends in a lone XZERO byte (left to the byte-level port)."""
        tokens = _tokens(value, strict=True)
        if tokens is None:
            return None
        self = cls()
        self.header = bytearray(value[:HDR])
        ops: list = []
        spans: list = []
        byte = _SINGLE.__getitem__
        for i, token in enumerate(tokens):
            if i & 1:
                ops.append(token)
                spans.append(_xzero_len(token))
            elif token:
                ops += map(byte, token)
                spans += token.translate(_SPAN)
        self.ops = ops
        self.firsts = [0, *accumulate(spans)][:-1] if spans else []
        self.size = len(value)
        return self

    def value(self) -> bytes:
        return bytes(self.header) + b"".join(self.ops)

    def set(self, index: int, count: int, max_bytes: int) -> int:
        """hllSparseSet: 1 updated, 0 not, -1 corrupt, PROMOTE."""
        if count > SPARSE_VAL_MAX:
            return PROMOTE
        ops = self.ops
        firsts = self.firsts
        i = bisect_right(firsts, index) - 1
        if i < 0:
            return -1
        op = ops[i]
        b = op[0]
        first = firsts[i]
        if b < 0x40:
            span = b + 1
        elif b & 0x80:
            span = (b & 3) + 1
        else:
            span = (((b & 0x3f) << 8) | op[1]) + 1
        if index > first + span - 1:
            return -1   # past the registers the opcodes cover
        new = _SINGLE[((count - 1) << 2) | 0x80]
        if b & 0x80:
            if ((b >> 2) & 0x1f) + 1 >= count:
                return 0
            if span == 1:
                ops[i] = new
                return self._merge(i - 1)
        elif b < 0x40 and span == 1:
            ops[i] = new
            return self._merge(i - 1)
        last = first + span - 1
        seq = []
        starts = []
        if not b & 0x80:
            if index != first:
                seq.append(_zeros_op(index - first))
                starts.append(first)
            seq.append(new)
            starts.append(index)
            if index != last:
                seq.append(_zeros_op(last - index))
                starts.append(index + 1)
        else:
            cur = (b & 0x7c) | 0x80
            if index != first:
                seq.append(_SINGLE[cur | (index - first - 1)])
                starts.append(first)
            seq.append(new)
            starts.append(index)
            if index != last:
                seq.append(_SINGLE[cur | (last - index - 1)])
                starts.append(index + 1)
        delta = sum(map(len, seq)) - len(op)
        if delta > 0 and self.size + delta > max_bytes:
            return PROMOTE
        ops[i:i + 1] = seq
        firsts[i:i + 1] = starts
        self.size += delta
        return self._merge(i - 1)

    def _merge(self, q: int) -> int:
        """Step 4: adjacent VALs of one value merged, up to 5 opcodes from prev."""
        ops = self.ops
        if q < 0:
            q = 0
        scan = 5
        n = len(ops)
        while q < n and scan:
            scan -= 1
            b = ops[q][0]
            if not b & 0x80:
                q += 1
                continue
            if q + 1 < n:
                b2 = ops[q + 1][0]
                if b2 & 0x80 and (b ^ b2) & 0x7c == 0:
                    length = (b & 3) + (b2 & 3) + 2
                    if length <= 4:
                        ops[q:q + 2] = [_SINGLE[(b & 0x7c) | 0x80 | (length - 1)]]
                        del self.firsts[q + 1]
                        self.size -= 1
                        n -= 1
                        continue
            q += 1
        self.header[15] |= 0x80
        return 1


def _zeros_op(n: int) -> bytes:
    """HLL_SPARSE_ZERO_SET / XZERO_SET for a run of n zero registers."""
    if n > 64:
        return bytes((((n - 1) >> 8) | 0x40, (n - 1) & 0xff))
    return _SINGLE[n - 1]


def sparse_value(sb: list) -> bytes:
    return bytes(sb[0][:sb[1]])


def to_dense(value, raw: bytes | None = None) -> bytes | None:
    """hllSparseToDense: the header copied (encoding set to dense), the
    registers of `raw` (or of the sparse body); None if it is corrupt."""
    if raw is None:
        raw = sparse_raw(value)
        if raw is None:
            return None
    return b"".join((value[:4], b"\x00", bytes(value[5:HDR]), raw_dense(raw)))


def sparse_add(value: bytes, elements, max_bytes: int):
    """PFADD's elements into a sparse HLL: (new value or None if unchanged,
    updated, corrupt). One element: the opcode is located without decoding
    (`_locate`), then the byte-level port updates from there; several: the
    body is decoded once (SparseOps)."""
    if len(elements) == 1 and len(value) - HDR <= SPARSE_BODY_MAX:
        index, count = pattern(elements[0])
        if count <= SPARSE_VAL_MAX:
            found = _locate(value, index)
            if found is None:
                return None, 0, True   # hllSparseSet's "invalid format"
            if found != _ODD:
                p, first, prev, prev_first = found
                b = value[p]
                if b & 0x80 and ((b >> 2) & 0x1f) + 1 >= count:
                    return None, 0, False
                path = [(prev, prev_first), (p, first)] if prev >= 0 else [(p, first)]
                return _sparse_add_bytes(value, elements, max_bytes, path)
    sparse = SparseOps.parse(value)
    if sparse is None:
        return _sparse_add_bytes(value, elements, max_bytes)
    dense = None
    updated = 0
    for element in elements:
        index, count = pattern(element)
        if dense is not None:
            if count > dense_get(dense, index):
                dense_set(dense, index, count)
                updated += 1
            continue
        result = sparse.set(index, count, max_bytes)
        if result == PROMOTE:
            current = sparse.value()
            converted = to_dense(current)
            if converted is None:   # Redis leaves the updates made so far
                return (current if updated else None), updated, True
            dense = bytearray(converted)
            dense_set(dense, index, count)
            updated += 1
        elif result < 0:
            return (sparse.value() if updated else None), updated, True
        else:
            updated += result
    if dense is not None:
        dense[15] |= 0x80
        return bytes(dense), updated, False
    return (sparse.value() if updated else None), updated, False


_ODD = -2   # _locate: a lone XZERO byte ends the body (left to the byte-level port)


def _locate(value: bytes, index: int):
    """(offset, first register, offset and first register of the opcode
    before, or -1) of the opcode covering `index`, as hllSparseSet's scan
    finds it; None if the opcodes end first; _ODD for a body ending in a
    lone XZERO byte. The XZEROs are found with memchr over a translated
    copy (outside an XZERO no opcode byte is in 0x40-0x7f, so the first such
    byte from a boundary starts one), the runs of one-byte opcodes between
    them skipped by sums of their spans (translate + sum, in C), 64 at a
    time inside the run that holds the index; it stops there."""
    marks = value.translate(_XMARK)
    end = len(value)
    pos = HDR
    first = 0
    before, before_first = -1, 0
    while pos < end:
        q = marks.find(1, pos)
        run_end = q if q >= 0 else end
        if run_end > pos:
            spans = value[pos:run_end].translate(_SPAN)
            total = sum(spans)
            if index < first + total:
                j = 0
                while True:
                    chunk = sum(spans[j:j + 64])
                    if index < first + chunk:
                        break
                    first += chunk
                    j += 64
                while True:
                    span = spans[j]
                    if index < first + span:
                        break
                    first += span
                    j += 1
                if j:
                    return pos + j, first, pos + j - 1, first - spans[j - 1]
                return pos, first, before, before_first
            before, before_first = run_end - 1, first + total - spans[-1]
            first += total
        if q < 0:
            return None
        if q + 1 >= end:
            return _ODD
        span = (((value[q] & 0x3f) << 8) | value[q + 1]) + 1
        if index < first + span:
            return q, first, before, before_first
        before, before_first = q, first
        first += span
        pos = q + 2
    return None


def _sparse_add_bytes(value: bytes, elements, max_bytes: int, path: list | None = None):
    """sparse_add through the byte-level port (odd bodies: see SparseOps;
    one element, with `path` the located opcode: see sparse_set)."""
    sb = new_sparse_buffer(value)
    dense = None
    updated = 0
    for element in elements:
        index, count = pattern(element)
        if dense is not None:
            if count > dense_get(dense, index):
                dense_set(dense, index, count)
                updated += 1
            continue
        result = sparse_set(sb, index, count, max_bytes, path)
        path = None
        if result == PROMOTE:
            converted = to_dense(sparse_value(sb))
            if converted is None:   # Redis leaves the updates made so far
                return (sparse_value(sb) if updated else None), updated, True
            dense = bytearray(converted)
            dense_set(dense, index, count)
            updated += 1
        elif result < 0:
            return (sparse_value(sb) if updated else None), updated, True
        else:
            updated += result
    if dense is not None:
        dense[15] |= 0x80
        return bytes(dense), updated, False
    return (sparse_value(sb) if updated else None), updated, False


def raw_of(value) -> bytes | None:
    """The registers of a valid-looking HLL one per byte (None: corrupt)."""
    if value[4] == DENSE:
        return dense_raw(value)
    return sparse_raw(value)


# -- merging and counting --------------------------------------------------------

_HIGH = int.from_bytes(b"\x80" * REGISTERS, "little")


def raw_max(a: bytes, b: bytes) -> bytes:
    """Bytewise max of two register arrays (values < 128), SWAR on big ints:
    (a | 0x80) - b keeps bit 7 of a byte exactly where a >= b."""
    x = int.from_bytes(a, "little")
    y = int.from_bytes(b, "little")
    mask = ((((x | _HIGH) - y) & _HIGH) >> 7) * 0xff
    return ((x & mask) | (y & ~mask)).to_bytes(REGISTERS, "little")


# Eight values at a time: a band's translate gives each register of value
# base + k the bit k of its byte, so the count of value base + k is the
# popcount of that bit over all bytes (one AND and bit_count on a big int).
# The band's registers are then deleted (translate, in C), and once few are
# left they are counted one value per deleting pass.
_BANDS = [bytes(1 << (b - base) if base <= b < base + 8 else 0 for b in range(256))
          for base in range(0, 64, 8)]
_BAND_VALUES = [bytes(range(base, base + 8)) for base in range(0, 64, 8)]
_LANES = [int.from_bytes(bytes((1 << k,)) * REGISTERS, "little") for k in range(8)]
_FEW = 2048


def histogram(raw: bytes) -> list:
    """Register counts by value (`raw`: the registers one per byte)."""
    counts = [0] * 64
    base = 0
    while len(raw) > _FEW:
        x = int.from_bytes(raw.translate(_BANDS[base >> 3]), "little")
        if x:
            for k in range(8):
                counts[base + k] = (x & _LANES[k]).bit_count()
        raw = raw.translate(None, _BAND_VALUES[base >> 3])
        base += 8
    left = len(raw)
    while left:
        raw = raw.translate(None, _SINGLE[base])
        n = len(raw)
        counts[base] = left - n
        left = n
        base += 1
    return counts


def sparse_histogram(value) -> list | None:
    """hllSparseRegHisto without expanding: counts from the opcodes."""
    tokens = _tokens(value)
    if tokens is None:
        return None
    counts = [0] * 64
    total = 0
    for i, token in enumerate(tokens):
        if i & 1:
            n = _xzero_len(token)
            counts[0] += n
            total += n
        elif token:
            for b, n in Counter(token).items():
                if b < 0x40:
                    counts[0] += (b + 1) * n
                    total += (b + 1) * n
                else:
                    counts[((b >> 2) & 0x1f) + 1] += ((b & 3) + 1) * n
                    total += ((b & 3) + 1) * n
        if total > REGISTERS:
            return None
    return counts if total == REGISTERS else None


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if previous == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if previous == z:
            return z / 3


def estimate(counts: list) -> int:
    """hllCount's estimator (Ertl's, Redis 5+), operation for operation so
    the float result is Redis's; llroundl rounds halves away from zero."""
    m = float(REGISTERS)
    z = m * _tau((m - counts[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += counts[j]
        z *= 0.5
    z += m * _sigma(counts[0] / m)
    e = _ALPHA_INF * m * m / z
    if e != e or e == math.inf:
        return 0
    r = math.floor(e)
    if e - r >= 0.5:
        r += 1
    return r & _M64


def count(value) -> int | None:
    """The cardinality estimate of a valid-looking HLL (None: corrupt)."""
    if value[4] == DENSE:
        counts = known_histogram(value)
        if counts is None:
            counts = histogram(dense_raw(value))
            remember(value, counts)
        return estimate(counts)
    counts = sparse_histogram(value)
    return None if counts is None else estimate(counts)
