"""Strict number parsing, as Redis parses client input.

Python's int() and float() accept spaces, '+', '_' and leading zeros; Redis
does not, so neither may we: `SET k " 1"` then `INCR k` must fail as in Redis.
"""

import math
import re
from decimal import Decimal

from tenantkv import errors
from tenantkv.errors import CommandError

LLONG_MIN = -(1 << 63)
LLONG_MAX = (1 << 63) - 1

# string2ll: optional '-', then either "0" or a digit 1-9 followed by digits.
_INTEGER = re.compile(rb"-?[1-9][0-9]{0,19}|0")
# strtod as Redis uses it: no leading space, whole string consumed, no nan.
_FLOAT = re.compile(
    rb"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)",
    re.IGNORECASE,
)


def parse_int(raw: bytes) -> int | None:
    """The value of `raw` as a 64-bit signed integer, or None if Redis would refuse it."""
    if _INTEGER.fullmatch(raw) is None:
        return None
    value = int(raw)
    if value < LLONG_MIN or value > LLONG_MAX:
        return None
    return value


def int_arg(raw: bytes, message: str = errors.NOT_INTEGER) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError(message)
    return value


def parse_float(raw: bytes) -> float | None:
    if _FLOAT.fullmatch(raw) is None:
        return None
    return float(raw)


def float_arg(raw: bytes, message: str = errors.NOT_FLOAT) -> float:
    value = parse_float(raw)
    if value is None:
        raise CommandError(message)
    return value


def format_human_float(value: float) -> bytes:
    """INCRBYFLOAT's output: fixed notation, no exponent, no trailing zeros."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return text.encode()


def format_double(value: float) -> bytes:
    """Doubles as Redis 7 prints them (%.17g, shortest round-trip form)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value == int(value) and abs(value) < 1e17:
        return b"%d" % int(value)
    return repr(value).encode()
