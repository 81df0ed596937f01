"""Lazy free: big values and flushed databases are dropped in slices.

CPython frees an object in the thread that drops its last reference, and a
dict of 1M keys takes ~40 ms to free (a 10M-key FLUSHALL, 0.4 s with every
other tenant waiting). So FLUSHALL / FLUSHDB swap the database's dicts out
at once (the tenant sees an empty database at once, as Redis's
emptyData(..., EMPTYDB_ASYNC)) and hand the old ones here; UNLINK and DEL
of a big value hand the value here, and a flush its SCAN snapshots. The garbage is then emptied a slice
(SLICE seconds) per loop turn: a dict by popitem(), a set by pop(), a sorted
set's dict and index the same way, a stream's consumer groups by their
pending entries lists, each popped value that is itself big going back
into the queue rather than being freed whole.

Nothing in the queue is reachable by any client: this never changes what a
command sees, only when the memory comes back.
"""

from collections import deque
from time import monotonic

from sortedcontainers import SortedDict

from tenantkv.keyspace.streamgroups import ConsumerGroup

SLICE = 0.005
BIG = 1024   # elements: a value smaller than this is freed at once
_PER_CHECK = 512   # pops between two reads of the clock

_queue: deque = deque()
_scheduled = [None]   # the loop the drain is scheduled on, while it is


def size(value) -> int:
    """The number of elements freeing `value` walks (0 for a string)."""
    kind = type(value)
    if kind is dict or kind is set or kind is list:
        return len(value)
    if kind is bytes:
        return 0
    if kind is ConsumerGroup:
        return len(value.pel)
    groups = getattr(value, "groups", None)   # a Stream: its groups' pending entries
    if groups:
        return sum(len(group.pel) for group in groups.values())
    scores = getattr(value, "scores", None)   # ZSet: a dict and a SortedList
    if type(scores) is dict:
        return len(scores)
    return 0


def free(loop, garbage) -> None:
    """Drop `garbage` (a value, or a dict of key -> value) over the next loop
    turns. `loop`: the server's event loop."""
    _queue.append(garbage)
    if _scheduled[0] is None:
        _scheduled[0] = loop
        # From the next loop turn on: the reply of the command that freed
        # (flushed at the end of this turn) goes out first.
        loop.call_soon(loop.call_soon, _drain)


def pending() -> int:
    """Objects waiting to be freed (INFO's lazyfree_pending_objects)."""
    return len(_queue)


def _drain() -> None:
    deadline = monotonic() + SLICE
    queue = _queue
    while queue:
        if _empty_some(queue[0], queue):
            queue.popleft()   # the last reference to an emptied container
        if monotonic() > deadline:
            break
    loop = _scheduled[0]
    if queue:
        loop.call_soon(_drain)
    else:
        _scheduled[0] = None


def _empty_some(obj, queue) -> bool:
    """Empty part of `obj`; True when it is empty (or small enough to drop)."""
    kind = type(obj)
    if kind is dict:
        pop = obj.popitem
        for _ in range(_PER_CHECK):
            if not obj:
                return True
            value = pop()[1]
            if type(value) is not bytes and size(value) >= BIG:
                queue.append(value)
        return not obj
    if kind is set:
        pop = obj.pop
        for _ in range(_PER_CHECK):
            if not obj:
                return True
            pop()
        return not obj
    if kind is list:   # a SCAN snapshot: names only, from the end (no shifting)
        del obj[-_PER_CHECK:]
        return not obj
    if kind is SortedDict:   # a PEL: its dict (in C), then its index's sublists
        popitem = dict.popitem
        for _ in range(_PER_CHECK):
            if not dict.__len__(obj):
                break
            popitem(obj)
        else:
            return False
        lists = obj._list._lists
        for _ in range(8):
            if not lists:
                return True
            lists.pop()
        return not lists
    if kind is ConsumerGroup:   # each consumer's PEL, then the group's
        for consumer in obj.consumers.values():
            queue.append(consumer.pel)
        queue.append(obj.pel)
        return True
    groups = getattr(obj, "groups", None)
    if groups:   # a Stream: its groups (its entries are blocks: few objects)
        queue.extend(groups.values())
        obj.groups = None
        return True
    scores = getattr(obj, "scores", None)
    if type(scores) is dict:   # ZSet: its dict, then its index's sublists
        if scores:
            queue.append(scores)
            obj.scores = {}
            return False
        lists = getattr(obj.keys, "_lists", None)
        if lists:
            for _ in range(8):   # sublists of ~1000 elements
                if not lists:
                    break
                lists.pop()
            return False
        return True
    return True   # anything else: its size does not matter, drop it
