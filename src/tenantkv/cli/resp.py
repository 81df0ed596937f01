"""A small RESP2/RESP3 client connection for tenantkv-cli.

Why not redis-py: it converts replies (maps to dicts, sets to Python sets,
verbatim strings to str, doubles to float) and so loses the RESP3 types that
redis-cli shows (`1#` for a map, `1~` for a set, `(double)`, `(true)`...).
This module keeps every type:

=============  ===========================  ===============================
RESP           Python                       note
=============  ===========================  ===============================
``+`` status   :class:`Status` (str)
``-`` error    :class:`Error` (str)         ``.code``: first word (ERR, ...)
``:`` integer  int
``$`` bulk     bytes
``$-1 *-1 _``  None                         redis-cli prints all as (nil)
``*`` array    list
``,`` double   :class:`Double` (float)      ``.text``: the text as sent
``#`` boolean  :class:`Bool` (int 0/1)      check before int
``=`` verbatim :class:`Verbatim` (bytes)    ``.format``: "txt", "mkd"
``(`` big num  :class:`BigNumber` (str)
``%`` map      :class:`Map`                 list of (key, value) pairs
``~`` set      :class:`Set` (list)
``>`` push     :class:`Push` (list)
``|`` attrib   :class:`Attribute` (Map)     not returned: kept on the
                                            connection (last_attribute)
=============  ===========================  ===============================

Errors are returned as values (an :class:`Error`), not raised: the CLI prints
them. Connection-level failures raise :class:`ConnectError` (OSError) and a
refused AUTH/HELLO/SELECT during :meth:`Connection.connect` raises
:class:`AuthError` / :class:`SelectError`.

:class:`Reader` is a streaming parser: feed it bytes as they arrive, in any
split, and take complete replies with :meth:`Reader.gets`. It keeps its place
inside aggregates, so a huge reply arriving in many reads is parsed once.
:class:`ReplyCounter` counts complete replies (and errors) without building
objects, for ``--pipe``.
"""

from __future__ import annotations

import socket
import ssl

__all__ = [
    "Status", "Error", "Double", "Bool", "Verbatim", "BigNumber", "Map", "Set", "Push",
    "Attribute", "Reader", "ReplyCounter", "ProtocolError", "ConnectError", "AuthError",
    "SelectError", "Connection", "encode_command", "NOT_READY",
]


# -- reply types ------------------------------------------------------------

class Status(str):
    """A simple string reply (+OK)."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "Status(%s)" % str.__repr__(self)


class Error(str):
    """An error reply (-ERR ...), returned as a value."""
    __slots__ = ()

    @property
    def code(self) -> str:
        return self.split(" ", 1)[0] if self else ""

    def __repr__(self) -> str:
        return "Error(%s)" % str.__repr__(self)


class Double(float):
    """A RESP3 double; ``text`` is the text the server sent (redis-cli prints it)."""

    def __new__(cls, text):
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        t = text.lower()
        value = float("inf") if t in ("inf", "+inf") else float("-inf") if t == "-inf" else float(t)
        obj = float.__new__(cls, value)
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return "Double(%r)" % self.text


class Bool(int):
    """A RESP3 boolean (#t / #f). A subclass of int: test for it before int."""

    def __new__(cls, value):
        return int.__new__(cls, 1 if value else 0)

    def __repr__(self) -> str:
        return "Bool(%s)" % bool(self)


class Verbatim(bytes):
    """A RESP3 verbatim string; the bytes are the content, ``format`` the 3-letter type."""

    def __new__(cls, data: bytes, format: str = "txt"):
        obj = bytes.__new__(cls, data)
        obj.format = format
        return obj

    def __repr__(self) -> str:
        return "Verbatim(%s, %r)" % (bytes.__repr__(self), self.format)


class BigNumber(str):
    """A RESP3 big number, as its decimal text."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "BigNumber(%s)" % str.__repr__(self)


class Map(list):
    """A RESP3 map: a list of (key, value) pairs, in the server's order."""

    def __repr__(self) -> str:
        return "Map(%s)" % list.__repr__(self)

    def to_dict(self) -> dict:
        return dict(self)


class Set(list):
    """A RESP3 set, as a list in the server's order."""

    def __repr__(self) -> str:
        return "Set(%s)" % list.__repr__(self)


class Push(list):
    """A RESP3 push message (>), e.g. pub/sub messages or invalidations."""

    def __repr__(self) -> str:
        return "Push(%s)" % list.__repr__(self)


class Attribute(Map):
    """A RESP3 attribute (|): metadata sent before a reply."""

    def __repr__(self) -> str:
        return "Attribute(%s)" % list.__repr__(self)


class ProtocolError(Exception):
    pass


class ConnectError(OSError):
    """Could not connect, or the connection was lost."""


class AuthError(Exception):
    """AUTH (or HELLO with AUTH) was refused; the message is the server's error."""


class SelectError(Exception):
    """SELECT was refused; the message is the server's error."""


NOT_READY = object()   # Reader.gets(): no complete reply yet

_AGGREGATE = {ord("*"): list, ord("%"): Map, ord("~"): Set, ord(">"): Push, ord("|"): Attribute}


# -- streaming parser -------------------------------------------------------

class Reader:
    """Incremental RESP2/RESP3 parser.

    ``feed(data)`` then ``gets()`` until it returns NOT_READY. Aggregates being
    built are kept on a stack, so nothing is parsed twice.
    """

    __slots__ = ("_buf", "_pos", "_stack", "attribute")

    def __init__(self) -> None:
        self.attribute = None     # the last attribute met inside an aggregate
        self._buf = bytearray()
        self._pos = 0
        # frames: [container (list), remaining items, type, pending map key marker]
        self._stack: list = []

    def feed(self, data) -> None:
        if self._pos and self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def gets(self):
        """The next complete reply, or NOT_READY."""
        buf = self._buf
        stack = self._stack
        while True:
            pos = self._pos
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return NOT_READY
            kind = buf[pos]
            if kind == 36 or kind == 61:   # $ bulk, = verbatim
                length = int(buf[pos + 1:end])
                if length < 0:
                    value = None
                    self._pos = end + 2
                else:
                    start = end + 2
                    stop = start + length
                    if len(buf) < stop + 2:
                        return NOT_READY
                    value = bytes(buf[start:stop])
                    self._pos = stop + 2
                    if kind == 61:
                        fmt = value[:3].decode("ascii", "replace")
                        value = Verbatim(value[4:], fmt)
            elif kind == 43:   # +
                value = Status(buf[pos + 1:end].decode("utf-8", "surrogateescape"))
                self._pos = end + 2
            elif kind == 45:   # -
                value = Error(buf[pos + 1:end].decode("utf-8", "surrogateescape"))
                self._pos = end + 2
            elif kind == 58:   # :
                value = int(buf[pos + 1:end])
                self._pos = end + 2
            elif kind in _AGGREGATE:
                count = int(buf[pos + 1:end])
                self._pos = end + 2
                if count < 0:
                    value = None
                else:
                    container = _AGGREGATE[kind]()
                    items = count * 2 if kind in (37, 124) else count
                    if items:
                        stack.append([container, items, kind])
                        continue
                    value = container
            elif kind == 95:   # _ null
                value = None
                self._pos = end + 2
            elif kind == 44:   # , double
                value = Double(bytes(buf[pos + 1:end]))
                self._pos = end + 2
            elif kind == 35:   # # boolean
                value = Bool(buf[pos + 1:end] == b"t")
                self._pos = end + 2
            elif kind == 40:   # ( big number
                value = BigNumber(buf[pos + 1:end].decode("ascii", "replace"))
                self._pos = end + 2
            elif kind == 33:   # ! blob error
                length = int(buf[pos + 1:end])
                start = end + 2
                stop = start + length
                if len(buf) < stop + 2:
                    return NOT_READY
                value = Error(bytes(buf[start:stop]).decode("utf-8", "surrogateescape"))
                self._pos = stop + 2
            else:
                raise ProtocolError("Protocol error, got %r as reply type byte" % chr(kind))
            # attach value to the enclosing aggregates
            while stack:
                if isinstance(value, Attribute):   # metadata of the next element
                    self.attribute = value
                    break
                frame = stack[-1]
                frame[0].append(value)
                frame[1] -= 1
                if frame[1]:
                    break
                stack.pop()
                container = frame[0]
                if frame[2] in (37, 124):   # map, attribute: pair up
                    pairs = container.__class__(zip(container[0::2], container[1::2]))
                    container = pairs
                value = container
            else:
                return value
            continue


class ReplyCounter:
    """Counts complete top-level replies (and error replies) in a RESP stream
    without building them: for --pipe. Also remembers the last top-level
    reply's first line kind, and the text of error replies."""

    __slots__ = ("_buf", "_pending", "replies", "errors", "error_lines", "keep_errors")

    def __init__(self, keep_errors: int = 100) -> None:
        self._buf = b""
        self._pending = 0       # items still owed by the current top-level reply
        self.replies = 0
        self.errors = 0
        self.error_lines: list = []
        self.keep_errors = keep_errors

    def feed(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        size = len(buf)
        pending = self._pending
        find = buf.find
        while pos < size:
            end = find(b"\r\n", pos)
            if end < 0:
                break
            kind = buf[pos]
            if kind == 36 or kind == 61 or kind == 33:   # $ = !
                length = int(buf[pos + 1:end])
                if length >= 0:
                    stop = end + 2 + length + 2
                    if stop > size:
                        break
                    if kind == 33 and not pending:
                        self._error(buf[end + 2:stop - 2])
                    pos = stop
                else:
                    pos = end + 2
                items = 0
            elif kind in (42, 126, 62, 37, 124):     # * ~ > % |
                count = int(buf[pos + 1:end])
                pos = end + 2
                items = max(count, 0) * (2 if kind in (37, 124) else 1)
                if kind == 124:   # attribute: not a reply by itself
                    pending += items + (0 if pending else 1)
                    continue
            else:
                if kind == 45 and not pending:
                    self._error(buf[pos + 1:end])
                pos = end + 2
                items = 0
            if pending:
                pending += items - 1
                if not pending:
                    self.replies += 1
            elif items:
                pending = items
            else:
                self.replies += 1
        self._pending = pending
        self._buf = buf[pos:]

    def _error(self, text: bytes) -> None:
        self.errors += 1
        if len(self.error_lines) < self.keep_errors:
            self.error_lines.append(text.decode("utf-8", "replace"))


# -- requests ---------------------------------------------------------------

def _arg(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return str(value).encode()


def encode_command(*args) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


# -- connection -------------------------------------------------------------

class Connection:
    """A blocking connection speaking RESP2 or RESP3.

    ``connect()`` opens the socket (TLS when ``tls`` is an SSLContext), then
    AUTH (when a password is given), HELLO 3 (protocol 3) and SELECT (db != 0),
    as redis-cli does. ``call(*args)`` sends one command and returns its
    reply; ``send``/``read_reply`` pipeline. ``trace``: an optional callable
    ``trace(direction, data)`` ("->" sent, "<-" received, raw bytes) for -v.
    ``on_push``: an optional callable given RESP3 push messages that arrive
    while waiting for a reply (they are then not returned); when None a push
    is returned by read_reply like any reply.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, *, username=None,
                 password=None, db: int = 0, protocol: int = 2, tls: ssl.SSLContext | None = None,
                 timeout: float | None = None, server_hostname: str | None = None) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.db = db
        self.protocol = protocol
        self.tls = tls
        self.timeout = timeout
        self.server_hostname = server_hostname
        self.sock: socket.socket | None = None
        self.reader = Reader()
        self.trace = None
        self.on_push = None
        self.last_attribute: Attribute | None = None
        self.hello: Map | list | None = None   # HELLO 3's reply when protocol 3
        self.connect_errors: list = []          # connect(strict=False)'s problems

    # state
    @property
    def connected(self) -> bool:
        return self.sock is not None

    def __repr__(self) -> str:
        return "Connection(%s:%s, db=%s, protocol=%s%s)" % (
            self.host, self.port, self.db, self.protocol, ", connected" if self.connected else "")

    # lifecycle
    def connect(self, strict: bool = True) -> "Connection":
        """Open the connection, then AUTH, HELLO 3, SELECT as configured.

        strict (default): a refused AUTH raises AuthError, a refused SELECT
        SelectError (HELLO 3: ProtocolError). strict=False is redis-cli's way:
        the problems are kept in ``connect_errors`` ("AUTH failed: ...",
        "SELECT 5 failed: ...") and the session goes on."""
        self.close()
        self.connect_errors = []
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise ConnectError("Could not connect to Redis at %s:%s: %s"
                               % (self.host, self.port, exc.strerror or exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname or self.host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise ConnectError("Could not negotiate a TLS connection: %s" % exc) from exc
        self.sock = sock
        self.reader = Reader()
        if self.password is not None:
            args = ["AUTH"] + ([self.username] if self.username else []) + [self.password]
            self.send(*args)
            reply = self.read_reply()
            if isinstance(reply, Error):
                if strict:
                    raise AuthError(str(reply))
                self.connect_errors.append("AUTH failed: %s" % reply)
        if self.protocol == 3:
            self.send("HELLO", "3")
            reply = self.read_reply()
            if isinstance(reply, Error):
                if strict:
                    if reply.code in ("NOAUTH", "WRONGPASS"):
                        raise AuthError(str(reply))
                    raise ProtocolError("HELLO 3 failed: %s" % reply)
                self.connect_errors.append("HELLO 3 failed: %s" % reply)
            else:
                self.hello = reply
        if self.db:
            self.send("SELECT", str(self.db))
            reply = self.read_reply()
            if isinstance(reply, Error):
                if strict:
                    raise SelectError(str(reply))
                self.connect_errors.append("SELECT %s failed: %s" % (self.db, reply))
        return self

    def reconnect(self) -> "Connection":
        return self.connect()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    # I/O
    def send_raw(self, data: bytes) -> None:
        if self.sock is None:
            raise ConnectError("not connected")
        if self.trace is not None:
            self.trace("->", data)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.close()
            raise ConnectError("Error sending to %s:%s: %s" % (self.host, self.port, exc)) from exc

    def send(self, *args) -> None:
        self.send_raw(encode_command(*args))

    def read_reply(self):
        reader = self.reader
        while True:
            reply = reader.gets()
            if reply is NOT_READY:
                self._fill()
                continue
            if isinstance(reply, Attribute):
                self.last_attribute = reply
                continue
            if isinstance(reply, Push) and self.on_push is not None:
                self.on_push(reply)
                continue
            return reply

    def _fill(self) -> None:
        if self.sock is None:
            raise ConnectError("not connected")
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout as exc:
            raise ConnectError("Timeout reading from %s:%s" % (self.host, self.port)) from exc
        except OSError as exc:
            self.close()
            raise ConnectError("Error reading from %s:%s: %s" % (self.host, self.port, exc)) from exc
        if not data:
            self.close()
            raise ConnectError("Server closed the connection")
        if self.trace is not None:
            self.trace("<-", data)
        self.reader.feed(data)

    def call(self, *args):
        self.send(*args)
        reply = self.read_reply()
        self._track(args, reply)
        return reply

    def _track(self, args, reply) -> None:
        """Follow SELECT / HELLO / AUTH so reconnect() returns to the same state."""
        if not args or isinstance(reply, Error):
            return
        name = _arg(args[0]).upper()
        if name == b"SELECT" and len(args) == 2:
            try:
                self.db = int(_arg(args[1]))
            except ValueError:
                pass
        elif name == b"HELLO" and len(args) >= 2:
            try:
                self.protocol = int(_arg(args[1]))
            except ValueError:
                pass
            rest = [_arg(a) for a in args[2:]]
            for i, word in enumerate(rest):
                if word.upper() == b"AUTH" and i + 2 < len(rest):
                    self.username = rest[i + 1].decode("utf-8", "surrogateescape")
                    self.password = rest[i + 2].decode("utf-8", "surrogateescape")
        elif name == b"AUTH" and len(args) in (2, 3):
            vals = [_arg(a).decode("utf-8", "surrogateescape") for a in args[1:]]
            self.username = vals[0] if len(vals) == 2 else None
            self.password = vals[-1]
