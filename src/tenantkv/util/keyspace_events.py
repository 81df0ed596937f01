"""notify-keyspace-events: Redis's classes (server.h NOTIFY_*) and their text
form, as notify.c parses and renders it. The setting lives in config.py (the
server's) and on each Tenant (its own); dispatch/notify.py publishes."""

# The classes, Redis's bits (server.h NOTIFY_*).
KEYSPACE = 1 << 0     # K
KEYEVENT = 1 << 1     # E
GENERIC = 1 << 2      # g
STRING = 1 << 3       # $
LIST = 1 << 4         # l
SET = 1 << 5          # s
HASH = 1 << 6         # h
ZSET = 1 << 7         # z
EXPIRED = 1 << 8      # x
EVICTED = 1 << 9      # e
STREAM = 1 << 10      # t
KEY_MISS = 1 << 11    # m (not part of A, as in Redis)
MODULE = 1 << 13      # d
NEW = 1 << 14         # n (not part of A either)
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE
CHANNELS = KEYSPACE | KEYEVENT

_BY_CHAR = {"A": ALL, "g": GENERIC, "$": STRING, "l": LIST, "s": SET, "h": HASH, "z": ZSET,
            "x": EXPIRED, "e": EVICTED, "K": KEYSPACE, "E": KEYEVENT, "t": STREAM,
            "m": KEY_MISS, "d": MODULE, "n": NEW}
_LETTERS = "".join(_BY_CHAR).encode()
# keyspaceEventsFlagsToString's order (A replaces the classes it covers).
_ORDER = ((GENERIC, "g"), (STRING, "$"), (LIST, "l"), (SET, "s"), (HASH, "h"), (ZSET, "z"),
          (EXPIRED, "x"), (EVICTED, "e"), (STREAM, "t"), (MODULE, "d"), (NEW, "n"))


def parse_flags(text: str):
    """Redis's keyspaceEventsStringToFlags: the classes' bits, or None for
    a character that is no class. Read in C (a client may send megabytes of
    "K": a Python loop per character would stall the server): the value
    must be only letters, then each letter's presence is one memchr."""
    # Redis reads a C string: a NUL ends the value.
    raw = text.encode("utf-8", "surrogateescape").split(b"\0", 1)[0]
    if raw.translate(None, _LETTERS):
        return None
    flags = 0
    for letter, bit in _BY_CHAR.items():
        if letter.encode() in raw:
            flags |= bit
    return flags


def render_flags(flags: int) -> str:
    """keyspaceEventsFlagsToString: what CONFIG GET shows ("AKE", "gxE"...)."""
    if flags & ALL == ALL:
        out = "A"   # Redis shows no "n" after "A" (it is kept all the same)
    else:
        out = "".join(char for bit, char in _ORDER if flags & bit)
    return (out + ("K" if flags & KEYSPACE else "") + ("E" if flags & KEYEVENT else "")
            + ("m" if flags & KEY_MISS else ""))


def publishes(flags) -> bool:
    """Does a setting publish anything at all (a channel form and a class)?"""
    return bool(flags and flags & CHANNELS and flags & ~CHANNELS)
