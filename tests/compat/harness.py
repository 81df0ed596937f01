"""Differential test harness: run scripted sessions against redis-server and
tenantkv and compare the raw reply bytes.

Session files (tests/compat/sessions/*.txt) hold one command per line, in
redis-cli syntax (quoting as Redis's sdssplitargs: "..." with \\n \\r \\t \\b \\a
\\xHH and \\<char> escapes, '...' with \\' only). Blank lines and lines starting
with '#' are ignored. Directives:

    @resp3 / @resp2     send HELLO 3 / HELLO 2 (its reply is compared like any
                        command's, so it usually carries a marker)
    @sleep 0.2          sleep that many seconds (both servers see the same time)

A command line may end with one marker, after " ## " (the first " ## " that
starts a marker is taken, so an argument cannot contain one):

    ## known-diff: <reason>   sent to both, reply not compared (reported)
    ## shape                  compare only the RESP shape: the type byte of every
                              reply and sub-reply, and the element count of aggregates
    ## match <regex>          both replies must fully match the regex (bytes, DOTALL)
    ## unordered              compare aggregates as multisets (KEYS, SCAN: Redis's
                              hash table order is not an order tenantkv promises)
    ## replies N              the command gets N replies (SUBSCRIBE a b, a PUBLISH
                              to itself in RESP3): all are read, compared exactly

`!known-diff <reason>: COMMAND ...` is the prefix form of the first marker.
"""

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

SESSIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sessions")
TIMEOUT = 5.0
OUTCOMES: list = []   # every run_session result, for the terminal summary


def redis_server_path() -> str | None:
    return os.environ.get("TENANTKV_REDIS_SERVER") or shutil.which("redis-server") \
        or (os.path.exists("/usr/bin/redis-server") and "/usr/bin/redis-server") or None


# -- parsing session files ----------------------------------------------------

class SessionSyntaxError(ValueError):
    pass


_HEX = b"0123456789abcdefABCDEF"


def split_args(line: str) -> list:
    """Split a line into byte-string arguments exactly as sdssplitargs does.

    The line is sent as UTF-8 (as redis-cli sends what is typed); any other
    byte is written with a \\xHH escape inside double quotes. Raises
    SessionSyntaxError for unbalanced quotes, as redis-cli refuses the line.
    """
    data = line.encode("utf-8")
    args = []
    i, n = 0, len(data)
    while True:
        while i < n and data[i] in b" \t\n\r\v\f":
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_dq = in_sq = False
        while True:
            c = data[i] if i < n else None
            if in_dq:
                if c is None:
                    raise SessionSyntaxError("unbalanced double quotes")
                if (c == 0x5C and i + 3 < n and data[i + 1] == 0x78
                        and data[i + 2] in _HEX and data[i + 3] in _HEX):
                    current.append(int(data[i + 2:i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    e = data[i]
                    current.append({0x6E: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x61: 7}.get(e, e))
                elif c == 0x22:
                    if i + 1 < n and data[i + 1] not in b" \t\n\r\v\f":
                        raise SessionSyntaxError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_sq:
                if c is None:
                    raise SessionSyntaxError("unbalanced single quotes")
                if c == 0x5C and i + 1 < n and data[i + 1] == 0x27:
                    i += 1
                    current.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and data[i + 1] not in b" \t\n\r\v\f":
                        raise SessionSyntaxError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if c is None or c in b" \n\r\t\x00":
                    break
                if c == 0x22:
                    in_dq = True
                elif c == 0x27:
                    in_sq = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))


@dataclasses.dataclass
class Step:
    lineno: int
    text: str           # the line as written (for messages)
    kind: str           # "command" or "sleep"
    args: list = None
    mode: str = "exact"   # exact | shape | match | unordered | known-diff
    detail: str = ""      # the regex or the known-diff reason
    replies: int = 1      # how many replies the command gets (## replies N)


_MARKER = re.compile(r"\s##\s+(known-diff:\s*(?P<reason>.*)|shape|unordered|match\s+(?P<regex>.+)"
                     r"|replies\s+(?P<replies>[1-9][0-9]*))\s*$")
_PREFIX = re.compile(r"^!known-diff\s+(?P<reason>.+?):\s+(?P<command>.*)$")


def parse_session(path: str) -> list:
    steps = []
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        mode, detail = "exact", ""
        replies = 1
        prefix = _PREFIX.match(stripped)
        if prefix:
            mode, detail = "known-diff", prefix.group("reason")
            stripped = prefix.group("command")
        else:
            marker = _MARKER.search(stripped)
            if marker:
                word = marker.group(1).split(None, 1)[0].rstrip(":")
                mode = word
                if word == "known-diff":
                    detail = marker.group("reason").strip()
                    if not detail:
                        raise SessionSyntaxError("%s:%d: known-diff needs a reason" % (path, lineno))
                elif word == "match":
                    detail = marker.group("regex").strip()
                elif word == "replies":
                    mode, replies = "exact", int(marker.group("replies"))
                stripped = stripped[:marker.start()].rstrip()
        where = "%s:%d" % (os.path.basename(path), lineno)
        if stripped.startswith("@"):
            words = stripped.split()
            if words[0] == "@sleep" and len(words) == 2:
                steps.append(Step(lineno, stripped, "sleep", detail=words[1]))
                continue
            if words[0] in ("@resp2", "@resp3") and len(words) == 1:
                args = [b"HELLO", words[0][-1].encode()]
                steps.append(Step(lineno, stripped, "command", args, mode, detail))
                continue
            raise SessionSyntaxError("%s: unknown directive %r" % (where, stripped))
        try:
            args = split_args(stripped)
        except SessionSyntaxError as exc:
            raise SessionSyntaxError("%s: %s" % (where, exc)) from None
        steps.append(Step(lineno, stripped, "command", args, mode, detail, replies))
    return steps


def session_files() -> list:
    return sorted(name for name in os.listdir(SESSIONS_DIR) if name.endswith(".txt"))


# -- raw RESP replies -------------------------------------------------------------

class ConnectionClosed(Exception):
    pass


class Node:
    """One parsed reply: its type byte, header line, raw bytes and children."""
    __slots__ = ("kind", "head", "raw", "children")

    def __init__(self, kind, head, raw, children):
        self.kind, self.head, self.raw, self.children = kind, head, raw, children


_LINE_TYPES = b"+-:_,#("
_BULK_TYPES = b"$!="
_AGGREGATE_TYPES = b"*~>"
_PAIR_TYPES = b"%|"


class _Incomplete(Exception):
    pass


def parse_reply(buf: bytes, pos: int = 0) -> tuple:
    """(Node, end position) of the reply starting at buf[pos]; _Incomplete if cut short."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos:pos + 1]
    head = buf[pos + 1:end]
    after = end + 2
    if not kind:
        raise _Incomplete
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return Node(kind, head, buf[pos:after], []), after
    if kind in (b"$", b"!", b"="):
        length = int(head)
        if length < 0:
            return Node(kind, head, buf[pos:after], []), after
        stop = after + length + 2
        if len(buf) < stop:
            raise _Incomplete
        if buf[stop - 2:stop] != b"\r\n":
            raise ValueError("bulk reply not terminated by CRLF: %r" % buf[pos:stop])
        return Node(kind, head, buf[pos:stop], []), stop
    if kind in (b"*", b"~", b">", b"%", b"|"):
        count = int(head)
        if count < 0:
            return Node(kind, head, buf[pos:after], []), after
        if kind in (b"%", b"|"):
            count *= 2
        children = []
        cursor = after
        for _ in range(count):
            child, cursor = parse_reply(buf, cursor)
            children.append(child)
        if kind == b"|":   # an attribute precedes the reply it describes
            reply, cursor = parse_reply(buf, cursor)
            children.append(reply)
        return Node(kind, head, buf[pos:cursor], children), cursor
    raise ValueError("unknown RESP type byte %r in %r" % (kind, buf[pos:pos + 80]))


class RawConnection:
    """A socket that sends commands as RESP multibulk and reads raw replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, args: list) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(parts))

    def read_reply(self) -> bytes:
        """The exact bytes of the next complete reply."""
        while True:
            if self.buf:
                try:
                    _, end = parse_reply(self.buf)
                except _Incomplete:
                    pass
                except ValueError as exc:
                    raise ConnectionClosed("malformed reply: %s" % exc) from None
                else:
                    reply, self.buf = self.buf[:end], self.buf[end:]
                    return reply
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                raise TimeoutError("no complete reply within %.0fs (have %r)"
                                   % (TIMEOUT, self.buf[:200])) from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed("connection closed (have %r)" % self.buf[:200])
            self.buf += chunk

    def call(self, args: list, replies: int = 1) -> bytes:
        """Send one command and return its reply (its `replies` replies,
        joined); ConnectionClosed or TimeoutError when there is none (the
        session cannot go on after that)."""
        try:
            self.send(args)
        except OSError as exc:
            raise ConnectionClosed("send failed: %s" % exc) from None
        return b"".join(self.read_reply() for _ in range(replies))

    def close(self) -> None:
        self.sock.close()


# -- comparing ----------------------------------------------------------------------

def shape(node: Node) -> tuple:
    if node.children or node.kind in (b"*", b"~", b">", b"%", b"|"):
        return (node.kind, node.head, tuple(shape(c) for c in node.children))
    if node.kind == b"$" and node.head == b"-1":
        return (node.kind, b"-1")
    return (node.kind,)


def canonical_unordered(node: Node):
    if node.kind in (b"*", b"~", b">") and node.children:
        return (node.kind, node.head, tuple(sorted(repr(canonical_unordered(c)) for c in node.children)))
    if node.kind == b"%" and node.children:
        pairs = [(canonical_unordered(k), canonical_unordered(v))
                 for k, v in zip(node.children[::2], node.children[1::2])]
        return (node.kind, node.head, tuple(sorted(repr(p) for p in pairs)))
    return node.raw


def _parse_whole(reply: bytes):
    try:
        node, end = parse_reply(reply)
    except (ValueError, _Incomplete):
        return None
    return node if end == len(reply) else None


def compare(step: Step, expected: bytes, actual: bytes) -> bool:
    """True when tenantkv's reply (actual) agrees with Redis's (expected) under the step's mode."""
    if step.mode == "exact" or step.mode == "known-diff":
        return expected == actual
    if step.mode == "match":
        pattern = re.compile(step.detail.encode(), re.DOTALL)
        return bool(pattern.fullmatch(expected)) and bool(pattern.fullmatch(actual))
    a, b = _parse_whole(expected), _parse_whole(actual)
    if a is None or b is None:
        return False
    if step.mode == "shape":
        return shape(a) == shape(b)
    if step.mode == "unordered":
        return canonical_unordered(a) == canonical_unordered(b)
    raise AssertionError("unknown mode %r" % step.mode)


@dataclasses.dataclass
class Outcome:
    name: str
    compared: int = 0
    mismatches: list = dataclasses.field(default_factory=list)
    known_diffs: list = dataclasses.field(default_factory=list)   # (step, redis, tenantkv)


def run_session(path: str, redis_port: int, tenantkv_port: int) -> Outcome:
    name = os.path.basename(path)
    steps = parse_session(path)
    outcome = Outcome(name)
    reference = RawConnection(redis_port)
    subject = RawConnection(tenantkv_port)
    try:
        for conn in (reference, subject):
            reply = conn.call([b"FLUSHALL"])
            if reply != b"+OK\r\n":
                raise RuntimeError("FLUSHALL failed on port %d: %r" % (conn.sock.getpeername()[1], reply))
        for step in steps:
            if step.kind == "sleep":
                time.sleep(float(step.detail))
                continue
            try:
                expected = reference.call(step.args, step.replies)
            except (ConnectionClosed, TimeoutError) as exc:
                raise RuntimeError("%s:%d: redis-server gave no reply to %s: %s"
                                   % (name, step.lineno, step.text, exc)) from None
            try:
                actual = subject.call(step.args, step.replies)
            except (ConnectionClosed, TimeoutError) as exc:
                # Out of step from here on: report this line and stop the session.
                outcome.compared += 1
                outcome.mismatches.append((step, expected, ("<%s>" % exc).encode()))
                break
            if step.mode == "known-diff":
                outcome.known_diffs.append((step, expected, actual))
                continue
            outcome.compared += 1
            if not compare(step, expected, actual):
                outcome.mismatches.append((step, expected, actual))
    finally:
        reference.close()
        subject.close()
    return outcome


def _shown(reply: bytes, limit: int = 600) -> str:
    if len(reply) <= limit:
        return repr(reply)
    return "%r... (%d bytes)" % (reply[:limit], len(reply))


def format_mismatches(outcome: Outcome, limit: int = 25) -> str:
    lines = ["%d of %d replies differ from redis-server in %s:"
             % (len(outcome.mismatches), outcome.compared, outcome.name)]
    for step, expected, actual in outcome.mismatches[:limit]:
        mode = "" if step.mode == "exact" else "  [%s%s]" % (step.mode, " " + step.detail if step.detail else "")
        lines.append("%s:%d: %s%s" % (outcome.name, step.lineno, step.text, mode))
        lines.append("    redis:    %s" % _shown(expected))
        lines.append("    tenantkv: %s" % _shown(actual))
    if len(outcome.mismatches) > limit:
        lines.append("... and %d more" % (len(outcome.mismatches) - limit))
    return "\n".join(lines)


# -- the reference server --------------------------------------------------------------

class RedisServer:
    """Debian's redis-server on a free port, no persistence, in a temporary dir."""

    def __init__(self, port: int, directory: str | None = None) -> None:
        self.port = port
        self.dir = directory or tempfile.mkdtemp(prefix="tenantkv-compat-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [redis_server_path(), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--enable-debug-command", "yes",   # DEBUG DIGEST-VALUE/RELOAD (persistence.txt)
             "--daemonize", "no", "--logfile", ""],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("redis-server exited with %s; see %s" % (self.process.returncode, self.log_path))
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not listen on port %d" % port)
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
