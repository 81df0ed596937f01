"""The command table: one entry per command, filled by the @command decorator.

COMMAND, COMMAND DOCS, HELP, the ACL categories and the CLI's completion all
read this table, so a command declared once is documented everywhere.

Where a command's keys are: its Redis 7 key specs (commands/keyinfo.py holds
Redis's, by name; a decorator may pass its own), applied by Command.keys_of /
keys_and_flags as Redis applies them (util/keyspecs.py). A command without
specs has one made from its legacy (first, last, step).
"""

from dataclasses import dataclass, field

from tenantkv.commands import keyinfo
from tenantkv.util.keyspecs import KeySpec, find_keys, is_movable, parse_spec

# name (lower-case str) -> Command
COMMANDS: dict = {}
# raw request name (bytes, as sent, any case seen so far) -> Command: the hot
# path looks a name up once, without lower-casing it every time.
LOOKUP: dict = {}
# The same for a client that has not authenticated: only the commands it may
# run (flag "noauth"); any other name falls to the general path, which answers
# unknown command / wrong arity / NOAUTH in Redis's order.
NOAUTH_LOOKUP: dict = {}


@dataclass(slots=True)   # slots: the hot path reads and counts on these
class Command:
    name: str
    handler: object
    arity: int
    flags: frozenset
    first_key: int
    last_key: int
    step: int
    group: str
    summary: str
    syntax: str
    since: str = "1.0.0"
    subcommands: dict = field(default_factory=dict)
    # Subcommands (lower-case bytes) any authenticated user may run though the
    # command itself is root-only, e.g. DEBUG OBJECT: they see only the
    # caller's own tenant.
    open_subcommands: frozenset = frozenset()
    # Redis 7 key specs (KeySpec, in order), COMMAND INFO's tips, and Redis's
    # "getkeys procedure": args -> [(position, flags)], used when the specs
    # refuse the arguments or are marked variable_flags.
    key_specs: tuple = ()
    tips: tuple = ()
    getkeys: object = None
    # counters for INFO commandstats
    calls: int = 0
    usec: float = 0.0
    rejected: int = 0
    failed: int = 0

    def arity_ok(self, argc: int) -> bool:
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def has_keys(self) -> bool:
        """Can the command take keys at all (Redis: doesCommandHaveKeys)?"""
        return self.getkeys is not None or any("not_key" not in s.flags for s in self.key_specs)

    def keys_and_flags(self, args: list) -> list:
        """[(position, key-spec flags), ...] of the keys in `args` (args[0] is
        the command name), as Redis 7.0's COMMAND GETKEYSANDFLAGS finds them:
        the key specs, else the command's procedure; [] when the arguments
        name no valid keys (a bad numkeys, say). For a container (OBJECT), the
        keys of the subcommand args[1] names."""
        if self.subcommands:
            sub = self.subcommands.get(args[1].lower()) if len(args) > 1 else None
            return sub.keys_and_flags(args) if sub is not None else []
        specs = self.key_specs
        if specs and not any("variable_flags" in s.flags for s in specs):
            found = find_keys(specs, args, self.arity)
            if found is not None:
                return found
        if self.getkeys is not None:
            return self.getkeys(args)
        return []

    def keys_of(self, args: list) -> list:
        """The positions in `args` (args[0] being the command name) of the keys
        the command names, in Redis's order (COMMAND GETKEYS)."""
        return [position for position, _ in self.keys_and_flags(args)]

    key_positions = keys_of   # the older name


def legacy_key_spec(first: int, last: int, step: int) -> tuple:
    """The key spec of a legacy (first, last, step), without flags: () for no keys."""
    if first <= 0:
        return ()
    lastkey = last - first if last >= 0 else last
    return (KeySpec((), ("index", first), ("range", lastkey, step, 0)),)


def _specs(specs) -> tuple:
    return tuple(s if isinstance(s, KeySpec) else parse_spec(s) for s in specs)


def _subcommands(parent: str, group: str) -> dict:
    table = {}
    for sub, (arity, flags, (first, last, step), specs, tips) in keyinfo.SUBCOMMANDS.get(parent, {}).items():
        table[sub.encode()] = Command("%s|%s" % (parent, sub), None, arity, frozenset(flags.split()),
                                      first, last, step, group, "", "",
                                      key_specs=_specs(specs), tips=tuple(tips))
    return table


def command(name: str, arity: int, flags: str = "", keys: tuple = (0, 0, 0),
            group: str = "generic", summary: str = "", syntax: str = "", since: str = "1.0.0",
            key_specs=None, tips=None, getkeys=None):
    """Register the decorated function `handler(conn, args) -> reply` as `name`.

    `keys` is Redis's legacy (first, last, step). `key_specs` (KeySpecs or
    their text form), `tips` and `getkeys` (a getkeys procedure: args ->
    [(position, flags)]) default to Redis's, from commands/keyinfo.py; without
    specs there, the command gets one made from `keys`. A key spec other than
    a plain index and range makes the command "movablekeys", as in Redis."""
    def register(handler):
        first, last, step = keys
        lower = name.lower()
        specs = keyinfo.KEY_SPECS.get(lower) if key_specs is None else key_specs
        specs = _specs(specs) if specs is not None else legacy_key_spec(first, last, step)
        flag_set = set(flags.split())
        if any(is_movable(s) for s in specs):
            flag_set.add("movablekeys")
        entry = Command(lower, handler, arity, frozenset(flag_set),
                        first, last, step, group, summary, syntax, since,
                        key_specs=specs,
                        tips=tuple(keyinfo.TIPS.get(lower, ()) if tips is None else tips),
                        getkeys=keyinfo.PROCEDURES.get(lower) if getkeys is None else getkeys)
        entry.subcommands = _subcommands(lower, group)
        COMMANDS[entry.name] = entry
        LOOKUP[entry.name.encode()] = entry
        LOOKUP[entry.name.upper().encode()] = entry
        if "noauth" in entry.flags:
            NOAUTH_LOOKUP[entry.name.encode()] = entry
            NOAUTH_LOOKUP[entry.name.upper().encode()] = entry
        return handler
    return register


def find(raw_name: bytes):
    entry = LOOKUP.get(raw_name)
    if entry is None:
        entry = COMMANDS.get(raw_name.decode("latin-1").lower())
        if entry is not None and len(LOOKUP) < 10000:
            LOOKUP[raw_name] = entry
    return entry


def subcommand_dispatch(command_name: str, table: dict, help_lines: list):
    """Build a handler that routes `CMD SUB ...` to table[sub] (handler, arity)."""
    from tenantkv import errors
    from tenantkv.errors import CommandError

    def dispatch(conn, args):
        sub = args[1].lower()
        if sub == b"help" and len(args) == 2:
            return help_reply(command_name, help_lines)
        entry = table.get(sub)
        if entry is None:
            raise CommandError(errors.unknown_subcommand(args[0], args[1]))
        handler, arity = entry
        argc = len(args)
        if (arity > 0 and argc != arity) or (arity < 0 and argc < -arity):
            raise CommandError("ERR wrong number of arguments for '%s|%s' command"
                               % (command_name, sub.decode("latin-1")))
        return handler(conn, args)
    return dispatch


def help_reply(command_name: str, lines: list):
    from tenantkv.protocol.encoder import Status
    head = "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" % command_name.upper()
    tail = ["HELP", "    Print this help."]
    return [Status(line) for line in [head, *lines, *tail]]
