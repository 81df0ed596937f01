"""The command table: one entry per command, filled by the @command decorator.

A command's metadata is Redis's own: arity, flags, first/last/step, ACL
categories, tips, key specs (COMMAND INFO) and summary, since, group,
complexity, history, arguments (COMMAND DOCS), read from the record of
redis-server's replies (dispatch/record.py, redis_commands.jsonl). So
`@command("get")` is a whole declaration; a declaration names a field of the
record only where tenantkv differs from Redis, with a comment saying why, and
tenantkv's own commands (KDB, HELP) declare every field. COMMAND, HELP, the
ACL rules (tenancy/permissions.py) and tenantkv-cli (through COMMAND DOCS)
all read this table, so they cannot drift apart.

A container (CONFIG, CLIENT, OBJECT, ...) names the subcommands tenantkv
implements; each gets Redis's metadata too (a subcommand Redis 7.0 lacks is
declared in full, as a dict of fields).

Where a command's keys are: its key specs, applied by Command.keys_of /
keys_and_flags as Redis applies them (util/keyspecs.py), and Redis's getkeys
procedure where it has one (dispatch/keyprocs.py).
"""

from dataclasses import dataclass, field

from tenantkv.dispatch import keyprocs as keyinfo
from tenantkv.dispatch.record import key_spec, redis_command, render_syntax
from tenantkv.util.keyspecs import KeySpec, find_keys, is_movable, parse_spec

# name (lower-case str) -> Command
COMMANDS: dict = {}
# raw request name (bytes, as sent, any case seen so far) -> Command: the hot
# path looks a name up once, without lower-casing it every time.
LOOKUP: dict = {}
# The same for a client that has not authenticated: only the commands it may
# run (flag "no_auth"); any other name falls to the general path, which answers
# unknown command / wrong arity / NOAUTH in Redis's order.
NOAUTH_LOOKUP: dict = {}
# Not commands a user calls or sees: the HTTP request guards.
HIDDEN = frozenset({"post", "host:"})

# The COMMAND DOCS fields beyond summary, since, group and complexity.
DOC_FIELDS = ("doc_flags", "deprecated_since", "replaced_by", "history", "arguments")
# Everything a declaration may say (the record's fields).
FIELDS = frozenset({"arity", "flags", "first_key", "last_key", "step", "acl_categories", "tips",
                    "key_specs", "summary", "since", "group", "complexity", *DOC_FIELDS})
# What a command Redis does not have must declare.
REQUIRED = ("arity", "flags", "acl_categories", "summary", "since", "group", "complexity")


@dataclass(slots=True)   # slots: the hot path reads and counts on these
class Command:
    name: str            # "get"; a subcommand's "config|get"
    handler: object
    arity: int
    flags: frozenset     # COMMAND INFO's names ("write", "no_auth", "movablekeys", ...)
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    acl_categories: tuple = ()   # without the '@', in Redis's order
    tips: tuple = ()
    # Redis 7 key specs (KeySpec, in order) and Redis's "getkeys procedure":
    # args -> [(position, flags)], used when the specs refuse the arguments or
    # are marked variable_flags.
    key_specs: tuple = ()
    getkeys: object = None
    group: str = ""
    since: str = ""
    summary: str = ""
    complexity: str = ""
    docs: dict = field(default_factory=dict)   # DOC_FIELDS present, in the record's form
    subcommands: dict = field(default_factory=dict)   # lower-case bytes -> Command
    # Subcommands (lower-case bytes) any authenticated user may run though the
    # command itself is root-only, e.g. DEBUG OBJECT: they see only the
    # caller's own tenant.
    open_subcommands: frozenset = frozenset()
    # counters for INFO commandstats
    calls: int = 0
    usec: float = 0.0
    rejected: int = 0
    failed: int = 0

    @property
    def syntax(self) -> str:
        """The arguments as one line (`key value [NX|XX] ...`), from COMMAND DOCS."""
        return render_syntax(self.docs.get("arguments"))

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


def _words(value) -> list:
    return value.split() if isinstance(value, str) else list(value)


def _key_specs(specs) -> tuple:
    """Key specs as KeySpecs, from the record's maps, KeySpecs or their
    compact text form (util.keyspecs.parse_spec)."""
    return tuple(s if isinstance(s, KeySpec) else parse_spec(s) if isinstance(s, str) else key_spec(s)
                 for s in specs)


def build(name: str, handler, declared: dict, subcommands=None, getkeys=None) -> Command:
    """The Command `name`: its record, then what `declared` says instead."""
    unknown = set(declared) - FIELDS
    if unknown:
        raise TypeError("%s: unknown command field(s) %s" % (name, ", ".join(sorted(unknown))))
    record = redis_command(name)
    if record is None:
        missing = [f for f in REQUIRED if f not in declared]
        if missing:
            raise TypeError("%s is not a Redis command: declare its %s" % (name, ", ".join(missing)))
        record = {}
    fields = {**record, **declared}
    flags = set(_words(fields.get("flags", ())))
    specs = _key_specs(fields.get("key_specs", ()))
    if "key_specs" in declared and any(is_movable(s) for s in specs):
        flags.add("movablekeys")   # as Redis derives it
    entry = Command(
        name, handler, fields["arity"], frozenset(flags),
        fields.get("first_key", 0), fields.get("last_key", 0), fields.get("step", 0),
        acl_categories=tuple(c.lstrip("@") for c in _words(fields.get("acl_categories", ()))),
        tips=tuple(fields.get("tips", ())),
        key_specs=specs,
        getkeys=getkeys if getkeys is not None else keyinfo.PROCEDURES.get(name),
        group=fields.get("group", ""), since=fields.get("since", ""),
        summary=fields.get("summary", ""), complexity=fields.get("complexity", ""),
        docs={f: fields[f] for f in DOC_FIELDS if f in fields})
    entry.subcommands = _subcommands(entry, record.get("subcommands", ()), subcommands)
    return entry


def _subcommands(parent: Command, recorded, implemented) -> dict:
    """The subcommands of `parent` tenantkv implements, by name: Redis's, and
    any Redis lacks as declared."""
    if recorded and implemented is None:
        raise TypeError("%s is a container: say which of its subcommands tenantkv implements "
                        "(subcommands=...)" % parent.name)
    if not implemented:
        return {}
    if not isinstance(implemented, dict):
        implemented = dict.fromkeys(implemented)
    prefix = parent.name + "|"
    return {sub.encode(): build(prefix + sub, None, implemented[sub] or {})
            for sub in sorted(implemented)}


def command(name: str, *, subcommands=None, getkeys=None, **declared):
    """Register the decorated function `handler(conn, args) -> reply` as `name`.

    Everything about the command comes from Redis's record (see the module
    docstring); `declared` are the fields where tenantkv differs (flags and
    acl_categories as space-separated words or lists, key_specs in the
    record's form or parse_spec's text). `subcommands`: a container's, as
    names (Redis's metadata) or {name: declared fields or None}. `getkeys`:
    a getkeys procedure, args -> [(position, flags)] (default: Redis's, from
    dispatch/keyprocs.py)."""
    def register(handler):
        entry = build(name.lower(), handler, declared, subcommands, getkeys)
        COMMANDS[entry.name] = entry
        LOOKUP[entry.name.encode()] = entry
        LOOKUP[entry.name.upper().encode()] = entry
        if "no_auth" in entry.flags:
            NOAUTH_LOOKUP[entry.name.encode()] = entry
            NOAUTH_LOOKUP[entry.name.upper().encode()] = entry
        return handler
    return register


def lookup(name: str):
    """The command, or container subcommand ("config|get"), named `name` (any case)."""
    parent, _, sub = name.lower().partition("|")
    cmd = COMMANDS.get(parent)
    if cmd is None or not sub:
        return cmd
    return cmd.subcommands.get(sub.encode())


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
            raise CommandError(errors.wrong_arity("%s|%s" % (command_name, sub.decode("latin-1"))))
        return handler(conn, args)
    return dispatch


def help_reply(command_name: str, lines: list):
    from tenantkv.protocol.encoder import Status
    head = "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" % command_name.upper()
    tail = ["HELP", "    Print this help."]
    return [Status(line) for line in [head, *lines, *tail]]
