"""Redis 7 key specifications: where a command's keys are in its arguments.

A key spec says where the search for keys begins (at a fixed index, or after a
keyword) and how the keys are found from there (a range, or a count read from
a "numkeys" argument), plus what the command does with those keys (flags such
as RW/RO/OW/RM and access/update/insert/delete). COMMAND INFO reports the specs,
COMMAND GETKEYS / GETKEYSANDFLAGS apply them, and so does anything that needs a
command's keys (Command.keys_of in the registry).

`find_keys` applies specs exactly as Redis 7.0's getKeysUsingKeySpecs does,
including its tolerance for arguments past the keys and its refusals (a
numkeys that is not an integer, negative, zero or larger than the arguments).
When it refuses, Redis falls back to the command's "getkeys procedure" if it
has one; `numkeys_procedure` builds Redis's genericGetKeys, which the
numkeys commands use, with its different reading of numkeys (C atoi: "2abc"
counts as 2) and no key flags. The specs are written in a compact text form,
`parse_spec`'s argument:

    "RW access delete | index 1 | range 0 1 0"
    "RO access | index 2 | keynum 0 1 1"
    "RW access update | index 1 | range 0 1 0 | notes: why the flags are so"
    "RO | keyword STREAMS 1 | range -1 1 2"
"""

from typing import NamedTuple

from tenantkv.util.numbers import LLONG_MAX, LLONG_MIN, parse_int

# Key-spec flags in the order Redis replies them (addReplyFlagsForKeyArgs).
KEY_FLAG_ORDER = ("RO", "RW", "OW", "RM", "access", "update", "insert", "delete",
                  "not_key", "incomplete", "variable_flags")
_KEY_FLAGS = frozenset(KEY_FLAG_ORDER)


class KeySpec(NamedTuple):
    flags: tuple     # names from KEY_FLAG_ORDER, in that order
    begin: tuple     # ("index", pos) | ("keyword", KEYWORD, startfrom) | ("unknown",)
    find: tuple      # ("range", lastkey, keystep, limit) | ("keynum", keynumidx, firstkey, keystep)
                     # | ("unknown",)
    notes: str = ""


def parse_spec(text: str) -> KeySpec:
    """A KeySpec from its compact form (see the module docstring)."""
    parts = [p.strip() for p in text.split("|")]
    if len(parts) not in (3, 4):
        raise ValueError("key spec needs flags | begin | find [| notes: ...]: %r" % text)
    flags = parts[0].split()
    unknown = [f for f in flags if f not in _KEY_FLAGS]
    if unknown:
        raise ValueError("unknown key-spec flag(s) %s in %r" % (unknown, text))
    flags = tuple(f for f in KEY_FLAG_ORDER if f in flags)
    begin = parts[1].split()
    if begin[0] == "index" and len(begin) == 2:
        begin = ("index", int(begin[1]))
    elif begin[0] == "keyword" and len(begin) == 3:
        begin = ("keyword", begin[1], int(begin[2]))
    else:
        raise ValueError("bad begin_search in %r" % text)
    find = parts[2].split()
    if find[0] in ("range", "keynum") and len(find) == 4:
        find = (find[0], int(find[1]), int(find[2]), int(find[3]))
    else:
        raise ValueError("bad find_keys in %r" % text)
    notes = ""
    if len(parts) == 4:
        if not parts[3].startswith("notes:"):
            raise ValueError("the fourth part of a key spec is 'notes: ...': %r" % text)
        notes = parts[3][len("notes:"):].strip()
    return KeySpec(flags, begin, find, notes)


def is_movable(spec: KeySpec) -> bool:
    """Does the spec make the command "movablekeys" (anything but index + range)?"""
    return spec.begin[0] != "index" or spec.find[0] != "range"


def _int32(value: int) -> int:
    """`value` cast to a C int (two's complement, 32 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def find_keys(specs, args: list, arity: int):
    """[(position, flags), ...] of the keys `specs` find in `args` (args[0] is
    the command name), or None when a spec does not fit the arguments (Redis:
    getKeysUsingKeySpecs returns -1, and the caller may try the command's
    getkeys procedure)."""
    argc = len(args)
    found = []
    for spec in specs:
        if "not_key" in spec.flags:
            continue   # a "fake" key (an argument like one): not reported
        begin = spec.begin
        if begin[0] == "unknown" or spec.find[0] == "unknown":
            return None   # only the command's procedure knows
        if begin[0] == "index":
            first = begin[1]
        else:
            keyword, startfrom = begin[1].lower().encode(), begin[2]
            # Forward from startfrom up to the next-to-last argument, or back
            # from argc + startfrom down to the second one (a keyword needs
            # something after it, and argument 1 cannot follow one).
            if startfrom > 0:
                positions = range(startfrom, argc - 1)
            else:
                positions = range(argc + startfrom, 1, -1)
            first = 0
            for i in positions:
                if i < 1 or i >= argc:
                    break
                if c_string(args[i]).lower() == keyword:
                    first = i + 1
                    break
            if not first:
                continue   # keyword not there: this spec finds no keys
        find = spec.find
        if find[0] == "range":
            _, lastkey, step, limit = find
            if lastkey >= 0:
                last = first + lastkey
            elif not limit:
                last = argc + lastkey
            else:
                last = first + (argc - first) // limit + lastkey
        else:
            _, keynumidx, firstkey, step = find
            if keynumidx >= argc or first + keynumidx >= argc:
                return None
            numkeys = parse_int(args[first + keynumidx])
            if numkeys is None or numkeys < 0:
                return None
            first += firstkey
            last = _int32(first + _int32(numkeys) - 1)
        if last >= argc or last < first or first >= argc:
            return None
        # Past the end can only happen for a variable arity (Redis: no key
        # from those positions; the command itself reports the error).
        found += [(i, spec.flags) for i in range(first, last + 1, step) if i < argc]
        if "incomplete" in spec.flags:
            return None   # the command's procedure knows the rest
    return found


def c_string(raw: bytes) -> bytes:
    """`raw` as C string functions see it: up to its first NUL."""
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def c_atoi(raw: bytes) -> int:
    """`raw` read as glibc's atoi reads a C string: leading white space, an
    optional sign, the digits up to the first other byte (a NUL ends the
    string); strtol's saturation at the long range, then the cast to int."""
    i, n = 0, len(raw)
    while i < n and raw[i] in b" \t\n\v\f\r":
        i += 1
    negative = False
    if i < n and raw[i] in b"+-":
        negative = raw[i] == 0x2D
        i += 1
    start = i
    while i < n and 0x30 <= raw[i] <= 0x39:
        i += 1
    value = int(raw[start:i]) if i > start else 0
    value = -value if negative else value
    value = min(max(value, LLONG_MIN), LLONG_MAX)
    return _int32(value)


def numkeys_procedure(count_at: int, first_at: int, store_at: int = 0, step: int = 1):
    """Redis's genericGetKeys for a command whose numkeys is at `count_at`,
    its keys from `first_at` every `step`, and a destination key at
    `store_at` (0: none), reported last. Used when the key specs refused the
    arguments: numkeys is read with atoi, the keys carry no flags, and no
    keys at all ([]) when numkeys is below 1 or above what the arguments hold."""
    def procedure(args: list) -> list:
        argc = len(args)
        if count_at >= argc:
            return []
        num = c_atoi(args[count_at])
        if num < 1 or num > int((argc - first_at) / step):
            return []
        keys = [(first_at + i * step, ()) for i in range(num)]
        if store_at:
            keys.append((store_at, ()))
        return keys
    return procedure


def get_option_procedure(read_flags: tuple, write_flags: tuple):
    """SET's procedure (Redis's setGetKeys): the key at 1 is read too when a
    GET option follows the value (compared as C does: "get" then the string's
    end, so "GET\\0anything" counts)."""
    def procedure(args: list) -> list:
        for arg in args[3:]:
            if c_string(arg).lower() == b"get":
                return [(1, read_flags)]
        return [(1, write_flags)]
    return procedure


def bitfield_procedure(args: list) -> list:
    """BITFIELD's procedure (Redis's bitfieldGetKeys): the key is read-only
    when every operation is a complete GET (or OVERFLOW); anything else,
    including a syntax error, counts as a write."""
    readonly = True
    i, argc = 2, len(args)
    while i < argc:
        remaining = argc - i - 1
        arg = c_string(args[i]).lower()
        if arg == b"get" and remaining >= 2:
            i += 2
        elif arg in (b"set", b"incrby") and remaining >= 3:
            readonly = False
            break
        elif arg == b"overflow" and remaining >= 1:
            i += 1
        else:
            readonly = False
            break
        i += 1
    return [(1, ("RO", "access") if readonly else ("RW", "access", "update"))]


def sort_procedure(args: list) -> list:
    """SORT's procedure (Redis's sortGetKeys): the key at 1, and the last
    STORE's destination; LIMIT skips two arguments, GET and BY one (its
    quirk kept: after STORE the destination is read as an option too)."""
    found = [(1, ("RO", "access"))]
    store = None
    i, argc = 2, len(args)
    while i < argc:
        arg = c_string(args[i]).lower()
        if arg == b"limit":
            i += 2
        elif arg in (b"get", b"by"):
            i += 1
        elif arg == b"store" and i + 1 < argc:
            store = i + 1
        i += 1
    if store is not None:
        found.append((store, ("OW", "update")))
    return found
