"""Compact small collections: every element of a value in one `bytes` buffer.

Redis keeps a small hash (set, sorted set, list) in one listpack; tenantkv's
big forms (dict, set, ...) cost a Python object of >= 33 bytes per element on
top of the container. A packed value is one immutable `bytes`, scanned with
the C methods of bytes (find, split, count), never byte by byte in Python.

Buffer format (shared by every family that uses it)
---------------------------------------------------
An entry is one or two elements, each introduced by a two-byte marker:

    KEY + escape(first) [+ VAL + escape(second)]   KEY = ff 01, VAL = ff 02

and the buffer is its entries concatenated, in insertion order (as a
listpack). `escape` doubles nothing but 0xff: a 0xff data byte is written
ff fe. So ff followed by anything but fe is always a marker, and:

* `KEY + escape(x) + VAL` occurs in the buffer only at the entry whose first
  element is x (it cannot start inside an element, nor span two): one
  `bytes.find` looks up a hash field / zset member. For single-element
  entries (sets, lists), look up `KEY + escape(x) + KEY` in `KEY + buf + KEY`
  or use `split_single`.
* an element ends at the next marker: `buf.find(KEY, start)`, or the end;
* `buf.split(KEY)` / `.split(VAL)` cut it into elements.

0xff never occurs in UTF-8 text, so escaping is rare; without it the stored
elements are the original bytes, 4 bytes of markers per pair (a listpack
spends about as much on its per-element headers).

Functions: `escape`, `unescape`, `pack_pairs`, `split_pairs`,
`pack_single`, `split_single`, `find_pair`. `PackedHash` is the small hash.
"""

from collections import OrderedDict

KEY = b"\xff\x01"
VAL = b"\xff\x02"
_FF = b"\xff"
_ESCAPED = b"\xff\xfe"
_NEEDLE = b"\xff\x01%b\xff\x02"   # KEY + escaped first element + VAL: one % (faster than two +)

# Speed notes (CPython 3.11): `x in some_bytes` first tries x as an integer
# and clears the TypeError, several times slower than `some_bytes.find(x)`:
# use find. replace() with nothing to replace returns the object itself.


def escape(data: bytes) -> bytes:
    """`data` as stored in a buffer (the same object when it has no 0xff)."""
    return data.replace(_FF, _ESCAPED)


def unescape(data: bytes) -> bytes:
    return data.replace(_ESCAPED, _FF)


def pack_pairs(pairs) -> bytes:
    """The buffer of (first, second) pairs, in order (no duplicate check)."""
    return b"".join([KEY + escape(a) + VAL + escape(b) for a, b in pairs])


def split_pairs(buf: bytes):
    """(firsts, seconds): two lists, in buffer order."""
    if not buf:
        return [], []
    if buf.find(_ESCAPED) < 0:
        # no escaped byte: every ff is a marker, and the byte after it says which
        parts = buf.split(_FF)
        return [p[1:] for p in parts[1::2]], [p[1:] for p in parts[2::2]]
    firsts, seconds = [], []
    for entry in buf.split(KEY)[1:]:
        a, b = entry.split(VAL)
        firsts.append(unescape(a))
        seconds.append(unescape(b))
    return firsts, seconds


def pack_single(elements) -> bytes:
    return b"".join([KEY + escape(e) for e in elements])


def split_single(buf: bytes) -> list:
    elements = buf.split(KEY)[1:]
    if buf.find(_ESCAPED) >= 0:
        elements = [unescape(e) for e in elements]
    return elements


def find_pair(buf: bytes, first: bytes):
    """(entry start, second's start, entry end) of the pair whose first
    element is `first`, or None."""
    needle = _NEEDLE % first.replace(_FF, _ESCAPED)
    start = buf.find(needle)
    if start < 0:
        return None
    at = start + len(needle)
    end = buf.find(KEY, at)
    return start, at, len(buf) if end < 0 else end


# A lookup scans the buffer (~1 ns a byte): cheap for a few fields, not for a
# hundred read again and again. A PackedHash of more than INDEX_MIN fields
# read twice with no write in between gets a dict of its fields (in this
# LRU of INDEX_SLOTS, not in the value: the memory of small hashes is the
# point), used while its buffer is the same object (buffers are immutable:
# a write makes a new one). Alternating reads and writes never build one.
INDEX_MIN = 16
INDEX_SLOTS = 64
_indexes: OrderedDict = OrderedDict()   # id(hash) -> [hash, buffer, dict | None]


def _index(h):
    """The dict of `h`'s fields if it has earned one, else None."""
    key = id(h)
    entry = _indexes.get(key)
    buf = h.buf
    if entry is None or entry[0] is not h:   # (the entry holds h: its id is not reused)
        _indexes[key] = [h, buf, None]
        if len(_indexes) > INDEX_SLOTS:
            _indexes.popitem(last=False)
        return None
    if entry[1] is not buf:
        entry[1] = buf
        entry[2] = None
        return None
    index = entry[2]
    if index is None:
        index = entry[2] = h.to_dict()
        _indexes.move_to_end(key)
    return index


class PackedHash:
    """A small hash as one buffer of (field, value) pairs, with the part of
    dict's interface the hash code uses (get, [], in, len, pop, update,
    items, keys, values, iteration): commands work on either form without
    branching. `n` is the number of fields (counting markers would be O(size))."""

    __slots__ = ("buf", "n")

    def __init__(self, buf: bytes = b"", n: int = 0) -> None:
        self.buf = buf
        self.n = n

    @classmethod
    def from_pairs(cls, pairs) -> "PackedHash":
        """From (field, value) pairs with distinct fields."""
        pairs = list(pairs)
        return cls(pack_pairs(pairs), len(pairs))

    def __len__(self) -> int:
        return self.n

    def get(self, field: bytes, default=None):
        if self.n > INDEX_MIN:
            index = _index(self)
            if index is not None:
                return index.get(field, default)
        buf = self.buf
        needle = _NEEDLE % field.replace(_FF, _ESCAPED)
        at = buf.find(needle)
        if at < 0:
            return default
        at += len(needle)
        end = buf.find(KEY, at)
        return (buf[at:] if end < 0 else buf[at:end]).replace(_ESCAPED, _FF)

    def __getitem__(self, field: bytes) -> bytes:
        value = self.get(field)
        if value is None:
            raise KeyError(field)
        return value

    def __contains__(self, field: bytes) -> bool:
        if self.n > INDEX_MIN:
            index = _index(self)
            if index is not None:
                return field in index
        return self.buf.find(_NEEDLE % field.replace(_FF, _ESCAPED)) >= 0

    def __setitem__(self, field: bytes, value: bytes) -> None:
        buf = self.buf
        needle = _NEEDLE % field.replace(_FF, _ESCAPED)
        at = buf.find(needle)
        value = value.replace(_FF, _ESCAPED)
        if at < 0:
            self.buf = buf + needle + value
            self.n += 1
            return
        at += len(needle)
        end = buf.find(KEY, at)
        self.buf = buf[:at] + value if end < 0 else buf[:at] + value + buf[end:]

    def pop(self, field: bytes, default=None):
        buf = self.buf
        found = find_pair(buf, field)
        if found is None:
            return default
        start, at, end = found
        self.buf = buf[:start] + buf[end:]
        self.n -= 1
        return unescape(buf[at:end])

    def update(self, pairs) -> None:
        for field, value in pairs:
            self[field] = value

    def keys(self) -> list:
        return split_pairs(self.buf)[0]

    def values(self) -> list:
        return split_pairs(self.buf)[1]

    def items(self):
        return zip(*split_pairs(self.buf))

    def __iter__(self):
        return iter(split_pairs(self.buf)[0])

    def to_dict(self) -> dict:
        return dict(zip(*split_pairs(self.buf)))

    def copy(self) -> "PackedHash":
        return PackedHash(self.buf, self.n)   # the buffer is immutable: shared

    def longest(self) -> int:
        """The length of its longest field or value (the conversion rule)."""
        fields, values = split_pairs(self.buf)
        return max(max(map(len, fields), default=0), max(map(len, values), default=0))

    def __repr__(self) -> str:
        return "PackedHash(%r)" % (self.to_dict(),)


# Redis's built-in hash-max-listpack-entries / -value (redis.conf says 128 entries).
HASH_MAX_ENTRIES = 512
HASH_MAX_VALUE = 64


def compact_hash(h: dict, max_entries: int = HASH_MAX_ENTRIES, max_value: int = HASH_MAX_VALUE):
    """A loaded hash (a dict) in the form Redis would load it: a PackedHash
    within the limits, else the dict itself. The kdb loader knows no server
    config, so it applies Redis's defaults."""
    if len(h) > max_entries:
        return h
    for field, value in h.items():
        if len(field) > max_value or len(value) > max_value:
            return h
    return PackedHash.from_pairs(h.items())
