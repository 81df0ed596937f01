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

import re
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


def score_key(score: float, member: bytes) -> bytes:
    """The index key of (score, member)."""
    i = _unpack_uint64(_pack_double(score + 0.0))[0]
    return _pack_uint64(i ^ _ALL if i & _SIGN else i | _SIGN) + member


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

_KEY = b"\xff\x01"
_VAL = b"\xff\x02"
_FF = b"\xff"
_ESCAPED = b"\xff\xfe"
_NEEDLE = b"\xff\x01%b\xff\x02"
_MEMBERS = re.compile(rb"\xff\x01(.*?)\xff\x02", re.S).findall
_SCORES = re.compile(rb"\xff\x02([^\xff]*)").findall
_PAIRS = re.compile(rb"\xff\x01(.*?)\xff\x02([^\xff]*)", re.S).findall


def _text(score: float) -> bytes:
    """The shortest text float() reads back as `score` ("3" for 3.0)."""
    text = b"%r" % score
    return text[:-2] if text[-2:] == b".0" else text


def _unescape(members: list, buf: bytes) -> list:
    if buf.find(_ESCAPED) < 0:
        return members
    return [m.replace(_ESCAPED, _FF) for m in members]


class PackedZSet(bytes):
    """A small sorted set as one immutable buffer (Redis's listpack).

    Each member is an entry `ff 01 + escape(member) + ff 02 + score text`,
    the entries sorted by (score, member) as Redis's listpack: ZRANGE by
    rank or score reads the buffer in order. `escape` writes a 0xff byte of
    a member as ff fe (keyspace/packed.py's rule), so ff 01 / ff 02 only
    ever occur as markers: one `bytes.find` of `ff 01 member ff 02` finds a
    member (ZSCORE), `count(ff 01)` before it is its rank, and the escaped
    members still compare in memcmp order (0xff is the largest byte and
    ff fe sorts as it did). The score is the shortest decimal text that
    reads back exactly ("3", "0.1", "inf"): a listpack stores small integers
    in a byte or two as well; a 5-member set of short members fits ~60 B.

    Why a `bytes` subclass with empty __slots__: the value is then one
    allocation of 33 B + its data, not tracked by the GC. An object holding
    a buffer would cost 40 B more per key (GC header, its own object), over
    the memory target (the zset row of bench/memory.py: <= 1.5x Redis). So
    it is immutable: a write builds a new buffer (O(size), as a listpack's
    memmove) and the command stores it back under the key, which keeps the
    TTL. Nothing may treat it as a string: every check in the code base is
    `type(x) is bytes`, which a subclass fails. len() is the number of
    members (counting markers in C), not of bytes.
    """

    __slots__ = ()

    @classmethod
    def from_pairs(cls, pairs) -> "PackedZSet":
        """From (score, member) pairs already in order, members distinct."""
        return cls(b"".join([_NEEDLE % m.replace(_FF, _ESCAPED) + _text(s + 0.0)
                             for s, m in pairs]))

    def __len__(self) -> int:
        return self.count(_KEY)

    def __repr__(self) -> str:
        return "PackedZSet(%r)" % (self.pairs(),)

    def copy(self) -> "PackedZSet":
        return self   # immutable: shared

    # -- reads ------------------------------------------------------------------

    def score(self, member: bytes):
        needle = _NEEDLE % member.replace(_FF, _ESCAPED)
        at = self.find(needle)
        if at < 0:
            return None
        at += len(needle)
        end = self.find(_KEY, at)
        return float(self[at:] if end < 0 else self[at:end])

    def rank(self, member: bytes):
        at = self.find(_NEEDLE % member.replace(_FF, _ESCAPED))
        return None if at < 0 else self.count(_KEY, 0, at)

    def pairs(self, first: int = 0, end=None, reverse: bool = False) -> list:
        """(score, member) pairs of ranks [first, end), in order (or reversed)."""
        found = _PAIRS(self)
        if first or end is not None:
            found = found[first:end]
        if reverse:
            found.reverse()
        if self.find(_ESCAPED) >= 0:
            return [(float(s), m.replace(_ESCAPED, _FF)) for m, s in found]
        return [(float(s), m) for m, s in found]

    def items(self) -> list:
        """(member, score) pairs, in order."""
        return [(m, s) for s, m in self.pairs()]

    def members(self) -> list:
        return _unescape(_MEMBERS(self), self)

    def scores(self) -> list:
        return list(map(float, _SCORES(self)))

    def score_bounds(self, low: float, low_excl: bool, high: float, high_excl: bool) -> tuple:
        """[first, end) ranks of the members within the score range."""
        scores = self.scores()
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

    def without(self, member: bytes) -> "PackedZSet":
        """The set without `member` (self if it is not in it)."""
        at = self.find(_NEEDLE % member.replace(_FF, _ESCAPED))
        if at < 0:
            return self
        end = self.find(_KEY, at + 2)
        return PackedZSet(self[:at] if end < 0 else self[:at] + self[end:])

    def with_score(self, member: bytes, score: float) -> "PackedZSet":
        """The set with `member` at `score` (added, or moved if there)."""
        buf = self.without(member)
        score += 0.0   # -0.0 is stored as 0 (as a listpack replies it)
        escaped = member.replace(_FF, _ESCAPED)
        entry = _NEEDLE % escaped + _text(score)
        scores = list(map(float, _SCORES(buf)))
        i = bisect_left(scores, score)
        j = bisect_right(scores, score, i)
        if i < j:   # ties: by member (escaped members compare as the members)
            members = _MEMBERS(buf)
            while i < j and members[i] < escaped:
                i += 1
        if i == len(scores):
            return PackedZSet(buf + entry)
        at = _nth(buf, i)
        return PackedZSet(buf[:at] + entry + buf[at:])

    def without_range(self, first: int, end: int) -> "PackedZSet":
        """The set without ranks [first, end) (0 <= first < end <= len)."""
        start = _nth(self, first)
        stop = _nth(self, end) if end < len(self) else -1
        return PackedZSet(self[:start] if stop < 0 else self[:start] + self[stop:])

    def popped(self, count: int, maximum: bool) -> tuple:
        """((score, member) pairs of the `count` lowest (highest, highest
        first) members, the set left)."""
        if maximum:
            parts = self.rsplit(_KEY, count)
            rest, entries = parts[0], parts[:0:-1]
        else:
            parts = self.split(_KEY, count + 1)
            rest, entries = parts[-1] if len(parts) > count + 1 else b"", parts[1:count + 1]
            if rest:
                rest = _KEY + rest
        pairs = []
        for entry in entries:
            member, score = entry.split(_VAL)
            pairs.append((float(score), member.replace(_ESCAPED, _FF)))
        return pairs, PackedZSet(rest)

    def to_zset(self) -> ZSet:
        z = ZSet()
        z.update(self.pairs())
        return z


def _nth(buf: bytes, rank: int) -> int:
    """The offset of the entry of `rank` in a buffer (it exists)."""
    at = -1
    find = buf.find
    for _ in range(rank + 1):
        at = find(_KEY, at + 1)
    return at
