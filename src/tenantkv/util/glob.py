"""Glob matching with Redis's stringmatchlen semantics.

fnmatch differs (it has no backslash escapes and treats '[!' specially), and a
naive recursive matcher explodes on patterns like "a*a*a*a*...b". Redis bounds
the recursion depth and stops early when a '*' cannot match a longer string;
this is a direct port so that KEYS/SCAN MATCH/PSUBSCRIBE agree with Redis.
"""

_MAX_NESTING = 1000


def glob_match(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    if nocase:
        pattern = pattern.lower()
        string = string.lower()
    skip_longer = [False]
    return _match(pattern, 0, string, 0, skip_longer, 0)


def _match(p: bytes, pi: int, s: bytes, si: int, skip_longer: list, nesting: int) -> bool:
    if nesting > _MAX_NESTING:
        return False
    plen = len(p)
    slen = len(s)
    while pi < plen and si < slen:
        c = p[pi]
        if c == 42:  # '*'
            while pi + 1 < plen and p[pi + 1] == 42:
                pi += 1
            if pi + 1 == plen:
                return True
            while si < slen:
                if _match(p, pi + 1, s, si, skip_longer, nesting + 1):
                    return True
                if skip_longer[0]:
                    return False
                si += 1
            skip_longer[0] = True
            return False
        elif c == 63:  # '?'
            si += 1
        elif c == 91:  # '['
            pi += 1
            negate = pi < plen and p[pi] == 94  # '^'
            if negate:
                pi += 1
            matched = False
            while True:
                if pi < plen and p[pi] == 92 and pi + 1 < plen:  # '\' escape
                    pi += 1
                    if p[pi] == s[si]:
                        matched = True
                elif pi >= plen or p[pi] == 93:  # ']' or end of pattern
                    if pi >= plen:
                        pi -= 1  # Redis: a missing ']' ends the class at the last byte
                    break
                elif pi + 2 < plen and p[pi + 1] == 45:  # 'a-z'
                    start, end = p[pi], p[pi + 2]
                    if start > end:
                        start, end = end, start
                    pi += 2
                    if start <= s[si] <= end:
                        matched = True
                elif p[pi] == s[si]:
                    matched = True
                pi += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            si += 1
        elif c == 92 and pi + 1 < plen:  # '\'
            pi += 1
            if p[pi] != s[si]:
                return False
            si += 1
        else:
            if c != s[si]:
                return False
            si += 1
        pi += 1
        if si == slen:
            while pi < plen and p[pi] == 42:
                pi += 1
            break
    return pi == plen and si == slen
