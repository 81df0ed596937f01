"""One declarative parser for a command's options, with Redis's rules.

A command declares its options once, at import:

    SET_OPTIONS = Options(
        Flag("NX", dest="condition"), Flag("XX", dest="condition"), Flag("GET"),
        Flag("KEEPTTL"), Value("EX", dest="expire"), Value("PX", dest="expire"), ...,
        exclusive=[("NX", "XX"), ("EX", "PX", "EXAT", "PXAT", "KEEPTTL")])

and reads a request's options with `SET_OPTIONS.parse(args, 3)`: a dict of
what was given. An option is stored under its name in lower case ("nx": True,
"ex": b"10", "limit": (0, 5)). Options that share a `dest` (one of them at a
time, by an exclusive group) are also stored there, as the option's name
("condition": "nx") or, for an option with values, as (name, value)
("expire": ("ex", b"10")), and under their own name as True. What is not
given is absent.

The rules are those of Redis's hand-written loops (parseExtendedStringArguments,
zrangeGenericCommand, zaddGenericCommand, scanGenericCommand, ...), so the same
request gets the same error:

- An option's name is compared case-insensitively as a C string: up to the
  first NUL byte, as strcasecmp compares it ("nx\\0junk" is NX).
- Tokens are read left to right, and an option's values are read and checked
  (`parse`) as its name is met: the first bad token answers.
- A token that names no option, an option without enough values after it, a
  `once` option given twice, or an option that breaks an exclusive group, is
  `unknown(token)`: ERR syntax error unless the spec says otherwise (EXPIRE:
  "Unsupported option ..."), as all of them fall to the last `else` in Redis.
- `exclusive` groups: an option whose group already holds another option is
  refused where it stands (Redis tests its flags inside the condition of
  each token: `SET k v NX XX`, `SET k v EX 1 PX 1`, `ZRANGE k 0 1 BYSCORE BYLEX`).
  The same option again is allowed, and the last value wins (`SET k v EX 1 EX 2`).
- `incompatible` rules are checked once the tokens are read, in their order,
  each with its own error (Redis's `if (nx && xx) addReplyError(...)` after
  the loop: ZADD, EXPIRE).

What depends on more than the tokens (LIMIT only with BYSCORE or BYLEX, whose
"rank" default comes from the command's name; a value whose check needs the
keyspace) stays with the command.
"""

from types import MappingProxyType

from tenantkv import errors
from tenantkv.errors import CommandError

# Option arities besides a number: as many values as the command's numkeys
# (ZUNION's WEIGHTS), or every argument left, at least one (CLIENT LIST ID).
NUMKEYS = "numkeys"
REST = "rest"


def option_name(raw: bytes) -> bytes:
    """A token as Redis compares it with an option's name: case-insensitive,
    up to a NUL byte (a C string)."""
    name = raw.lower()
    if b"\0" in name:
        name = name[:name.index(b"\0")]
    return name


def _syntax_error(token: bytes) -> str:
    return errors.SYNTAX


_NOTHING = MappingProxyType({})   # parse_prefix's answer when no option leads


class Flag:
    """An option without a value: NX, WITHSCORES, REV."""

    __slots__ = ("name", "dest", "once")
    nargs = 0
    parse = None
    context = False

    def __init__(self, name: str, dest: str | None = None, once: bool = False) -> None:
        self.name = name.lower()
        self.dest = dest          # None: stored under its own name only
        self.once = once          # given twice: a syntax error (ZRANGE's REV, BYSCORE)


class Value:
    """An option followed by `nargs` values: EX seconds, LIMIT offset count,
    WEIGHTS w1 ... wN (nargs=NUMKEYS), ID id [id ...] (nargs=REST).

    `parse(raw)` checks and converts each value as it is read (raising
    CommandError), or, with `context`, `parse(raw, context)` with the context
    given to Options.parse (CLIENT KILL USER asks the connection). Without
    `parse` the value stays as sent (bytes). One value is stored as is,
    several as a tuple (a list for NUMKEYS and REST)."""

    __slots__ = ("name", "dest", "once", "nargs", "parse", "context")

    def __init__(self, name: str, nargs=1, parse=None, dest: str | None = None,
                 once: bool = False, context: bool = False) -> None:
        self.name = name.lower()
        self.dest = dest
        self.once = once
        self.nargs = nargs
        self.parse = parse
        self.context = context

    def read(self, args: list, i: int, count: int, context):
        """The value(s) of the option at args[i], `count` of them."""
        parse = self.parse
        if self.nargs == 1:
            raw = args[i + 1]
            if parse is None:
                return raw
            return parse(raw, context) if self.context else parse(raw)
        raws = args[i + 1:i + 1 + count]
        if parse is not None:
            raws = [parse(raw, context) if self.context else parse(raw) for raw in raws]
        if self.nargs in (NUMKEYS, REST):
            return list(raws)
        return tuple(raws)


def choice(*names: str, error: str = errors.SYNTAX):
    """A `parse` for a value that is one of `names` (AGGREGATE SUM|MIN|MAX):
    the name in lower case, or `error`."""
    allowed = {name.lower().encode(): name.lower() for name in names}

    def parse(raw: bytes) -> str:
        found = allowed.get(option_name(raw))
        if found is None:
            raise CommandError(error)
        return found
    return parse


class Options:
    """The options of one command (or one form of it): see the module's text."""

    __slots__ = ("options", "table", "incompatible", "ruled", "unknown")

    def __init__(self, *options, exclusive=(), incompatible=(), unknown=_syntax_error) -> None:
        self.options = {option.name: option for option in options}
        # Option name -> the names it cannot join (its exclusive groups, less itself).
        excludes: dict = {}
        for group in exclusive:
            group = [name.lower() for name in group]
            for name in group:
                if name not in self.options:
                    raise ValueError("exclusive group names an unknown option: %s" % name)
                others = excludes.setdefault(name, [])
                others.extend(n for n in group if n != name and n not in others)
        # What the loop needs of each option, in one tuple per token (this runs
        # for every SET with options: attribute lookups and calls add up).
        self.table = {
            option.name.encode(): (
                option.name, option.nargs, option.once, tuple(excludes.get(option.name, ())),
                option.dest, option.parse, option.context, option.nargs == 1)
            for option in options}
        # [(names, error)]: at most one of `names`, checked after the tokens.
        self.incompatible = [(tuple(name.lower() for name in names), error)
                             for names, error in incompatible]
        for names, _ in self.incompatible:
            for name in names:
                if name not in self.options:
                    raise ValueError("incompatible rule names an unknown option: %s" % name)
        self.ruled = frozenset(name for names, _ in self.incompatible for name in names)
        self.unknown = unknown   # token -> the error text for a token that is no option

    def parse(self, args: list, start: int, numkeys: int = 0, context=None) -> dict:
        """The options in args[start:]; every token must be one. `numkeys`:
        the count of a NUMKEYS option's values; `context`: see Value."""
        found = self._scan(args, start, numkeys, context, True)[0]
        if self.incompatible:
            self.check(found)
        return found

    def parse_prefix(self, args: list, start: int, context=None) -> tuple:
        """(options, index of the first token that is not one): the options
        that lead the arguments, as ZADD's before its score-member pairs.
        The `incompatible` rules are left to `check`, which the command calls
        when Redis does (ZADD counts its pairs first)."""
        token = args[start] if start < len(args) else None
        if token is not None and token.lower() not in self.table and b"\0" not in token:
            return _NOTHING, start   # the usual case: no option at all
        return self._scan(args, start, 0, context, False)

    def check(self, found: dict) -> None:
        """The `incompatible` rules, in order: the first one broken answers."""
        ruled = 0
        for name in found:
            if name in self.ruled:
                ruled += 1
        if ruled < 2:
            return   # no rule can be broken by fewer than two of its options
        for names, error in self.incompatible:
            present = 0
            for name in names:
                if name in found:
                    present += 1
            if present > 1:
                raise CommandError(error)

    def _scan(self, args: list, i: int, numkeys: int, context, strict: bool) -> tuple:
        found: dict = {}
        n = len(args)
        table = self.table
        while i < n:
            token = args[i]
            entry = table.get(token.lower())
            if entry is None:
                if b"\0" in token:
                    entry = table.get(option_name(token))
                if entry is None:
                    if strict:
                        raise CommandError(self.unknown(token))
                    break
            name, nargs, once, excluded, dest, parse, with_context, single = entry
            if nargs.__class__ is str:
                nargs = numkeys if nargs == NUMKEYS else max(n - i - 1, 1)
            if i + nargs >= n or (once and name in found):
                raise CommandError(self.unknown(token))
            for other in excluded:
                if other in found:
                    raise CommandError(self.unknown(token))
            if nargs == 0:
                found[name] = True
                if dest is not None:
                    found[dest] = name
                i += 1
                continue
            if single:
                value = args[i + 1]
                if parse is not None:
                    value = parse(value, context) if with_context else parse(value)
            else:
                value = self.options[name].read(args, i, nargs, context)
            if dest is None:
                found[name] = value
            else:
                found[dest] = (name, value)
                found[name] = True
            i += nargs + 1
        return found, i
