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

A container (CONFIG, CLIENT, OBJECT, ...) is declared with container() and
each subcommand tenantkv implements with @subcommand("client", "list"); a
subcommand gets Redis's metadata too (one Redis 7.0 lacks is declared in
full). The container's handler is the one dispatcher (dispatch/call.py's
`dispatcher`): HELP, unknown subcommand, the subcommand's arity, the user's
permission for it, and INFO commandstats per subcommand, as Redis 7.

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


# slots: the hot path reads and counts on these. eq=False: a Command is
# itself (hashed by identity), so a tenant's counters can key on it and count
# a list of them in C (keyspace/tenant.py).
@dataclass(slots=True, eq=False)
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
    # Only root may run it, whatever the user's rules say (Redis's flag
    # "admin", unless declared otherwise): tenancy/permissions.py.
    root_only: bool = False
    # Not in Redis's @fast category: it may take long (SCAN, MSET, SUNION...),
    # so a pipelined batch checks the clock after it (server/connection.py).
    slow: bool = False
    # First arguments of a root-only command (DEBUG OBJECT) that any user may
    # run, its rules permitting: they see only the caller's own tenant.
    open_firstargs: frozenset = frozenset()
    # For a root-only subcommand: open_args(args) -> whether any user may
    # run it with these arguments, its rules permitting (CONFIG GET/SET of
    # notify-keyspace-events: the caller's own tenant's setting).
    open_args: object = None
    # Its handler may answer with a Deferred that waits for work off the
    # loop (the user store, AUTH's hashing): True, or a function of the
    # arguments (HELLO waits only with AUTH). Such a command is refused
    # inside MULTI (dispatch/call.py, `_queue`): EXEC cannot wait.
    waits: object = False
    # Its key in a user's command table (tenancy/permissions.py): the name as
    # bytes for a command, "container|sub" (str) for a subcommand.
    key: object = None
    # A container callable without a subcommand (COMMAND): what counts those
    # calls for INFO commandstats (the container's own counters count every
    # call, subcommands included, for total_commands_processed).
    bare: object = field(default=None, repr=False, compare=False)
    # counters for INFO commandstats
    calls: int = 0
    usec: float = 0.0
    # Its latency histogram (dispatch/latency.py: counts per bucket) while
    # latency-tracking is on: LATENCY HISTOGRAM, INFO latencystats.
    hist: list = field(default_factory=lambda: [0] * 48, repr=False, compare=False)
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


def build(name: str, handler, declared: dict, getkeys=None, root_only=None) -> Command:
    """The Command `name`: its record, then what `declared` says instead.
    `root_only`: None for Redis's flag "admin"."""
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
    entry.root_only = "admin" in flags if root_only is None else root_only
    entry.slow = "fast" not in entry.acl_categories
    entry.key = name if "|" in name else name.encode()
    return entry


def _register(entry: Command) -> None:
    COMMANDS[entry.name] = entry
    LOOKUP[entry.name.encode()] = entry
    LOOKUP[entry.name.upper().encode()] = entry
    if "no_auth" in entry.flags:
        NOAUTH_LOOKUP[entry.name.encode()] = entry
        NOAUTH_LOOKUP[entry.name.upper().encode()] = entry


def command(name: str, *, getkeys=None, root_only=None, open_firstargs=(), waits=False,
            **declared):
    """Register the decorated function `handler(conn, args) -> reply` as `name`.

    Everything about the command comes from Redis's record (see the module
    docstring); `declared` are the fields where tenantkv differs (flags and
    acl_categories as space-separated words or lists, key_specs in the
    record's form or parse_spec's text). `getkeys`: a getkeys procedure,
    args -> [(position, flags)] (default: Redis's, from dispatch/keyprocs.py).
    `root_only`, `open_firstargs`: see Command (tenancy/permissions.py);
    `waits`: see Command."""
    def register(handler):
        entry = build(name.lower(), handler, declared, getkeys, root_only)
        entry.waits = waits
        if (redis_command(entry.name) or {}).get("subcommands"):
            raise TypeError("%s is a container: declare it with container()" % entry.name)
        entry.open_firstargs = frozenset(a.lower() for a in open_firstargs)
        _register(entry)
        return handler
    return register


def container(name: str, *, help=None, bare=None, **declared) -> Command:
    """Declare the container `name` (CONFIG, CLIENT, ...); its subcommands
    are added with @subcommand. Its handler is the one dispatcher
    (dispatch/call.py). `help`: the lines of `<NAME> HELP` (Redis's text)
    between its first and last line, or None to list the subcommands with
    their syntax and summary. `bare`: the handler of the container called
    without a subcommand (COMMAND), if its arity allows that. The HELP
    subcommand is declared here."""
    from tenantkv.dispatch.call import dispatcher   # call.py imports this module

    name = name.lower()
    entry = build(name, None, declared)
    if bare is not None:
        entry.bare = build(name, bare, declared)
    _register(entry)
    entry.handler = dispatcher(entry)
    help_fields = {} if redis_command(name + "|help") else dict(
        arity=2, flags="loading stale", acl_categories="@slow", group=entry.group,
        since=entry.since, summary="Show helpful text about the different subcommands",
        complexity="O(1)")

    def help_(conn, args):
        lines = help if help is not None else _help_lines(entry)
        return help_reply(name, lines)
    subcommand(name, "help", **help_fields)(help_)
    return entry


def subcommand(container_name: str, name: str, *, root_only=None, waits=False, open_args=None,
               **declared):
    """Register the decorated `handler(conn, args) -> reply` as subcommand
    `name` of container `container_name` ("client", "list"): Redis's
    metadata for "client|list" but what `declared` says (a subcommand Redis
    lacks declares it all). `root_only`: see Command (None: Redis's flag
    "admin"); `waits`, `open_args`: see Command."""
    parent = COMMANDS[container_name.lower()]

    def register(handler):
        entry = build("%s|%s" % (parent.name, name.lower()), handler, declared, None, root_only)
        entry.waits = waits
        entry.open_args = open_args
        subs = parent.subcommands
        subs[name.lower().encode()] = entry
        ordered = sorted(subs.items())   # in place: the dispatcher holds this dict
        subs.clear()
        subs.update(ordered)
        LOOKUP[entry.key] = entry   # root's table (see tenancy/permissions.py)
        return handler
    return register


def _help_lines(cmd: Command) -> list:
    lines = []
    for sub in cmd.subcommands.values():
        if not sub.name.endswith("|help"):
            short = sub.name.split("|", 1)[1].upper()
            lines += [("%s %s" % (short, sub.syntax)).strip(), "    " + sub.summary]
    return lines


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


def help_reply(command_name: str, lines: list):
    from tenantkv.protocol.encoder import Status
    head = "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" % command_name.upper()
    tail = ["HELP", "    Print this help."]
    return [Status(line) for line in [head, *lines, *tail]]
