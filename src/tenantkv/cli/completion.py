"""Completion, hints, highlighting and history for the interactive client.

Everything here works from a `CommandTable` (the server's COMMAND DOCS): the word
being typed is completed against the command names, a container's subcommands, the
tokens the argument tree allows next (`SET k v <Tab>` offers NX XX GET EX ...), and
key names seen in earlier replies (or found by one cheap SCAN) where a key goes.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict

from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from prompt_toolkit.lexers import Lexer

from tenantkv.cli.commands_doc import CommandTable, match

# Commands of the REPL itself (not sent to the server).
BUILTINS = {
    "HELP": "help <command> | help @<group> | help",
    "PEEK": "key",
    "CLEAR": "",
    "QUIT": "",
    "EXIT": "",
    "CONNECT": "host port",
}

# ----------------------------------------------------------------------- splitting


_HEX = re.compile(r"[0-9a-fA-F]{2}")


def split_args(line: str, partial: bool = False):
    """Split a line as redis-cli's sdssplitargs does ("..." with escapes, '...').
    Returns a list of (start, end, text). A line with unbalanced quotes gives None,
    unless `partial` (then the open word runs to the end of the line)."""
    words = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            return words
        start = i
        buf = []
        quote = None
        while i < n:
            c = line[i]
            if quote == '"':
                if c == "\\" and i + 3 < n and line[i + 1] == "x" and _HEX.fullmatch(line[i + 2:i + 4]):
                    buf.append(chr(int(line[i + 2:i + 4], 16)))
                    i += 4
                    continue
                if c == "\\" and i + 1 < n:
                    buf.append({"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(
                        line[i + 1], line[i + 1]))
                    i += 2
                    continue
                if c == '"':
                    quote = None
                    i += 1
                    if i < n and not line[i].isspace():
                        return None if not partial else words + [(start, n, "".join(buf))]
                    break
                buf.append(c)
                i += 1
            elif quote == "'":
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    buf.append("'")
                    i += 2
                    continue
                if c == "'":
                    quote = None
                    i += 1
                    if i < n and not line[i].isspace():
                        return None if not partial else words + [(start, n, "".join(buf))]
                    break
                buf.append(c)
                i += 1
            else:
                if c.isspace():
                    break
                if c in "\"'" and not buf:
                    quote = c
                    i += 1
                    continue
                buf.append(c)
                i += 1
        if quote is not None:
            if not partial:
                return None
            words.append((start, n, "".join(buf)))
            return words
        words.append((start, i, "".join(buf)))


# ---------------------------------------------------------------------------- keys


class KeyCache:
    """Key names seen in earlier commands and replies (most recent first), and the
    results of cheap SCANs for a prefix."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self.keys: OrderedDict[str, None] = OrderedDict()
        self.scanned: dict[str, float] = {}

    def add(self, *keys) -> None:
        for key in keys:
            if isinstance(key, bytes):
                key = key.decode("utf-8", "replace")
            if not isinstance(key, str) or not key:
                continue
            self.keys.pop(key, None)
            self.keys[key] = None
        while len(self.keys) > self.size:
            self.keys.popitem(last=False)

    def discard(self, *keys) -> None:
        for key in keys:
            self.keys.pop(key, None)

    def matching(self, prefix: str) -> list[str]:
        low = prefix.lower()
        return [k for k in reversed(self.keys) if k.lower().startswith(low)]


# ----------------------------------------------------------------------- completion


class CommandCompleter(Completer):
    """Completes command names, subcommands, tokens and keys (case-insensitive)."""

    def __init__(self, table: CommandTable, keys: KeyCache, call=None, scan=None) -> None:
        self.table = table
        self.keys = keys
        self.call = call          # call(*args) -> reply: asks a container's HELP once
        self.scan = scan          # scan(prefix) -> list of keys: a cheap SCAN

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        words = split_args(text, partial=True) or []
        if words and words[-1][1] == len(text) and not text[-1:].isspace():
            current = words[-1][2]
            before = [w[2] for w in words[:-1]]
            start = -(len(text) - words[-1][0])
        else:
            current, before, start = "", [w[2] for w in words], 0
        for value, meta in self.candidates(before, current):
            yield Completion(value, start_position=start, display_meta=meta)

    def candidates(self, before: list[str], current: str):
        """(completion, description) for the word `current` after the words `before`."""
        upper = current.upper()
        lower_case = current != "" and current == current.lower()

        def fit(word: str) -> str:
            return word.lower() if lower_case else word

        if not before:
            names = [(n, self.table.docs[n].summary) for n in self.table.names()]
            names += [(n, "tenantkv-cli") for n in BUILTINS if n not in self.table.docs]
            for name, meta in sorted(names):
                if name.startswith(upper):
                    yield fit(name), meta
            return
        head = before[0].upper()
        if head == "HELP" and len(before) == 1:
            if current.startswith("@"):
                for group in sorted(self.table.groups()):
                    if ("@" + group).startswith(current.lower()):
                        yield "@" + group, "group"
                return
            for name in self.table.names():
                if name.startswith(upper):
                    yield fit(name), self.table.docs[name].summary
            return
        if head == "PEEK" and len(before) == 1:
            yield from self._keys(current)
            return
        doc = self.table.get(head)
        if doc is None:
            return
        if doc.container and len(before) == 1:
            for name, sub in sorted(self.table.subcommands(doc.name, self.call).items()):
                if name.startswith(upper):
                    yield fit(name), sub.summary
            return
        doc, used = self.table.resolve(before, self.call)
        found = match(doc.args, before[used:])
        seen = set()
        want_key = False
        for arg in found.next_args:
            for token in arg.tokens():
                if token.upper().startswith(upper) and token.upper() not in seen:
                    seen.add(token.upper())
                    yield fit(token), arg.name
            if arg.type == "key" and not arg.token:
                want_key = True
        if want_key:
            yield from self._keys(current)

    def _keys(self, prefix: str):
        found = self.keys.matching(prefix)
        if len(found) < 50 and self.scan is not None:
            for key in self.scan(prefix):
                if key not in found:
                    found.append(key)
        for key in found[:200]:
            yield _quote(key), "key"


def _quote(word: str) -> str:
    if word and not any(c.isspace() or c in "\"'\\" for c in word) and word.isprintable():
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in escaped)
    return '"%s"' % escaped


# ---------------------------------------------------------------------------- hints


def hint_for(table: CommandTable, text: str, call=None) -> str:
    """The argument syntax still to type after `text`, as redis-cli's hints: the
    words typed count as given (a word being typed too, the hint then starts with a
    space), `SET k` -> ` value [NX|XX] ...`. '' when nothing fits."""
    words = split_args(text, partial=True)
    if not words:
        return ""
    names = [w[2] for w in words]
    lead = "" if text[-1:].isspace() else " "
    head = names[0].upper()
    doc = table.get(head)
    if head in BUILTINS:
        if len(names) == 1 and BUILTINS[head]:
            return lead + BUILTINS[head]
        return ""
    if doc is None:
        return ""
    if doc.container and len(names) == 1:
        subs = table.subcommands(doc.name, call)
        return lead + ("|".join(sorted(subs)) if subs else "subcommand [arguments ...]")
    doc, used = table.resolve(names, call)
    found = match(doc.args, names[used:])
    if not found.done or not found.remaining:
        return ""
    return lead + " ".join(found.remaining)


# ------------------------------------------------------------------------- lexing


class CommandLexer(Lexer):
    """Colours the line as you type: command, subcommand, keys, tokens, numbers,
    strings (quoted), unknown commands."""

    def __init__(self, table: CommandTable, call=None) -> None:
        self.table = table
        self.call = call

    def styles(self, text: str):
        """[(style, text)] for one line."""
        words = split_args(text, partial=True) or []
        names = [w[2] for w in words]
        roles: list[str] = []
        if names:
            head = names[0].upper()
            doc = self.table.get(head)
            if doc is not None:
                roles.append("command")
                resolved, used = self.table.resolve(names, self.call)
                if used == 2:
                    roles.append("subcommand")
                roles += match(resolved.args, names[used:]).roles
            elif head in BUILTINS:
                roles.append("builtin")
                roles += ["key" if head == "PEEK" else "string"] * (len(names) - 1)
            else:
                roles.append("unknown")
                roles += ["string"] * (len(names) - 1)
        out = []
        pos = 0
        for (start, end, word), role in zip(words, roles):
            if start > pos:
                out.append(("", text[pos:start]))
            piece = text[start:end]
            if role == "string" and piece[:1] in "\"'":
                role = "quoted"
            elif role == "string" and _NUMBER.fullmatch(word):
                role = "number"
            out.append(("class:" + role, piece))
            pos = end
        if pos < len(text):
            out.append(("", text[pos:]))
        return out

    def lex_document(self, document):
        lines = document.lines

        def get_line(lineno):
            try:
                return self.styles(lines[lineno])
            except Exception:  # noqa: BLE001 - never break the prompt over colours
                return [("", lines[lineno])]

        return get_line


_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|[-+]?inf")


# --------------------------------------------------------------------------- history


def is_sensitive(args: list[str]) -> bool:
    """Lines redis-cli keeps out of its history (isSensitiveCommand): AUTH, ACL
    SETUSER, HELLO ... AUTH, MIGRATE ... AUTH/AUTH2, CONFIG SET of a password."""
    if not args:
        return False
    words = [a.lower() for a in args]
    name = words[0]
    if name == "auth":
        return True
    if name == "acl" and len(words) > 1 and words[1] == "setuser":
        return True
    if name == "hello" and "auth" in words[2:]:
        return True
    if name == "migrate" and ("auth" in words[3:] or "auth2" in words[3:]):
        return True
    if name == "config" and len(words) > 2 and words[1] == "set":
        secrets = {"masterauth", "masteruser", "requirepass", "tls-key-file-pass",
                   "tls-client-key-file-pass"}
        return any(w in secrets for w in words[2::2])
    return False


def line_is_sensitive(line: str) -> bool:
    words = split_args(line, partial=True)
    if not words:
        return False
    args = [w[2] for w in words]
    # "3 AUTH x" (redis-cli's repeat prefix) is as secret as "AUTH x"
    if len(args) > 1 and args[0].isdigit():
        args = args[1:]
    return is_sensitive(args)


class FilteredFileHistory(FileHistory):
    """~/.tenantkv_history without secret-bearing lines, at most `size` entries."""

    def __init__(self, filename: str, size: int = 1000) -> None:
        self.size = size
        super().__init__(filename)
        self._trim()

    def append_string(self, string: str) -> None:
        if line_is_sensitive(string):
            return
        super().append_string(string)

    def store_string(self, string: str) -> None:
        if line_is_sensitive(string):
            return
        super().store_string(string)

    def load_history_strings(self):
        for i, line in enumerate(super().load_history_strings()):
            if self.size and i >= self.size:
                break
            yield line

    def _trim(self) -> None:
        """Rewrite the file when it holds more than twice `size` entries."""
        try:
            with open(self.filename, "rb") as f:
                data = f.read()
        except OSError:
            return
        entries = data.split(b"\n# ")
        if not self.size or len(entries) <= 2 * self.size:
            return
        lines = list(super().load_history_strings())[:self.size]
        try:
            with open(self.filename, "wb") as f:
                for line in reversed(lines):
                    f.write(("\n# %s\n" % time.strftime("%Y-%m-%d %H:%M:%S")).encode())
                    for part in line.split("\n"):
                        f.write(("+%s\n" % part).encode("utf-8"))
        except OSError:
            pass
