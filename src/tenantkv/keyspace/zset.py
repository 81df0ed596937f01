"""The sorted set value: a dict member -> score for O(1) ZSCORE, and a
SortedList of (score, member) for O(log n) rank and range (Redis's skiplist).

Ties in score are ordered by member bytes, as Redis orders them (memcmp).
"""

from sortedcontainers import SortedList


class _Top:
    """Compares greater than any member: (score, TOP) sorts after every
    (score, member), so bisecting it finds the end of a score."""
    __slots__ = ()

    def __lt__(self, other):
        return False

    def __gt__(self, other):
        return True

    def __eq__(self, other):
        return other is self

    def __hash__(self):
        return 0


TOP = _Top()


class ZSet:
    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict = {}
        self.order = SortedList()

    def __len__(self) -> int:
        return len(self.scores)

    def copy(self) -> "ZSet":
        z = ZSet()
        z.scores = dict(self.scores)
        z.order = SortedList(self.order)
        return z

    def add(self, member: bytes, score: float) -> None:
        score += 0.0   # -0.0 is stored as 0 (as Redis replies it)
        old = self.scores.get(member)
        if old is not None:
            if old == score:
                return
            self.order.remove((old, member))
        self.scores[member] = score
        self.order.add((score, member))

    def discard(self, member: bytes) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.order.remove((old, member))
        return True

    def rank(self, member: bytes):
        score = self.scores.get(member)
        if score is None:
            return None
        return self.order.index((score, member))

    def by_rank(self, start: int, stop: int, reverse: bool = False) -> list:
        """(score, member) pairs of ranks start..stop inclusive (already clamped)."""
        return list(self.order.islice(start, stop + 1, reverse=reverse))

    # -- score ranges: (low, low_excl, high, high_excl) -------------------------

    def score_bounds(self, low: float, low_excl: bool, high: float, high_excl: bool) -> tuple:
        """[first, end) indexes of the members within the score range."""
        order = self.order
        first = order.bisect_right((low, TOP)) if low_excl else order.bisect_left((low,))
        end = order.bisect_left((high,)) if high_excl else order.bisect_right((high, TOP))
        return first, max(first, end)

    # -- lex ranges: bounds are (member, exclusive) or None for - / + -----------

    def lex_bounds(self, low, high) -> tuple:
        """[first, end) indexes of the members within the lex range. As Redis,
        this assumes all scores are equal (a binary search on members)."""
        order = self.order
        n = len(order)

        def above_low(i):
            if low is None:
                return True
            m = order[i][1]
            return m > low[0] if low[1] else m >= low[0]

        def above_high(i):
            if high is None:
                return False
            m = order[i][1]
            return m >= high[0] if high[1] else m > high[0]

        first = _search(n, above_low)
        end = _search(n, above_high)
        return first, max(first, end)


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
