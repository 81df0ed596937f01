"""Random members of a set or random fields of a hash, in O(1) amortized time.

Python's set and dict cannot be indexed, so picking a random member means
walking the table: islice(s, randrange(n)) costs O(n), and SPOP on a set of
50,000 members measured 624 us per call under redis-benchmark (Redis: 4 us).

Here a large container gets a snapshot list of its members, drawn from by
index. A drawn member that is no longer there (popped or removed since) is
drawn again; members added since the snapshot are not drawn until it is
rebuilt. The snapshot is rebuilt after len/2 draws, when the container has
grown by an eighth or shrunk to half, so its O(n) cost is spread over O(n)
draws (O(1) amortized) and neither misses nor missed newcomers pile up. The
draws are uniform over the snapshot; Redis's own dictGetFairRandomKey is an
approximation too.

Snapshots live in a small LRU keyed by the container's identity (the entry
holds the container, so the identity cannot be reused while it is cached).
Small containers (up to SMALL members) are walked directly: that is cheaper
than keeping a snapshot.
"""

import random
from collections import OrderedDict
from itertools import islice

from tenantkv import errors
from tenantkv.errors import CommandError

# The longest reply SRANDMEMBER / HRANDFIELD / ZRANDMEMBER with a negative
# count give a non-root user: Redis has no limit but LONG_MAX, and 16M picks
# took ~10 s and 2.5 GB here. 100,000 picks take ~30 ms with their reply;
# with WITHVALUES / WITHSCORES (a pair each, nested in RESP3, a score to
# format) 100,000 took 0.25-0.45 s, hence a lower limit for those.
RANDOM_REPLY_LIMIT = 100_000
RANDOM_PAIRS_LIMIT = 20_000


def check_random_count(client, picks: int, pairs: bool = False) -> None:
    """Refuse `picks` repeated random elements (`pairs`: with their values
    or scores) past the non-root limit."""
    limit = RANDOM_PAIRS_LIMIT if pairs else RANDOM_REPLY_LIMIT
    if picks > limit and not client.root:
        raise CommandError(errors.random_count_limit(limit))

SMALL = 128
MAX_SNAPSHOTS = 32

_snapshots: OrderedDict = OrderedDict()   # id(container) -> _Snapshot


class _Snapshot:
    __slots__ = ("container", "items", "size", "draws")

    def __init__(self, container) -> None:
        self.container = container
        self.items = list(container)
        self.size = len(self.items)
        self.draws = 0


def _snapshot(container) -> _Snapshot:
    key = id(container)
    snap = _snapshots.get(key)
    n = len(container)
    if (snap is None or snap.container is not container or snap.draws > snap.size // 2
            or n > snap.size + snap.size // 8 or n < snap.size // 2):
        snap = _Snapshot(container)
        _snapshots[key] = snap
        if len(_snapshots) > MAX_SNAPSHOTS:
            _snapshots.popitem(last=False)
    else:
        _snapshots.move_to_end(key)
    return snap


def random_member(container):
    """One random member (set) or field (dict) of a non-empty container."""
    n = len(container)
    if n <= SMALL:
        return next(islice(container, random.randrange(n), None))
    snap = _snapshot(container)
    items = snap.items
    while True:
        snap.draws += 1
        item = items[random.randrange(snap.size)]
        if item in container:
            return item
        if snap.draws > snap.size // 2:   # too many gone: start over from the container
            snap = _snapshot(container)
            items = snap.items


def random_distinct(container, count: int) -> list:
    """`count` distinct random members (count < len(container))."""
    n = len(container)
    if n <= SMALL or count * 4 > n:
        return random.sample(list(container), count)
    picked: dict = {}
    while len(picked) < count:
        picked[random_member(container)] = None
    return list(picked)


def random_repeated(container, count: int) -> list:
    """`count` random members, repetitions allowed (negative counts)."""
    n = len(container)
    if n <= SMALL or count > n:
        return random.choices(list(container), k=count)
    return [random_member(container) for _ in range(count)]


def forget(container) -> None:
    """Drop the snapshot of a container that is going away (optional: the
    LRU forgets it anyway)."""
    snap = _snapshots.get(id(container))
    if snap is not None and snap.container is container:
        del _snapshots[id(container)]
