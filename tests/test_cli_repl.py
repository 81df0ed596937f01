"""tenantkv-cli's interactive REPL (issue 6): driven in a pseudo-terminal with pexpect
against a real tenantkv server (and a real redis-server when installed); the pieces
(COMMAND DOCS trees, hints, completion, history filter) also unit-tested against the
server's real COMMAND DOCS through cli.resp.Connection."""

import os
import re
import sys
import time

import pexpect
import pytest
import redis

import conftest
from prompt_toolkit.document import Document

from tenantkv.cli.commands_doc import CommandTable, match, parse_syntax
from tenantkv.cli.completion import (
    CommandCompleter, CommandLexer, KeyCache, hint_for, is_sensitive, line_is_sensitive, split_args,
)
from tenantkv.cli.repl import load_rc, make_options
from tenantkv.cli.resp import Connection

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[>=]|\r|\x08")
FORWARD = re.compile(r"\x1b\[(\d*)C")


PROMPT = re.compile(r"(not connected|\S+:\d+(\[\d+\])?(\(TX\))?)>")


def plain_screen(text):
    """Terminal output as text: colours and cursor moves removed (cursor-forward
    becomes spaces, as it is on a fresh line)."""
    text = FORWARD.sub(lambda m: " " * int(m.group(1) or 1), text)
    return ANSI.sub("", text)


# ------------------------------------------------------------------------ helpers


class Repl:
    """tenantkv-cli (interactive: no command, a terminal) in a pseudo-terminal."""

    def __init__(self, port, home, *extra, env=None):
        port_args = ["-p", str(port)] if port is not None else []
        self.home = str(home)
        full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "HOME": self.home, "TERM": "xterm-256color",
                    "NO_COLOR": "1"}
        full_env.pop("TENANTKV_HISTFILE", None)
        full_env.pop("TENANTKV_CLIRC", None)
        full_env.update(env or {})
        self.child = pexpect.spawn(sys.executable, ["-m", "tenantkv.cli.client", *port_args, *extra],
                                   env=full_env, dimensions=(40, 200), encoding="utf-8", timeout=15)
        self.seen = ""

    def expect(self, text, timeout=15):
        """Wait until `text` (a plain string or compiled regex) is on the screen
        (output since the previous expect, colours and cursor moves removed)."""
        deadline = time.monotonic() + timeout
        pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
        while True:
            found = pattern.search(self.seen)
            if found:
                self.seen = self.seen[found.end():]
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%r not on screen; got %r" % (text, self.seen[-2000:]))
            try:
                chunk = self.child.read_nonblocking(65536, timeout=min(left, 0.5))
                # answer prompt_toolkit's cursor position requests as a terminal
                # does (it draws the bottom toolbar once it knows the height)
                for _ in range(chunk.count("\x1b[6n")):
                    self.child.send("\x1b[1;1R")
                self.seen += plain_screen(chunk)
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                if not pattern.search(self.seen):
                    raise AssertionError("%r not on screen before exit; got %r"
                                         % (text, self.seen[-2000:]))

    def line(self, text):
        self.child.send(text + "\r")

    def run(self, text, reply):
        """Type a command, Enter, and wait for `reply` then the next prompt."""
        self.line(text)
        self.expect(reply)
        self.expect(PROMPT)

    def quit(self):
        self.child.send("\x04")  # Ctrl-D
        self.child.expect(pexpect.EOF, timeout=10)
        self.child.close()
        return self.child.exitstatus

    def close(self):
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def repl_factory(tmp_path):
    started = []

    def start(port, *extra, env=None):
        repl = Repl(port, tmp_path, *extra, env=env)
        started.append(repl)
        return repl

    yield start
    for repl in started:
        repl.close()


@pytest.fixture
def table(server):
    conn = Connection("127.0.0.1", server.port).connect()
    table = CommandTable.load(conn.call)
    table.call = conn.call
    yield table
    conn.close()


# ----------------------------------------------------------------- unit: the pieces


def test_syntax_strings_parse_into_redis_argument_trees():
    args = parse_syntax("SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]",
                        skip_words=1)
    assert [a.name for a in args][:2] == ["key", "value"]
    assert args[0].type == "key" and not args[0].optional
    assert args[2].type == "oneof" and args[2].optional and args[2].tokens() == ["NX", "XX"]
    assert " ".join(a.render() for a in args) == "key value [NX|XX] [GET] [EX seconds|PX milliseconds|KEEPTTL]"
    assert " ".join(a.render() for a in parse_syntax("key field value [field value ...]")) == \
        "key field value [field value ...]"
    assert " ".join(a.render() for a in parse_syntax("source destination LEFT|RIGHT LEFT|RIGHT timeout")) == \
        "source destination LEFT|RIGHT LEFT|RIGHT timeout"
    assert " ".join(a.render() for a in parse_syntax("numkeys key [key ...] [WEIGHTS weight [weight ...]]")) == \
        "numkeys key [key ...] [WEIGHTS weight [weight ...]]"


def test_match_gives_roles_and_the_remaining_syntax():
    args = parse_syntax("key value [NX | XX] [GET] [EX seconds | PX milliseconds]")
    found = match(args, ["k", "v", "ex"])
    assert found.roles == ["key", "string", "token"]
    assert found.remaining[0] == "seconds"
    found = match(args, ["k", "v", "get", "nx"])  # options in any order
    assert found.roles == ["key", "string", "token", "token"]
    assert found.remaining == ["[EX seconds|PX milliseconds]"]
    assert {t for a in match(args, ["k", "v"]).next_args for t in a.tokens()} == {"NX", "XX", "GET", "EX", "PX"}


def test_split_args_as_redis_cli():
    assert [w[2] for w in split_args('set "a b" \'c d\' "\\x41\\n"')] == ["set", "a b", "c d", "A\n"]
    assert split_args('set "a') is None
    assert [w[2] for w in split_args('set "a', partial=True)] == ["set", "a"]


def test_secret_bearing_lines_are_sensitive():
    for line in ("AUTH pw", "auth alice pw", "ACL SETUSER bob on >pw", "HELLO 3 AUTH a b",
                 "MIGRATE h 1 k 0 5 AUTH pw", "MIGRATE h 1 k 0 5 AUTH2 u p",
                 "CONFIG SET requirepass x", "config set maxmemory 1 masterauth x", "3 auth x"):
        assert line_is_sensitive(line), line
    for line in ("SET auth x", "ACL LIST", "HELLO 3", "CONFIG SET maxmemory 100", "GET a"):
        assert not line_is_sensitive(line), line
    assert not is_sensitive([])


def test_completion_and_hints_from_the_servers_command_docs(table):
    keys = KeyCache()
    keys.add("user:1", "user:2", "other")
    completer = CommandCompleter(table, keys, call=table.call)

    def complete(text):
        return [c.text for c in completer.get_completions(Document(text), None)]

    assert complete("HSE") == ["HSET", "HSETNX"]
    assert complete("hse") == ["hset", "hsetnx"]
    assert "EX" in complete("SET k v ") and "KEEPTTL" in complete("SET k v ")
    assert complete("GET us") == ["user:2", "user:1"]
    assert "GET" in complete("CONFIG ") and "RESETSTAT" in complete("config r".upper())
    assert "@string" in complete("help @st")
    assert hint_for(table, "SET key ").startswith("value [NX|XX] [GET] [EX seconds|")
    assert hint_for(table, "SET key").startswith(" value")
    assert hint_for(table, "HSET h f v ") == "[field value ...]"
    assert hint_for(table, "NOSUCHCMD ") == ""
    # tenantkv's own commands and MEMORY come with argument trees like Redis's
    assert complete("KDB ") == ["DROP-ORPHAN", "EXPORT", "EXPORT-ORPHAN", "HELP", "IMPORT", "LOAD",
                                 "ORPHANS", "SAVE"]
    assert hint_for(table, "KDB IMPORT ") == "payload [REPLACE]"
    assert hint_for(table, "KDB SAVE ") == "[path]"
    assert complete("MEMORY ") == ["DOCTOR", "HELP", "MALLOC-STATS", "PURGE", "STATS", "USAGE"]
    assert hint_for(table, "MEMORY USAGE k ") == "[SAMPLES count]"
    assert "SETINFO" in complete("CLIENT ") and "PAUSE" in complete("CLIENT ")
    styles = dict((text, style) for style, text in CommandLexer(table).styles('SET k "a b" EX 10'))
    assert styles == {"SET": "class:command", "k": "class:key", '"a b"': "class:quoted",
                      "EX": "class:token", "10": "class:number", " ": ""}


def test_rc_file_and_options(tmp_path):
    rc = tmp_path / "rc.toml"
    rc.write_text('port = 7000\nhistory_size = 5\ncolours = false\nhints = false\n[style]\nkey = "red"\n')
    data = load_rc(str(rc))
    assert data["port"] == 7000
    options = make_options(type("O", (), {"raw": True, "no_raw": False, "rc_file": str(rc)})())
    assert options.mode == "raw" and options.history_size == 5 and options.color is False
    assert options.hints is False and options.style == {"key": "red"}
    assert make_options(type("O", (), {"raw": True, "no_raw": True, "rc_file": str(rc)})()).mode == "tty"
    assert load_rc(str(tmp_path / "missing")) == {}


# --------------------------------------------------------------- the REPL in a pty


def test_tab_completes_hse_with_hset_and_hsetnx(server, repl_factory):
    repl = repl_factory(server.port)
    repl.expect("127.0.0.1:%d>" % server.port)
    repl.child.send("HSE\t")
    repl.expect(re.compile(r"HSET\b.*\n.*HSETNX", re.S))
    repl.child.send("\x03")  # Ctrl-C cancels the line
    repl.expect("127.0.0.1:%d>" % server.port)
    assert repl.quit() == 0


def test_hint_for_set_key_and_keys_seen_complete(server, repl_factory, tmp_path):
    # the toolbar (which shows the whole syntax too) off through ~/.tenantkvclirc:
    # what appears is the inline hint
    (tmp_path / ".tenantkvclirc").write_text("toolbar = false\n")
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.child.send("SET key ")
    repl.expect("value [NX|XX] [GET] [EX seconds|PX milliseconds")
    repl.child.send("v EX ")
    repl.expect("seconds")
    repl.line("100")
    repl.expect("OK")
    repl.line(":set nohints")
    repl.expect(PROMPT)
    repl.child.send("SET key ")
    with pytest.raises(AssertionError):
        repl.expect("value [NX|XX]", timeout=1.5)
    repl.child.send("\x03")
    repl.line(":set hints")
    repl.run("SET replkey:alpha 1", "OK")
    repl.child.send("GET replkey:a\t")
    repl.expect("replkey:alpha")
    repl.line("")
    repl.expect('"1"')
    repl.quit()


def test_history_file_excludes_secret_lines(server, repl_factory, tmp_path):
    histfile = tmp_path / ".tenantkv_history"
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.run("SET histkey 1", "OK")
    repl.run("AUTH default sekrit1", "\n")
    repl.run("ACL SETUSER replbob on >sekrit2", "\n")
    repl.run("HELLO 2 AUTH default sekrit3", "\n")
    repl.run("GET histkey", '"1"')
    repl.run("ACL DELUSER replbob", "\n")
    # fish-style suggestion from history, accepted with the right arrow
    repl.child.send("GET hi")
    repl.expect("stkey")
    repl.child.send("\x1b[C\r")
    repl.expect('"1"')
    # Ctrl-R searches the history; Enter runs what it found
    repl.child.send("\x12")
    repl.child.send("histk")
    repl.expect("GET histkey")
    repl.child.send("\r")  # leaves the search with the line found
    repl.expect("GET histkey")
    repl.child.send("\r")
    repl.expect('"1"')
    assert repl.quit() == 0
    text = histfile.read_text()
    assert "SET histkey 1" in text and "GET histkey" in text and "ACL DELUSER replbob" in text
    assert "sekrit" not in text and "AUTH" not in text and "SETUSER" not in text

    # TENANTKV_HISTFILE chooses another file
    other = tmp_path / "other_history"
    repl = repl_factory(server.port, env={"TENANTKV_HISTFILE": str(other)})
    repl.expect(PROMPT)
    repl.run("PING", "PONG")
    repl.quit()
    assert "PING" in other.read_text()


def test_prompt_shows_db_and_transaction(server, repl_factory):
    port = server.port
    repl = repl_factory(port)
    repl.expect("127.0.0.1:%d>" % port)
    repl.line("SELECT 2")
    repl.expect("OK")
    repl.expect("127.0.0.1:%d[2]>" % port)
    repl.line("MULTI")
    repl.expect("127.0.0.1:%d[2](TX)>" % port)
    repl.line("INCR txcounter")
    repl.expect("QUEUED")
    repl.line("INCR txcounter")
    repl.expect("QUEUED")
    repl.line("EXEC")
    repl.expect("1) (integer) 1\n2) (integer) 2\n")
    repl.expect("127.0.0.1:%d[2]>" % port)
    repl.line("MULTI")
    repl.expect("(TX)>")
    repl.line("DISCARD")
    repl.expect("OK")
    repl.expect("127.0.0.1:%d[2]>" % port)
    repl.line("DEL txcounter")
    repl.expect("(integer) 1")
    repl.quit()


def test_prompt_shows_the_user(server, repl_factory):
    client = server.client()
    client.execute_command("ACL", "SETUSER", "repluser", "on", ">replpw", "~*", "+@all")
    try:
        repl = repl_factory(server.port, "--user", "repluser", "-a", "replpw", "-n", "1")
        repl.expect("repluser@127.0.0.1:%d[1]>" % server.port)
        repl.quit()
        repl = repl_factory(server.port, "--user", "default", "-a", "anything")
        repl.expect(re.compile(r"(^|\s)127\.0\.0\.1:%d>" % server.port))
        repl.quit()
    finally:
        client.execute_command("ACL", "DELUSER", "repluser")
        client.close()


def test_toolbar_shows_syntax_and_summary(server, repl_factory, table):
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.child.send("hset")
    # the toolbar is redrawn as a diff of its previous text: match loosely
    repl.expect(re.compile(r"HSET key field value \[field value \.\.\.\]  \S.* \(since \d"))
    repl.child.send("\x03")
    repl.quit()


def test_help(server, repl_factory, table):
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.line("help set")
    repl.expect("SET key value [NX|XX]")
    repl.expect("summary: %s" % table.get("SET").summary)
    repl.expect("since: ")
    repl.expect("group: string")
    repl.line("help @hash")
    repl.expect("HSETNX key field value")
    repl.line("help")
    repl.expect('"help <command>" for help on <command>')
    repl.quit()


def test_peek_every_type(server, repl_factory):
    client = server.client()
    client.delete("pk:s", "pk:l", "pk:set", "pk:z", "pk:h")
    client.set("pk:s", "hello world", ex=1000)
    client.rpush("pk:l", "a", "b", "c")
    client.sadd("pk:set", "m1")
    client.zadd("pk:z", {"x": 1.5, "y": 2})
    client.hset("pk:h", mapping={"f": "v"})
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.line("peek pk:s")
    repl.expect(re.compile(r"type: +string\nttl: +\d+ ms"))
    repl.expect(re.compile(r"encoding: +\w+"))
    repl.expect(re.compile(r"length: +11 bytes"))
    repl.expect('"hello world"')
    repl.line("peek pk:l")
    repl.expect(re.compile(r"type: +list\nttl: +no expiry"))
    repl.expect('1) "a"\n  2) "b"\n  3) "c"')
    repl.line("peek pk:set")
    repl.expect(re.compile(r"type: +set"))
    repl.expect('1) "m1"')
    repl.line("peek pk:z")
    repl.expect(re.compile(r"type: +zset"))
    repl.expect('1) "x"\n  2) "1.5"\n  3) "y"\n  4) "2"')
    repl.line("peek pk:h")
    repl.expect(re.compile(r"type: +hash"))
    repl.expect('1) "f"\n  2) "v"')
    repl.line("peek pk:none")
    repl.expect('(key "pk:none" does not exist)')
    repl.quit()
    client.delete("pk:s", "pk:l", "pk:set", "pk:z", "pk:h")
    client.close()


def test_reconnects_after_the_server_restarts(tmp_path, repl_factory, make_server):
    (tmp_path / "a").mkdir()
    first = make_server(data_dir=tmp_path / "a")
    port = first.port
    repl = repl_factory(port)
    repl.expect("127.0.0.1:%d>" % port)
    repl.run("SET before 1", "OK")
    first.stop()
    # down: the prompt says so, as redis-cli's
    repl.line("PING")
    repl.expect("Could not connect to Redis at 127.0.0.1:%d" % port)
    repl.expect("not connected>")
    (tmp_path / "b").mkdir()
    second = make_server(data_dir=tmp_path / "b", port=port)
    repl.line("PING")
    repl.expect("PONG")
    repl.expect("127.0.0.1:%d>" % port)
    # dropped under an open connection: reconnect, say so, run the command
    second.client().execute_command("CLIENT", "KILL", "TYPE", "normal")
    repl.line("SET after 2")
    repl.expect("Reconnected to 127.0.0.1:%d" % port)
    repl.expect("OK")
    repl.expect("127.0.0.1:%d>" % port)
    repl.quit()


def test_works_against_a_real_redis_server(redis_server, repl_factory):
    port = redis_server.port
    repl = repl_factory(port)
    repl.expect("127.0.0.1:%d>" % port)
    repl.run("SET realkey hello", "OK")
    repl.run("GET realkey", '"hello"')
    repl.child.send("XAD\t")  # a command only Redis has here: from its COMMAND DOCS
    repl.expect("XADD")
    repl.child.send("\x03")
    repl.expect(PROMPT)
    repl.child.send("CONFIG RESETS\t")  # subcommands from COMMAND DOCS' subcommands
    repl.expect("RESETSTAT")
    repl.child.send("\x03")
    repl.child.send("SET k ")
    repl.expect("value [NX|XX] [GET] [EX seconds|")
    repl.child.send("\x03")
    repl.line("help xadd")
    repl.expect("summary: ")
    # peek on a type only Redis has here
    repl.run("XADD realstream 1-1 f v", '"1-1"')
    repl.line("peek realstream")
    repl.expect(re.compile(r"type: +stream"))
    repl.expect('1) 1) "1-1"')
    # SUBSCRIBE (our server has no pub/sub): messages until Ctrl-C
    repl.line("SUBSCRIBE repl:chan")
    repl.expect("Reading messages... (press Ctrl-C to quit)")
    publisher = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while publisher.publish("repl:chan", "hello there") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.close()
    repl.expect('1) "message"\n2) "repl:chan"\n3) "hello there"')
    repl.child.send("\x03")
    repl.expect(PROMPT)
    repl.run("PING", "PONG")
    repl.quit()


def test_rc_file_gives_the_port_and_quit_exits(server, repl_factory, tmp_path):
    (tmp_path / ".tenantkvclirc").write_text("port = %d\ndb = 3\n" % server.port)
    repl = repl_factory(None)
    repl.expect("127.0.0.1:%d[3]>" % server.port)
    repl.line("quit")
    repl.child.expect(pexpect.EOF, timeout=10)
    repl.child.close()
    assert repl.child.exitstatus == 0


def test_ctrl_c_interrupts_a_blocking_command(server, repl_factory):
    repl = repl_factory(server.port)
    repl.expect(PROMPT)
    repl.line("BLPOP repl:nolist 0")
    time.sleep(0.5)
    repl.child.send("\x03")
    repl.expect("(interrupted)")
    repl.expect(PROMPT)
    repl.run("PING", "PONG")
    repl.quit()


def test_resp3_replies_and_completion(server, repl_factory):
    client = server.client()
    client.hset("repl:h3", "f", "v")
    repl = repl_factory(server.port, "-3")
    repl.expect(PROMPT)
    repl.run("HGETALL repl:h3", '1# "f" => "v"')
    repl.child.send("HSE\t")
    repl.expect("HSETNX")
    repl.child.send("\x03")
    repl.quit()
    client.delete("repl:h3")
    client.close()


def test_docs_load_after_auth_on_a_locked_server(tmp_path, repl_factory):
    with conftest.locked_server(tmp_path, {}, "rootpw") as proc:
        repl = repl_factory(proc.port)
        repl.expect(PROMPT)
        repl.run("GET x", "(error) NOAUTH")
        repl.run("AUTH root rootpw", "OK")
        repl.expect("root@127.0.0.1:%d>" % proc.port)
        repl.child.send("HSE\t")
        repl.expect("HSETNX")
        repl.child.send("\x03")
        repl.quit()
        assert "rootpw" not in (tmp_path / ".tenantkv_history").read_text()


def test_starts_not_connected_when_the_server_is_down(repl_factory):
    port = conftest.free_port()
    repl = repl_factory(port)
    repl.expect("Could not connect to Redis at 127.0.0.1:%d: Connection refused" % port)
    repl.expect("not connected>")
    assert "Could not connect" not in repl.seen  # said once
    repl.line("PING")
    repl.expect("Could not connect to Redis at 127.0.0.1:%d" % port)
    repl.expect("not connected>")
    assert repl.quit() == 0


def test_a_line_runs_as_the_server_splits_it(server, tmp_path):
    """The REPL executes a line with the server's inline splitter: a \\v or
    \\f inside a word is part of it (redis-cli's sdssplitargs; Python's
    str.split / isspace would cut there), and \\xHH gives that byte."""
    import io
    from tenantkv.cli.repl import Repl
    conn = Connection("127.0.0.1", server.port)
    conn.connect()
    out = io.StringIO()
    repl = Repl(conn, make_options(None), output=out)
    repl.handle("SET repl:vt a\x0bb\x0cc")
    repl.handle('SET repl:hex "\\xe9\\x00z"')
    check = server.client()
    assert check.get("repl:vt") == b"a\x0bb\x0cc"
    assert check.get("repl:hex") == b"\xe9\x00z"
    conn.close()
