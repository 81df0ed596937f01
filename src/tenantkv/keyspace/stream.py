"""The stream value: entries in packed blocks with an index of block first ids,
as Redis keeps listpacks in a rax.

Ids
---
An id is one Python int, ``ms << 64 | seq`` (both unsigned 64-bit), so ids
compare, hash and sort as ints; `make_id`, `id_ms`, `id_seq`, `format_id`
convert. MAX_ID is 2^64-1 - 2^64-1.

Entries
-------
Entries live in `Block`s of at most `node_max_entries` entries (Redis's
stream-node-max-entries, counting deleted ones as Redis does) and about
`node_max_bytes` of Redis's listpack bytes. A block holds:

* `ms`, `seq`: array('Q') of its ids, ascending: a C bisect finds an id;
* `data`: one bytes/bytearray holding each entry as the RESP reply XRANGE
  sends for it, ``*2\\r\\n$L\\r\\n<ms>-<seq>\\r\\n*2k\\r\\n$..field..`` -- so a
  range reply is ``*N\\r\\n`` plus slices of `data`, without a Python object
  per entry or per field, and fields decode with hiredis (C) when needed;
* `offs`: array('I'), n + 1 offsets of the entries in `data`.

The stream keeps `blocks` (a list) and `firsts` (the first live id of each
block, a list of ints): XADD appends to the last block (O(1) amortized; ids
only grow), a lookup is a bisect over `firsts` then one over the block
(O(log n)), a range reply slices the blocks it spans (O(log n + count)).
XDEL and an exact trim rebuild one block (O(block size)); whole blocks
leave the front of the lists.

Attributes kept for consumer groups (keyspace/streamgroups.py fills
`groups`): `last_id` (the last id generated, an int), `entries_added`
(every entry ever added), `max_deleted_id` (the largest id deleted, 0 = 0-0),
`groups` (None while the stream has none, else a dict name -> group, in
creation order).
"""

from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate

from hiredis import Reader, pack_command

MAX_SEQ = (1 << 64) - 1
MAX_ID = (MAX_SEQ << 64) | MAX_SEQ

# Redis's defaults of stream-node-max-entries / stream-node-max-bytes; the
# commands pass the configured values to `add`.
NODE_MAX_ENTRIES = 100
NODE_MAX_BYTES = 4096


def make_id(ms: int, seq: int) -> int:
    return ms << 64 | seq


def id_ms(sid: int) -> int:
    return sid >> 64


def id_seq(sid: int) -> int:
    return sid & MAX_SEQ


def format_id(sid: int) -> bytes:
    return b"%d-%d" % (sid >> 64, sid & MAX_SEQ)


def decode_entries(data: bytes, count: int) -> list:
    """[[id bytes, [field, value, ...]], ...] of `count` entries encoded as
    in a block's data (hiredis, in C)."""
    reader = Reader()
    reader.feed(data)
    return [reader.gets() for _ in range(count)]


class Block:
    __slots__ = ("ms", "seq", "offs", "data", "dead", "lpbytes")

    def __init__(self) -> None:
        self.ms = array("Q")
        self.seq = array("Q")
        self.offs = array("I", (0,))
        self.data = bytearray()
        self.dead = 0       # entries deleted since the block was made (Redis counts them)
        self.lpbytes = 0    # estimate of the listpack Redis would hold

    def __len__(self) -> int:
        return len(self.ms)

    def id_at(self, i: int) -> int:
        return self.ms[i] << 64 | self.seq[i]

    def find(self, sid: int) -> int:
        """Index of the first entry with id >= sid (len if none)."""
        ms = sid >> 64
        lo = bisect_left(self.ms, ms)
        hi = bisect_right(self.ms, ms, lo)
        if lo == hi:
            return lo
        return bisect_left(self.seq, sid & MAX_SEQ, lo, hi)

    def find_after(self, sid: int) -> int:
        """Index of the first entry with id > sid (len if none)."""
        # id > sid is id >= sid + 1: a sequence of MAX_SEQ carries into the
        # next ms, and MAX_ID + 1 has an ms past every entry's (len).
        return self.find(sid + 1)

    def pick(self, kept: list) -> "Block":
        """A new block of the entries at the indexes `kept` (ascending)."""
        new = Block()
        ms, seq, offs, data = self.ms, self.seq, self.offs, self.data
        new.ms = array("Q", [ms[i] for i in kept])
        new.seq = array("Q", [seq[i] for i in kept])
        parts = [data[offs[i]:offs[i + 1]] for i in kept]
        new.offs = array("I", accumulate(map(len, parts), initial=0))
        new.data = bytearray(b"".join(parts))
        new.dead = self.dead + len(ms) - len(kept)
        new.lpbytes = self.lpbytes
        return new

    def keep(self, ranges: list) -> "Block":
        """A new block of this one's entries in the index ranges [(a, b), ...]."""
        new = Block()
        offs = self.offs
        data = self.data
        parts = []
        base = 0
        out = new.offs
        for a, b in ranges:
            new.ms.extend(self.ms[a:b])
            new.seq.extend(self.seq[a:b])
            shift = base - offs[a]
            out.extend([o + shift for o in offs[a + 1:b + 1]])
            parts.append(data[offs[a]:offs[b]])
            base += offs[b] - offs[a]
        new.data = bytearray(b"".join(parts))
        new.dead = self.dead + len(self.ms) - len(new.ms)
        new.lpbytes = self.lpbytes
        return new


class Stream:
    __slots__ = ("blocks", "firsts", "length", "last_id", "entries_added",
                 "max_deleted_id", "groups")

    def __init__(self) -> None:
        self.blocks: list = []
        self.firsts: list = []
        self.length = 0
        self.last_id = 0
        self.entries_added = 0
        self.max_deleted_id = 0
        self.groups = None

    def __len__(self) -> int:
        return self.length

    # -- adding ---------------------------------------------------------------

    def add(self, sid: int, fields, max_entries: int = NODE_MAX_ENTRIES,
            max_bytes: int = NODE_MAX_BYTES) -> bytes:
        """Append the entry `sid` (> last_id, checked by the caller) with
        `fields`, a flat list [field, value, ...] of bytes (an even number).
        Sets last_id, counts entries_added; returns the id as text."""
        bulk = self.append(sid >> 64, sid & MAX_SEQ, fields, max_entries, max_bytes)
        return bulk[bulk.index(b"\n") + 1:-2]

    def append(self, ms: int, seq: int, fields, max_entries: int = NODE_MAX_ENTRIES,
               max_bytes: int = NODE_MAX_BYTES) -> bytes:
        """`add` for XADD's hot path: the id in its two parts, and the id's
        RESP bulk string as the reply (a slice of the entry, which starts
        with it). The usual entry of one field is one % format."""
        text = b"%d-%d" % (ms, seq)
        if len(fields) == 2:
            field, value = fields
            size = len(field) + len(value) + 6   # ~ the listpack bytes they take
            entry = b"*2\r\n$%d\r\n%b\r\n*2\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
                len(text), text, len(field), field, len(value), value)
        else:
            size = sum(map(len, fields)) + 3 * len(fields)
            entry = b"*2\r\n$%d\r\n%b\r\n%b" % (len(text), text, pack_command(tuple(fields)))
        blocks = self.blocks
        if blocks:
            block = blocks[-1]
            if ((max_bytes and block.lpbytes + size >= max_bytes)
                    or (max_entries and len(block.ms) + block.dead >= max_entries)):
                block = self._new_block(ms << 64 | seq, fields)
        else:
            block = self._new_block(ms << 64 | seq, fields)
        data = block.data
        data += entry
        block.offs.append(len(data))
        block.ms.append(ms)
        block.seq.append(seq)
        block.lpbytes += size
        self.length += 1
        self.last_id = ms << 64 | seq
        self.entries_added += 1
        n = len(text)   # 3 to 41 bytes: its length takes 1 or 2 digits
        return entry[4:n + (10 if n < 10 else 11)]

    def _new_block(self, sid: int, fields) -> Block:
        blocks = self.blocks
        if blocks and type(blocks[-1].data) is bytearray:
            blocks[-1].data = bytes(blocks[-1].data)   # sealed: no slack
        block = Block()
        block.lpbytes = 16 + sum(map(len, fields[::2]))   # header and master fields
        blocks.append(block)
        self.firsts.append(sid)
        return block

    # -- reading --------------------------------------------------------------

    def _locate(self, sid: int, after: bool = False):
        """(block index, entry index) of the first entry with id >= sid
        (> sid when `after`); (len(blocks), 0) when there is none."""
        firsts = self.firsts
        b = bisect_right(firsts, sid) - 1
        if b < 0:
            return 0, 0
        block = self.blocks[b]
        i = block.find_after(sid) if after else block.find(sid)
        if i == len(block.ms):
            return b + 1, 0
        return b, i

    def _locate_last(self, sid: int):
        """(block index, entry index) of the last entry with id <= sid, or (-1, 0)."""
        b = bisect_right(self.firsts, sid) - 1
        if b < 0:
            return -1, 0
        return b, self.blocks[b].find_after(sid) - 1

    def first_id(self) -> int:
        """The first live id, 0 (0-0) when empty."""
        return self.firsts[0] if self.firsts else 0

    def last_entry_id(self) -> int:
        """The id of the last live entry, 0 when empty (not last_id: XDEL of
        the last entry does not lower last_id)."""
        if not self.blocks:
            return 0
        block = self.blocks[-1]
        return block.id_at(len(block.ms) - 1)

    def range_parts(self, lo: int, hi: int, count: int = 0, rev: bool = False):
        """The entries with lo <= id <= hi as RESP, one (bytes, entries) part
        per block: at most `count` entries (0: all), descending from `hi`
        when `rev`. A caller may stop early (a sliced reply yields between
        parts: blocks are replaced, never changed, except the last one's
        appends, which land past the offsets read)."""
        if lo > hi or not self.blocks:
            return
        n = 0
        blocks = self.blocks
        if not rev:
            b, i = self._locate(lo)
            while b < len(blocks):
                block = blocks[b]
                size = len(block.ms)
                end = block.find_after(hi) if block.ms[-1] << 64 | block.seq[-1] > hi else size
                if count and n + end - i > count:
                    end = i + count - n
                if end > i:
                    offs = block.offs
                    yield block.data[offs[i]:offs[end]], end - i
                    n += end - i
                if end < size or (count and n >= count):
                    return
                b += 1
                i = 0
        else:
            b, i = self._locate_last(hi)
            while b >= 0:
                block = blocks[b]
                offs = block.offs
                data = block.data
                stop = block.find(lo) if block.ms[0] << 64 | block.seq[0] < lo else 0
                if count and i + 1 - stop > count - n:
                    stop = i + 1 - (count - n)
                if i >= stop:
                    yield b"".join([data[offs[j]:offs[j + 1]] for j in range(i, stop - 1, -1)]), i + 1 - stop
                    n += i + 1 - stop
                if stop > 0 or (count and n >= count):
                    return
                b -= 1
                if b >= 0:
                    i = len(blocks[b].ms) - 1

    def range_reply(self, lo: int, hi: int, count: int = 0, rev: bool = False) -> tuple:
        """(RESP of `range_parts`'s entries, their number): the array's items
        without its ``*N`` header."""
        parts = list(self.range_parts(lo, hi, count, rev))
        if len(parts) == 1:
            return parts[0]
        return b"".join([p for p, _ in parts]), sum([k for _, k in parts])

    def ids_in(self, lo: int, hi: int, count: int = 0) -> list:
        """The ids of `range_reply(lo, hi, count)`'s entries, ascending,
        read from the id arrays (no decoding): what a consumer group's
        delivery adds to its pending lists."""
        out: list = []
        if lo > hi or not self.blocks:
            return out
        blocks = self.blocks
        b, i = self._locate(lo)
        while b < len(blocks):
            block = blocks[b]
            ms, seq = block.ms, block.seq
            n = len(ms)
            while i < n:
                sid = ms[i] << 64 | seq[i]
                if sid > hi:
                    return out
                out.append(sid)
                if len(out) == count:
                    return out
                i += 1
            b += 1
            i = 0
        return out

    def count_range(self, lo: int, hi: int) -> int:
        """How many entries have lo <= id <= hi: O(log n + blocks spanned)."""
        if lo > hi or not self.blocks:
            return 0
        b0, i0 = self._locate(lo)
        b1, i1 = self._locate_last(hi)
        if b1 < b0 or (b1 == b0 and i1 < i0):
            return 0
        if b0 == b1:
            return i1 - i0 + 1
        blocks = self.blocks
        return (len(blocks[b0].ms) - i0 + sum([len(blocks[b].ms) for b in range(b0 + 1, b1)])
                + i1 + 1)

    def range(self, lo: int, hi: int, count: int = 0, rev: bool = False) -> list:
        """[(id, [field, value, ...]), ...] of `range_reply`'s entries."""
        body, n = self.range_reply(lo, hi, count, rev)
        if not n:
            return []
        return [(_parse_id(item[0]), item[1]) for item in decode_entries(body, n)]

    def get(self, sid: int):
        """The fields [field, value, ...] of entry `sid`, or None."""
        b, i = self._locate(sid)
        if b == len(self.blocks):
            return None
        block = self.blocks[b]
        if block.id_at(i) != sid:
            return None
        offs = block.offs
        return decode_entries(block.data[offs[i]:offs[i + 1]], 1)[0][1]

    def entry_reply(self, sid: int):
        """The RESP of entry `sid` as in a range reply, or None."""
        b, i = self._locate(sid)
        if b == len(self.blocks):
            return None
        block = self.blocks[b]
        if block.id_at(i) != sid:
            return None
        return bytes(block.data[block.offs[i]:block.offs[i + 1]])

    def __contains__(self, sid: int) -> bool:
        b, i = self._locate(sid)
        return b < len(self.blocks) and self.blocks[b].id_at(i) == sid

    def iter_blocks(self):
        """(block data, entry count) of every block, in order (persistence,
        digest): decode with `decode_entries`."""
        for block in self.blocks:
            yield bytes(block.data), len(block.ms)

    def entries(self):
        """(id, [field, value, ...]) of every entry, ascending: a block
        decoded at a time (persistence, digest)."""
        for block in self.blocks:
            ms, seq = block.ms, block.seq
            decoded = decode_entries(bytes(block.data), len(ms))
            for i, item in enumerate(decoded):
                yield ms[i] << 64 | seq[i], item[1]

    def ids(self):
        """Every live id, ascending."""
        for block in self.blocks:
            ms, seq = block.ms, block.seq
            for i in range(len(ms)):
                yield ms[i] << 64 | seq[i]

    # -- removing -------------------------------------------------------------

    def _replace(self, b: int, block: Block) -> None:
        if len(block.ms):
            self.blocks[b] = block
            self.firsts[b] = block.id_at(0)
        else:
            del self.blocks[b]
            del self.firsts[b]

    def delete(self, sid: int) -> bool:
        """XDEL of one id: True if it was there. Raises max_deleted_id."""
        return self.delete_many((sid,)) == 1

    def delete_many(self, ids) -> int:
        """XDEL: remove the entries of `ids` that exist (a repeat counts
        once); how many. Each block touched is rebuilt once, so a million
        ids cost O(k log n + the blocks they touch), not a rebuild each.
        (A sliced caller runs `locate` over parts, then `delete_located`.)"""
        hits: dict = {}
        self.locate(ids, hits)
        return self.delete_located(hits)

    def locate(self, ids, hits: dict) -> None:
        """Add to `hits` (block index -> {entry index: id}) the entries of
        `ids` that exist. Reads only."""
        blocks = self.blocks
        for sid in ids:
            b, i = self._locate(sid)
            if b < len(blocks) and blocks[b].id_at(i) == sid:
                found = hits.get(b)
                if found is None:
                    found = hits[b] = {}
                found[i] = sid

    def delete_located(self, hits: dict) -> int:
        """Remove the entries `locate` found (no write since): raises
        max_deleted_id; how many."""
        return self.install(self.rebuilt(hits, list(hits)))

    def rebuilt(self, hits: dict, indexes) -> list:
        """The blocks `indexes` (keys of `hits`) without their found entries:
        [(block index, new block, entries removed, top id removed)]. Reads
        only: a sliced XDEL builds them in parts, then `install`s them."""
        out = []
        blocks = self.blocks
        last = len(blocks) - 1
        for b in indexes:
            block = blocks[b]
            found = hits[b]
            kept = [i for i in range(len(block.ms)) if i not in found]
            new = block.pick(kept)
            if b != last:
                new.data = bytes(new.data)   # only the last block grows
            out.append((b, new, len(found), max(found.values())))
        return out

    def install(self, rebuilt: list) -> int:
        """Put `rebuilt` blocks in place (O(1) each, an emptied block leaves
        the index); how many entries that removed."""
        deleted = 0
        for b, new, count, top in sorted(rebuilt, key=lambda item: item[0], reverse=True):
            self._replace(b, new)   # from the end: the indexes before stay valid
            deleted += count
            if top > self.max_deleted_id:
                self.max_deleted_id = top
        self.length -= deleted
        return deleted

    def _drop_front(self, count: int) -> None:
        """Remove the first `count` whole blocks (one slice deletion)."""
        removed = sum([len(block.ms) for block in self.blocks[:count]])
        del self.blocks[:count]
        del self.firsts[:count]
        self.length -= removed

    def trim_maxlen(self, maxlen: int, approx: bool, limit: int) -> int:
        """XTRIM MAXLEN as Redis's streamTrim: drop whole blocks from the front
        while the rest still holds >= maxlen, then (exact only) entries of the
        first block. `limit` (0: none) bounds the entries removed (approx only).
        Returns the number removed."""
        removed = 0
        blocks = self.blocks
        length = self.length
        whole = 0
        while whole < len(blocks) and length > maxlen:
            entries = len(blocks[whole].ms)
            if limit and removed + entries > limit:
                break
            if length - entries < maxlen:
                break
            length -= entries
            removed += entries
            whole += 1
        if whole:
            self._drop_front(whole)
        if approx or not blocks or self.length <= maxlen:   # (an exact trim has no limit)
            return removed
        block = blocks[0]
        cut = self.length - maxlen   # < len(block): else the block went whole
        self._replace(0, block.keep([(cut, len(block.ms))]))
        self.length -= cut
        return removed + cut

    def trim_minid(self, minid: int, approx: bool, limit: int) -> int:
        """XTRIM MINID: remove entries with id < minid (whole blocks, then,
        exact only, the first block's entries below minid)."""
        removed = 0
        blocks = self.blocks
        whole = 0
        while whole < len(blocks):
            block = blocks[whole]
            entries = len(block.ms)
            if limit and removed + entries > limit:
                break
            if block.id_at(entries - 1) >= minid:
                break
            removed += entries
            whole += 1
        if whole:
            self._drop_front(whole)
        if approx or not blocks:   # (an exact trim has no limit)
            return removed
        block = blocks[0]
        cut = block.find(minid)
        if cut:
            self._replace(0, block.keep([(cut, len(block.ms))]))
            self.length -= cut
            removed += cut
        return removed

    # -- whole value ----------------------------------------------------------

    def copy(self) -> "Stream":
        new = Stream()
        for block in self.blocks:
            b = Block()
            b.ms = array("Q", block.ms)
            b.seq = array("Q", block.seq)
            b.offs = array("I", block.offs)
            b.data = block.data if type(block.data) is bytes else bytearray(block.data)
            b.dead = block.dead
            b.lpbytes = block.lpbytes
            new.blocks.append(b)
        new.firsts = list(self.firsts)
        new.length = self.length
        new.last_id = self.last_id
        new.entries_added = self.entries_added
        new.max_deleted_id = self.max_deleted_id
        # groups are S2's (keyspace/streamgroups.py): it copies them
        new.groups = None if self.groups is None else {
            name: group.copy() for name, group in self.groups.items()}
        return new

    def memory(self) -> int:
        """Estimated bytes held (MEMORY USAGE, the memory accounting): O(1),
        a pure function of the value. Per block its objects (~400 B); per
        entry 20 B of ids and offsets plus its RESP bytes, averaged over the
        first and last blocks."""
        blocks = self.blocks
        size = 120 + 16 * len(blocks)
        if not blocks:
            return size
        first, last = blocks[0], blocks[-1]
        entries = len(first.ms) + (len(last.ms) if last is not first else 0)
        data = len(first.data) + (len(last.data) if last is not first else 0)
        return size + 400 * len(blocks) + self.length * (20 + data // max(entries, 1))


def _parse_id(text: bytes) -> int:
    ms, _, seq = text.partition(b"-")
    return int(ms) << 64 | int(seq)
