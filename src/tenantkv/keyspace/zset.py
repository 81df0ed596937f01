"""The sorted set values: `PackedZSet`, a small zset in one buffer (Redis's
listpack), and `ZSet`, a dict member -> score for O(1) ZSCORE plus a
SortedList of keys for O(log n) rank and range (Redis's skiplist). Both
answer one interface (len, score, rank, pairs, items, members, score_bounds,
lex_bounds, copy): the read commands work on either without branching; the
writes of a PackedZSet return a new one (it is immutable), which the command
stores back under its key.

Each key is one bytes object: 8 bytes that memcmp-order as the score, then
the member. Ties in score are so ordered by member bytes, as Redis orders
them (memcmp), and every comparison of the index is one memcmp on one
object. (The index once held (score, member) tuples: each comparison then
compared two floats through two more objects, and at 100k members ZADD spent
~40% of its time in those comparisons, mostly waiting on memory.)

A key holds the score +0.0-normalized (-0 equals 0, as in Redis's
skiplist); the score itself, -0 included, is the one in `scores`, so a key
is decoded as (scores[member], member). `order` is a view giving the index
as (score, member) pairs for the commands.
"""


from array import array
from bisect import bisect_left, bisect_right
from operator import itemgetter
from struct import Struct

from sortedcontainers import SortedList

_pack_double = Struct(">d").pack
_uint64 = Struct(">Q")
_pack_uint64 = _uint64.pack
_unpack_uint64 = _uint64.unpack
_SIGN = 1 << 63
_ALL = (1 << 64) - 1
_member = itemgetter(slice(8, None))   # key -> member, in C


def _bits(score: float) -> int:
    """The score as an unsigned 64-bit integer of the same order: IEEE 754
    bits with the sign bit set for a positive, all bits flipped for a negative."""
    i = _unpack_uint64(_pack_double(score + 0.0))[0]
    return i ^ _ALL if i & _SIGN else i | _SIGN


_INVERT = bytes(range(255, -1, -1))   # a translate() table: every bit flipped


def score_key(score: float, member: bytes) -> bytes:
    """The index key of (score, member): _bits(score) as 8 big-endian bytes,
    then the member. Computed without the integer: for score >= 0 (-0
    included) those are the bytes of -(score + 0.0), the same bits with the
    sign set; below 0, the bytes of the score with every bit flipped. (Half
    the time of going through the integer, and ZADD computes two.)"""
    if score >= 0:
        return _pack_double(-(score + 0.0)) + member
    return _pack_double(score).translate(_INVERT) + member


def _after(score: float) -> bytes:
    """A key above every key of `score` and below those of the next score up."""
    i = _bits(score)
    return _pack_uint64(i + 1) if i < _ALL else b"\xff" * 9


class ZSet:
    __slots__ = ("keys", "scores")

    def __init__(self) -> None:
        self.scores: dict = {}
        self.keys = SortedList()

    def __len__(self) -> int:
        return len(self.scores)

    def score(self, member: bytes):
        return self.scores.get(member)

    def pairs(self, first: int = 0, end=None, reverse: bool = False) -> list:
        """(score, member) pairs of ranks [first, end), in order (or reversed)."""
        scores = self.scores
        members = map(_member, self.keys.islice(first, end, reverse=reverse))
        return [(scores[m], m) for m in members]

    def items(self):
        """(member, score) pairs, in no particular order."""
        return self.scores.items()

    def members(self):
        return self.scores

    @property
    def order(self) -> "Order":
        return Order(self.keys, self.scores)

    def copy(self) -> "ZSet":
        z = ZSet()
        z.scores = dict(self.scores)
        z.keys = SortedList(self.keys)
        return z

    def update(self, pairs) -> None:
        """Add (score, member) pairs of members not in the set yet, in any order."""
        scores = self.scores
        keys = []
        for score, member in pairs:
            scores[member] = score
            keys.append(score_key(score, member))
        self.keys.update(keys)

    def add(self, member: bytes, score: float) -> None:
        # a skiplist keeps -0.0 as given (Redis replies "-0"); its index key is +0
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            self.keys.remove(score_key(old, member))
        self.scores[member] = score
        self.keys.add(score_key(score, member))

    def discard(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.keys.remove(score_key(old, member))
        return True

    def rank(self, member: bytes):
        score = self.scores.get(member)
        if score is None:
            return None
        return self.keys.index(score_key(score, member))

    def by_rank(self, start: int, stop: int, reverse: bool = False) -> list:
        """(score, member) pairs of ranks start..stop inclusive (already clamped)."""
        return list(self.order.islice(start, stop + 1, reverse=reverse))

    # -- score ranges: (low, low_excl, high, high_excl) -------------------------

    def score_bounds(self, low: float, low_excl: bool, high: float, high_excl: bool) -> tuple:
        """[first, end) indexes of the members within the score range."""
        keys = self.keys
        first = keys.bisect_left(_after(low) if low_excl else _pack_uint64(_bits(low)))
        end = keys.bisect_left(_pack_uint64(_bits(high)) if high_excl else _after(high))
        return first, max(first, end)

    # -- lex ranges: bounds are (member, exclusive) or None for - / + -----------

    def lex_bounds(self, low, high) -> tuple:
        """[first, end) indexes of the members within the lex range. As Redis,
        this assumes all scores are equal (a binary search on members)."""
        keys = self.keys
        n = len(keys)

        def above_low(i):
            if low is None:
                return True
            m = keys[i][8:]
            return m > low[0] if low[1] else m >= low[0]

        def above_high(i):
            if high is None:
                return False
            m = keys[i][8:]
            return m >= high[0] if high[1] else m > high[0]

        first = _search(n, above_low)
        end = _search(n, above_high)
        return first, max(first, end)


class Order:
    """The index seen as (score, member) pairs, in order: what the commands
    read ranges, ranks and pops through."""
    __slots__ = ("keys", "scores")

    def __init__(self, keys: SortedList, scores: dict) -> None:
        self.keys = keys
        self.scores = scores

    def __len__(self) -> int:
        return len(self.keys)

    def _pair(self, key: bytes) -> tuple:
        member = key[8:]
        return self.scores[member], member

    def __iter__(self):
        scores = self.scores
        for key in self.keys:
            member = key[8:]
            yield scores[member], member

    def __getitem__(self, index: int) -> tuple:
        return self._pair(self.keys[index])

    def __delitem__(self, index: slice) -> None:
        """Deletes keys only: the caller removes the members from `scores`."""
        del self.keys[index]

    def islice(self, start=None, stop=None, reverse=False) -> list:
        scores = self.scores
        members = map(_member, self.keys.islice(start, stop, reverse=reverse))
        return [(scores[m], m) for m in members]

    def index(self, pair: tuple) -> int:
        return self.keys.index(score_key(*pair))

    def update(self, pairs) -> None:
        """Add the keys of (score, member) pairs whose scores are already in `scores`."""
        self.keys.update([score_key(score, member) for score, member in pairs])


def _search(n: int, predicate) -> int:
    """The first index in [0, n) where the monotonic `predicate` holds (n if none)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


# -- the small form ------------------------------------------------------------------------

# A PackedZSet is copied whole on every write and scanned on every lookup:
# past this many bytes (limits raised far past the defaults) it becomes a
# ZSet whatever the limits say, so no write costs more than a 256 KB copy.
PACKED_MAX_BYTES = 1 << 18

_SEP = b"\xff"
# The scores' forms, by their index in the header: array typecode, bytes per score, reader.
_TYPECODES = "bid"
_KIND = {"b": 0, "i": 1, "d": 2}
_SCORE_SIZE = (1, 4, 8)
_unpack_from = (Struct("b").unpack_from, Struct("i").unpack_from, Struct("d").unpack_from)
_LONG = 252   # a header byte from here on: the kind is byte - _LONG, the count follows


def _escape(member: bytes) -> bytes:
    """`member` as stored: fe -> fe 01, ff -> fe 02 (the same object when it has neither)."""
    return member.replace(b"\xfe", b"\xfe\x01").replace(b"\xff", b"\xfe\x02")


def _unescape(member: bytes) -> bytes:
    return member.replace(b"\xfe\x02", b"\xff").replace(b"\xfe\x01", b"\xfe")


def _layout(buf: bytes) -> tuple:
    """(members, kind of the scores, offset of the scores, offset of the members)."""
    head = buf[0]
    if head < _LONG:
        n, kind = divmod(head, 3)
        return n, kind, 1, 1 + n * _SCORE_SIZE[kind]
    kind = head - _LONG
    n = int.from_bytes(buf[1:5], "little")
    return n, kind, 5, 5 + n * _SCORE_SIZE[kind]


def _pack(scores: list, members: list) -> bytes:
    """The buffer of `scores` (floats, -0 already 0) and their escaped
    `members`, both in order: integers in one byte (or four) each if all
    scores fit, else doubles."""
    n = len(scores)
    try:
        ints = list(map(int, scores))
    except OverflowError:   # an infinite score
        ints = None
    if ints == scores:   # (int 3 == 3.0: every score is an integer)
        try:
            values = array("b", ints)
        except OverflowError:
            try:
                values = array("i", ints)
            except OverflowError:
                values = array("d", scores)
    else:
        values = array("d", scores)
    head = _head(n, _KIND[values.typecode])
    if not n:
        return head
    return b"%b%b\xff%b" % (head, values.tobytes(), _SEP.join(members))


def _decode(buf: bytes) -> tuple:
    """(scores as floats, escaped members), in order."""
    n, kind, at, start = _layout(buf)
    if not n:
        return [], []
    scores = array(_TYPECODES[kind], buf[at:start]).tolist()
    if kind != 2:
        scores = list(map(float, scores))
    return scores, buf[start + 1:].split(_SEP)


def _head(n: int, kind: int) -> bytes:
    return bytes((n * 3 + kind,)) if n * 3 + 2 < _LONG else \
        bytes((_LONG + kind,)) + n.to_bytes(4, "little")


def _build(n: int, kind: int, scores: bytes, members: list) -> "PackedZSet":
    """A set from its parts: `n` scores of `kind` as bytes, the escaped members."""
    if not n:
        return EMPTY
    return PackedZSet(b"%b%b\xff%b" % (_head(n, kind), scores, _SEP.join(members)))


def _widen(values: array, value) -> array:
    """`values` in the narrowest wider kind that holds `value` too."""
    if values.typecode == "b" and type(value) is int and -(1 << 31) <= value < (1 << 31):
        return array("i", values)
    return array("d", values)


class PackedZSet(bytes):
    """A small sorted set as one immutable buffer (Redis's listpack).

    Layout: a header byte (3 * the member count + the kind of the scores,
    0/1/2 for b/i/d below; or 252 + the kind and the count in four more
    bytes), the scores in order as one C array
    (one byte each when every score is an integer in -128..127, four when
    in int32, else eight: a listpack stores small integers compactly too),
    then the members in the same order, each after an ff byte. A member is
    escaped (fe -> fe 01, ff -> fe 02), so ff only ever separates: one
    `bytes.find` of ff + member + ff (or the buffer's end) finds a member,
    `count(ff)` before it is its rank, which indexes its score. The escape
    keeps memcmp order (fe 01 < fe 02, both above every other byte), so
    escaped members compare as the members do. Entries are sorted by
    (score, member) as Redis's listpack: ranges read the buffer in order.
    5 members "member0".."member4" scored 1..5 take 46 bytes: with the
    object's 33 + 1 (the allocation of a bytes subclass counts its final
    NUL twice) + 16 that is 96 B, one pymalloc size class below 112.

    Why a `bytes` subclass with empty __slots__: one allocation of 33 B +
    16 B (heap types are GC-tracked in CPython 3.11) + the data, where an
    object holding a buffer costs a second object and 40 B more per key,
    over the memory target (the zset row of bench/memory.py: <= 1.5x
    Redis). So it is immutable: a write builds a new buffer (O(size), as a
    listpack's memmove, in C: split, array, join) and the command stores it
    back under the key, which keeps the TTL. Nothing may treat it as a
    string: every check in the code base is `type(x) is bytes`, which a
    subclass fails. len() is the number of members, not of bytes.
    """

    __slots__ = ()

    @classmethod
    def from_pairs(cls, pairs) -> "PackedZSet":
        """From (score, member) pairs already in order, members distinct."""
        pairs = list(pairs)
        return cls(_pack([s + 0.0 for s, _ in pairs], [_escape(m) for _, m in pairs]))

    def __len__(self) -> int:
        head = self[0]
        return head // 3 if head < _LONG else int.from_bytes(self[1:5], "little")

    def __repr__(self) -> str:
        return "PackedZSet(%r)" % (self.pairs(),)

    def copy(self) -> "PackedZSet":
        return self   # immutable: shared

    def _find(self, member: bytes, start: int) -> int:
        """The offset of `member`'s separator, or -1."""
        needle = b"\xff%b\xff" % _escape(member)
        at = self.find(needle, start)
        if at < 0:
            needle = needle[:-1]
            if self.endswith(needle) and bytes.__len__(self) - len(needle) >= start:
                return bytes.__len__(self) - len(needle)
        return at

    # -- reads ------------------------------------------------------------------

    def score(self, member: bytes):
        n, kind, at, start = _layout(self)
        found = self._find(member, start)
        if found < 0:
            return None
        rank = self.count(_SEP, start, found)
        return float(_unpack_from[kind](self, at + rank * _SCORE_SIZE[kind])[0])

    def rank(self, member: bytes):
        start = _layout(self)[3]
        found = self._find(member, start)
        return None if found < 0 else self.count(_SEP, start, found)

    def pairs(self, first: int = 0, end=None, reverse: bool = False) -> list:
        """(score, member) pairs of ranks [first, end), in order (or reversed)."""
        scores, members = _decode(self)
        if self.find(b"\xfe", 1) >= 0:
            members = list(map(_unescape, members))
        pairs = list(zip(scores, members))
        if first or end is not None:
            pairs = pairs[first:end]
        if reverse:
            pairs.reverse()
        return pairs

    def items(self) -> list:
        """(member, score) pairs, in order."""
        scores, members = _decode(self)
        if self.find(b"\xfe", 1) >= 0:
            members = list(map(_unescape, members))
        return list(zip(members, scores))

    def members(self) -> list:
        members = _decode(self)[1]
        if self.find(b"\xfe", 1) >= 0:
            members = list(map(_unescape, members))
        return members

    def scores(self) -> list:
        return _decode(self)[0]

    def score_bounds(self, low: float, low_excl: bool, high: float, high_excl: bool) -> tuple:
        """[first, end) ranks of the members within the score range."""
        n, kind, at, start = _layout(self)
        scores = array(_TYPECODES[kind], self[at:start])   # bisected as they are
        first = (bisect_right if low_excl else bisect_left)(scores, low)
        end = (bisect_left if high_excl else bisect_right)(scores, high)
        return first, max(first, end)

    def lex_bounds(self, low, high) -> tuple:
        """[first, end) ranks of the members within the lex range: as a
        listpack, the first member from the head that is above `low`, then
        on while members are below `high` (all scores equal is the user's
        promise; this is Redis's answer when they are not)."""
        members = self.members()
        n = len(members)
        first = 0
        if low is not None:
            bound, excl = low
            while first < n and (members[first] <= bound if excl else members[first] < bound):
                first += 1
        end = first
        if high is None:
            end = n
        else:
            bound, excl = high
            while end < n and (members[end] < bound if excl else members[end] <= bound):
                end += 1
        return first, end

    # -- writes: each returns the new set ---------------------------------------
    #
    # A write edits the score array and the member list in C (array.insert,
    # bytes slices, split, join) instead of decoding every score to a float
    # and choosing their kind again: the kind only widens (b -> i -> d) when
    # a score does not fit, and stays after removals (any kind reads back).

    def without(self, member: bytes) -> "PackedZSet":
        """The set without `member` (self if it is not in it)."""
        n, kind, at, start = _layout(self)
        found = self._find(member, start)
        if found < 0:
            return self
        rank = self.count(_SEP, start, found)
        size = _SCORE_SIZE[kind]
        end = self.find(_SEP, found + 1)
        return PackedZSet(b"%b%b%b%b%b" % (
            _head(n - 1, kind), self[at:at + rank * size], self[at + (rank + 1) * size:found],
            b"" if end < 0 else self[end:], b""))

    def with_score(self, member: bytes, score: float) -> "PackedZSet":
        """The set with `member` at `score` (added, or moved if there)."""
        n, kind, at, start = _layout(self)
        score += 0.0   # -0.0 is stored as 0 (as a listpack replies it)
        escaped = _escape(member)
        values = array(_TYPECODES[kind], self[at:start])
        members = self[start + 1:].split(_SEP) if n else []
        found = self._find(member, start)
        if found >= 0:   # a move: out first
            rank = self.count(_SEP, start, found)
            del values[rank], members[rank]
            n -= 1
        i = bisect_left(values, score)
        j = bisect_right(values, score, i)
        while i < j and members[i] < escaped:   # ties: by member, as escaped
            i += 1
        members.insert(i, escaped)
        value = int(score) if score.is_integer() else score   # (inf is no integer)
        try:
            values.insert(i, value)
        except (OverflowError, TypeError):   # past the kind's range, or not an integer
            values = _widen(values, value)
            values.insert(i, value)
        return PackedZSet(b"%b%b\xff%b" % (_head(n + 1, _KIND[values.typecode]),
                                            values.tobytes(), _SEP.join(members)))

    def without_range(self, first: int, end: int) -> "PackedZSet":
        """The set without ranks [first, end)."""
        n, kind, at, start = _layout(self)
        size = _SCORE_SIZE[kind]
        members = self[start + 1:].split(_SEP)
        del members[first:end]
        return _build(n - (end - first), kind,
                      self[at:at + first * size] + self[at + end * size:start], members)

    def popped(self, count: int, maximum: bool) -> tuple:
        """((score, member) pairs of the `count` lowest (highest, highest
        first) members, the set left)."""
        n, kind, at, start = _layout(self)
        count = min(count, n)
        size = _SCORE_SIZE[kind]
        code = _TYPECODES[kind]
        block = self[start + 1:]
        if count == n:
            pairs = list(zip(array(code, self[at:start]).tolist(), block.split(_SEP)))
            if maximum:
                pairs.reverse()
            rest = EMPTY
        elif maximum:   # the members split off the end only: the rest stays one piece
            cut = n - count
            parts = block.rsplit(_SEP, count)
            pairs = list(zip(array(code, self[at + cut * size:start]).tolist(), parts[1:]))
            pairs.reverse()
            rest = PackedZSet(b"%b%b\xff%b" % (_head(cut, kind), self[at:at + cut * size],
                                                parts[0]))
        else:
            parts = block.split(_SEP, count)
            pairs = list(zip(array(code, self[at:at + count * size]).tolist(), parts))
            rest = PackedZSet(b"%b%b\xff%b" % (_head(n - count, kind),
                                                self[at + count * size:start], parts[-1]))
        if self.find(b"\xfe", 1) >= 0:
            pairs = [(float(s), _unescape(m)) for s, m in pairs]
        else:
            pairs = [(float(s), m) for s, m in pairs]
        return pairs, rest

    def to_zset(self) -> ZSet:
        z = ZSet()
        z.update(self.pairs())
        return z


EMPTY = PackedZSet(_pack([], []))
