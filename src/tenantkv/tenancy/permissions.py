"""What a user may run: its command table, computed once per rule set.

Rules are Redis 7's ACL command rules, applied in order, with Redis's
meaning: `+@all`/`allcommands`, `-@all`/`nocommands`, `+@category`,
`-@category`, `+command`, `-command`, `+container|sub`, `-container|sub`,
and `+command|first-arg` for a command without subcommands (`+select|0`:
SELECT only with that first argument; Redis 7.0 accepts it only as an
addition, and so does tenantkv). Allowing or denying a container allows or
denies all its subcommands; a category counts every command and subcommand
that has it (COMMAND INFO's categories, Redis's own), and a container that
has it (all have @slow) brings all its subcommands along, as in Redis.

The rules are applied to Redis's whole command set (the record,
dispatch/redis_commands.jsonl, plus tenantkv's own commands), not only to
the commands tenantkv implements, so that `describe` can show them as
Redis normalises them (ACL GETUSER, ACL LIST): `+@all` or `-@all`, the
categories that best fit, then single commands, in Redis's algorithm
(ACLDescribeSelectorCommandRules). Redis emits the single commands in its
hash table's order, which changes with every start; tenantkv in name order.
A rule can name only what tenantkv implements.

The connection looks a command up in its user's command table (`table_for_rules`),
so a permission check costs nothing on the hot path: a command missing
from the table goes to the general path (dispatch/call.py's `allowed`),
which answers NOPERM. The table maps
  - raw request names (bytes, as LOOKUP) -> Command: what the user may run as a whole;
  - "container|sub" (str) -> the subcommand's Command: the subcommands it may
    run, checked by the container's dispatcher (one dict lookup);
  - "command" (str) -> frozenset of lower-case first arguments, for a
    command the user may run only with those.

Two tenantkv decisions, both deliberate differences from Redis:

- Isolation is the tenant, not the rules: a non-root user never runs a
  root-only command or subcommand (Command.root_only: Redis's flag "admin",
  e.g. DEBUG, SHUTDOWN, CONFIG GET, KDB SAVE, ACL SETUSER), whatever its rules
  say. Rules can only narrow what a user runs in its own tenant; root
  (`root_user`) runs every command. The admin subcommands that act on the
  caller's own tenant (CLIENT LIST, KILL, ...) are declared not root-only,
  and so are the first arguments of DEBUG that do (OBJECT, DIGEST,
  DIGEST-VALUE: Command.open_firstargs); like any command, they run only
  when the user's rules allow them (`+@all`, `+debug`, `+debug|object`).
- A user without rules (made offline by `tenantkv user add`, or by ACL
  SETUSER without command rules) has DEFAULT_RULES, `+@all`: every
  non-root-only command, so normal data commands work. (Redis starts new
  users at `-@all`, which makes sense only together with key patterns.)

The no-auth commands (AUTH, HELLO, QUIT, ...) stay in every table, as in
Redis, where a `-@all` user may still AUTH as someone else.
"""

from tenantkv.dispatch.record import redis_command, redis_command_names
from tenantkv.dispatch.table import COMMANDS, HIDDEN, LOOKUP

DEFAULT_RULES = "+@all"

# Redis's category table (ACLCommandCategories): the order of ACL CAT, of a
# command's categories in COMMAND INFO, and of the best fit in `describe`.
CATEGORY_ORDER = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                  "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                  "blocking", "dangerous", "connection", "transaction", "scripting"]
_CATEGORY_SET = frozenset(CATEGORY_ORDER)


def visible_commands() -> list:
    """Commands a user can name in a rule (not the HTTP guards)."""
    return [c for c in COMMANDS.values() if c.name not in HIDDEN]


def commands_in(category: str) -> list:
    """The commands and subcommands with `category` (ACL CAT), each
    container's subcommands after it."""
    return [c for top in visible_commands() for c in (top, *top.subcommands.values())
            if category in c.acl_categories]


# -- the command set rules apply to -----------------------------------------------------

class _Universe:
    """Every command and subcommand name Redis and tenantkv have, with its
    categories; built once, after the commands registered."""

    def __init__(self) -> None:
        cats: dict = {}       # name -> frozenset of categories
        subs: dict = {}       # top-level name -> [subcommand names]
        for name in redis_command_names():
            record = redis_command(name)
            cats[name] = frozenset(c.lstrip("@") for c in record.get("acl_categories", ()))
            subs[name] = [s["name"] for s in record.get("subcommands", ())]
            for sub in record.get("subcommands", ()):
                cats[sub["name"]] = frozenset(c.lstrip("@") for c in sub.get("acl_categories", ()))
        for cmd in visible_commands():   # tenantkv's metadata wins (its own commands)
            cats[cmd.name] = frozenset(cmd.acl_categories)
            known = subs.setdefault(cmd.name, [])
            for sub in cmd.subcommands.values():
                cats[sub.name] = frozenset(sub.acl_categories)
                if sub.name not in known:
                    known.append(sub.name)
        self.subs = {name: sorted(subs[name]) for name in sorted(subs)}
        self.names = frozenset(cats)
        # Counting a category (describe): the commands that have it. Applying
        # it (+@cat): those, and every subcommand of a container that has it.
        self.members = {cat: frozenset(n for n, c in cats.items() if cat in c)
                        for cat in CATEGORY_ORDER}
        self.affected = {}
        for cat, members in self.members.items():
            affected = set(members)
            for name in members:
                affected.update(self.subs.get(name, ()))
            self.affected[cat] = frozenset(affected)


_UNIVERSE: list = []


def _universe() -> _Universe:
    if not _UNIVERSE:
        _UNIVERSE.append(_Universe())
    return _UNIVERSE[0]


# -- rules --------------------------------------------------------------------------------

class RuleError(ValueError):
    """A rule Redis would refuse; str() is the reason, as in Redis's
    "Error in ACL SETUSER modifier '<rule>': <reason>"."""


UNKNOWN = "Unknown command or category name in ACL"
FIRSTARG_OF_SUBCOMMAND = "Allowing first-arg of a subcommand is not supported"


def _named(name: str):
    """The command or subcommand ("config|get") tenantkv has by `name`
    (lower case), as Redis's ACLLookupCommand: None for an unknown one, a
    name with more than one '|', or a subcommand of a non-container."""
    top, bar, sub = name.partition("|")
    cmd = COMMANDS.get(top)
    if cmd is None or top in HIDDEN or "|" in sub:
        return None
    if not bar:
        return cmd
    return cmd.subcommands.get(sub.encode()) if cmd.subcommands else None


def check_rule(rule: str) -> str:
    """The normalised form of command rule `rule` (allcommands -> +@all,
    nocommands -> -@all, names in lower case but a first argument as
    given), or RuleError with Redis 7.0's reason. Callers pass only tokens
    that start with + or - or are allcommands/nocommands."""
    low = rule.lower()
    if low in ("allcommands", "+@all"):
        return "+@all"
    if low in ("nocommands", "-@all"):
        return "-@all"
    sign, body = rule[:1], low[1:]
    if sign not in ("+", "-"):
        raise RuleError("Syntax error")
    if body.startswith("@"):
        if body[1:] not in _CATEGORY_SET:
            raise RuleError(UNKNOWN)
        return sign + body
    if sign == "-" or "|" not in body:
        if _named(body) is None:
            raise RuleError(UNKNOWN)
        return sign + body
    # +name|x: a subcommand of a container, else a first argument.
    split = body.rindex("|")
    cmd = _named(body[:split])
    if cmd is None:
        raise RuleError(UNKNOWN)
    if "|" in cmd.name:
        raise RuleError(FIRSTARG_OF_SUBCOMMAND)
    if split == len(body) - 1:
        raise RuleError("Syntax error")
    if cmd.subcommands:
        if _named(body) is None:
            raise RuleError(UNKNOWN)
        return sign + body
    first = rule[1 + split + 1:]
    if any(c.isspace() for c in first) or "\0" in first:
        # Rules are stored as words; Redis would accept it.
        raise RuleError("a first argument with spaces is not supported by tenantkv")
    return "+%s|%s" % (cmd.name, first)


def add_rule(rules: list, rule: str) -> list:
    """`rules` (normalised) after `rule` (normalised): +@all and -@all replace
    everything before them, as they override it."""
    if rule in ("+@all", "-@all"):
        return [rule]
    return rules + [rule]


def rules_text(rules: list) -> str:
    return " ".join(rules) if rules else "-@all"


class Access:
    """What a rule set allows: `allowed`, the names (of Redis's and
    tenantkv's commands and subcommands) it allows; `future`, whether it
    starts from +@all (Redis's "can run future commands"); `firstargs`,
    command name -> the first arguments (as given) it allows a command whose
    name is not allowed."""

    __slots__ = ("allowed", "future", "firstargs")

    def __init__(self, rules: str) -> None:
        universe = _universe()
        allowed: set = set()
        self.future = False
        firstargs: dict = {}
        for rule in rules.split():
            add = rule[0] == "+"
            body = rule[1:]
            if body == "@all":
                allowed = set(universe.names) if add else set()
                self.future = add
                firstargs.clear()
                continue
            if body.startswith("@"):
                names = universe.affected.get(body[1:], frozenset())
                for name in names:
                    firstargs.pop(name, None)
            else:
                top, _, sub = body.partition("|")
                if sub and not universe.subs.get(top):   # +select|0
                    if add:
                        known = firstargs.setdefault(top, [])
                        if sub.lower() not in (a.lower() for a in known):
                            known.append(sub)
                    continue
                names = {body, *(() if sub else universe.subs.get(body, ()))}
                firstargs.pop(body, None)
            if add:
                allowed |= names
            else:
                allowed -= names
        self.allowed = frozenset(allowed)
        self.firstargs = firstargs


_ACCESS: dict = {}    # rule string -> Access
_TABLES: dict = {}    # rule string -> table
_DESCRIBED: dict = {}  # rule string -> its normalised text


def _cached(cache: dict, rules: str, make):
    value = cache.get(rules)
    if value is None:
        if len(cache) > 1000:   # many distinct rule sets: start over rather than grow
            cache.clear()
        value = cache[rules] = make(rules)
    return value


def access(rules: str) -> Access:
    return _cached(_ACCESS, rules, Access)


def describe(rules: str) -> str:
    """`rules` as Redis shows them (ACL GETUSER's "commands", ACL LIST):
    Redis's ACLDescribeSelectorCommandRules over the same command set."""
    return _cached(_DESCRIBED, rules, _describe)


def _describe(rules: str) -> str:
    universe = _universe()
    user = access(rules)
    additive = not user.future
    out = ["-@all" if additive else "+@all"]
    fake = set() if additive else set(universe.names)
    temp = set(user.allowed)
    applied: set = set()
    while True:
        best, mindiff, maxsame = None, None, 0
        for cat in CATEGORY_ORDER:
            if cat in applied:
                continue
            members = universe.members[cat]
            on = len(members & temp)
            off = len(members) - on
            diff, same = (off, on) if additive else (on, off)
            if same > diff and (mindiff is None or diff < mindiff
                                or (diff == mindiff and same > maxsame)):
                best, mindiff, maxsame = cat, diff, same
        if best is None:
            break
        if additive:
            fake |= universe.affected[best]
            temp -= universe.affected[best]
        else:
            fake -= universe.affected[best]
            temp |= universe.affected[best]
        out.append(("+@" if additive else "-@") + best)
        applied.add(best)
    # Then the single commands that still differ, a container's subcommands
    # after it, and the first arguments of a command not allowed.
    for top, subs in universe.subs.items():
        for name in (top, *subs):
            bit = name in user.allowed
            if bit != (name in fake):
                out.append(("+" if bit else "-") + name)
                changed = {name, *(subs if name == top else ())}
                if bit:
                    fake |= changed
                else:
                    fake -= changed
        if top not in user.allowed:
            out += ["+%s|%s" % (top, arg) for arg in user.firstargs.get(top, ())]
    return " ".join(out)


# -- a user's command table ---------------------------------------------------------------------

def table_for_rules(rules: str) -> dict:
    """The command table (see the module docstring) of a non-root user with `rules`."""
    return _cached(_TABLES, rules, _table)


def _table(rules: str) -> dict:
    user = access(rules)
    names = user.allowed
    table: dict = {}
    for key, cmd in list(LOOKUP.items()):
        if type(key) is bytes:
            if "no_auth" in cmd.flags or (cmd.name in names and not cmd.root_only):
                table[key] = cmd
        elif key in names and not cmd.root_only:   # a subcommand
            table[key] = cmd
    for cmd in visible_commands():
        if cmd.name in names and not cmd.root_only:
            continue
        args = frozenset(a.encode("utf-8", "surrogateescape").lower()
                         for a in user.firstargs.get(cmd.name, ()))
        if cmd.root_only:
            args = (cmd.open_firstargs if cmd.name in names else args) & cmd.open_firstargs
        if args:
            table[cmd.name] = args
    return table


def user_rules(user) -> str:
    rules = getattr(user, "rules", None)
    return rules if rules else DEFAULT_RULES


def command_table(user) -> dict:
    """Root: every command (LOOKUP). Others: what their rules allow, never a
    root-only command (see the module docstring)."""
    if user.root:
        return LOOKUP
    return table_for_rules(user_rules(user))


# -- channel rules ---------------------------------------------------------------------------

def channel_rules(user):
    """The ACL channel patterns of `user` (Redis 7's &pattern), as the
    connection checks them (commands/pubsub.py): None for allchannels, else
    a tuple of patterns (bytes; empty: no channel at all). Root, and a user
    never given channel rules, have all channels: isolation is the tenant,
    so &* reaches only the user's own tenant's channels (README)."""
    text = getattr(user, "channels", None)
    if user.root or text is None:
        return None
    return tuple(p.encode("utf-8", "surrogateescape") for p in text.split())
