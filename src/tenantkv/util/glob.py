"""Glob matching with Redis 7.0's stringmatchlen semantics, without recursion.

fnmatch differs (no backslash escapes, '[!' instead of '[^'), and a recursive
matcher dies on a pattern of a thousand '*' (RecursionError) or burns
exponential CPU on "a*a*a*...b". Redis 7.0 avoids the latter with
skipLongerMatches: once the part of the pattern after a '*' cannot match
anywhere in the rest of the string, no earlier '*' is tried on a longer span.
That makes the result a greedy left-to-right search, which is what this module
does, with no recursion at all:

- the pattern is cut at its '*' runs into segments of single-byte elements
  (a literal, '?', a '[...]' class), each element read exactly as
  stringmatchlen reads it (signed-char ranges, a reversed range, nocase applied
  to each side of a range but not to a '\\'-escaped byte inside a class, an
  unclosed '[' taking the rest of the pattern);
- the first segment must match at the start, each middle segment at its
  leftmost place after the previous one, the last one at the end. A segment
  of plain bytes is compared with bytes.startswith/find/endswith; any other is
  a regular expression without open quantifiers (a run of one element is
  `x{n}`), compiled only once a string is long enough to need it, so a search
  costs at most len(segment) * len(string) steps in C, and a megabyte
  pattern is read in C too, not byte by byte in Python.

Redis quirks kept: an empty string matches only the empty pattern ("*" does
not match ""; the callers shortcut "*" as Redis's do); past 1,000 nested '*'s
Redis stops trying (its guard against deep recursion), and so does this.
"""

import re
from functools import lru_cache

_ANY = (1 << 256) - 1
_UPPER = range(65, 91)
_CACHED_PATTERN_MAX = 4096   # larger patterns are kept one at a time (below)
_MAX_NESTING = 1000   # stringmatchlen's limit on nested '*'s
_NEVER = re.compile(b"(?!)")


def glob_match(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    """True if `string` matches `pattern` as Redis's stringmatchlen says."""
    return glob_matcher(pattern, nocase)(string)


def glob_matcher(pattern: bytes, nocase: bool = False):
    """A function bytes -> bool for one pattern; compiled once, so a KEYS or
    SCAN over many names reads the pattern once."""
    if len(pattern) <= _CACHED_PATTERN_MAX:
        return _compile_cached(bytes(pattern), nocase)
    # One large pattern at a time: a big KEYS pattern compiles once for the
    # whole command, and the server does not keep a hostile tenant's megabytes.
    global _last_large
    key, matcher = _last_large
    if key != (pattern, nocase):
        matcher = _compile(bytes(pattern), nocase)
        _last_large = ((bytes(pattern), nocase), matcher)
    return matcher


_last_large = (None, None)


@lru_cache(maxsize=256)
def _compile_cached(pattern: bytes, nocase: bool):
    return _compile(pattern, nocase)


def _signed(byte: int) -> int:
    return byte - 256 if byte > 127 else byte   # C's char is signed on x86


def _lower(value: int) -> int:
    return value + 32 if 65 <= value <= 90 else value   # tolower, C locale


def _span(lo: int, hi: int) -> int:
    """Bit mask of the bytes whose signed value lies in [lo, hi]."""
    mask = 0
    a, b = max(lo, 0), min(hi, 127)
    if a <= b:
        mask |= ((1 << (b + 1)) - 1) ^ ((1 << a) - 1)
    a, b = max(lo, -128) + 256, min(hi, -1) + 256
    if a <= b:
        mask |= ((1 << (b + 1)) - 1) ^ ((1 << a) - 1)
    return mask


@lru_cache(maxsize=4096)
def _range(start: int, end: int, nocase: bool) -> int:
    start, end = _signed(start), _signed(end)
    if start > end:
        start, end = end, start
    if not nocase:
        return _span(start, end)
    lo, hi = _lower(start), _lower(end)   # lowered after the swap, as Redis
    mask = _span(lo, hi)   # right for every byte but A-Z, whose tolower differs
    for c in _UPPER:
        if lo <= c + 32 <= hi:
            mask |= 1 << c
        else:
            mask &= ~(1 << c)
    return mask


def _literal(byte: int, nocase: bool) -> int:
    if nocase and (65 <= byte <= 90 or 97 <= byte <= 122):
        return (1 << (byte | 32)) | (1 << (byte & ~32))
    return 1 << byte


def _elements(p: bytes, nocase: bool) -> list:
    """The pattern as a list of segments, split at its '*' runs. A segment is
    a list of items, each one element (an int: the mask of the bytes it
    matches) or a run of literal bytes (a bytearray; compared without case
    with nocase)."""
    segments = [[]]
    segment = segments[0]
    n = len(p)
    i = 0
    while i < n:
        c = p[i]
        if c == 42:   # '*'
            while i + 1 < n and p[i + 1] == 42:
                i += 1
            segment = []
            segments.append(segment)
            if len(segments) > _MAX_NESTING + 2:
                break   # past Redis's limit on nested '*'s the rest is never read
        elif c == 63:   # '?'
            segment.append(_ANY)
        elif c == 91:   # '['
            i += 1
            negate = i < n and p[i] == 94   # '^'
            if negate:
                i += 1
            mask = 0
            while True:
                if i < n and p[i] == 92 and n - i >= 2:   # '\x': x exactly, even nocase
                    i += 1
                    mask |= 1 << p[i]
                elif i < n and p[i] == 93:   # ']'
                    break
                elif i >= n:   # unclosed: the class ends with the pattern
                    i -= 1
                    break
                elif n - i >= 3 and p[i + 1] == 45:   # 'a-z'
                    mask |= _range(p[i], p[i + 2], nocase)
                    i += 2
                else:
                    mask |= _literal(p[i], nocase)
                i += 1
            segment.append(mask ^ _ANY if negate else mask)
        else:
            if c == 92:   # '\x': x literally; a trailing '\' is itself
                if n - i >= 2:
                    i += 1
                run = p[i:i + 1]
            else:   # a run of plain bytes at once: a long pattern is read in C
                run = _plain_run(p, i).group()
                i += len(run) - 1
            if segment and type(segment[-1]) is bytearray:
                segment[-1] += run
            else:
                segment.append(bytearray(run))
        i += 1
    return segments


_plain_run = re.compile(rb"[^*?\[\\]+").match


class _Segment:
    """The elements between two '*' runs: a literal (compared with bytes
    methods, in C, no compiling) or a regular expression compiled the first
    time a string is long enough to need it (so a huge pattern costs nothing
    against shorter names)."""

    __slots__ = ("items", "size", "literal", "nocase", "_regex")

    def __init__(self, items: list, nocase: bool) -> None:
        self.size = sum(len(x) if type(x) is bytearray else 1 for x in items)
        self.nocase = nocase
        self._regex = None
        if all(type(x) is bytearray for x in items):   # adjacent runs are merged: one
            literal = bytes(items[0]) if items else b""
            self.literal = literal.lower() if nocase else literal
            self.items = None
        else:
            self.literal = None
            self.items = items

    def regex(self):
        if self._regex is None:
            self._regex = self._compile()
            self.items = None
        return self._regex

    def _compile(self):
        parts = []
        previous, count = None, 0
        for item in self.items + [None]:
            if type(item) is int and item == previous:
                count += 1
                continue
            if previous is not None:   # a run of the same element: atom{count}
                parts.append(_atom(previous) + (b"{%d}" % count if count > 1 else b""))
                previous = None
            if item is None:
                break
            if type(item) is int:
                if item == 0:
                    return _NEVER   # an empty class: nothing matches
                previous, count = item, 1
            else:
                escaped = re.escape(bytes(item))
                parts.append(b"(?i:" + escaped + b")" if self.nocase else escaped)
        return re.compile(b"".join(parts))


@lru_cache(maxsize=1024)
def _atom(mask: int) -> bytes:
    """A regular expression for one byte of the set `mask`."""
    if mask == _ANY:
        return b"[\\x00-\\xff]"
    if mask == 0:
        return b"(?!)"
    count = bin(mask).count("1")
    if count == 1:
        return re.escape(bytes([mask.bit_length() - 1]))
    negate = count > 128
    if negate:
        mask ^= _ANY
    members = bytearray()
    while mask:
        low = mask & -mask
        members.append(low.bit_length() - 1)
        mask ^= low
    return b"[" + (b"^" if negate else b"") + b"".join(
        b"\\x%02x" % b for b in members) + b"]"


def _compile(pattern: bytes, nocase: bool):
    segments = [_Segment(items, nocase) for items in _elements(pattern, nocase)]
    if len(segments) == 1:   # no '*': the whole string, element by element
        only = segments[0]
        size, literal = only.size, only.literal
        if literal is not None:
            if nocase:
                return lambda s: len(s) == size and s.lower() == literal
            return lambda s: s == literal
        return lambda s: len(s) == size and only.regex().match(s) is not None
    first = segments[0] if segments[0].size else None
    middle = segments[1:-1]
    last = segments[-1] if segments[-1].size else None
    if len(middle) >= _MAX_NESTING and not (len(middle) == _MAX_NESTING and last is None):
        # Redis (7.0.15 with the CVE-2024-31228 fix) gives up at its 1,001st
        # nested '*': reaching that '*' with string left, unless it ends the
        # pattern, is no match.
        middle = middle[:_MAX_NESTING]
        last = _Segment([0], nocase)   # matches nothing
    count = len(middle)

    def match(s: bytes) -> bool:
        n = len(s)
        if n == 0:
            return False   # stringmatchlen("*...", "") is 0: the loop never runs
        t = s.lower() if nocase else s   # what literals are compared with
        pos = 0
        if first is not None:
            size = first.size
            if size > n:
                return False
            if first.literal is not None:
                if not t.startswith(first.literal):
                    return False
            elif first.regex().match(s) is None:
                return False
            pos = size
            if pos == n:   # the string ended: only '*'s may remain
                return not middle and last is None
        for index, segment in enumerate(middle, 1):
            if segment.size > n - pos:
                return False
            if segment.literal is not None:
                start = t.find(segment.literal, pos)
                if start < 0:
                    return False   # skipLongerMatches: no earlier '*' may stretch
                pos = start + segment.size
            else:
                found = segment.regex().search(s, pos)
                if found is None:
                    return False
                pos = found.end()
            if pos == n:   # the string ended: only a trailing '*' may remain
                return index == count and last is None
        if last is None:
            return True   # a trailing '*' with string left
        start = n - last.size
        if start < pos:
            return False
        if last.literal is not None:
            return t.endswith(last.literal)
        return last.regex().match(s, start) is not None

    return match
