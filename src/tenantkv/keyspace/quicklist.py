"""A list: a Python list of packed chunks, as Redis's quicklist of listpacks.

Why this form: a `collections.deque` costs a block of 64 pointers (>600 B)
for a list of 5 elements and a bytes object (33 B + data) per element. Here
the elements live in `bytes` chunks in keyspace/packed.py's single format
(`KEY + escape(element)` concatenated), so an element costs 2 bytes of
marker + its data, and every scan (find the n-th element, a pivot, a value
to remove, LRANGE's slice) runs in C (`find`, `count`, `split`, `rsplit`).

* A list of 5 short elements: the object (48 B) + a one-slot Python list
  (64 B) + one chunk (33 B + 2 + len per element), about 180 B before the
  key, against a deque's ~1 KB.
* Chunks are immutable `bytes`: a push or pop at an end builds a new end
  chunk, copying it, so a chunk is kept at most CHUNK_BYTES (a push copies
  < 1 KB, as Redis's listpack insert memmoves its node) -- or is a single
  element bigger than that, which is alone in its chunk, so that popping
  its neighbours never copies it. Writes in the middle (LSET, LINSERT) split
  a chunk that grew past the limit, so no later end operation copies more.
* No per-chunk element counts: they would cost memory in every small list
  and a write on every push; an index walks chunks from the nearer end
  counting markers with `bytes.count` (C, ~1 ns a byte). LINDEX/LSET stay
  O(distance from the nearer end), as Redis's quicklist walk.
* The chunk size does not follow list-max-listpack-size: no reply depends
  on it (Redis 7.0 says "quicklist" for every list), and bigger immutable
  chunks would make every push copy more.

Invariants: no empty chunk; `n` is the number of elements; an empty
QuickList never stays in a database (the commands delete the key).
"""

from tenantkv.keyspace.packed import KEY

_FF = b"\xff"
_ESCAPED = b"\xff\xfe"

# A push starts a new end chunk rather than grow this one past CHUNK_BYTES
# (measured: pushes at 1 KB chunks cost as at 256 B; LRANGE and memory gain
# from fewer, longer chunks).
CHUNK_BYTES = 1024


def _esc(value: bytes) -> bytes:
    return value.replace(_FF, _ESCAPED)


def _unesc_all(parts: list, chunk: bytes) -> list:
    """`parts` of `chunk`, unescaped when the chunk holds an escaped byte."""
    if chunk.find(_ESCAPED) >= 0:
        return [p.replace(_ESCAPED, _FF) for p in parts]
    return parts


def _pack(data: bytes) -> list:
    """Cut a run of packed elements into chunks of at most CHUNK_BYTES (or a
    single bigger element), at marker boundaries; O(len / CHUNK_BYTES) steps."""
    size = len(data)
    if size <= CHUNK_BYTES:
        return [data]
    chunks = []
    start = 0
    while size - start > CHUNK_BYTES:
        cut = data.rfind(KEY, start + 1, start + CHUNK_BYTES + 1)
        if cut < 0:   # one element longer than a chunk: alone in its own
            cut = data.find(KEY, start + 1)
            if cut < 0:
                break
        chunks.append(data[start:cut])
        start = cut
    chunks.append(data[start:])
    return chunks


def _packed(values) -> bytes:
    """The packed run of `values` (bytes), in order."""
    joined = KEY.join(values)
    if joined.find(_FF) >= 0:
        # a 0xff is a marker or a data byte: escape element by element
        joined = KEY.join([v.replace(_FF, _ESCAPED) for v in values])
    return KEY + joined


class QuickList:
    """The list interface commands/lists.py, the blocking pops and the
    persistence code use: len, iteration, pushes and pops at both ends,
    ranges, index access, LINSERT/LREM/LTRIM/LPOS helpers."""

    __slots__ = ("chunks", "n")

    def __init__(self, values=()) -> None:
        values = values if type(values) is list else list(values)
        self.n = len(values)
        self.chunks = _pack(_packed(values)) if values else []

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self):
        for chunk in self.chunks:
            yield from _unesc_all(chunk.split(KEY)[1:], chunk)

    def __reversed__(self):
        for chunk in reversed(self.chunks):
            parts = _unesc_all(chunk.split(KEY)[1:], chunk)
            parts.reverse()
            yield from parts

    def __repr__(self) -> str:
        return "QuickList(%r)" % (list(self),)

    def copy(self) -> "QuickList":
        new = QuickList()
        new.chunks = list(self.chunks)   # chunks are immutable: shared
        new.n = self.n
        return new

    # -- the ends: one element ---------------------------------------------------

    def append(self, value: bytes) -> None:
        piece = KEY + value.replace(_FF, _ESCAPED)
        chunks = self.chunks
        self.n += 1
        if chunks:
            last = chunks[-1]
            if len(last) + len(piece) <= CHUNK_BYTES:
                chunks[-1] = last + piece
                return
        chunks.append(piece)

    def appendleft(self, value: bytes) -> None:
        piece = KEY + value.replace(_FF, _ESCAPED)
        chunks = self.chunks
        self.n += 1
        if chunks:
            first = chunks[0]
            if len(first) + len(piece) <= CHUNK_BYTES:
                chunks[0] = piece + first
                return
        chunks.insert(0, piece)

    def popleft(self) -> bytes:
        chunks = self.chunks
        first = chunks[0]
        end = first.find(KEY, 2)
        if end < 0:
            del chunks[0]
            value = first[2:]
        else:
            value = first[2:end]
            chunks[0] = first[end:]
        self.n -= 1
        return value.replace(_ESCAPED, _FF)

    def pop(self) -> bytes:
        chunks = self.chunks
        last = chunks[-1]
        at = last.rfind(KEY)
        value = last[at + 2:]
        if at:
            chunks[-1] = last[:at]
        else:
            chunks.pop()
        self.n -= 1
        return value.replace(_ESCAPED, _FF)

    # -- the ends: many elements ---------------------------------------------------

    def extend(self, values: list) -> None:
        """RPUSH values..., in order."""
        if len(values) == 1:
            self.append(values[0])
            return
        data = _packed(values)
        chunks = self.chunks
        if chunks and len(chunks[-1]) + len(data) <= CHUNK_BYTES:
            chunks[-1] += data
        else:
            chunks.extend(_pack(data))
        self.n += len(values)

    def extendleft(self, values: list) -> None:
        """LPUSH values...: each pushed at the head in turn (so reversed)."""
        if len(values) == 1:
            self.appendleft(values[0])
            return
        data = _packed(values[::-1])
        chunks = self.chunks
        if chunks and len(chunks[0]) + len(data) <= CHUNK_BYTES:
            chunks[0] = data + chunks[0]
        else:
            chunks[0:0] = _pack(data)
        self.n += len(values)

    def pop_many(self, head: bool, count: int) -> list:
        """LPOP/RPOP key count: up to `count` elements from one end, in pop order."""
        n = self.n
        if count >= n:
            got = list(self) if head else list(reversed(self))
            self.chunks = []
            self.n = 0
            return got
        if head:
            got = self.range(0, count)
            self.drop_head(count)
        else:
            got = self.range(n - count, n)
            got.reverse()
            self.drop_tail(count)
        return got

    def drop_head(self, count: int) -> None:
        """Remove the first `count` (< n) elements."""
        self.n -= count
        chunks = self.chunks
        whole = 0
        for chunk in chunks:
            k = chunk.count(KEY)
            if k > count:
                break
            count -= k
            whole += 1
        del chunks[:whole]
        if count:
            chunks[0] = KEY + chunks[0].split(KEY, count + 1)[-1]

    def drop_tail(self, count: int) -> None:
        """Remove the last `count` (< n) elements."""
        self.n -= count
        chunks = self.chunks
        whole = 0
        for chunk in reversed(chunks):
            k = chunk.count(KEY)
            if k > count:
                break
            count -= k
            whole += 1
        if whole:
            del chunks[-whole:]
        if count:
            chunks[-1] = chunks[-1].rsplit(KEY, count)[0]

    # -- by index ----------------------------------------------------------------------

    def _locate(self, index: int) -> tuple:
        """(chunk position, index in that chunk, the chunk's element count) of
        element `index` (0 <= index < n), walking from the nearer end."""
        chunks = self.chunks
        if len(chunks) == 1:
            return 0, index, self.n
        if index < self.n // 2:
            for i, chunk in enumerate(chunks):
                k = chunk.count(KEY)
                if index < k:
                    return i, index, k
                index -= k
        else:
            back = self.n - 1 - index   # elements after it
            i = len(chunks)
            for chunk in reversed(chunks):
                i -= 1
                k = chunk.count(KEY)
                if back < k:
                    return i, k - 1 - back, k
                back -= k
        raise IndexError(index)

    def __getitem__(self, index: int) -> bytes:
        """The element at `index` (0 <= index < n)."""
        i, local, k = self._locate(index)
        chunk = self.chunks[i]
        if local < k // 2:
            value = chunk.split(KEY, local + 2)[local + 1]
        else:
            value = chunk.rsplit(KEY, k - local)[1]
        return value.replace(_ESCAPED, _FF)

    def __setitem__(self, index: int, value: bytes) -> None:
        """LSET: replace the element at `index` (0 <= index < n)."""
        i, local, k = self._locate(index)
        parts = self.chunks[i].split(KEY)
        parts[local + 1] = value.replace(_FF, _ESCAPED)
        self._replace_chunk(i, KEY.join(parts))

    def _replace_chunk(self, i: int, chunk: bytes) -> None:
        """Put `chunk` (non-empty) at position i, cut again if it grew too
        long, merged with a neighbour if both are small."""
        chunks = self.chunks
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

    def range(self, start: int, stop: int) -> list:
        """Elements [start, stop) (0 <= start < stop <= n), in order; only the
        chunks that hold them are split."""
        chunks = self.chunks
        if len(chunks) == 1:
            chunk = chunks[0]
            if start:
                got = chunk.split(KEY, stop + 1)[start + 1:stop + 1]
            else:
                got = chunk.split(KEY, stop + 1)[1:stop + 1]
            return _unesc_all(got, chunk)
        n = self.n
        if start <= n - stop:
            got = []
            skip = start
            want = stop - start
            for chunk in chunks:
                k = chunk.count(KEY)
                if skip >= k:
                    skip -= k
                    continue
                take = min(k - skip, want)
                part = chunk.split(KEY, skip + take + 1)[skip + 1:skip + take + 1]
                got += _unesc_all(part, chunk)
                want -= take
                if not want:
                    break
                skip = 0
            return got
        # nearer the tail: walk backwards, collecting chunk slices in reverse
        pieces = []
        skip = n - stop   # elements after the range
        want = stop - start
        for chunk in reversed(chunks):
            k = chunk.count(KEY)
            if skip >= k:
                skip -= k
                continue
            take = min(k - skip, want)
            part = chunk.rsplit(KEY, skip + take)
            pieces.append(_unesc_all(part[len(part) - skip - take:len(part) - skip], chunk))
            want -= take
            if not want:
                break
            skip = 0
        got = []
        for part in reversed(pieces):
            got += part
        return got

    # -- searches --------------------------------------------------------------------

    def index(self, value: bytes) -> int:
        """The chunk position holding the first element equal to `value`, and
        that element's byte offset in it; (-1, -1) when there is none."""
        needle = KEY + value.replace(_FF, _ESCAPED)
        bounded = needle + KEY
        for i, chunk in enumerate(self.chunks):
            at = chunk.find(bounded)
            if at >= 0:
                return i, at
            if chunk.endswith(needle):
                return i, len(chunk) - len(needle)
        return -1, -1

    def insert_at(self, pivot: bytes, value: bytes, after: bool) -> bool:
        """LINSERT: put `value` before/after the first `pivot`; False if absent."""
        i, at = self.index(pivot)
        if i < 0:
            return False
        chunk = self.chunks[i]
        if after:
            at += 2 + len(pivot.replace(_FF, _ESCAPED))
        piece = KEY + value.replace(_FF, _ESCAPED)
        self._replace_chunk(i, b"".join((chunk[:at], piece, chunk[at:])))
        self.n += 1
        return True

    def remove(self, value: bytes, count: int) -> int:
        """LREM: remove the first `count` elements equal to `value` (the last
        -count when negative, all when 0); the number removed."""
        esc = value.replace(_FF, _ESCAPED)
        needle = KEY + esc
        bounded = needle + KEY
        limit = abs(count) if count else -1
        removed = 0
        chunks = self.chunks
        order = range(len(chunks)) if count >= 0 else range(len(chunks) - 1, -1, -1)
        changed = []
        for i in order:
            chunk = chunks[i]
            if chunk.find(bounded) < 0 and not chunk.endswith(needle):
                continue   # no match here: no Python work on its elements
            parts = chunk.split(KEY)[1:]
            if count < 0:
                parts.reverse()
            kept = []
            for part in parts:
                if part == esc and removed != limit:
                    removed += 1
                else:
                    kept.append(part)
            if count < 0:
                kept.reverse()
            changed.append((i, KEY + KEY.join(kept) if kept else b""))
            if removed == limit:
                break
        if removed:
            for i, chunk in changed:
                chunks[i] = chunk
            self.chunks = [c for c in chunks if c]
            self.n -= removed
        return removed

    def trim(self, start: int, stop: int) -> None:
        """LTRIM: keep [start, stop) (0 <= start < stop <= n)."""
        right = self.n - stop
        if right:
            self.drop_tail(right)
        if start:
            self.drop_head(start)
