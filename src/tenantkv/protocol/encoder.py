"""Reply encoding, RESP2 or RESP3.

Commands return plain Python values and the connection encodes them:
  bytes -> bulk string         int -> integer          None -> null bulk
  list/tuple -> array          dict -> map (RESP3) or flat array (RESP2)
  float -> double (RESP3) or bulk string (RESP2)
  Status("OK") -> +OK          Raw(b"...") -> sent as is (pre-encoded)
  SetReply -> set (RESP3) or array   bool -> boolean (RESP3) or 1/0
  NULL_ARRAY -> *-1 (RESP2) or _     Verbatim -> verbatim string (RESP3)
  BigNumber -> big number (RESP3) or bulk string
  Push -> push (RESP3 only)          Attributed -> its attributes (RESP3 only), then its value
Frequent replies are pre-encoded once (see the constants below).

Arrays whose items are all exactly `bytes` (LRANGE, SMEMBERS, HGETALL, MGET
without a miss, KEYS, ...) are encoded in one C call, hiredis's pack_command,
which writes exactly `*N\r\n$len\r\n...\r\n` for them: ~2x faster than the
per-item Python below at 100 items. Only exact `bytes` take it: pack_command
would turn an int, a float or a str into a bulk string, refuses None, and
would send a Raw or a Verbatim (bytes subclasses) as a plain bulk string.
"""

from itertools import chain

from hiredis import pack_command

from tenantkv.util.numbers import format_double


class Raw(bytes):
    """Already-encoded RESP: written to the socket unchanged."""


class Status(str):
    """A simple string reply (+...)."""


class ErrorReply(str):
    """An error reply returned (not raised), e.g. inside EXEC's array."""


class SetReply(list):
    """An array that RESP3 sends as a set (~)."""


class Verbatim(bytes):
    """A bulk string that RESP3 sends as verbatim text (=...txt:)."""


class BigNumber(bytes):
    """An integer too big for 64 bits: RESP3's big number ((...), a bulk string in RESP2."""


class Push(list):
    """An out-of-band RESP3 push (>): only ever sent to a RESP3 client."""


class Attributed(tuple):
    """(attributes, value): RESP3 sends the attributes (|, a map) before the value;
    RESP2 has no attributes and sends the value alone."""

    def __new__(cls, attributes: dict, value):
        return super().__new__(cls, (attributes, value))


class _NullArray:
    pass


NULL_ARRAY = _NullArray()
OK = Raw(b"+OK\r\n")
PONG = Raw(b"+PONG\r\n")
QUEUED = Raw(b"+QUEUED\r\n")
EMPTY_ARRAY = Raw(b"*0\r\n")
# Encoded integer replies -1..10000, by value + 1: a list index is cheaper than formatting.
SMALL_INTS = [b":%d\r\n" % i for i in range(-1, 10001)]
# The set of item types of an array that pack_command may encode (see above).
_BYTES_ONLY = frozenset((bytes,))
_flatten = chain.from_iterable


def _body(packed: bytes) -> bytes:
    """pack_command's output without its `*N\r\n` header (to put a RESP3 map's
    or set's header in its place)."""
    return packed[packed.index(b"\n") + 1:]


def encode(value, resp3: bool) -> bytes:
    kind = type(value)
    if kind is bytes:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if kind is Raw:
        return value
    if kind is int:
        if -1 <= value <= 10000:
            return SMALL_INTS[value + 1]
        return b":%d\r\n" % value
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if kind is list or kind is tuple:
        # The exact types of the items, in C: a set of one type for the usual reply.
        if {*map(type, value)} <= _BYTES_ONLY:
            return pack_command(value if kind is tuple else tuple(value))
        return b"*%d\r\n%s" % (len(value), b"".join([encode(v, resp3) for v in value]))
    if kind is Status:
        return b"+%s\r\n" % value.encode("latin-1")
    if kind is ErrorReply:
        return b"-%s\r\n" % value.encode("latin-1")
    if kind is dict:
        if {*map(type, value)} <= _BYTES_ONLY and {*map(type, value.values())} <= _BYTES_ONLY:
            packed = pack_command(tuple(_flatten(value.items())))
            if resp3:
                return b"%%%d\r\n%s" % (len(value), _body(packed))
            return packed
        parts = []
        for k, v in value.items():
            parts.append(encode(k, resp3))
            parts.append(encode(v, resp3))
        if resp3:
            return b"%%%d\r\n%s" % (len(value), b"".join(parts))
        return b"*%d\r\n%s" % (len(value) * 2, b"".join(parts))
    if kind is float:
        text = format_double(value)
        if resp3:
            return b",%s\r\n" % text
        return b"$%d\r\n%s\r\n" % (len(text), text)
    if kind is bool:
        if resp3:
            return b"#t\r\n" if value else b"#f\r\n"
        return b":1\r\n" if value else b":0\r\n"
    if kind is SetReply:
        if {*map(type, value)} <= _BYTES_ONLY:
            packed = pack_command(tuple(value))
            return b"~%d\r\n%s" % (len(value), _body(packed)) if resp3 else packed
        head = b"~" if resp3 else b"*"
        return b"%s%d\r\n%s" % (head, len(value), b"".join([encode(v, resp3) for v in value]))
    if value is NULL_ARRAY:
        return b"_\r\n" if resp3 else b"*-1\r\n"
    if kind is Verbatim:
        if resp3:
            return b"=%d\r\ntxt:%s\r\n" % (len(value) + 4, value)
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if kind is str:
        data = value.encode()
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if kind is BigNumber:
        if resp3:
            return b"(%s\r\n" % value
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if kind is Push:
        return b">%d\r\n%s" % (len(value), b"".join([encode(v, resp3) for v in value]))
    if kind is Attributed:
        attributes, inner = value
        if not resp3:
            return encode(inner, resp3)
        return b"|%d\r\n%s%s" % (len(attributes), b"".join(
            [encode(k, resp3) + encode(v, resp3) for k, v in attributes.items()]), encode(inner, resp3))
    raise TypeError("cannot encode %r" % (value,))


def encode_error(message: str) -> bytes:
    if "\r" in message or "\n" in message:
        # One line whatever a text quotes from a request (as Redis's
        # addReplyErrorFormat): a CR or LF would end the reply early.
        message = message.replace("\r", " ").replace("\n", " ")
    return b"-%s\r\n" % message.encode("latin-1", "replace")
