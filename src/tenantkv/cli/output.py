"""Reply formatting for tenantkv-cli, byte for byte as redis-cli's.

``format_reply(reply, mode)`` returns what redis-cli writes to stdout for one
reply, trailing newline included:

- ``"tty"``: redis-cli's human format (cliFormatReplyTTY): ``(integer) 1``,
  ``"a"`` with C-style escapes, ``(nil)``, ``(error) ERR ...``, ``1) "a"``
  with nested indentation and index width alignment, RESP3 maps ``1# "k" =>
  "v"``, sets ``1~``, ``(double) 1.5``, ``(true)``, verbatim strings as is,
  ``(empty array)`` / ``(empty hash)`` / ``(empty set)`` / ``(empty push)``.
  Big numbers are ``(big number) 123`` (redis-cli 7.0 cannot print them).
- ``"raw"``: ``--raw`` (cliFormatReplyRaw + the reply delimiter): strings
  unquoted, nil as an empty line, arrays one element per line, maps ``k v``.
- ``"json"``: ``--json`` (redis-cli 7.x cliFormatReplyJson): strings with JSON
  escapes (bytes >= 0x80 passed through), ``null``, maps as objects (keys that
  are not strings become strings), errors as ``error:"ERR ..."``.
- ``"quoted-json"``: ``--quoted-json``: as json, strings ASCII-safe.
- ``"csv"``: ``--csv``.

The result is a ``str``; bytes that are not UTF-8 are kept as surrogates
(``surrogateescape``), so ``to_bytes(text)`` gives the exact bytes to write.
``write_reply(stream, reply, mode)`` does both for a binary stream.

Colours (``color=True``, tty mode only; the CLI enables them when stdout is a
terminal, ``--no-color`` or NO_COLOR turn them off; redis-cli itself has none):
errors red, type tags like ``(integer)`` and the index column dim, strings
green, numbers cyan, ``(nil)`` / empty forms dim. Only SGR codes, each span
reset, so stripping ``\\x1b[...m`` gives the plain text back.
"""

from __future__ import annotations

from tenantkv.cli.resp import (
    Attribute, BigNumber, Bool, Double, Error, Map, Push, Set, Status, Verbatim,
)

__all__ = ["format_reply", "to_bytes", "write_reply", "repr_bytes", "MODES", "strip_color",
           "format_invalidate"]

MODES = ("tty", "raw", "json", "quoted-json", "csv")

_RESET = "\x1b[0m"
COLORS = {
    "error": "\x1b[31m",     # red
    "tag": "\x1b[2m",        # dim: (integer), (double), 1), 1#, =>
    "string": "\x1b[32m",    # green
    "number": "\x1b[36m",    # cyan
    "nil": "\x1b[2m",        # dim
    "status": "",            # plain
}


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# sdscatrepr: "\\", '"', \n \r \t \a \b escaped; isprint() kept; else \xHH
_REPR = {}
for _b in range(256):
    if _b == 0x5C:
        _REPR[_b] = "\\\\"
    elif _b == 0x22:
        _REPR[_b] = '\\"'
    elif _b == 0x0A:
        _REPR[_b] = "\\n"
    elif _b == 0x0D:
        _REPR[_b] = "\\r"
    elif _b == 0x09:
        _REPR[_b] = "\\t"
    elif _b == 0x07:
        _REPR[_b] = "\\a"
    elif _b == 0x08:
        _REPR[_b] = "\\b"
    elif 0x20 <= _b <= 0x7E:
        _REPR[_b] = chr(_b)
    else:
        _REPR[_b] = "\\x%02x" % _b
_REPR_TABLE = [_REPR[b] for b in range(256)]
_PLAIN = bytes(b for b in range(0x20, 0x7F) if b not in (0x5C, 0x22))


def repr_bytes(data) -> str:
    """redis-cli's sdscatrepr: a double-quoted, escaped rendering."""
    if isinstance(data, str):
        data = to_bytes(data)
    if not data.translate(None, _PLAIN):   # all plain printable
        return '"' + data.decode("ascii") + '"'
    table = _REPR_TABLE
    return '"' + "".join([table[b] for b in data]) + '"'


# JSON (escapeJsonString): \\ \" \n \f \r \t \b, other < 0x20 as \u00XX, rest as is
_JSON = {0x5C: "\\\\", 0x22: '\\"', 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r", 0x09: "\\t",
         0x08: "\\b"}


def _json_string(data) -> str:
    if isinstance(data, str):
        data = to_bytes(data)
    out = ['"']
    start = 0
    for i, b in enumerate(data):
        if b < 0x20 or b == 0x5C or b == 0x22:
            out.append(_text(data[start:i]))
            out.append(_JSON.get(b) or "\\u%04x" % b)
            start = i + 1
    out.append(_text(data[start:]))
    out.append('"')
    return "".join(out)


def _quoted_json_string(data) -> str:
    return repr_bytes(data).replace("\\", "\\\\")


def _paint(text: str, kind: str, color: bool) -> str:
    if not color:
        return text
    code = COLORS.get(kind, "")
    return code + text + _RESET if code else text


# -- tty ----------------------------------------------------------------------

def _tty(reply, prefix: str, color: bool) -> str:
    if reply is None:
        return _paint("(nil)", "nil", color) + "\n"
    if isinstance(reply, Error):
        return _paint("(error) " + reply, "error", color) + "\n"
    if isinstance(reply, Status):
        return _paint(str(reply), "status", color) + "\n"
    if isinstance(reply, Bool):
        return _paint("(true)" if reply else "(false)", "number", color) + "\n"
    if isinstance(reply, int):
        return _paint("(integer) ", "tag", color) + _paint(str(int(reply)), "number", color) + "\n"
    if isinstance(reply, Double):
        return _paint("(double) ", "tag", color) + _paint(reply.text, "number", color) + "\n"
    if isinstance(reply, BigNumber):
        return _paint("(big number) ", "tag", color) + _paint(str(reply), "number", color) + "\n"
    if isinstance(reply, Verbatim):
        return _text(bytes(reply)) + "\n"
    if isinstance(reply, (bytes, bytearray)):
        return _paint(repr_bytes(bytes(reply)), "string", color) + "\n"
    if isinstance(reply, str):   # a plain str: treat as a bulk string
        return _paint(repr_bytes(reply), "string", color) + "\n"
    if isinstance(reply, float):
        return _paint("(double) ", "tag", color) + _paint(repr(reply), "number", color) + "\n"
    if isinstance(reply, Map):
        if not reply:
            return _paint("(empty hash)", "nil", color) + "\n"
        return _tty_aggregate(reply, prefix, color, "#", True)
    if isinstance(reply, (list, tuple)):
        if not reply:
            empty = ("(empty set)" if isinstance(reply, Set) else
                     "(empty push)" if isinstance(reply, Push) else "(empty array)")
            return _paint(empty, "nil", color) + "\n"
        sep = "~" if isinstance(reply, Set) else ")"
        return _tty_aggregate(reply, prefix, color, sep, False)
    if isinstance(reply, dict):
        return _tty(Map(reply.items()), prefix, color)
    raise TypeError("cannot format a %s" % type(reply).__name__)


def _tty_aggregate(items, prefix: str, color: bool, sep: str, is_map: bool) -> str:
    count = len(items)
    idxlen = len(str(count))
    child_prefix = prefix + " " * (idxlen + 2)
    out = []
    for i, item in enumerate(items):
        index = "%*d%s " % (idxlen, i + 1, sep)
        out.append(("" if i == 0 else prefix) + _paint(index, "tag", color))
        if is_map:
            key, value = item
            out.append(_tty(key, child_prefix, color)[:-1])
            out.append(_paint(" => ", "tag", color))
            if _multiline(value):   # redis-cli 7.0: a multi-line value starts on its own line
                out.append("\n" + child_prefix)
            out.append(_tty(value, child_prefix, color))
        else:
            out.append(_tty(item, child_prefix, color))
    return "".join(out)


def _multiline(reply) -> bool:
    """cliIsMultilineValueTTY."""
    if isinstance(reply, Map):
        if not reply:
            return False
        return len(reply) > 1 or _multiline(reply[0][1])
    if isinstance(reply, (list, tuple)):
        if not reply:
            return False
        return len(reply) > 1 or _multiline(reply[0])
    return False


# -- raw ----------------------------------------------------------------------

def _raw(reply, mb_delim: str) -> str:
    if reply is None:
        return ""
    if isinstance(reply, Error):
        return reply + "\n"
    if isinstance(reply, (Status, BigNumber)):
        return str(reply)
    if isinstance(reply, Bool):
        return "(true)" if reply else "(false)"
    if isinstance(reply, int):
        return str(int(reply))
    if isinstance(reply, Double):
        return reply.text
    if isinstance(reply, (bytes, bytearray)):
        return _text(bytes(reply))
    if isinstance(reply, str):
        return reply
    if isinstance(reply, float):
        return repr(reply)
    if isinstance(reply, Map):
        return mb_delim.join(_raw(k, mb_delim) + " " + _raw(v, mb_delim) for k, v in reply)
    if isinstance(reply, (list, tuple)):
        return mb_delim.join(_raw(item, mb_delim) for item in reply)
    if isinstance(reply, dict):
        return _raw(Map(reply.items()), mb_delim)
    raise TypeError("cannot format a %s" % type(reply).__name__)


# -- json / csv -----------------------------------------------------------------

def _json(reply, quoted: bool) -> str:
    string = _quoted_json_string if quoted else _json_string
    if reply is None:
        return "null"
    if isinstance(reply, Error):
        return "error:" + string(reply)
    if isinstance(reply, Status):
        return string(reply)
    if isinstance(reply, Bool):
        return "true" if reply else "false"
    if isinstance(reply, int):
        return str(int(reply))
    if isinstance(reply, Double):
        return reply.text
    if isinstance(reply, BigNumber):
        return str(reply)
    if isinstance(reply, (bytes, bytearray, str)):
        return string(reply)
    if isinstance(reply, float):
        return repr(reply)
    if isinstance(reply, Map):
        parts = []
        for key, value in reply:
            if isinstance(key, (Error, Status, bytes, bytearray, str)) and not isinstance(key, BigNumber):
                keytext = _json(key, quoted)
            else:
                keytext = _json(key, quoted)
                if not keytext.startswith('"'):
                    keytext = '"' + keytext + '"'
            parts.append(keytext + ":" + _json(value, quoted))
        return "{" + ",".join(parts) + "}"
    if isinstance(reply, (list, tuple)):
        return "[" + ",".join(_json(item, quoted) for item in reply) + "]"
    if isinstance(reply, dict):
        return _json(Map(reply.items()), quoted)
    raise TypeError("cannot format a %s" % type(reply).__name__)


def _csv(reply) -> str:
    if reply is None:
        return "NULL"
    if isinstance(reply, Error):
        return "ERROR," + repr_bytes(reply)
    if isinstance(reply, Status):
        return repr_bytes(reply)
    if isinstance(reply, Bool):
        return "true" if reply else "false"
    if isinstance(reply, int):
        return str(int(reply))
    if isinstance(reply, Double):
        return reply.text
    if isinstance(reply, BigNumber):
        return str(reply)
    if isinstance(reply, (bytes, bytearray, str)):
        return repr_bytes(reply)
    if isinstance(reply, float):
        return repr(reply)
    if isinstance(reply, Map):
        return ",".join(_csv(x) for pair in reply for x in pair)
    if isinstance(reply, (list, tuple)):
        return ",".join(_csv(item) for item in reply)
    if isinstance(reply, dict):
        return _csv(Map(reply.items()))
    raise TypeError("cannot format a %s" % type(reply).__name__)


# -- entry points -----------------------------------------------------------------

def format_reply(reply, mode: str = "tty", *, color: bool = False, mb_delim: str = "\n",
                 cmd_delim: str = "\n", raw_strings: bool = False) -> str:
    """What redis-cli prints for `reply` in `mode` (trailing newline included).

    ``raw_strings``: redis-cli prints some commands' replies raw whatever the
    mode (INFO, CLIENT LIST, ...; see :func:`prints_raw`), without the final
    delimiter. ``mb_delim`` / ``cmd_delim``: redis-cli's -d and -D (raw mode).
    """
    if isinstance(reply, Attribute):
        reply = Map(reply)
    if raw_strings:
        return _raw(reply, mb_delim)
    if mode == "tty":
        return _tty(reply, "", color)
    if mode == "raw":
        return _raw(reply, mb_delim) + cmd_delim
    if mode == "json":
        return _json(reply, False) + "\n"
    if mode == "quoted-json":
        return _json(reply, True) + "\n"
    if mode == "csv":
        return _csv(reply) + "\n"
    raise ValueError("unknown output mode %r (one of %s)" % (mode, ", ".join(MODES)))


def format_invalidate(push) -> str:
    """redis-cli's tty line for a RESP3 invalidation push: -> invalidate: 'a', 'b'"""
    keys = push[1] if len(push) > 1 and isinstance(push[1], list) else []
    return "-> invalidate: " + ", ".join("'%s'" % _text(bytes(k)) for k in keys) + "\n"


def prints_raw(args) -> bool:
    """True for the commands whose replies redis-cli prints raw even in tty mode
    (their text is meant to be read as is): INFO, LOLWUT, CLIENT LIST/INFO,
    MEMORY DOCTOR/MALLOC-STATS, CLUSTER NODES/INFO, LATENCY DOCTOR/GRAPH,
    DEBUG HTSTATS/HTSTATS-KEY/CLIENT-EVICTION."""
    if not args:
        return False
    words = [(a.decode("utf-8", "replace") if isinstance(a, (bytes, bytearray)) else str(a)).lower()
             for a in args[:2]]
    name = words[0]
    sub = words[1] if len(words) > 1 else ""
    argc = len(args)
    return (name in ("info", "lolwut")
            or (argc >= 2 and name == "debug" and sub in ("htstats", "htstats-key",
                                                          "client-eviction"))
            or (argc >= 2 and name == "memory" and sub in ("malloc-stats", "doctor"))
            or (argc == 2 and name == "cluster" and sub in ("nodes", "info"))
            or (argc >= 2 and name == "client" and sub in ("list", "info"))
            or (argc == 3 and name == "latency" and sub == "graph")
            or (argc == 2 and name == "latency" and sub == "doctor")
            or (argc >= 2 and name == "proxy" and sub == "info"))


def write_reply(stream, reply, mode: str = "tty", **kwargs) -> None:
    """Format and write to a binary stream (sys.stdout.buffer), exact bytes."""
    stream.write(to_bytes(format_reply(reply, mode, **kwargs)))


def strip_color(text: str) -> str:
    import re
    return re.sub("\x1b\\[[0-9;]*m", "", text)
