"""The sorted set value: a dict member -> score for O(1) ZSCORE, and a
SortedList of keys for O(log n) rank and range (Redis's skiplist).

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
        score += 0.0   # -0.0 is stored as 0 (as Redis replies it)
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
