"""The command table: one entry per command, filled by the @command decorator.

COMMAND, COMMAND DOCS, HELP, the ACL categories and the CLI's completion all
read this table, so a command declared once is documented everywhere.
"""

from dataclasses import dataclass, field

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
    # counters for INFO commandstats
    calls: int = 0
    usec: float = 0.0
    rejected: int = 0
    failed: int = 0

    def arity_ok(self, argc: int) -> bool:
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def key_positions(self, args: list) -> list:
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(args) + self.last_key
        return list(range(self.first_key, min(last, len(args) - 1) + 1, self.step))


def command(name: str, arity: int, flags: str = "", keys: tuple = (0, 0, 0),
            group: str = "generic", summary: str = "", syntax: str = "", since: str = "1.0.0"):
    """Register the decorated function `handler(conn, args) -> reply` as `name`."""
    def register(handler):
        first, last, step = keys
        entry = Command(name.lower(), handler, arity, frozenset(flags.split()),
                        first, last, step, group, summary, syntax, since)
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
