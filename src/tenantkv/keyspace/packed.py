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
`pack_single`, `split_single`, `find_pair`. (The small hash has a format of
its own, with one-byte markers: keyspace/hashpack.py.)
"""

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
