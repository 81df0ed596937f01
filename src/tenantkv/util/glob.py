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
  leftmost place after the previous one, the last one at the end — each
  segment is a compiled regular expression without quantifiers, so a search
  costs at most len(segment) * len(string) steps in C, never more.

Redis quirks kept: an empty string matches only the empty pattern ("*" does
not match ""; the callers shortcut "*" as Redis's do); past 1,000 nested '*'s
Redis stops trying (its guard against deep recursion), and so does this.
"""

import re
from functools import lru_cache

_ANY = (1 << 256) - 1
_UPPER = range(65, 91)
_CACHED_PATTERN_MAX = 4096
_MAX_NESTING = 1000   # stringmatchlen's limit on nested '*'s
_NEVER = re.compile(b"(?!)")   # larger patterns are kept one at a time (below)


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


def _elements(p: bytes, nocase: bool):
    """The pattern as a list of segments (lists of byte masks), split at '*'
    runs; also whether it starts and ends with a '*' run."""
    segments = [[]]
    n = len(p)
    i = 0
    while i < n:
        c = p[i]
        if c == 42:   # '*'
            while i + 1 < n and p[i + 1] == 42:
                i += 1
            segments.append([])
        elif c == 63:   # '?'
            segments[-1].append(_ANY)
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
            segments[-1].append(mask ^ _ANY if negate else mask)
        else:
            if c == 92 and n - i >= 2:   # '\x': x literally
                i += 1
            segments[-1].append(_literal(p[i], nocase))
        i += 1
    return segments


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
    segments = _elements(pattern, nocase)
    regexes = [re.compile(b"".join(_atom(m) for m in seg)) if seg else None
               for seg in segments]
    sizes = [len(seg) for seg in segments]
    if len(segments) == 1:   # no '*': the whole string, element by element
        only, size = regexes[0], sizes[0]
        if only is None:
            return lambda s: not s
        return lambda s: len(s) == size and only.match(s) is not None
    first, first_size = regexes[0], sizes[0]
    middle = regexes[1:-1]
    last, last_size = regexes[-1], sizes[-1]
    if len(middle) >= _MAX_NESTING and not (len(middle) == _MAX_NESTING and last is None):
        # Redis (7.0.15 with the CVE-2024-31228 fix) gives up at its 1,001st
        # nested '*': reaching that '*' with string left, unless it ends the
        # pattern, is no match.
        middle = middle[:_MAX_NESTING]
        last, last_size = _NEVER, 0

    def match(s: bytes) -> bool:
        n = len(s)
        if n == 0:
            return False   # stringmatchlen("*...", "") is 0: the loop never runs
        pos = 0
        if first is not None:
            if first_size > n or first.match(s) is None:
                return False
            pos = first_size
            if pos == n:   # the string ended: only '*'s may remain
                return not middle and last is None
        for index, regex in enumerate(middle, 1):
            found = regex.search(s, pos)
            if found is None:
                return False   # skipLongerMatches: no earlier '*' may stretch
            pos = found.end()
            if pos == n:   # the string ended: only a trailing '*' may remain
                return index == len(middle) and last is None
        if last is None:
            return True   # a trailing '*' with string left
        start = n - last_size
        return start >= pos and last.match(s, start) is not None

    return match
