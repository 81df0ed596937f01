"""The intset: a small set whose members are all integers, as Redis's intset.c.

A sorted array of signed 64-bit integers (`array('q')`, 8 bytes a member,
binary search) instead of a Python `set` of bytes objects (about 100 bytes a
member). It is the array itself (a subclass with no instance dict), so a key
holding 5 integers costs the array's header and 40 bytes.

It answers the part of the `set` interface the set commands, the digest, the
persistence codecs and MEMORY USAGE use, with members as bytes in canonical
decimal (what the client sent): `len`, `in`, iteration (ascending numeric
order, as Redis walks an intset), `add_members`, `discard`, `difference_update`,
`copy`. A member that is not an integer in string2ll's canonical form ("01",
"+1", " 1", out of int64 range) is never in it; adding one converts the value
to a `set` (commands/sets.py), and so does passing set-max-intset-entries.
The conversion is one way, as in Redis.

Note: slicing an array subclass gives a plain `array`, and array's own
methods (`extend`, the constructor) iterate the C way, not through
`__iter__`: this module only uses them with ints or bytes buffers.
"""

import random
from array import array
from bisect import bisect_left

from tenantkv.util.numbers import parse_int

_FORMAT = b"%d".__mod__


class IntSet(array):
    __slots__ = ()

    def __new__(cls, numbers=()):
        """An intset of `numbers`: ints, sorted, distinct (not checked)."""
        return array.__new__(cls, "q", numbers)

    @classmethod
    def from_members(cls, members, limit: int):
        """The intset holding `members` (bytes), or None when one is not a
        canonical integer or there are more than `limit` distinct ones."""
        if type(members) is set and len(members) > limit:
            return None
        numbers = set()
        for member in members:
            n = parse_int(member)
            if n is None:
                return None
            numbers.add(n)
        if len(numbers) > limit:
            return None
        return cls(sorted(numbers))

    def __iter__(self):
        return map(_FORMAT, array.__iter__(self))

    def __contains__(self, member) -> bool:
        # parse_int's common case inline: SISMEMBER runs this per request
        if member.isdigit() and len(member) < 19 and (member[0] != 48 or len(member) == 1):
            n = int(member)
        else:
            n = parse_int(member)
            if n is None:
                return False
        i = bisect_left(self, n)
        return i < len(self) and self[i] == n

    def __repr__(self) -> str:
        return "IntSet(%r)" % (array.tolist(self),)

    def __reduce_ex__(self, protocol):
        return (IntSet, (array.tolist(self),))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def numbers(self) -> list:
        return array.tolist(self)

    def copy(self) -> "IntSet":
        return array.__new__(IntSet, "q", self.tobytes())

    def add_members(self, members, limit: int) -> bool:
        """Add `members` (bytes) while they are integers; False when the value
        cannot stay an intset (a member that is not an integer, more than
        `limit` members): the caller converts it then, and adds them all to
        the set (what was added here already is simply there)."""
        for member in members:
            if member.isdigit() and len(member) < 19 and (member[0] != 48 or len(member) == 1):
                n = int(member)   # parse_int's common case inline
            else:
                n = parse_int(member)
                if n is None:
                    return False
            i = bisect_left(self, n)
            if i == len(self) or self[i] != n:
                self.insert(i, n)
                if len(self) > limit:
                    return False   # now, not after more O(n) inserts
        return True

    def discard(self, member) -> bool:
        n = parse_int(member)
        if n is None:
            return False
        i = bisect_left(self, n)
        if i < len(self) and self[i] == n:
            del self[i]
            return True
        return False

    def difference_update(self, members) -> None:
        for member in members:
            self.discard(member)

    def random_member(self) -> bytes:
        return b"%d" % self[random.randrange(len(self))]

    def to_set(self) -> set:
        return set(self)
