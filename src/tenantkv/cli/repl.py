"""The interactive half of tenantkv-cli: a prompt_toolkit REPL.

`run_repl(conn, options)` is called by `cli/client.py` when stdin and stdout are
terminals and no command is given. `conn` is a `cli.resp.Connection` (connected or
not: the prompt then says `not connected>` as redis-cli's does); `options` is any
object with some of the attributes of `ReplOptions` (an argparse namespace will do).

What it offers, redis-cli's fidelity with iredis's comfort:

- prompt `alice@127.0.0.1:6379[2](TX)>` (user when not `default`, db when not 0,
  `(TX)` inside MULTI), replies in redis-cli's human format (`cli.output`);
- completion of commands, subcommands, tokens and key names, from COMMAND DOCS
  fetched once at connect (`commands_doc`, `completion`);
- redis-cli's hints inline after the cursor (dim), when no suggestion from history
  is shown there; the full syntax and summary of the command in the bottom toolbar;
- highlighting as you type, fish-style suggestions from history, Ctrl-R search;
  history in ~/.tenantkv_history (TENANTKV_HISTFILE) without secret-bearing lines;
- `help`, `help <command>`, `help @<group>`, `peek <key>`, `clear`, `connect host
  port`, `quit`/`exit`, redis-cli's `N command` repeat; Ctrl-C cancels the line,
  Ctrl-D exits;
- reconnects when the connection drops (and says so), as redis-cli does.

Settings come from ~/.tenantkvclirc (TOML; TENANTKV_CLIRC), see `load_rc`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.layout.processors import Processor, Transformation
from prompt_toolkit.shortcuts import clear as clear_screen
from prompt_toolkit.styles import Style

from tenantkv import __version__
from tenantkv.cli.commands_doc import CommandTable, match, plain
from tenantkv.cli.completion import (
    BUILTINS, CommandCompleter, CommandLexer, FilteredFileHistory, KeyCache, hint_for,
    split_args,
)
from tenantkv.cli.output import format_reply, prints_raw, to_bytes
from tenantkv.cli.resp import ConnectError, Error, ProtocolError
from tenantkv.protocol.strict import split_args as split_inline

DEFAULT_HISTORY = "~/.tenantkv_history"
DEFAULT_RC = "~/.tenantkvclirc"

DEFAULT_STYLE = {
    "command": "bold ansiyellow",
    "subcommand": "ansiyellow",
    "builtin": "bold ansimagenta",
    "unknown": "",
    "key": "ansicyan",
    "token": "ansigreen",
    "number": "ansiblue",
    "quoted": "ansibrightgreen",
    "string": "",
    "hint": "#808080",
    "bottom-toolbar": "noreverse #a0a0a0 bg:#202020",
    "toolbar.syntax": "bold",
    "prompt.tx": "ansired",
    "prompt.offline": "ansired",
}


@dataclass
class ReplOptions:
    mode: str = "tty"                 # tty, raw, json (quoted-json, csv)
    color: bool | None = None         # None: when stdout is a terminal (and NO_COLOR unset)
    history_file: str | None = None   # None: TENANTKV_HISTFILE or ~/.tenantkv_history
    history_size: int = 1000
    rc_file: str | None = None
    hints: bool = True
    toolbar: bool = True
    complete_while_typing: bool = False
    peek_items: int = 10
    style: dict = field(default_factory=dict)


def load_rc(path: str | None = None) -> dict:
    """~/.tenantkvclirc (or TENANTKV_CLIRC, or `path`): TOML such as

        host = "127.0.0.1"
        port = 6379
        user = "alice"
        db = 0
        history_file = "~/.tenantkv_history"
        history_size = 1000
        colours = true          # or color
        hints = true                    # redis-cli's hints after the cursor
        toolbar = true                  # syntax and summary of the command
        complete_while_typing = false   # true: the menu opens without Tab (iredis)
        peek_items = 10
        [style]                 # prompt_toolkit styles for the highlighter's classes
        command = "bold #ff8700"

    A missing file is an empty dict; a broken one a warning on stderr. Command-line
    options take precedence (the caller applies them over this)."""
    path = path or os.environ.get("TENANTKV_CLIRC") or DEFAULT_RC
    path = os.path.expanduser(path)
    try:
        with open(path, "rb") as f:
            import tomllib
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        print("Warning: ignoring %s: %s" % (path, exc), file=sys.stderr)
        return {}
    if "colours" in data and "color" not in data:
        data["color"] = data["colours"]
    return data


def make_options(options=None, rc: dict | None = None) -> ReplOptions:
    """ReplOptions from the caller's options (attributes such as raw, no_raw, json,
    history_file, rc_file, color) over the rc file's settings."""
    get = (lambda name, default=None: getattr(options, name, default)) if options else (
        lambda name, default=None: default)
    if isinstance(options, ReplOptions):
        result = options
    else:
        result = ReplOptions()
        mode = get("mode")
        if not mode:
            if get("json"):
                mode = "json"
            elif get("quoted_json"):
                mode = "quoted-json"
            elif get("csv"):
                mode = "csv"
            elif get("raw") and not get("no_raw"):
                mode = "raw"
            else:
                mode = "tty"
        result.mode = mode
        result.history_file = get("history_file")
        result.rc_file = get("rc_file") or get("rc")
        result.color = get("color")
        if get("no_color"):
            result.color = False
    if rc is None:
        rc = load_rc(result.rc_file)
    if result.history_file is None and rc.get("history_file"):
        result.history_file = str(rc["history_file"])
    if "history_size" in rc:
        result.history_size = int(rc["history_size"])
    if result.color is None and "color" in rc:
        result.color = bool(rc["color"])
    for name in ("hints", "toolbar", "complete_while_typing"):
        if name in rc:
            setattr(result, name, bool(rc[name]))
    if "peek_items" in rc:
        result.peek_items = max(1, int(rc["peek_items"]))
    if isinstance(rc.get("style"), dict):
        result.style = {**rc["style"], **result.style}
    return result


def history_path(options: ReplOptions) -> str:
    path = options.history_file or os.environ.get("TENANTKV_HISTFILE") or DEFAULT_HISTORY
    return os.path.expanduser(path)


class HintProcessor(Processor):
    """redis-cli's hints: the syntax still to type, dim, after the cursor (only at
    the end of the line, and only when history offers no suggestion there)."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl

    def apply_transformation(self, ti):
        buffer = ti.buffer_control.buffer
        document = ti.document
        if (not self.repl.options.hints or get_app().is_done
                or ti.lineno != document.line_count - 1
                or (buffer.suggestion and buffer.suggestion.text)
                or not document.is_cursor_at_the_end):
            return Transformation(ti.fragments)
        hint = self.repl.hint(document.text)
        if not hint:
            return Transformation(ti.fragments)
        return Transformation(ti.fragments + [("class:hint", hint)])


class Repl:
    def __init__(self, conn, options: ReplOptions, output=None) -> None:
        self.conn = conn
        self.options = options
        self.out = output or sys.stdout
        self.table = CommandTable()
        self.keys = KeyCache()
        self.in_tx = False
        self.pre_tx_db = 0
        self.server_version = ""
        self._scan_cache: dict[str, tuple[float, list[str]]] = {}
        if options.color is None:
            options.color = self.out.isatty() and not os.environ.get("NO_COLOR")

    # ------------------------------------------------------------------ output

    def write(self, text: str) -> None:
        stream = getattr(self.out, "buffer", None)
        if stream is not None:
            self.out.flush()
            stream.write(to_bytes(text))
            stream.flush()
        else:
            self.out.write(text)
            self.out.flush()

    def paint(self, text: str, code: str) -> str:
        return "\x1b[%sm%s\x1b[0m" % (code, text) if self.options.color else text

    # -------------------------------------------------------------- connection

    def call(self, *args):
        """A command for the REPL's own needs (docs, completion, peek)."""
        if not self.conn.connected:
            raise ConnectError("not connected")
        return self.conn.call(*args)

    def connect(self, announce: bool = False) -> bool:
        try:
            self.conn.connect(strict=False)   # a refused AUTH/SELECT: said, and go on
            for problem in getattr(self.conn, "connect_errors", ()):
                self.write("%s\n" % problem)
        except ConnectError as exc:
            self.write("%s\n" % exc)
            return False
        except Exception as exc:  # noqa: BLE001 - AuthError, SelectError, ProtocolError
            self.conn.close()
            self.write("%s\n" % exc)
            return False
        self.in_tx = False
        if announce:
            self.write("Reconnected to %s:%s.\n" % (self.conn.host, self.conn.port))
        if not self.table.docs:
            self.load_docs()
        return True

    def load_docs(self) -> None:
        self.table = CommandTable.load(self.call)
        self.completer.table = self.table
        self.lexer.table = self.table
        try:
            info = plain(self.call("INFO", "server"))
        except Exception:  # noqa: BLE001
            info = ""
        if isinstance(info, str):
            for line in info.splitlines():
                if line.startswith(("tenantkv_version:", "redis_version:")) and not self.server_version:
                    self.server_version = line.strip().replace("_version:", " ")

    def scan(self, prefix: str) -> list[str]:
        """One cheap SCAN for keys starting with `prefix` (cached a few seconds)."""
        now = time.monotonic()
        cached = self._scan_cache.get(prefix)
        if cached and now - cached[0] < 5:
            return cached[1]
        found: list[str] = []
        if self.conn.connected and not self.in_tx:
            pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
            try:
                reply = plain(self.call("SCAN", "0", "MATCH", pattern, "COUNT", "1000"))
                if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], list):
                    found = [k for k in reply[1] if isinstance(k, str)]
            except Exception:  # noqa: BLE001 - completion never fails the prompt
                found = []
        self._scan_cache[prefix] = (now, found)
        self.keys.add(*found[:200])
        return found

    # ------------------------------------------------------------------ prompt

    def prompt_text(self):
        conn = self.conn
        if not conn.connected:
            return FormattedText([("class:prompt.offline", "not connected"), ("", "> ")])
        text = ""
        if conn.username and conn.username != "default":
            text += "%s@" % conn.username
        text += "%s:%s" % (conn.host, conn.port)
        if conn.db:
            text += "[%s]" % conn.db
        parts = [("class:prompt", text)]
        if self.in_tx:
            parts.append(("class:prompt.tx", "(TX)"))
        parts.append(("", "> "))
        return FormattedText(parts)

    def hint(self, text: str) -> str:
        try:
            return hint_for(self.table, text, self.call_quiet)
        except Exception:  # noqa: BLE001 - never break the prompt over a hint
            return ""

    def call_quiet(self, *args):
        if not self.conn.connected or self.in_tx:
            raise ConnectError("not available")
        return self.conn.call(*args)

    def toolbar(self):
        if not self.options.toolbar:
            return None
        try:
            text = self.session.default_buffer.document.text
        except Exception:  # noqa: BLE001
            return None
        words = split_args(text, partial=True) or []
        if not words:
            return FormattedText([("", " Tab: complete   Ctrl-R: search history   help: help   Ctrl-D: exit")])
        names = [w[2] for w in words]
        if names[0].upper() in BUILTINS and names[0].upper() not in ("HELP",) or (
                names[0].upper() == "HELP" and not self.table.get("HELP")):
            return FormattedText([("class:toolbar.syntax", " %s %s" % (
                names[0].upper(), BUILTINS.get(names[0].upper(), "")))])
        try:
            doc, used = self.table.resolve(names, self.call_quiet)
        except Exception:  # noqa: BLE001
            doc = None
        if doc is None:
            return None
        syntax = doc.syntax if not doc.container else "<subcommand> [arguments ...]"
        parts = [("class:toolbar.syntax", " %s %s" % (doc.name, syntax))]
        if doc.summary:
            parts.append(("", "  %s" % doc.summary))
        if doc.since:
            parts.append(("", " (since %s)" % doc.since))
        return FormattedText(parts)

    # --------------------------------------------------------------------- run

    def build_session(self) -> None:
        self.completer = CommandCompleter(self.table, self.keys, call=self.call_quiet,
                                          scan=self.scan)
        self.lexer = CommandLexer(self.table, call=self.call_quiet)
        path = history_path(self.options)
        try:
            history = FilteredFileHistory(path, self.options.history_size)
            with open(path, "ab"):
                pass
        except OSError:
            history = InMemoryHistory()
        style = Style.from_dict({**DEFAULT_STYLE, **self.options.style})
        self.session = PromptSession(
            history=history,
            completer=self.completer,
            lexer=self.lexer,
            auto_suggest=AutoSuggestFromHistory(),
            complete_while_typing=self.options.complete_while_typing,
            enable_history_search=False,
            input_processors=[HintProcessor(self)],
            bottom_toolbar=self.toolbar if self.options.toolbar else None,
            style=style,
            include_default_pygments_style=False,
            color_depth=None if self.options.color else _monochrome(),
        )

    def run(self) -> int:
        self.build_session()
        if self.conn.connected:
            self.load_docs()
        # else: the caller said why; the prompt says "not connected" and each command
        # tries again, as redis-cli does
        while True:
            try:
                line = self.session.prompt(self.prompt_text)
            except KeyboardInterrupt:
                continue
            except EOFError:
                return 0
            try:
                if self.handle(line) == "quit":
                    return 0
            except KeyboardInterrupt:
                # Ctrl-C while waiting for a reply: the connection's state is unknown.
                self.write("(interrupted)\n")
                self.conn.close()
                self.connect()

    # ----------------------------------------------------------------- a line

    def handle(self, line: str):
        if "\n" in line:  # a pasted block: one command a line, as redis-cli reads them
            for part in line.splitlines():
                if part.strip() and self.handle(part) == "quit":
                    return "quit"
            return None
        # Executed words are split by the server's own inline splitter
        # (protocol/strict.py, redis-cli's sdssplitargs on bytes), so a line
        # means the same here, in `tenantkv-cli CMD ...` and as an inline
        # request; completion.split_args (positions, for hints) only draws.
        words = split_inline(line.encode("utf-8", "surrogateescape"))
        if words is None:
            self.write("Invalid argument(s)\n")
            return None
        args = [w.decode("utf-8", "surrogateescape") for w in words]
        if not args:
            return None
        repeat = 1
        if len(args) > 1 and args[0].isdigit():
            repeat, args = int(args[0]), args[1:]
        name = args[0].lower()
        if name in ("quit", "exit"):
            return "quit"
        if name == ":set" and len(args) == 2 and args[1].lower() in ("hints", "nohints"):
            self.options.hints = args[1].lower() == "hints"   # as redis-cli's :set hints
            return None
        if name == "help" or name == "?":
            self.help(args[1:])
            return None
        if name == "clear":
            clear_screen()
            return None
        if name == "peek":
            if len(args) != 2:
                self.write("(error) usage: peek <key>\n")
            else:
                self.peek(args[1])
            return None
        if name == "connect" and len(args) in (2, 3):
            self.reconnect_to(args[1], int(args[2]) if len(args) == 3 else 6379)
            return None
        for _ in range(max(repeat, 1)):
            if not self.execute(args):
                break
        return None

    def execute(self, args: list[str]) -> bool:
        """Send one command and print its reply (reconnecting once, as redis-cli
        does, when the connection turns out to be gone). False when it failed."""
        if not self.conn.connected and not self.connect():
            return False
        try:
            reply = self.conn.call(*args)
        except (ConnectError, ProtocolError) as exc:
            self.write("Error: %s\n" % exc)
            was_tx = self.in_tx
            self.conn.close()
            self.write("Reconnecting to %s:%s...\n" % (self.conn.host, self.conn.port))
            if not self.connect(announce=True):
                return False
            if was_tx:
                self.write("(the transaction was lost with the connection)\n")
                return False
            try:
                reply = self.conn.call(*args)
            except (ConnectError, ProtocolError) as exc2:
                self.conn.close()
                self.write("Error: %s\n" % exc2)
                return False
        self.after(args, reply)
        self.show(args, reply)
        name = args[0].lower()
        if name in ("subscribe", "psubscribe", "ssubscribe", "monitor") and not isinstance(reply, Error):
            self.listen(args)
        return True

    def show(self, args, reply) -> None:
        try:
            text = format_reply(reply, self.options.mode, color=bool(self.options.color),
                                raw_strings=prints_raw(args) and isinstance(reply, (bytes, str)))
        except TypeError:
            text = repr(reply) + "\n"
        if text and not text.endswith("\n"):
            text += "\n"
        self.write(text)

    def listen(self, args) -> None:
        """SUBSCRIBE / MONITOR: print what arrives until Ctrl-C, then reconnect."""
        name = args[0].lower()
        extra = 0 if name == "monitor" else len(args) - 2
        self.write("Reading messages... (press Ctrl-C to quit)\n")
        try:
            for _ in range(extra):
                self.show(args, self.conn.read_reply())
            while True:
                self.show(args, self.conn.read_reply())
        except KeyboardInterrupt:
            pass
        except ConnectError as exc:
            self.write("Error: %s\n" % exc)
        self.conn.close()
        self.connect()

    def after(self, args, reply) -> None:
        """Follow MULTI/EXEC/DISCARD/SELECT (the prompt) and collect key names."""
        name = args[0].lower()
        failed = isinstance(reply, Error)
        if name == "multi" and len(args) == 1 and not failed:
            self.in_tx = True
            self.pre_tx_db = self.conn.db
        elif name == "exec" and len(args) == 1 and self.in_tx:
            self.in_tx = False
            if failed or reply is None:
                self.conn.db = self.pre_tx_db
        elif name == "discard" and len(args) == 1 and not failed:
            self.in_tx = False
            self.conn.db = self.pre_tx_db
        elif name == "reset" and not failed:
            self.in_tx = False
        if failed:
            return
        if name in ("auth", "hello") and not self.table.docs:
            self.load_docs()  # the server refused COMMAND DOCS before AUTH
        reply_plain = None
        if name in ("keys", "scan", "randomkey"):
            reply_plain = plain(reply)
            if name == "scan" and isinstance(reply_plain, list) and len(reply_plain) == 2:
                reply_plain = reply_plain[1]
            if isinstance(reply_plain, str):
                reply_plain = [reply_plain]
            if isinstance(reply_plain, list):
                self.keys.add(*[k for k in reply_plain[:1000] if isinstance(k, str)])
            return
        try:
            doc, used = self.table.resolve(args, None)
            if doc is None:
                return
            roles = match(doc.args, args[used:]).roles
            keys = [args[used + i] for i, role in enumerate(roles) if role == "key"]
        except Exception:  # noqa: BLE001
            return
        if name in ("del", "unlink") and not self.in_tx:
            self.keys.discard(*keys)
        else:
            self.keys.add(*keys)

    def reconnect_to(self, host: str, port: int) -> None:
        self.conn.close()
        self.conn.host, self.conn.port = host, port
        self.table = CommandTable()
        if self.connect():
            self.load_docs()

    # -------------------------------------------------------------------- help

    def help(self, topics: list[str]) -> None:
        if not topics:
            server = (" (connected to %s)" % self.server_version) if self.server_version else ""
            self.write(
                "tenantkv-cli %s%s\n"
                "To get help about commands type:\n"
                "      \"help @<group>\" to get a list of commands in <group>\n"
                "      \"help <command>\" for help on <command>\n"
                "      \"help <tab>\" to get a list of possible help topics\n"
                "      \"peek <key>\" for a key's type, TTL, encoding, memory and value\n"
                "      \"clear\" to clear the screen, \"quit\" to exit\n"
                "\n"
                "Tab completes commands, options and key names; Ctrl-R searches the history;\n"
                "the right arrow accepts a suggestion from history.\n"
                "Set your preferences in ~/.tenantkvclirc\n" % (__version__, server))
            return
        if topics[0].startswith("@"):
            group = topics[0][1:].lower()
            docs = sorted(self.table.groups().get(group, []), key=lambda d: d.name)
            if not docs:
                self.write("(no commands in group @%s)\n" % group)
                return
            for doc in docs:
                self.write(self.format_help(doc, with_group=False))
            self.write("\n")
            return
        words = [t.upper() for t in topics]
        doc = self.table.get(words[0])
        if doc is not None and len(words) > 1 and doc.container:
            doc = self.table.subcommands(doc.name, self.call_quiet).get(words[1], doc)
        if doc is None:
            self.write("(no help for %s)\n" % " ".join(topics))
            return
        self.write(self.format_help(doc, with_group=True))
        if doc.container and not len(words) > 1:
            for sub in sorted(self.table.subcommands(doc.name, self.call_quiet).values(),
                              key=lambda d: d.name):
                self.write(self.format_help(sub, with_group=False))
        self.write("\n")

    def format_help(self, doc, with_group: bool) -> str:
        """redis-cli's cliOutputCommandHelp."""
        syntax = doc.syntax if not doc.container else "<subcommand> [arguments ...]"
        text = "\n  %s %s\n" % (self.paint(doc.name, "1"), self.paint(syntax, "90"))
        if doc.summary:
            text += "  %s %s\n" % (self.paint("summary:", "33"), doc.summary)
        if doc.since:
            text += "  %s %s\n" % (self.paint("since:", "33"), doc.since)
        if with_group and doc.group:
            text += "  %s %s\n" % (self.paint("group:", "33"), doc.group)
        return text

    # -------------------------------------------------------------------- peek

    def peek(self, key: str) -> None:
        """Type, TTL, encoding, memory and a preview of the value of `key`."""
        if not self.conn.connected and not self.connect():
            return
        if self.in_tx:
            self.write("(error) peek is not available inside MULTI\n")
            return
        n = self.options.peek_items
        try:
            kind = plain(self.conn.call("TYPE", key))
            if isinstance(reply_error := kind, Error) or kind == "none":
                self.write("(key %s does not exist)\n" % _show_key(key) if kind == "none"
                           else "(error) %s\n" % reply_error)
                return
            lines = [("key", _show_key(key)), ("type", kind)]
            ttl = self.conn.call("PTTL", key)
            if isinstance(ttl, int):
                lines.append(("ttl", "no expiry" if ttl < 0 else _duration(ttl)))
            encoding = self.conn.call("OBJECT", "ENCODING", key)
            if not isinstance(encoding, Error) and encoding is not None:
                lines.append(("encoding", plain(encoding)))
            memory = self.conn.call("MEMORY", "USAGE", key)
            if isinstance(memory, int) and not isinstance(memory, Error):
                lines.append(("memory", "%d bytes" % memory))
            length_cmd = {"string": "STRLEN", "list": "LLEN", "set": "SCARD", "zset": "ZCARD",
                          "hash": "HLEN", "stream": "XLEN"}.get(kind)
            length = self.conn.call(length_cmd, key) if length_cmd else None
            if isinstance(length, int):
                unit = {"string": "bytes", "hash": "fields", "zset": "members", "set": "members",
                        "list": "elements", "stream": "entries"}[kind]
                lines.append(("length", "%d %s" % (length, unit)))
            preview = self._preview(kind, key, n)
        except (ConnectError, ProtocolError) as exc:
            self.conn.close()
            self.write("Error: %s\n" % exc)
            return
        self.keys.add(key)
        width = max(len(label) for label, _ in lines) + 1
        text = "".join("%s %s\n" % (self.paint((label + ":").ljust(width), "33"), value)
                       for label, value in lines)
        if preview is not None:
            label, reply = preview
            body = format_reply(reply, "tty", color=bool(self.options.color))
            text += "%s\n" % self.paint(label + ":", "33")
            text += "".join("  %s\n" % row for row in body.rstrip("\n").split("\n"))
        self.write(text)

    def _preview(self, kind: str, key: str, n: int):
        call = self.conn.call
        if kind == "string":
            value = call("GETRANGE", key, "0", str(256 - 1))
            return ("value (first 256 bytes)", value)
        if kind == "list":
            return ("first %d elements" % n, call("LRANGE", key, "0", str(n - 1)))
        if kind == "zset":
            return ("first %d members with scores" % n,
                    call("ZRANGE", key, "0", str(n - 1), "WITHSCORES"))
        if kind == "set":
            reply = call("SSCAN", key, "0", "COUNT", str(n))
            items = reply[1] if isinstance(reply, list) and len(reply) == 2 else reply
            return ("some members", type(items)(list(items)[:n]) if isinstance(items, list) else items)
        if kind == "hash":
            reply = call("HSCAN", key, "0", "COUNT", str(n))
            items = reply[1] if isinstance(reply, list) and len(reply) == 2 else reply
            if isinstance(items, list):
                items = items[:2 * n]
            return ("some fields and values", items)
        if kind == "stream":
            return ("first %d entries" % n, call("XRANGE", key, "-", "+", "COUNT", str(n)))
        return None


def _show_key(key: str) -> str:
    return format_reply(key.encode("utf-8", "surrogateescape"), "tty").rstrip("\n")


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return "%d ms (%.1f s)" % (ms, seconds)
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (sec, "s")]
    return "%d ms (%s)" % (ms, " ".join("%d%s" % (v, u) for v, u in parts if v))


def _monochrome():
    from prompt_toolkit.output.color_depth import ColorDepth
    return ColorDepth.DEPTH_1_BIT


def run_repl(conn, options=None) -> int:
    """The interactive client on `conn` (a `cli.resp.Connection`); returns the exit
    status. `options`: ReplOptions, or any object with some of its attributes (or
    raw/no_raw/json/history_file/rc_file/color)."""
    return Repl(conn, make_options(options)).run()


def main(argv=None) -> int:
    """`python -m tenantkv.cli.repl [-h host] [-p port] [-n db] [--user u] [-3]`:
    the REPL alone (tenantkv-cli is the full client)."""
    import argparse

    from tenantkv.cli.resp import Connection

    parser = argparse.ArgumentParser(prog="python -m tenantkv.cli.repl", add_help=False)
    parser.add_argument("--help", action="help")
    parser.add_argument("-h", dest="host")
    parser.add_argument("-p", dest="port", type=int)
    parser.add_argument("-n", dest="db", type=int)
    parser.add_argument("--user")
    parser.add_argument("-a", "--pass", dest="password")
    parser.add_argument("-3", dest="protocol", action="store_const", const=3, default=2)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--no-raw", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rc", dest="rc_file")
    parser.add_argument("--history-file")
    args = parser.parse_args(argv)
    rc = load_rc(args.rc_file)
    password = args.password or os.environ.get("TENANTKV_PASSWORD") or rc.get("password")
    conn = Connection(args.host or rc.get("host", "127.0.0.1"), args.port or int(rc.get("port", 6379)),
                      username=args.user or rc.get("user"), password=password,
                      db=args.db if args.db is not None else int(rc.get("db", 0)),
                      protocol=args.protocol)
    try:
        conn.connect(strict=False)
        for problem in conn.connect_errors:
            print(problem)
    except ConnectError as exc:
        print(exc)
    return Repl(conn, make_options(args, rc)).run()


if __name__ == "__main__":
    sys.exit(main())
