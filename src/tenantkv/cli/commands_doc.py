"""The server's COMMAND DOCS, as the interactive client uses them.

`CommandTable.load(conn)` fetches `COMMAND DOCS` once at connect (so the client knows
every command the server has, Redis's or ours) and turns each entry into a `CommandDoc`
with an argument tree (`Arg`) from its `arguments`: tenantkv's COMMAND DOCS is Redis's
(its own commands, KDB and HELP, are documented the same way), so completion, hints and
highlighting work the same way on both. A container whose COMMAND DOCS has no
subcommands gets them from its HELP reply, parsed from syntax lines (`parse_syntax`).

`match(args, words)` walks a tree over the words typed so far; it gives each word a
role (key, token, number, ...) for the highlighter, the remaining syntax for the hint,
and the tokens that may come next for the completer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# --------------------------------------------------------------------------- replies


def plain(value):
    """A reply (whatever reply classes the connection uses) as str/int/list/dict."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):  # resp.Map: a list of (key, value) pairs
        return {plain(k): plain(v) for k, v in value}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def as_map(value) -> dict:
    """A RESP3 map, or RESP2's flat [k, v, k, v ...] list, as a dict."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {value[i]: value[i + 1] for i in range(0, len(value) - 1, 2)}
    return {}


# ------------------------------------------------------------------------ arguments

KEY_NAMES = {"key", "destkey", "source", "destination", "newkey", "key1", "key2", "dst", "src"}
NUMBER_NAMES = {
    "seconds", "milliseconds", "unix-time-seconds", "unix-time-milliseconds", "count", "offset",
    "start", "end", "stop", "index", "timeout", "numkeys", "increment", "decrement", "db",
    "destination-db", "limit", "rank", "num-matches", "len", "min-match-len", "score", "weight",
    "cursor", "bit", "protover", "min", "max",
}


@dataclass
class Arg:
    name: str
    type: str = "string"  # key string integer double pattern unix-time pure-token oneof block
    token: str | None = None
    optional: bool = False
    multiple: bool = False
    multiple_token: bool = False
    children: list[Arg] = field(default_factory=list)
    display: str | None = None

    def render(self, brackets: bool = True) -> str:
        """The argument as redis-cli's hints write it: `[EX seconds|PX milliseconds]`."""
        text = self._body()
        if self.multiple:
            again = self._value()
            if self.multiple_token and self.token:
                again = self.token + (" " + again if again else "")
            text += " [%s ...]" % again
        if self.optional and brackets:
            text = "[%s]" % text
        return text

    def _value(self) -> str:
        if self.type == "oneof":
            return "|".join(child.render() for child in self.children)
        if self.type == "block":
            return " ".join(child.render() for child in self.children)
        if self.type == "pure-token":
            return ""
        return self.display or self.name

    def _body(self) -> str:
        value = self._value()
        if self.token:
            return self.token + (" " + value if value else "")
        return value

    def tokens(self) -> list[str]:
        """Tokens that can start this argument."""
        if self.token:
            return [self.token]
        if self.type == "oneof":
            return [t for child in self.children for t in child.tokens()]
        if self.type == "block" and self.children:
            return self.children[0].tokens()
        return []


def arg_from_doc(doc) -> Arg:
    """An `Arg` from one entry of COMMAND DOCS' `arguments` (Redis 7)."""
    doc = as_map(doc)
    flags = doc.get("flags") or []
    if isinstance(flags, str):
        flags = [flags]
    token = doc.get("token")
    return Arg(
        name=str(doc.get("name", "arg")),
        type=str(doc.get("type", "string")),
        token=str(token) if token is not None else None,
        optional="optional" in flags,
        multiple="multiple" in flags,
        multiple_token="multiple_token" in flags,
        children=[arg_from_doc(child) for child in doc.get("arguments") or []],
        display=doc.get("display_text") or doc.get("display"),
    )


_SYNTAX_TOKEN = re.compile(r"\.\.\.|[\[\]<>|]|[^\s\[\]<>|]+")


def _guess_type(name: str) -> str:
    if name in KEY_NAMES or name.endswith("key"):
        return "key"
    if name in NUMBER_NAMES:
        return "integer"
    if name == "pattern":
        return "pattern"
    return "string"


def _is_token(word: str) -> bool:
    return any(c.isalpha() for c in word) and word.upper() == word


def parse_syntax(syntax: str, skip_words: int = 0) -> list[Arg]:
    """Our server's `syntax` string as an argument tree (Redis's model): upper-case
    words are tokens, `[...]` optional, `<a | b>` and `a|b` one-of, `x [x ...]`
    multiple. `skip_words`: leading words to drop (the command's name)."""
    tokens = _SYNTAX_TOKEN.findall(syntax)
    words = 0
    while words < skip_words and tokens and tokens[0] not in "[]<>|":
        tokens.pop(0)
        words += 1
    pos = 0

    def alternation(closing: str | None) -> list[list[Arg]]:
        nonlocal pos
        alternatives = [sequence(closing)]
        while pos < len(tokens) and tokens[pos] == "|":
            pos += 1
            alternatives.append(sequence(closing))
        if closing is not None and pos < len(tokens) and tokens[pos] == closing:
            pos += 1
        return alternatives

    def sequence(closing: str | None) -> list[Arg]:
        nonlocal pos
        items: list[Arg] = []
        pending_bar = False
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == closing or (closing is None and tok in "]>"):
                break
            if tok == "|":
                # `a|b` binds the neighbours only when written without spaces (LEFT|RIGHT)
                # or between two grouped items of a top-level sequence.
                if closing is not None:
                    break
                pos += 1
                pending_bar = True
                continue
            if tok == "...":
                pos += 1
                if items:
                    items[-1].multiple = True
                continue
            if tok == "[":
                pos += 1
                alternatives = alternation("]")
                if len(alternatives) == 1 and alternatives[0] and _repeats(items, alternatives[0]):
                    continue
                item = _group(alternatives)
                item.optional = True
            elif tok == "<":
                pos += 1
                item = _group(alternation(">"))
            else:
                pos += 1
                if _is_token(tok):
                    values = []
                    while (pos < len(tokens) and tokens[pos] not in "[]<>|..."
                           and not _is_token(tokens[pos])):
                        values.append(tokens[pos])
                        pos += 1
                    if not values:
                        item = Arg(name=tok.lower(), type="pure-token", token=tok)
                    elif len(values) == 1:
                        item = Arg(name=values[0], type=_guess_type(values[0]), token=tok)
                    else:
                        item = Arg(name=tok.lower(), type="block", token=tok,
                                   children=[Arg(name=v, type=_guess_type(v)) for v in values])
                else:
                    item = Arg(name=tok, type=_guess_type(tok))
            if pending_bar and items:
                previous = items.pop()
                if previous.type == "oneof" and not previous.token and not previous.optional:
                    previous.children.append(item)
                    item = previous
                else:
                    item = Arg(name=previous.name + "|" + item.name, type="oneof",
                               children=[previous, item])
            pending_bar = False
            items.append(item)
        return items

    return sequence(None)


def _repeats(items: list[Arg], inner: list[Arg]) -> bool:
    """`key [key ...]` / `field value [field value ...]`: mark the repeated tail of
    `items` multiple (as one block when it is several arguments)."""
    n = len(inner)
    if n == 0 or n > len(items):
        return False
    tail = items[-n:]
    if [a.name for a in tail] != [a.name for a in inner]:
        return False
    if n == 1:
        tail[0].multiple = True
        if inner[0].token and tail[0].token:
            tail[0].multiple_token = True
    else:
        del items[-n:]
        items.append(Arg(name="_".join(a.name for a in tail), type="block", children=tail,
                         multiple=True))
    return True


def _group(alternatives: list[list[Arg]]) -> Arg:
    def one(seq: list[Arg]) -> Arg:
        if len(seq) == 1:
            return seq[0]
        return Arg(name="_".join(a.name for a in seq), type="block", children=seq)

    if len(alternatives) == 1:
        return one(alternatives[0])
    children = [one(seq) for seq in alternatives if seq]
    return Arg(name="|".join(c.name for c in children), type="oneof", children=children)


def render_args(args: list[Arg]) -> str:
    return " ".join(arg.render() for arg in args)


# --------------------------------------------------------------------------- matching


@dataclass
class Match:
    roles: list[str]           # one per word matched: key/token/integer/string/...
    remaining: list[str]       # the syntax left to type, rendered
    next_args: list[Arg]       # arguments that may come at the next word
    done: bool = False         # every word matched (False: more words than the syntax)


def match(args: list[Arg], words: list[str]) -> Match:
    roles: list[str] = []
    w, remaining, nexts = _sequence(args, words, 0, roles)
    if w < len(words):
        roles.extend("string" for _ in words[w:])
    return Match(roles=roles, remaining=remaining if remaining is not None else [],
                 next_args=nexts, done=w >= len(words))


def _role(arg: Arg) -> str:
    if arg.type in ("integer", "double", "unix-time"):
        return "number"
    if arg.type == "key":
        return "key"
    return "string"


def _sequence(args, words, w, roles):
    """Match `args` in order from words[w] (optional tokens in any order, as servers
    accept them). Returns (w, remaining, next_args); remaining is None when the words
    outlasted the sequence."""
    i = 0
    repeated = False
    used: set[int] = set()
    while i < len(args) or (w < len(words) and _free_token(args, used, words[w], i) is not None):
        if w < len(words):
            out_of_order = _free_token(args, used, words[w], i)
            if out_of_order is not None and out_of_order != i:
                result = _match_one(args[out_of_order], words, w, roles)
                if result is not None:
                    used.add(out_of_order)
                    w, partial, nexts = result
                    if partial is not None:
                        return w, partial + _rest(args, i, used), nexts
                    continue
        if i >= len(args):
            break
        arg = args[i]
        if i in used:
            i += 1
            continue
        if w >= len(words):
            parts, nexts = [], []
            if repeated:
                again = Arg(**{**arg.__dict__, "optional": True, "multiple": False})
                if not arg.multiple_token:
                    again.token = None
                parts.append("[%s ...]" % again.render(brackets=False))
                nexts.append(again)
                used.add(i)
                i += 1
            parts += _rest(args, i, used)
            for index, a in enumerate(args):
                if index in used or (index < i and not (a.optional and a.tokens())):
                    continue
                nexts.append(a)
                if not a.optional and index >= i:
                    break
            return w, parts, nexts
        result = _match_one(arg, words, w, roles, repeated)
        if result is None:
            if arg.optional or repeated:
                if repeated:
                    used.add(i)
                i += 1
                repeated = False
                continue
            # A required argument that does not fit: take the word anyway.
            roles.append(_role(arg))
            used.add(i)
            w += 1
            i += 1
            continue
        w, partial, nexts = result
        if partial is not None:
            used.add(i)
            after = _rest(args, i + 1, used)
            if arg.multiple:
                again = Arg(**{**arg.__dict__, "optional": False, "multiple": False})
                if not arg.multiple_token:
                    again.token = None
                after.insert(0, "[%s ...]" % again.render())
            return w, partial + after, nexts
        if arg.multiple:
            repeated = True
        else:
            used.add(i)
            i += 1
    return w, None, []


def _window(args, i):
    """The run of optional arguments around position i (between the required ones
    before and after it): options a server accepts in any order among themselves."""
    lo = i
    while lo > 0 and args[lo - 1].optional:
        lo -= 1
    hi = i
    while hi < len(args) and args[hi].optional:
        hi += 1
    return lo, hi


def _free_token(args, used, word, i):
    """The index of an unused optional argument near i (see `_window`) that `word`
    starts."""
    upper = word.upper()
    lo, hi = _window(args, min(i, len(args)))
    for index in range(lo, hi):
        arg = args[index]
        if index not in used and upper in (t.upper() for t in arg.tokens()):
            return index
    return None


def _rest(args, i, used):
    """The syntax still to type: unused arguments from i, and the unused optional
    ones just before it (they may still come, in any order)."""
    lo, _ = _window(args, min(i, len(args)))
    return [a.render() for index, a in enumerate(args)
            if index not in used and (index >= i or (index >= lo and a.tokens()))]


def _match_one(arg, words, w, roles, repeated=False):
    """Match one argument at words[w]: None (no match) or (w, partial, next_args) where
    partial is the remaining syntax when the words ran out inside the argument."""
    word = words[w].upper()
    token = arg.token
    if repeated and not arg.multiple_token:
        token = None
    if token:
        if word != token.upper():
            return None
        roles.append("token")
        w += 1
        if arg.type == "pure-token":
            return w, None, []
        if arg.type in ("block", "oneof"):
            inner = Arg(**{**arg.__dict__, "token": None, "optional": False, "multiple": False})
            if w >= len(words):
                return w, [inner.render()], [inner]
            return _match_one(inner, words, w, roles)
        if w >= len(words):
            return w, [arg.display or arg.name], [Arg(name=arg.name, type=arg.type)]
        roles.append(_role(arg))
        return w + 1, None, []
    if arg.type == "pure-token":
        return None
    if arg.type == "oneof":
        ordered = sorted(arg.children, key=lambda a: not a.tokens())
        for child in ordered:
            mark = len(roles)
            result = _match_one(child, words, w, roles)
            if result is not None:
                return result
            del roles[mark:]
        return None
    if arg.type == "block":
        if not arg.children:
            return w, None, []
        mark = len(roles)
        first = _match_one(arg.children[0], words, w, roles)
        if first is None:
            del roles[mark:]
            return None
        w, partial, nexts = first
        if partial is not None:
            return w, partial + [a.render() for a in arg.children[1:]], nexts
        w, remaining, nexts = _sequence(arg.children[1:], words, w, roles)
        if remaining is None or w < len(words) or not remaining:
            return w, None, []
        return w, remaining, nexts
    # a plain value: anything fits, except a word that is a token we know comes later
    roles.append(_role(arg))
    return w + 1, None, []


# ---------------------------------------------------------------------------- commands


@dataclass
class CommandDoc:
    name: str                                  # "SET", "CONFIG GET"
    summary: str = ""
    since: str = ""
    group: str = ""
    complexity: str = ""
    args: list[Arg] = field(default_factory=list)
    subcommands: dict[str, CommandDoc] = field(default_factory=dict)
    container: bool = False                    # has subcommands (maybe not known yet)

    @property
    def syntax(self) -> str:
        return render_args(self.args)


def doc_from_reply(name: str, entry) -> CommandDoc:
    entry = as_map(plain(entry))
    display = name.replace("|", " ").upper()
    doc = CommandDoc(name=display, summary=str(entry.get("summary", "")),
                     since=str(entry.get("since", "")), group=str(entry.get("group", "")),
                     complexity=str(entry.get("complexity", "")))
    if "arguments" in entry:
        doc.args = [arg_from_doc(a) for a in entry.get("arguments") or []]
    subs = as_map(entry.get("subcommands") or {})
    for sub_name, sub_entry in subs.items():
        sub = doc_from_reply(str(sub_name), sub_entry)
        doc.subcommands[sub.name.split()[-1]] = sub
    if doc.subcommands:
        doc.container = True
    return doc


_HELP_LINE = re.compile(r"^([A-Z][A-Z0-9_-]*(?:\|[A-Z][A-Z0-9_-]*)*)(\s.*)?$")


def subcommands_from_help(container: str, lines) -> dict[str, CommandDoc]:
    """Subcommands from a container's `HELP` reply (used when COMMAND DOCS has none):
    lines at column 0 begin with the subcommand's name, then its syntax."""
    subs: dict[str, CommandDoc] = {}
    current = None
    for line in lines[1:]:
        line = str(line)
        if line.startswith(" "):
            if current is not None:
                current.summary = (current.summary + " " + line.strip()).strip()
            continue
        found = _HELP_LINE.match(line)
        if not found:
            current = None
            continue
        for name in found.group(1).split("|"):
            syntax = (found.group(2) or "").strip()
            syntax = re.sub(r"<([^<>]+)>", r"\1", syntax)
            current = CommandDoc(name="%s %s" % (container, name), args=parse_syntax(syntax))
            subs[name] = current
    return subs


class CommandTable:
    """Every command the server has, from COMMAND DOCS."""

    def __init__(self, docs: dict[str, CommandDoc] | None = None) -> None:
        self.docs: dict[str, CommandDoc] = docs or {}
        self._helped: set[str] = set()

    @classmethod
    def from_reply(cls, reply) -> CommandTable:
        table = cls()
        for name, entry in as_map(plain(reply)).items():
            doc = doc_from_reply(str(name), entry)
            table.docs[doc.name] = doc
        return table

    @classmethod
    def load(cls, call) -> CommandTable:
        """`call(*args)` sends one command and returns its reply."""
        try:
            return cls.from_reply(call("COMMAND", "DOCS"))
        except Exception:  # noqa: BLE001 - an old server, or not allowed: no docs
            return cls()

    def names(self) -> list[str]:
        return sorted(self.docs)

    def get(self, name: str) -> CommandDoc | None:
        return self.docs.get(name.upper())

    def subcommands(self, name: str, call=None) -> dict[str, CommandDoc]:
        """A container's subcommands; when COMMAND DOCS had none, asked once with
        `<container> HELP` through `call`."""
        doc = self.get(name)
        if doc is None or not doc.container:
            return {}
        if not doc.subcommands and call is not None and doc.name not in self._helped:
            self._helped.add(doc.name)
            try:
                reply = plain(call(doc.name, "HELP"))
            except Exception:  # noqa: BLE001
                reply = None
            if isinstance(reply, list):
                doc.subcommands = subcommands_from_help(doc.name, reply)
        return doc.subcommands

    def resolve(self, words: list[str], call=None) -> tuple[CommandDoc | None, int]:
        """The command (or subcommand) the words name, and how many words name it."""
        if not words:
            return None, 0
        doc = self.get(words[0])
        if doc is None:
            return None, 0
        if doc.container and len(words) > 1:
            sub = self.subcommands(doc.name, call).get(words[1].upper())
            if sub is not None:
                return sub, 2
        return doc, 1

    def groups(self) -> dict[str, list[CommandDoc]]:
        groups: dict[str, list[CommandDoc]] = {}
        for doc in self.docs.values():
            groups.setdefault(doc.group, []).append(doc)
        return groups
