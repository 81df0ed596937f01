"""What a user may run: its command table, computed once per rule set.

The connection looks commands up in its user's table, so a permission check
costs nothing per command: a command missing from the table goes to the
general path, which answers NOPERM.

Rules are Redis's ACL command rules, applied in order: `+@all`/`allcommands`,
`-@all`/`nocommands`, `+@category`, `-@category`, `+command`, `-command`.
Categories are Redis's, from the command table (COMMAND INFO reports the
same), but for containers: see CONTAINER_CATEGORIES.

Two tenantkv decisions, both deliberate differences from Redis:

- Isolation is the tenant, not the rules: a non-root user never gets an
  admin command (flag "admin": DEBUG, SHUTDOWN, ...; CONFIG, KDB), whatever its
  rules say. Rules can only narrow what a user runs in its own tenant; root
  (`root_user`) runs every command.
- A user without rules (made offline by `tenantkv user add`, or by ACL
  SETUSER without command rules) has DEFAULT_RULES, `+@all`: every
  non-admin command, so normal data commands work. (Redis starts new users at
  `-@all`, which makes sense only together with key patterns.)

The no-auth commands (AUTH, HELLO, QUIT, RESET) stay in every table, as in
Redis, where a `-@all` user may still AUTH as someone else.
"""

from tenantkv.dispatch.table import COMMANDS, HIDDEN, LOOKUP

DEFAULT_RULES = "+@all"

# Redis lists a command's ACL categories in the order of its category table
# (also the order of ACL CAT).
CATEGORY_ORDER = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                  "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                  "blocking", "dangerous", "connection", "transaction", "scripting"]
_CATEGORY_SET = frozenset(CATEGORY_ORDER)

# Rules allow or deny a container (CONFIG, CLIENT, OBJECT, ...) as a whole
# until call() checks them subcommand by subcommand (issue 12's dispatch
# layer). Redis gives a container itself no flags and only @slow, so its
# rules use these categories instead (those of its subcommands that matter
# for the whole), and a container with @admin here is root-only as a whole,
# as a command flagged "admin" is.
CONTAINER_CATEGORIES = {
    "acl": ("slow",),                            # its admin subcommands check root themselves
    "client": ("slow", "connection"),
    "config": ("admin", "slow", "dangerous"),
    "kdb": ("admin", "slow", "dangerous"),       # but EXPORT/IMPORT: open_subcommands
    "memory": ("read", "slow"),
    "object": ("keyspace", "read", "slow"),
}


def categories(cmd) -> tuple:
    """`cmd`'s ACL categories for the rules (names without '@', in Redis's
    order): the command table's, which are Redis's (COMMAND INFO), except for
    the containers above."""
    return CONTAINER_CATEGORIES.get(cmd.name, cmd.acl_categories)


def root_only(cmd) -> bool:
    """Whether only root may run `cmd` whatever the rules say (see the module docstring)."""
    return "admin" in cmd.flags or "admin" in CONTAINER_CATEGORIES.get(cmd.name, ())


def visible_commands() -> list:
    """Commands a user can name in a rule (not the HTTP guards)."""
    return [c for c in COMMANDS.values() if c.name not in HIDDEN]


def commands_in(category: str) -> list:
    return [c for c in visible_commands() if category in categories(c)]


class RuleError(ValueError):
    """A rule Redis would refuse; str() is the reason, as in Redis's
    "Error in ACL SETUSER modifier '<rule>': <reason>"."""


UNKNOWN = "Unknown command or category name in ACL"


def check_rule(rule: str) -> str:
    """The normalised form of command rule `rule` (lower-case; allcommands ->
    +@all, nocommands -> -@all), or RuleError. Callers pass only tokens that
    start with + or - or are allcommands/nocommands."""
    low = rule.lower()
    if low == "allcommands":
        return "+@all"
    if low == "nocommands":
        return "-@all"
    if len(low) < 2 or low[0] not in "+-":
        raise RuleError("Syntax error")
    body = low[1:]
    if body.startswith("@"):
        if body[1:] != "all" and body[1:] not in _CATEGORY_SET:
            raise RuleError(UNKNOWN)
        return low
    if "|" in body:
        # Rules per subcommand (+config|get) would need a table per
        # subcommand; refused rather than applied coarsely, so a rule never
        # grants or denies more than it says.
        name = body.split("|", 1)[0]
        if name not in COMMANDS:
            raise RuleError(UNKNOWN)
        raise RuleError("rules for subcommands are not supported by tenantkv; "
                        "allow or deny the whole command")
    if body not in COMMANDS or body in HIDDEN:
        raise RuleError(UNKNOWN)
    return low


def add_rule(rules: list, rule: str) -> list:
    """`rules` (normalised) after `rule` (normalised): +@all and -@all replace
    everything before them, as they override it."""
    if rule in ("+@all", "-@all"):
        return [rule]
    return rules + [rule]


def rules_text(rules: list) -> str:
    return " ".join(rules) if rules else "-@all"


def allowed_names(rules: str) -> set:
    """The names of the commands `rules` allow, before the root-only cut."""
    allowed: set = set()
    every = {c.name for c in visible_commands()}
    for rule in rules.split():
        add = rule[0] == "+"
        body = rule[1:]
        if body == "@all":
            names = every
        elif body.startswith("@"):
            names = {c.name for c in commands_in(body[1:])}
        else:
            names = {body}
        if add:
            allowed |= names
        else:
            allowed -= names
    return allowed


_TABLES: dict = {}   # rule string -> table


def table_for_rules(rules: str) -> dict:
    """The raw-name -> Command table of a non-root user with `rules`."""
    table = _TABLES.get(rules)
    if table is None:
        names = allowed_names(rules)
        table = {raw: cmd for raw, cmd in LOOKUP.items()
                 if "no_auth" in cmd.flags or (cmd.name in names and not root_only(cmd))}
        if len(_TABLES) > 1000:   # many distinct rule sets: start over rather than grow
            _TABLES.clear()
        _TABLES[rules] = table
    return table


def user_rules(user) -> str:
    rules = getattr(user, "rules", None)
    return rules if rules else DEFAULT_RULES


def command_table(user) -> dict:
    """Root: every command. Others: what their rules allow, never an admin
    command (see the module docstring)."""
    if user.root:
        return LOOKUP
    return table_for_rules(user_rules(user))


def allows(user, cmd) -> bool:
    """Whether `user` may run `cmd` (ACL DRYRUN)."""
    if user.root:
        return True
    return command_table(user).get(cmd.name.encode()) is cmd
