"""The intset: a small set whose members are all integers, as Redis's intset.c.

A sorted array of signed integers, 2, 4 or 8 bytes each as the widest member
needs (`array` typecodes h, i, q: Redis's INTSET_ENC_INT16/32/64), searched
by bisection, instead of a Python `set` of bytes objects (about 100 bytes a
member). It is the array itself (a subclass with no instance dict), so a key
holding 5 small integers costs the array's header and 10 bytes. A wider
member makes a wider copy (the caller stores it); it never narrows, as Redis.

It answers the part of the `set` interface the set commands, the digest, the
persistence codecs and MEMORY USAGE use, with members as bytes in canonical
decimal (what the client sent): `len`, `in`, iteration (ascending numeric
order, as Redis walks an intset), `discard`, `difference_update`, `copy`,
and `add_members`. A member that is not an integer in string2ll's canonical
form ("01", "+1", " 1", out of int64 range) is never in it; adding one
converts the value to a `set` (commands/sets.py), and so does passing
set-max-intset-entries. The conversion is one way, as in Redis.

Note: slicing an array subclass gives a plain `array`, and array's own
methods (`extend`, the constructor) iterate the C way, not through
`__iter__`: this module only uses them with ints or bytes buffers.
"""

import random
import re
from array import array
from bisect import bisect_left

from tenantkv.util.numbers import LLONG_MAX, LLONG_MIN, parse_int

_FORMAT = b"%d".__mod__
# string2ll's canonical form (the int64 range is checked after int())
_CANONICAL = re.compile(rb"-?[1-9][0-9]{0,18}|0").fullmatch
# Below this size an add merges through a Python set (a few C calls);
# above, it bisects for each new member (no O(n) copy per SADD).
_MERGE_BELOW = 64


def _typecode(lo: int, hi: int) -> str:
    if -0x8000 <= lo and hi <= 0x7FFF:
        return "h"
    if -0x80000000 <= lo and hi <= 0x7FFFFFFF:
        return "i"
    return "q"


_WIDTH = {"h": 0, "i": 1, "q": 2}


def _numbers(members):
    """`members` (bytes) as ints, or None when one is not a canonical int64."""
    # The common case in a few C calls: non-negative, no leading zero, under
    # 19 digits (so in range), no space inside one (one separator each).
    # (Lengths first: no copy of a huge member, which is no integer anyway.)
    if members and max(map(len, members)) < 19:
        joined = b" " + b" ".join(members)
        if (joined.replace(b" ", b"").isdigit() and b" 0" not in joined
                and b"  " not in joined and joined[-1] != 32
                and joined.count(b" ") == len(members)):
            return list(map(int, members))
    if not all(map(_CANONICAL, members)):
        return None
    numbers = list(map(int, members))
    if numbers and (max(numbers) > LLONG_MAX or min(numbers) < LLONG_MIN):
        return None
    return numbers


class IntSet(array):
    __slots__ = ()

    def __new__(cls, numbers=()):
        """An intset of `numbers`: ints, sorted, distinct (not checked)."""
        numbers = list(numbers)
        code = _typecode(numbers[0], numbers[-1]) if numbers else "h"
        return array.__new__(cls, code, numbers)

    @classmethod
    def from_members(cls, members, limit: int):
        """The intset holding `members` (bytes), or None when one is not a
        canonical integer or there are more than `limit` distinct ones."""
        if type(members) is set and len(members) > limit:
            return None
        numbers = _numbers(members)
        if numbers is None:
            return None
        numbers = set(numbers)
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
        return array.__new__(IntSet, self.typecode, self.tobytes())

    def add_members(self, members, limit: int):
        """Add `members` (bytes). Returns the intset now holding them: this
        one, or a wider copy when a member needs more bytes (the caller
        stores it); None, adding nothing, when the value cannot stay an
        intset (a member that is not an integer, more than `limit`
        members): the caller converts it to a set then."""
        if len(members) == 1:   # SADD key member: no list, no merge
            member = members[0]
            if member.isdigit() and len(member) < 19 and (member[0] != 48 or len(member) == 1):
                n = int(member)
            else:
                n = parse_int(member)
                if n is None:
                    return None
            i = bisect_left(self, n)
            if i < len(self) and self[i] == n:
                return self
            if len(self) >= limit:
                return None
            if _WIDTH[_typecode(n, n)] <= _WIDTH[self.typecode]:
                self.insert(i, n)
                return self
            numbers = [n]   # wider: the general way below copies it
        else:
            numbers = _numbers(members)
            if numbers is None:
                return None
        if len(self) < _MERGE_BELOW:
            merged = set(array.tolist(self))
            merged.update(numbers)
            if len(merged) == len(self):
                return self   # nothing new: the common repeated SADD
            if len(merged) > limit:
                return None
            ordered = sorted(merged)
        else:
            if len(numbers) > limit and len(set(numbers)) > limit:
                return None   # a huge SADD: no bisecting through all of it
            new = []
            for n in numbers:
                i = bisect_left(self, n)
                if i == len(self) or self[i] != n:
                    new.append(n)
            if not new:
                return self
            new = set(new)
            if len(self) + len(new) > limit:
                return None
            ordered = None
            lo, hi = min(new), max(new)
            if _WIDTH[_typecode(lo, hi)] <= _WIDTH[self.typecode]:
                for n in sorted(new):
                    self.insert(bisect_left(self, n), n)
                return self
            ordered = sorted(new.union(array.tolist(self)))
        code = _typecode(ordered[0], ordered[-1])
        if _WIDTH[code] <= _WIDTH[self.typecode]:   # never narrower, as Redis
            self[:] = array(self.typecode, ordered)
            return self
        return array.__new__(IntSet, code, ordered)

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
