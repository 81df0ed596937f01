"""Redis 7.0's getkeys procedures, by command: the part of where a command's
keys are that is code, not data.

A command's key specs come from Redis's recorded COMMAND INFO (commands/
reference.py); Redis also gives some commands a "getkeys_proc" (db.c), which
COMMAND GETKEYS and Command.keys_of use when the key specs refuse the
arguments or are marked variable_flags. The registry attaches these to a
command by name (a declaration may pass its own). Entries for commands
tenantkv does not have (yet) wait unused. Check a change against the real
server: tests/compat/sessions/getkeys.txt replays GETKEYS[ANDFLAGS] for every
command that takes keys.
"""

from tenantkv.util.keyspecs import (
    bitfield_procedure, get_option_procedure, numkeys_procedure, sort_procedure,
)

# Redis's getkeys procedures ("getkeys_proc"): GETKEYS uses them when the key
# specs refuse the arguments (a numkeys that is not a plain integer, or too
# large), or instead of the specs when those are marked variable_flags.
_NUMKEYS_AT_1 = numkeys_procedure(count_at=1, first_at=2)                # ZUNION 2 a b
_NUMKEYS_AT_2 = numkeys_procedure(count_at=2, first_at=3)                # BLMPOP 0 2 a b
_STORE_NUMKEYS_AT_2 = numkeys_procedure(count_at=2, first_at=3, store_at=1)  # ZUNIONSTORE d 2 a b

PROCEDURES = {
    "zunion": _NUMKEYS_AT_1, "zinter": _NUMKEYS_AT_1, "zdiff": _NUMKEYS_AT_1,
    "zintercard": _NUMKEYS_AT_1, "sintercard": _NUMKEYS_AT_1,
    "lmpop": _NUMKEYS_AT_1, "zmpop": _NUMKEYS_AT_1,
    "blmpop": _NUMKEYS_AT_2, "bzmpop": _NUMKEYS_AT_2,
    "zunionstore": _STORE_NUMKEYS_AT_2, "zinterstore": _STORE_NUMKEYS_AT_2,
    "zdiffstore": _STORE_NUMKEYS_AT_2,
    "set": get_option_procedure(read_flags=("RW", "access", "update"), write_flags=("OW", "update")),
    "bitfield": bitfield_procedure,
    "sort": sort_procedure, "sort_ro": lambda args: [(1, ("RO", "access"))],
}


def georadius_store_key(args):
    """The STORE / STOREDIST key of a GEORADIUS[BYMEMBER] (the last one
    given), or None: db.c's georadiusGetKeys' loop."""
    stored = None
    i = 5
    while i < len(args):
        if args[i].lower() in (b"store", b"storedist") and i + 1 < len(args):
            stored = args[i + 1]
            i += 1
        i += 1
    return stored
