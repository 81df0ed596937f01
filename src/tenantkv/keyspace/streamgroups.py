"""Stream consumer groups: the group, its consumers and their pending entries.

As Redis (t_stream.c), a group has a last delivered id, an entries-read
counter (-1 when unknown), a PEL (pending entries list: id -> Nack, the
entries delivered and not yet acknowledged) and its consumers; each consumer
has a PEL of its own holding the same Nack objects as the group's, so an
entry is in exactly two places, found by id in either. A Nack names its owner
(`consumer`), the last delivery time (ms) and the delivery count.

PELs are SortedDicts keyed by the stream's int ids (keyspace/stream.py:
``ms << 64 | seq``), so XPENDING ranges, XAUTOCLAIM's scan and a consumer's
history read are O(log n + count). Groups live in `stream.groups` (None or a
dict name -> ConsumerGroup), consumers in `group.consumers` (a dict); both
are listed in Redis's rax order (memcmp of the names) by `sorted`.

What a hostile tenant could grow is bounded: MAX_GROUPS groups per stream,
MAX_CONSUMERS consumers per group (a PEL grows only with entries delivered,
which the stream's own size and the tenant's memory quota bound, see
`footprint`).

The lag and entries-read arithmetic is Redis 7.0's (streamReplyWithCGLag,
streamEstimateDistanceFromFirstEverEntry, streamRangeHasTombstones).
"""

from sortedcontainers import SortedDict

from tenantkv.keyspace.stream import MAX_ID

_dict_set = dict.__setitem__

INVALID = -1            # SCG_INVALID_ENTRIES_READ: the group's counter is unknown
MAX_GROUPS = 1000       # groups per stream (tenantkv's bound; Redis has none)
MAX_CONSUMERS = 10000   # consumers per group (tenantkv's bound; Redis has none)

# Bytes the accounting charges (see `footprint`): a Nack object and its two
# SortedDict slots, a consumer's object, dict slot and empty PEL, a group's.
NACK_BYTES = 200
CONSUMER_BYTES = 400
GROUP_BYTES = 600


class Nack:
    """One pending entry: its owner, last delivery (ms), deliveries."""
    __slots__ = ("consumer", "delivery_time", "delivery_count")

    def __init__(self, consumer, delivery_time: int, delivery_count: int = 1) -> None:
        self.consumer = consumer
        self.delivery_time = delivery_time
        self.delivery_count = delivery_count


class Consumer:
    __slots__ = ("name", "pel", "seen_time")

    def __init__(self, name: bytes, seen_time: int) -> None:
        self.name = name
        self.pel = SortedDict()
        self.seen_time = seen_time


class ConsumerGroup:
    __slots__ = ("last_id", "entries_read", "pel", "consumers", "names")

    def __init__(self, last_id: int, entries_read: int = INVALID) -> None:
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel = SortedDict()
        self.consumers: dict = {}
        self.names = 0          # bytes of the consumers' names (the accounting)

    # -- consumers ---------------------------------------------------------------

    def consumer(self, name: bytes, now: int | None = None):
        """The consumer `name` or None; `now` refreshes its seen-time
        (streamLookupConsumer without SLC_NO_REFRESH)."""
        consumer = self.consumers.get(name)
        if consumer is not None and now is not None:
            consumer.seen_time = now
        return consumer

    def create_consumer(self, name: bytes, now: int):
        """A new consumer, or None if `name` exists. Raises GroupLimit past
        MAX_CONSUMERS."""
        if name in self.consumers:
            return None
        if len(self.consumers) >= MAX_CONSUMERS:
            raise GroupLimit("consumers", MAX_CONSUMERS)
        consumer = self.consumers[name] = Consumer(name, now)
        self.names += len(name)
        return consumer

    def get_or_create(self, name: bytes, now: int):
        """(consumer, created): looked up (seen-time refreshed) or made."""
        consumer = self.consumers.get(name)
        if consumer is not None:
            consumer.seen_time = now
            return consumer, False
        return self.create_consumer(name, now), True

    def delete_consumer(self, consumer) -> int:
        """Remove `consumer` and its pending entries from the group's PEL
        (streamDelConsumer); returns how many it had."""
        pending = len(consumer.pel)
        pel = self.pel
        for sid in consumer.pel:
            pel.pop(sid, None)
        del self.consumers[consumer.name]
        self.names -= len(consumer.name)
        return pending

    def sorted_consumers(self) -> list:
        return [self.consumers[name] for name in sorted(self.consumers)]

    # -- pending entries -------------------------------------------------------

    def deliver(self, sid: int, consumer, now: int) -> Nack:
        """Entry `sid` delivered to `consumer` for the first time (or again
        after SETID moved the group back): a fresh Nack, reassigned from any
        previous owner, as streamReplyWithRange."""
        pel = self.pel
        nack = pel.get(sid)
        if nack is None:
            # SortedDict's __setitem__ written out (its list, then the dict):
            # one new pending entry per delivery is XREADGROUP's main cost
            nack = Nack(consumer, now)
            pel._list_add(sid)
            _dict_set(pel, sid, nack)
            own = consumer.pel
            own._list_add(sid)
            _dict_set(own, sid, nack)
            return nack
        if nack.consumer is not consumer:
            del nack.consumer.pel[sid]
            consumer.pel[sid] = nack
            nack.consumer = consumer
        nack.delivery_time = now
        nack.delivery_count = 1
        return nack

    def ack(self, sid: int) -> bool:
        pel = self.pel
        nack = pel.get(sid)   # dict.get: a miss (a retried XACK) costs no more
        if nack is None:
            return False
        del pel[sid]
        del nack.consumer.pel[sid]
        return True

    def claim(self, sid: int, nack, consumer) -> None:
        """Move the pending entry `sid` (its Nack, possibly new: owner None)
        to `consumer`."""
        if nack.consumer is not consumer:
            if nack.consumer is not None:
                del nack.consumer.pel[sid]
            consumer.pel[sid] = nack
            nack.consumer = consumer

    def copy(self) -> "ConsumerGroup":
        """A deep copy (COPY, RESTORE of a stream), Nacks shared by the two
        PELs as in the original."""
        new = ConsumerGroup(self.last_id, self.entries_read)
        new.names = self.names
        for name, consumer in self.consumers.items():
            twin = new.consumers[name] = Consumer(name, consumer.seen_time)
            for sid, nack in consumer.pel.items():
                copied = Nack(twin, nack.delivery_time, nack.delivery_count)
                twin.pel[sid] = copied
                new.pel[sid] = copied
        return new

    def size(self) -> int:
        """What the group holds, in bytes, for the accounting: O(1)."""
        return GROUP_BYTES + NACK_BYTES * len(self.pel) + CONSUMER_BYTES * len(self.consumers) \
            + self.names


class GroupLimit(Exception):
    """MAX_GROUPS / MAX_CONSUMERS reached (the command turns it into its error)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what)
        self.what = what
        self.limit = limit


def groups_size(stream) -> int:
    """Bytes of a stream's groups for the accounting (O(groups) <= MAX_GROUPS)."""
    groups = stream.groups
    if not groups:
        return 0
    return sum(group.size() + len(name) for name, group in groups.items())


def create_group(stream, name: bytes, last_id: int, entries_read: int):
    """A new group, or None if `name` exists (streamCreateCG)."""
    groups = stream.groups
    if groups is None:
        groups = stream.groups = {}
    elif name in groups:
        return None
    if len(groups) >= MAX_GROUPS:
        raise GroupLimit("groups", MAX_GROUPS)
    group = groups[name] = ConsumerGroup(last_id, entries_read)
    return group


def lookup_group(stream, name: bytes):
    groups = stream.groups
    return None if groups is None else groups.get(name)


# -- lag and entries-read (Redis 7.0) -------------------------------------------------

def range_has_tombstones(stream, start: int, end: int = MAX_ID) -> bool:
    """streamRangeHasTombstones: may [start, end] hold a deleted entry?"""
    deleted = stream.max_deleted_id
    if not stream.length or not deleted:
        return False
    if stream.first_id() > deleted:
        return False
    return start <= deleted <= end


def estimate_distance(stream, sid: int) -> int:
    """streamEstimateDistanceFromFirstEverEntry: the entries-read counter of
    `sid`, or INVALID when it cannot be known."""
    added = stream.entries_added
    if not added:
        return 0
    if not stream.length and sid <= stream.last_id:
        return added
    if sid == stream.last_id:
        return added
    if sid > stream.last_id:
        return INVALID
    first = stream.first_id()
    deleted = stream.max_deleted_id
    if not deleted or deleted < first:
        if sid < first:
            return added - stream.length
        if sid == first:
            return added - stream.length + 1
    return INVALID


def lag(stream, group):
    """streamReplyWithCGLag: the entries not yet delivered, or None."""
    if not stream.entries_added:
        return 0
    if group.entries_read != INVALID and not range_has_tombstones(stream, group.last_id):
        return stream.entries_added - group.entries_read
    read = estimate_distance(stream, group.last_id)
    if read != INVALID:
        return stream.entries_added - read
    return None


def advance(stream, group, sid: int) -> None:
    """The group delivered `sid` (> its last id): move its last id and
    counter as streamReplyWithRange does."""
    if group.entries_read != INVALID and not range_has_tombstones(stream, sid):
        group.entries_read += 1
    elif stream.entries_added:
        group.entries_read = estimate_distance(stream, sid)
    group.last_id = sid


def next_entries(stream, after: int, count: int) -> tuple:
    """(ids, RESP of the entries, as Stream.range_reply's body) of the first
    `count` entries with id > `after`: one locate, the ids read from the
    blocks' arrays and the bytes sliced from their data."""
    ids: list = []
    blocks = stream.blocks
    if not blocks or after >= MAX_ID:
        return ids, b""
    b, i = stream._locate(after + 1)
    parts = []
    while b < len(blocks):
        block = blocks[b]
        ms, seq = block.ms, block.seq
        end = len(ms)
        if end - i > count - len(ids):
            end = i + count - len(ids)
        if end == i + 1:   # the usual XREADGROUP COUNT 1
            ids.append(ms[i] << 64 | seq[i])
        else:
            ids.extend([ms[j] << 64 | seq[j] for j in range(i, end)])
        offs = block.offs
        parts.append(block.data[offs[i]:offs[end]])
        if len(ids) >= count:
            break
        b += 1
        i = 0
    return ids, parts[0] if len(parts) == 1 else b"".join(parts)
