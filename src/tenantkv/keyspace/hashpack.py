"""A small hash in one buffer: `PackedHash`, Redis's "listpack" hash.

Why this form
-------------
The small hash is the most common value after strings, so its fixed cost
counts. A `PackedHash` is a subclass of `bytes` with no slots: one allocation
of 49 B + its data (the bytes object, 33 B, plus the 16 B GC header every
instance of a Python-defined class carries). The previous form, an object
with (buf, n) slots around a bytes buffer, cost 48 B more (and a second
allocation), which put a 5-field hash at 1.7x Redis's memory. The price:
a bytes object is immutable, so every write builds a new buffer and the
command stores it back under its key (`db.data[key] = new`: the TTL stays);
nobody else holds a hash value across commands (a reply is built from
copies), so replacing the object is invisible. `len()` of a PackedHash is
its size in bytes: its number of fields is `count(h)`.

Buffer format (this module's own; keyspace/packed.py is the other families')
------------------------------------------------------------------------------
    entry  = KEY + escape(field) + VAL + escape(value)    KEY = ff, VAL = fe
    buffer = its entries, in insertion order (as a listpack)

`escape` writes a data byte fd, fe or ff as fd 00, fd 01, fd 02, so in a
buffer ff is always an entry start and fe always a value start; ASCII data
(`isascii`, checked in C) is stored as it is. Then

* `KEY + escape(f) + VAL` occurs only at the entry of field f: one
  `bytes.find` is a lookup (it cannot start inside an element, and the
  field must end right at VAL);
* a value ends at the next KEY (`find`) or at the end of the buffer;
* the number of fields is `buf.count(KEY)`;
* `replace(VAL, KEY).split(KEY)` cuts it into fields and values in C.

Two marker bytes per pair (the previous format spent four): a listpack
spends about as much on its per-element headers.

Measured (bench/memory.py): a 5-field hash costs 250 B a key against
Redis's 174 (1.43x; 298 B with the previous form).

A lookup is a linear scan (~1 ns a byte) as in a listpack; hashes past
hash-max-listpack-entries / -value become dicts (commands/hashes.py), as
Redis's become hash tables. No per-hash index is kept: the old shared
index LRU let one tenant's reads evict another's indexes, and over many
keys it cost more than it saved (bench/hashes.py, 1,000 hashes of 128
fields, pipeline 16: HGET 2.9 us a request without it, 5.1 with it, 1.6 as
dicts; HMGET 5.7 against 30).
"""

KEY = b"\xff"
VAL = b"\xfe"
_ESC = b"\xfd"
_NEEDLE = b"\xff%b\xfe"   # KEY + escaped field + VAL: one % (faster than two +)


class PackedHash(bytes):
    """A small hash (see the module docstring). Read-only helpers for the
    code that walks any hash (digest, persistence, MEMORY USAGE); commands
    use the module's functions."""

    __slots__ = ()

    def items(self):
        return zip(*split(self))

    def keys(self) -> list:
        return split(self)[0]

    def values(self) -> list:
        return split(self)[1]

    def to_dict(self) -> dict:
        return dict(zip(*split(self)))

    def copy(self) -> "PackedHash":
        return self   # immutable: COPY can share it

    def __repr__(self) -> str:
        return "PackedHash(%r)" % (self.to_dict(),)


EMPTY = PackedHash()


def escape(data: bytes) -> bytes:
    """`data` as stored in a buffer (the same object when it is ASCII)."""
    if data.isascii():
        return data
    # fd first: the other two write fd bytes that must not be escaped again
    return data.replace(b"\xfd", b"\xfd\x00").replace(b"\xfe", b"\xfd\x01") \
        .replace(b"\xff", b"\xfd\x02")


def unescape(data: bytes) -> bytes:
    if data.find(_ESC) < 0:
        return data
    # fd 00 last: the fd it writes could pair with the next byte
    return data.replace(b"\xfd\x02", b"\xff").replace(b"\xfd\x01", b"\xfe") \
        .replace(b"\xfd\x00", b"\xfd")


def from_pairs(pairs) -> PackedHash:
    """From (field, value) pairs with distinct fields."""
    return PackedHash(b"".join([_NEEDLE % escape(f) + escape(v) for f, v in pairs]))


def split(buf: bytes):
    """(fields, values): two lists, in buffer order."""
    parts = buf.replace(VAL, KEY).split(KEY)
    fields, values = parts[1::2], parts[2::2]
    if not buf.isascii() and buf.find(_ESC) >= 0:
        fields = [unescape(f) for f in fields]
        values = [unescape(v) for v in values]
    return fields, values


def count(buf: bytes) -> int:
    """Its number of fields."""
    return buf.count(KEY)


def get(buf: bytes, field: bytes):
    """The value of `field`, or None."""
    needle = _NEEDLE % (field if field.isascii() else escape(field))
    at = buf.find(needle)
    if at < 0:
        return None
    at += len(needle)
    end = buf.find(KEY, at)
    value = buf[at:] if end < 0 else buf[at:end]
    return value if value.isascii() else unescape(value)   # (isascii: no call to find)


def has(buf: bytes, field: bytes) -> bool:
    return buf.find(_NEEDLE % (field if field.isascii() else escape(field))) >= 0


def slot(buf: bytes, field: bytes):
    """(needle, start, end): where `field`'s escaped value lies in `buf`, or
    start -1 when it has no such field (then `needle` is the entry's head to
    append). For a read then a write of one field (the counters): one scan."""
    needle = _NEEDLE % (field if field.isascii() else escape(field))
    at = buf.find(needle)
    if at < 0:
        return needle, -1, -1
    at += len(needle)
    end = buf.find(KEY, at)
    return needle, at, len(buf) if end < 0 else end


def value_at(buf: bytes, start: int, end: int) -> bytes:
    value = buf[start:end]
    return value if value.isascii() else unescape(value)


def put_slot(buf: bytes, needle: bytes, start: int, end: int, value: bytes) -> bytes:
    """`buf` with the value at `slot`'s (needle, start, end) set to `value`."""
    if not value.isascii():
        value = escape(value)
    if start < 0:
        return b"".join((buf, needle, value))
    return b"".join((buf[:start], value, buf[end:]))


def put(buf: bytes, field: bytes, value: bytes):
    """(new buffer, 1 if `field` is new else 0): `buf` with field = value.
    The new buffer is a plain bytes; the caller makes it a PackedHash once
    (one copy) after all its changes."""
    needle = _NEEDLE % (field if field.isascii() else escape(field))
    if not value.isascii():
        value = escape(value)
    at = buf.find(needle)
    if at < 0:
        return b"".join((buf, needle, value)), 1
    at += len(needle)
    end = buf.find(KEY, at)
    if end < 0:
        return buf[:at] + value, 0
    return b"".join((buf[:at], value, buf[end:])), 0


def remove(buf: bytes, field: bytes):
    """`buf` without `field` (a plain bytes), or None when it has no such field."""
    needle = _NEEDLE % (field if field.isascii() else escape(field))
    start = buf.find(needle)
    if start < 0:
        return None
    end = buf.find(KEY, start + len(needle))
    return buf[:start] if end < 0 else buf[:start] + buf[end:]


# Redis's built-in hash-max-listpack-entries / -value (redis.conf says 128
# entries): what the kdb loader applies when it is given no limits.
HASH_MAX_ENTRIES = 512
HASH_MAX_VALUE = 64

# The highest hash-max-listpack-entries any PackedHash of this process was
# built under (by a write or a load), so none has more fields. A write that
# adds no field while the limit is at least this high cannot need converting
# and skips counting the fields (a scan of the buffer, ~1 us at 128 fields).
# Only after root lowers the limit do updates count, as Redis's hashTypeSet
# checks the length after every write, updates included.
ENTRIES_BOUND = [0]


def compact_hash(h: dict, max_entries: int = HASH_MAX_ENTRIES, max_value: int = HASH_MAX_VALUE,
                 max_bytes: int = 1 << 18):
    """A loaded hash (a dict) in the form this server would have built it
    with these limits: a PackedHash within them, else the dict itself."""
    if len(h) > max_entries:
        return h
    for field, value in h.items():
        if len(field) > max_value or len(value) > max_value:
            return h
    packed = from_pairs(h.items())
    if len(packed) > max_bytes:
        return h
    if max_entries > ENTRIES_BOUND[0]:
        ENTRIES_BOUND[0] = max_entries
    return packed
