"""A list: packed chunks of elements, as Redis's quicklist of listpacks.

Why this form: a `collections.deque` costs a block of 64 pointers (>600 B)
for a list of 5 elements and a bytes object (33 B + data) per element. Here
the elements live in `bytes` chunks, so an element costs its data plus a few
bytes of header, and every scan (the n-th element, a pivot, a value to
remove) runs in C (`find`, `count`, `split`, `replace`).

Entry format: `KEY + b"%d\\r\\n" % len(element) + escape(element)`, with
keyspace/packed.py's marker KEY (ff 01) and escape (a data byte ff is
stored ff fe), so an entry starts exactly where a KEY occurs and the header
is RESP's bulk string header. A run of entries becomes the RESP reply of
those elements with two C calls, `replace(KEY, b"\\r\\n$")` then unescaping:
LRANGE never makes a Python object per element, and `_decode` turns a run
into elements with hiredis's reader (C) rather than a Python loop.

* A list that fits one chunk (the usual small list) holds it directly:
  `chunks` is that `bytes` (b"" when empty), so a list of 5 short elements
  costs the object (48 B) and one chunk (33 B + 2 + 3 + len per element).
  A longer list holds a `deque` of two or more chunks: a chunk leaves or
  joins either end in O(1) (a Python list's `del chunks[0]` moves every
  pointer: with 33,000 chunks, measured, LPOP cost 20% more).
* Chunks are immutable: a push or pop at an end builds a new end chunk
  (copying it), so a chunk is kept within CHUNK_BYTES -- or is a single
  bigger element, alone in its chunk, which popping its neighbours never
  copies. Writes in the middle (LSET, LINSERT) cut a chunk that grew past
  the limit and merge small neighbours, so no end operation copies more.
* No per-chunk element counts (memory in every small list, a write on
  every push): an index walks the chunks from the nearer end counting
  markers with `bytes.count` (C, ~1 ns a byte), O(distance) as Redis's walk.
* The chunk size does not follow list-max-listpack-size: no reply depends
  on it (Redis 7.0 says "quicklist" for every list), and bigger immutable
  chunks would make every push copy more.

Invariants: no empty chunk; a list of chunks has two or more; `n` is the
number of elements. An empty list never stays in a database (the commands
delete the key); the class copes with one.
"""

from collections import deque

from hiredis import Reader

from tenantkv.keyspace.packed import KEY

_FF = b"\xff"
_ESCAPED = b"\xff\xfe"
_BULK = b"\r\n$"          # what a KEY becomes in a RESP reply
_ENTRY = b"\xff\x01%d\r\n%b"
_MARK = b"\xff\x01\x01"   # a KEY never followed by 01 elsewhere (a digit follows)

# A push starts a new end chunk rather than grow this one past CHUNK_BYTES
# (the copy a push or pop makes; measured: pushes cost alike from 128 B to
# 1 KB, and longer chunks cost less memory and fewer steps per walk).
CHUNK_BYTES = 1024

_HEAD = b"\xff\x01%d\r\n"
_HEADS = [_HEAD % size for size in range(1024)]   # an entry's header, by length
_ROOM = CHUNK_BYTES - 14   # KEY + 10 digits + CRLF: the longest header

# Whether any entry ever stored holds an escaped byte: until one does (most
# servers never store a 0xff), pops skip the call that unescapes their
# element. Set for good, by any tenant: it only saves time.
_escaped = False


def _note_escape() -> None:
    global _escaped
    _escaped = True


def _entry(value: bytes) -> bytes:
    esc = value.replace(_FF, _ESCAPED)
    if esc is not value:
        _note_escape()
    return _ENTRY % (len(value), esc)


def _packed(values) -> bytes:
    """The entries of `values` (bytes), in order."""
    if not _escaped and b"".join(values).find(_FF) >= 0:
        _note_escape()
    return b"".join([_ENTRY % (len(v), v.replace(_FF, _ESCAPED)) for v in values])


def resp(region: bytes, count: int) -> bytes:
    """The RESP array of the `count` entries in `region`."""
    return (b"*%d%b\r\n" % (count, region.replace(KEY, _BULK))).replace(_ESCAPED, _FF)


def _decode(region: bytes, count: int) -> list:
    """The elements of the `count` entries in `region`."""
    if not count:
        return []
    reader = Reader()   # its own: no state left behind by a failure (~0.3 us)
    reader.feed(resp(region, count))
    return reader.gets()


def _offset(chunk: bytes, j: int) -> int:
    """Where entry j (0-based, < its count) of `chunk` starts: the first j + 1
    markers become one byte longer, so the last of them found is j bytes
    further than the original (one C pass, no object per entry)."""
    if not j:
        return 0
    return chunk.replace(KEY, _MARK, j + 1).rfind(_MARK) - j


def _value_at(chunk: bytes, at: int) -> bytes:
    """The element of the entry starting at `at`."""
    end = chunk.find(KEY, at + 2)
    start = chunk.find(b"\n", at) + 1
    return (chunk[start:] if end < 0 else chunk[start:end]).replace(_ESCAPED, _FF)


def _pack(data: bytes) -> list:
    """Cut a run of entries into chunks of at most CHUNK_BYTES (or a single
    bigger entry), at marker boundaries; O(len / CHUNK_BYTES) steps."""
    size = len(data)
    if size <= CHUNK_BYTES:
        return [data]
    chunks = []
    start = 0
    while size - start > CHUNK_BYTES:
        cut = data.rfind(KEY, start + 1, start + CHUNK_BYTES + 1)
        if cut < 0:   # one entry longer than a chunk: alone in its own
            cut = data.find(KEY, start + 1)
            if cut < 0:
                break
        chunks.append(data[start:cut])
        start = cut
    chunks.append(data[start:])
    return chunks


class QuickList:
    """The list interface commands/lists.py, the blocking pops and the
    persistence code use: len, iteration, pushes and pops at both ends,
    ranges (as elements or as a RESP reply), index access, and LINSERT,
    LREM, LTRIM's work. The end operations handle both forms of `chunks`
    inline; the rarer ones (O(n) commands) take `_list()` and settle with
    `_set()`."""

    __slots__ = ("chunks", "n")

    def __init__(self, values=()) -> None:
        values = values if type(values) is list else list(values)
        self.n = len(values)
        self.chunks = b""
        if values:
            self._set(_pack(_packed(values)))

    def _set(self, chunks: list) -> None:
        """Store a list of chunks in the form its length calls for."""
        if len(chunks) > 1:
            self.chunks = deque(chunks)
        else:
            self.chunks = chunks[0] if chunks else b""

    def _list(self) -> list:
        """The chunks as a new list: the caller may change it, then stores
        it back with `_set`."""
        chunks = self.chunks
        if type(chunks) is bytes:
            return [chunks] if chunks else []
        return list(chunks)

    def _view(self):
        """The chunks, in order, to read (not to change)."""
        chunks = self.chunks
        if type(chunks) is bytes:
            return (chunks,) if chunks else ()
        return chunks

    chunk_list = _list   # for MEMORY USAGE and tests

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self):
        for chunk in self._view():
            yield from _decode(chunk, chunk.count(KEY))

    def __reversed__(self):
        for chunk in reversed(self._view()):
            yield from reversed(_decode(chunk, chunk.count(KEY)))

    def __repr__(self) -> str:
        return "QuickList(%r)" % (list(self),)

    def copy(self) -> "QuickList":
        new = QuickList()
        chunks = self.chunks   # chunks are immutable: shared
        new.chunks = chunks if type(chunks) is bytes else deque(chunks)
        new.n = self.n
        return new

    # -- the ends: one element ---------------------------------------------------

    # A push builds the new end chunk in one join of (header, element, chunk):
    # headers of short elements come from _HEADS, and the room check counts
    # the longest header (14 bytes), so it needs no piece of its own.

    def append(self, value: bytes) -> None:
        esc = value.replace(_FF, _ESCAPED)
        if esc is not value:
            _note_escape()
        size = len(value)
        head = _HEADS[size] if size < 1024 else _HEAD % size
        chunks = self.chunks
        self.n += 1
        if type(chunks) is bytes:
            if len(chunks) + len(esc) <= _ROOM or not chunks:
                self.chunks = b"".join((chunks, head, esc))
            else:
                self.chunks = deque((chunks, head + esc))
            return
        last = chunks[-1]
        if len(last) + len(esc) <= _ROOM:
            chunks[-1] = b"".join((last, head, esc))
        else:
            chunks.append(head + esc)

    def appendleft(self, value: bytes) -> None:
        esc = value.replace(_FF, _ESCAPED)
        if esc is not value:
            _note_escape()
        size = len(value)
        head = _HEADS[size] if size < 1024 else _HEAD % size
        chunks = self.chunks
        self.n += 1
        if type(chunks) is bytes:
            if len(chunks) + len(esc) <= _ROOM or not chunks:
                self.chunks = b"".join((head, esc, chunks))
            else:
                self.chunks = deque((head + esc, chunks))
            return
        first = chunks[0]
        if len(first) + len(esc) <= _ROOM:
            chunks[0] = b"".join((head, esc, first))
        else:
            chunks.appendleft(head + esc)

    # The pops: an entry is at least 5 bytes (KEY, "0", CRLF), so the next
    # marker is searched from there; the element starts after the header's LF.

    def popleft(self) -> bytes:
        """The first element, removed (the list must not be empty)."""
        chunks = self.chunks
        self.n -= 1
        if type(chunks) is bytes:
            end = chunks.find(KEY, 5)
            if end > 0:
                self.chunks = chunks[end:]
                value = chunks[chunks.find(b"\n") + 1:end]
            else:
                self.chunks = b""
                value = chunks[chunks.find(b"\n") + 1:]
            return value.replace(_ESCAPED, _FF) if _escaped else value
        first = chunks[0]
        end = first.find(KEY, 5)
        if end > 0:
            chunks[0] = first[end:]
            value = first[first.find(b"\n") + 1:end]
        else:
            chunks.popleft()
            if len(chunks) == 1:
                self.chunks = chunks[0]
            value = first[first.find(b"\n") + 1:]
        return value.replace(_ESCAPED, _FF) if _escaped else value

    def pop(self) -> bytes:
        """The last element, removed (the list must not be empty).
        rpartition cuts the chunk in one call (measured: 20% less than
        rfind and two slices)."""
        chunks = self.chunks
        self.n -= 1
        if type(chunks) is bytes:
            self.chunks, _, entry = chunks.rpartition(KEY)
        else:
            rest, _, entry = chunks[-1].rpartition(KEY)
            if rest:
                chunks[-1] = rest
            else:
                chunks.pop()
                if len(chunks) == 1:
                    self.chunks = chunks[0]
        value = entry[entry.find(b"\n") + 1:]
        return value.replace(_ESCAPED, _FF) if _escaped else value

    # -- the ends: many elements ---------------------------------------------------

    def extend(self, values: list) -> None:
        """RPUSH values..., in order."""
        data = _packed(values)
        self.n += len(values)
        chunks = self.chunks
        if type(chunks) is bytes:
            if len(chunks) + len(data) <= CHUNK_BYTES:
                self.chunks = chunks + data
            else:
                self._set(([chunks] if chunks else []) + _pack(data))
        elif len(chunks[-1]) + len(data) <= CHUNK_BYTES:
            chunks[-1] += data
        else:
            chunks.extend(_pack(data))

    def extendleft(self, values: list) -> None:
        """LPUSH values...: each pushed at the head in turn (so reversed)."""
        data = _packed(values[::-1])
        self.n += len(values)
        chunks = self.chunks
        if type(chunks) is bytes:
            if len(chunks) + len(data) <= CHUNK_BYTES:
                self.chunks = data + chunks
            else:
                self._set(_pack(data) + ([chunks] if chunks else []))
        elif len(chunks[0]) + len(data) <= CHUNK_BYTES:
            chunks[0] = data + chunks[0]
        else:
            chunks.extendleft(reversed(_pack(data)))

    def pop_many(self, head: bool, count: int) -> list:
        """LPOP/RPOP key count: up to `count` elements from one end, in pop order."""
        n = self.n
        if count >= n:
            got = list(self)
            self.chunks = b""
            self.n = 0
        elif head:
            got = self.range(0, count)
            self.drop_head(count)
            return got
        else:
            got = self.range(n - count, n)
            self.drop_tail(count)
        if not head:
            got.reverse()
        return got

    def drop_head(self, count: int) -> None:
        """Remove the first `count` (< n) elements: O(count), chunk by chunk."""
        self.n -= count
        chunks = self.chunks
        if type(chunks) is bytes:
            self.chunks = chunks[_offset(chunks, count):]
            return
        while True:
            k = chunks[0].count(KEY)
            if k > count:
                break
            chunks.popleft()
            count -= k
        if count:
            chunks[0] = chunks[0][_offset(chunks[0], count):]
        if len(chunks) == 1:
            self.chunks = chunks[0]

    def drop_tail(self, count: int) -> None:
        """Remove the last `count` (< n) elements: O(count), chunk by chunk."""
        self.n -= count
        chunks = self.chunks
        if type(chunks) is bytes:
            self.chunks = chunks[:_offset(chunks, chunks.count(KEY) - count)]
            return
        while True:
            k = chunks[-1].count(KEY)
            if k > count:
                break
            chunks.pop()
            count -= k
        if count:
            last = chunks[-1]
            chunks[-1] = last[:_offset(last, last.count(KEY) - count)]
        if len(chunks) == 1:
            self.chunks = chunks[0]

    # -- by index ----------------------------------------------------------------------

    def _locate(self, chunks: list, index: int) -> tuple:
        """(chunk position, index in that chunk) of element `index`
        (0 <= index < n), walking from the nearer end."""
        if len(chunks) == 1:
            return 0, index
        if index < self.n // 2:
            for i, chunk in enumerate(chunks):
                k = chunk.count(KEY)
                if index < k:
                    return i, index
                index -= k
        else:
            back = self.n - 1 - index   # elements after it
            i = len(chunks)
            for chunk in reversed(chunks):
                i -= 1
                k = chunk.count(KEY)
                if back < k:
                    return i, k - 1 - back
                back -= k
        raise IndexError(index)

    def __getitem__(self, index: int) -> bytes:
        """The element at `index` (0 <= index < n)."""
        chunks = self._view()
        i, local = self._locate(chunks, index)
        chunk = chunks[i]
        return _value_at(chunk, _offset(chunk, local))

    def __setitem__(self, index: int, value: bytes) -> None:
        """LSET: replace the element at `index` (0 <= index < n)."""
        chunks = self._list()
        i, local = self._locate(chunks, index)
        chunk = chunks[i]
        at = _offset(chunk, local)
        end = chunk.find(KEY, at + 2)
        tail = b"" if end < 0 else chunk[end:]
        _replace_chunk(chunks, i, b"".join((chunk[:at], _entry(value), tail)))
        self._set(chunks)

    def _regions(self, start: int, stop: int) -> list:
        """The runs of entries of elements [start, stop) (0 <= start < stop
        <= n), in order, as (bytes, count); walks from the nearer end."""
        chunks = self.chunks
        if type(chunks) is bytes:
            k = self.n
            a = _offset(chunks, start)
            b = len(chunks) if stop == k else _offset(chunks, stop)
            return [(chunks[a:b] if a or b < len(chunks) else chunks, stop - start)]
        n = self.n
        runs = []
        if start <= n - stop:
            skip, want = start, stop - start
            walk = chunks
        else:
            skip, want = n - stop, stop - start   # skip: elements after the range
            walk = reversed(chunks)
        from_head = walk is chunks
        for chunk in walk:
            k = chunk.count(KEY)
            if skip >= k:
                skip -= k
                continue
            take = min(k - skip, want)
            first = skip if from_head else k - skip - take
            last = first + take
            a = _offset(chunk, first)
            b = len(chunk) if last == k else _offset(chunk, last)
            runs.append((chunk if not a and b == len(chunk) else chunk[a:b], take))
            want -= take
            if not want:
                break
            skip = 0
        if not from_head:
            runs.reverse()
        return runs

    def range(self, start: int, stop: int) -> list:
        """Elements [start, stop) (0 <= start < stop <= n), in order."""
        got = []
        for region, count in self._regions(start, stop):
            got += _decode(region, count)
        return got

    def range_reply(self, start: int, stop: int) -> bytes:
        """LRANGE's RESP reply for elements [start, stop), built from the
        entries without an object per element."""
        runs = self._regions(start, stop)
        if len(runs) == 1:
            return resp(*runs[0])
        return resp(b"".join([region for region, _ in runs]), stop - start)

    # -- searches --------------------------------------------------------------------

    def insert_at(self, pivot: bytes, value: bytes, after: bool) -> bool:
        """LINSERT: put `value` before/after the first `pivot`; False if absent."""
        needle = _entry(pivot)
        bounded = needle + KEY
        chunks = self._list()
        for i, chunk in enumerate(chunks):
            at = chunk.find(bounded)
            if at < 0:
                if not chunk.endswith(needle):
                    continue
                at = len(chunk) - len(needle)
            if after:
                at += len(needle)
            _replace_chunk(chunks, i, b"".join((chunk[:at], _entry(value), chunk[at:])))
            self._set(chunks)
            self.n += 1
            return True
        return False

    def remove(self, value: bytes, count: int) -> int:
        """LREM: remove the first `count` elements equal to `value` (the last
        -count when negative, all when 0); the number removed."""
        needle = _entry(value)
        bounded = needle + KEY
        target = needle[2:]   # an entry as split(KEY) gives it
        limit = abs(count) if count else -1
        removed = 0
        chunks = self._list()
        order = range(len(chunks)) if count >= 0 else range(len(chunks) - 1, -1, -1)
        for i in order:
            chunk = chunks[i]
            if chunk.find(bounded) < 0 and not chunk.endswith(needle):
                continue   # no match here: no Python work on its entries
            parts = chunk.split(KEY)[1:]
            if count < 0:
                parts.reverse()
            kept = []
            for part in parts:
                if part == target and removed != limit:
                    removed += 1
                else:
                    kept.append(part)
            if count < 0:
                kept.reverse()
            chunks[i] = KEY + KEY.join(kept) if kept else b""
            if removed == limit:
                break
        if removed:
            self._set([c for c in chunks if c])
            self.n -= removed
        return removed

    def trim(self, start: int, stop: int) -> None:
        """LTRIM: keep [start, stop) (0 <= start < stop <= n)."""
        right = self.n - stop
        if right:
            self.drop_tail(right)
        if start:
            self.drop_head(start)


def _replace_chunk(chunks: list, i: int, chunk: bytes) -> None:
    """Put `chunk` (non-empty) at position i of `chunks`: cut again if it grew
    past the limit, merged with a neighbour if both are small (so LSETs and
    LREMs cannot leave a trail of tiny chunks)."""
    if len(chunk) > CHUNK_BYTES:
        chunks[i:i + 1] = _pack(chunk)
        return
    if len(chunk) < CHUNK_BYTES // 4:
        if i + 1 < len(chunks) and len(chunk) + len(chunks[i + 1]) <= CHUNK_BYTES:
            chunks[i:i + 2] = [chunk + chunks[i + 1]]
            return
        if i and len(chunk) + len(chunks[i - 1]) <= CHUNK_BYTES:
            chunks[i - 1:i + 1] = [chunks[i - 1] + chunk]
            return
    chunks[i] = chunk
