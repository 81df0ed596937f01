"""The listpack set: a small set of any members in one `bytes` buffer, as
Redis 7.2's listpack-encoded sets (set-max-listpack-entries 128,
set-max-listpack-value 64).

A Python `set` of 5 short members costs ~730 B before its members (~40 B
each); Redis 7.0 keeps such a set in a hashtable (~500 B a key), 7.2 in a
listpack. Here it is a small object with `__slots__` (buf, n) around one
immutable `bytes`: 48 B + 33 B + the members and 2 bytes of marker each.

Why an object and not a `bytes` subclass (33 B less): the set commands ask
the value for `len` (SCARD, every SADD's reply), which must be the member
count, not the buffer's length; `n` answers it without scanning, and a write
rebinds `buf` in place so the commands never store the value back. And a
bytes subclass would pass every `isinstance(x, bytes)` string check in the
code base.

Buffer: keyspace/packed.py's single-element entries (KEY + escape(member),
0xff escaped as ff fe) in insertion order (as a listpack), plus one closing
KEY, so every member sits between two KEY markers and a lookup is one
`bytes.find(KEY + escape(member) + KEY)` (a marker cannot start inside an
escaped element, so a hit is exactly one member). The empty set is b"".

It answers the part of the `set` interface the set commands, the digest, the
persistence codecs and MEMORY USAGE use: `len`, `in`, iteration (insertion
order), `discard`, `difference_update`, `copy`, plus `add_members` (which
says when the value has to become a `set`) and `random_member`.
Conversion rules are commands/sets.py's.
"""

import random

from tenantkv.keyspace.packed import KEY

_FF = b"\xff"
_ESCAPED = b"\xff\xfe"
_NEEDLE = b"\xff\x01%b\xff\x01"   # KEY + escaped member + KEY
# Every write copies the buffer and every lookup scans it: past this size (30x
# what the default limits allow, 128 x 64-byte members) a set becomes a `set`
# whatever root set the limits to, so raised limits cannot make writes
# quadratic in practice (as commands/hashes.py's PACKED_MAX_BYTES).
PACKED_MAX_BYTES = 1 << 18


class PackedSet:
    __slots__ = ("buf", "n")

    def __init__(self, buf: bytes = b"", n: int = 0) -> None:
        self.buf = buf
        self.n = n

    @classmethod
    def from_members(cls, members) -> "PackedSet":
        """From distinct members (bytes), in that order (not checked)."""
        members = list(members)
        if not members:
            return cls()
        body = KEY.join(members)
        if body.count(_FF) != len(members) - 1:   # a member holds a 0xff byte
            body = KEY.join([m.replace(_FF, _ESCAPED) for m in members])
        return cls(KEY + body + KEY, len(members))

    def __len__(self) -> int:
        return self.n

    def contains(self, member) -> bool:
        """`member in self`, as a plain method: calling it costs less than
        the `in` operator's dispatch to a Python __contains__ (SISMEMBER)."""
        return self.buf.find(_NEEDLE % member.replace(_FF, _ESCAPED)) >= 0

    __contains__ = contains

    def members(self) -> list:
        buf = self.buf
        members = buf.split(KEY)[1:-1]
        if buf.find(_ESCAPED) >= 0:
            members = [m.replace(_ESCAPED, _FF) for m in members]
        return members

    def __iter__(self):
        return iter(self.members())

    def add_members(self, members, max_entries: int, max_value: int):
        """Add `members`; the count of new ones, or None (adding nothing) when
        the value cannot stay a listpack (more than `max_entries` members, a
        new member longer than `max_value`, or more than `max_entries`
        members given: 7.2's size hint): the caller converts it then."""
        buf = self.buf
        if len(members) == 1:   # SADD key member: no list, no join
            if max_entries < 1:
                return None   # (the size hint)
            member = members[0]
            escaped = member.replace(_FF, _ESCAPED)
            if buf.find(_NEEDLE % escaped) >= 0:
                return 0
            if (self.n >= max_entries or len(member) > max_value
                    or len(buf) + len(escaped) > PACKED_MAX_BYTES):
                return None
            self.buf = (buf + escaped + KEY) if buf else (KEY + escaped + KEY)
            self.n += 1
            return 1
        if len(members) > max_entries:
            return None
        # The common repeated SADD, nothing new, in a few C calls. First the
        # same members in the same order as stored (as the SADD that added
        # them stored them): one find of all of them between markers (when
        # no member holds a 0xff, so the needle's markers are all markers).
        run = _NEEDLE % KEY.join(members)
        if buf.find(run) >= 0 and run.count(_FF) == len(members) + 1:
            return 0
        # Else one split: the members as a set, then the new ones in order
        # (all C loops; cheaper than a find per member from a few members on,
        # and linear, not members x buffer, for a big SADD).
        current = set(self.members())
        new = [m for m in dict.fromkeys(members) if m not in current]
        if not new:
            return 0
        if self.n + len(new) > max_entries or max(map(len, new)) > max_value:
            return None
        body = KEY.join(new)
        if body.count(_FF) != len(new) - 1:   # a member holds a 0xff byte
            body = KEY.join([m.replace(_FF, _ESCAPED) for m in new])
        if len(buf) + len(body) > PACKED_MAX_BYTES:
            return None
        self.buf = (buf + body + KEY) if buf else (KEY + body + KEY)
        self.n += len(new)
        return len(new)

    def discard(self, member) -> bool:
        buf = self.buf
        needle = _NEEDLE % member.replace(_FF, _ESCAPED)
        at = buf.find(needle)
        if at < 0:
            return False
        self.n -= 1
        # keep the closing KEY: it opens the next member (or closes the buffer)
        self.buf = buf[:at] + buf[at + len(needle) - 2:] if self.n else b""
        return True

    def difference_update(self, members) -> int:
        """Remove `members` (SPOP with a count, a long SREM): one pass, one
        new buffer, not a find and a copy per member. How many were removed."""
        gone = set(members)
        kept = [m for m in self.members() if m not in gone]
        removed = self.n - len(kept)
        if removed:
            packed = PackedSet.from_members(kept)
            self.buf, self.n = packed.buf, packed.n
        return removed

    def random_member(self) -> bytes:
        return random.choice(self.members())

    def pop_random(self) -> bytes:
        """Remove and return a random member (SPOP): one split, one find."""
        buf = self.buf
        parts = buf.split(KEY)   # b"", the members (escaped), b""
        escaped = parts[random.randrange(1, len(parts) - 1)]
        self.n -= 1
        if self.n:
            at = buf.find(_NEEDLE % escaped)
            self.buf = buf[:at] + buf[at + len(escaped) + 2:]
        else:
            self.buf = b""
        return escaped.replace(_ESCAPED, _FF)

    def longest(self) -> int:
        """The length of its longest member (the listpack-value rule)."""
        return max(map(len, self.members()), default=0)

    def copy(self) -> "PackedSet":
        return PackedSet(self.buf, self.n)   # the buffer is immutable: shared

    def to_set(self) -> set:
        return set(self.members())

    def __repr__(self) -> str:
        return "PackedSet(%r)" % (self.members(),)


# Redis's defaults (set-max-listpack-entries / -value): the kdb loader knows
# no server config, so it applies these, as packed.compact_hash does.
SET_MAX_ENTRIES = 128
SET_MAX_VALUE = 64


def compact_set(members, max_entries: int = SET_MAX_ENTRIES, max_value: int = SET_MAX_VALUE):
    """A PackedSet of `members` (distinct bytes, in that order) when it is
    within the limits, else None."""
    if len(members) > max_entries:
        return None
    if members and max(map(len, members)) > max_value:
        return None
    packed = PackedSet.from_members(members)
    return packed if len(packed.buf) <= PACKED_MAX_BYTES else None
