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
# strtod/strtold syntax: decimal (no leading space, whole string consumed) or
# C99 hexadecimal floats ("0x1.8p3"), or inf/infinity; nan is refused by Redis.
_DECIMAL = re.compile(rb"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_HEXADECIMAL = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?")
_INFINITY = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)
MAX_LONG_DOUBLE_CHARS = 5 * 1024


def parse_int(raw: bytes) -> int | None:
    """The value of `raw` as a 64-bit signed integer, or None if Redis would refuse it."""
    if raw.isdigit() and len(raw) < 19 and (raw[0] != 48 or len(raw) == 1):
        return int(raw)   # the common case: ASCII digits, no leading zero, in range
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


def _parse_real(raw: bytes, precision: int, min_exponent: int, max_exponent: int):
    """Parse `raw` as strtod/strtold would into a binary float of `precision`
    significand bits: (sign, significand, exponent) for sign * m * 2**e, or
    (sign, None, 0) for infinity; None when Redis refuses the text (syntax,
    trailing or leading junk, nan, overflow, or underflow to zero)."""
    if not raw or raw[0] in b" \t\n\r\v\f":
        return None
    match = _INFINITY.fullmatch(raw)
    if match:
        return (-1 if match.group(1) == b"-" else 1), None, 0
    match = _HEXADECIMAL.fullmatch(raw)
    if match:
        sign, whole, fraction, exponent = match.groups()
        fraction = fraction or b""
        if not whole and not fraction:
            return None   # "0x" parses as 0 followed by junk
        mantissa = int(whole + fraction, 16)
        exp2 = (int(exponent) if exponent else 0) - 4 * len(fraction)
        if mantissa and not min_exponent - precision - 2 < mantissa.bit_length() + exp2 \
                < max_exponent + 2:
            return None   # overflow or underflow to zero (ERANGE), before shifting
        return _round_binary(-1 if sign == b"-" else 1, mantissa, exp2, 1, precision,
                             min_exponent, max_exponent)
    match = _DECIMAL.fullmatch(raw)
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    fraction = fraction or b""
    if not whole and not fraction:
        return None
    digits = (whole + fraction).lstrip(b"0")
    sign = -1 if sign == b"-" else 1
    if not digits:
        return sign, 0, 0
    exp10 = (int(exponent) if exponent else 0) - len(fraction)
    magnitude = exp10 + len(digits)   # the value is below 10**magnitude
    if magnitude > 5000:
        return None   # overflow: ERANGE with HUGE_VAL
    if magnitude < -5000:
        return None   # underflow to zero: ERANGE
    mantissa = _decimal_to_int(digits)
    if exp10 >= 0:
        return _round_binary(sign, mantissa * 10 ** exp10, 0, 1, precision, min_exponent, max_exponent)
    return _round_binary(sign, mantissa, 0, 10 ** -exp10, precision, min_exponent, max_exponent)


# Python refuses int <-> decimal text conversions past 4300 digits (a guard
# against quadratic time); long doubles reach 4933 digits, so convert in pieces.
_CHUNK = 2000


def _decimal_to_int(digits: bytes) -> int:
    if len(digits) <= _CHUNK:
        return int(digits)
    return _decimal_to_int(digits[:-_CHUNK]) * 10 ** _CHUNK + int(digits[-_CHUNK:])


def _int_to_decimal(value: int) -> bytes:
    if value < 10 ** _CHUNK:
        return b"%d" % value
    high, low = divmod(value, 10 ** _CHUNK)
    return _int_to_decimal(high) + b"%0*d" % (_CHUNK, low)


def _round_binary(sign: int, numerator: int, exp2: int, denominator: int, precision: int,
                  min_exponent: int, max_exponent: int):
    """Round sign * numerator * 2**exp2 / denominator to the nearest (ties to even)
    binary float; None on overflow or underflow to zero (strtod's ERANGE cases)."""
    if numerator == 0:
        return sign, 0, 0
    # floor(log2(value)), exactly
    top = numerator.bit_length() - denominator.bit_length() + exp2
    if (numerator << max(0, -(top - exp2))) < (denominator << max(0, top - exp2)):
        top -= 1
    quantum = max(top, min_exponent) - (precision - 1)
    shift = exp2 - quantum   # value / 2**quantum = numerator * 2**shift / denominator
    num, den = numerator, denominator
    if shift >= 0:
        num <<= shift
    else:
        den <<= -shift
    significand, rest = divmod(num, den)
    if 2 * rest > den or (2 * rest == den and significand & 1):
        significand += 1
    if significand == 0:
        return None
    if significand.bit_length() + quantum > max_exponent + 1:
        return None
    return sign, significand, quantum


# x86-64 long double (80-bit extended): 64-bit significand, exponents -16382..16383.
_LD = (64, -16382, 16383)
# IEEE double: 53-bit significand, exponents -1022..1023.
_D = (53, -1022, 1023)


# Plain decimals of modest size and exponent: no overflow or underflow is
# possible, and Python's float() rounds exactly as glibc's strtod does.
_PLAIN_DECIMAL = re.compile(rb"-?[0-9]{1,20}(?:\.[0-9]{0,20})?(?:[eE][+-]?[0-9]{1,2})?")


def parse_float(raw: bytes) -> float | None:
    """A double as Redis's getDoubleFromObject reads it (strtod, hex floats included)."""
    if _PLAIN_DECIMAL.fullmatch(raw) is not None:
        return float(raw)   # the common case (scores, timeouts), without the exact parse below
    parsed = _parse_real(raw, *_D)
    if parsed is None:
        return None
    sign, significand, exponent = parsed
    if significand is None:
        return sign * math.inf
    return sign * math.ldexp(significand, exponent) if significand else (0.0 if sign > 0 else -0.0)


def incr_long_double(current: bytes | None, increment: bytes):
    """INCRBYFLOAT's arithmetic, as Redis does it on x86-64: strtold both
    strings, add in 80-bit extended precision, print with "%.17Lf" and trim.

    Returns the new text, or raises CommandError (not a float, NaN/Infinity).
    """
    a = (1, 0, 0) if current is None else _parse_real(current, *_LD)
    b = _parse_real(increment, *_LD)
    if a is None or b is None or len(increment) >= MAX_LONG_DOUBLE_CHARS \
            or (current is not None and len(current) >= MAX_LONG_DOUBLE_CHARS):
        raise CommandError(errors.NOT_FLOAT)
    if a[1] is None or b[1] is None:   # inf + x is inf, inf - inf is nan
        raise CommandError(errors.INCR_NAN)
    (sa, ma, ea), (sb, mb, eb) = a, b
    low = min(ea, eb)
    total = sa * (ma << (ea - low)) + sb * (mb << (eb - low))
    if total == 0:
        return b"0"
    result = _round_binary(1 if total > 0 else -1, abs(total), low, 1, *_LD)
    if result is None:
        # Overflow is infinity; an exact sum never underflows to zero here.
        raise CommandError(errors.INCR_NAN)
    return format_long_double_human(*result)


def format_long_double_human(sign: int, significand: int, exponent: int) -> bytes:
    """ld2string(LD_STR_HUMAN): "%.17Lf" of sign * significand * 2**exponent
    (exact, ties to even), trailing zeros and dot removed, "-0" as "0"."""
    if exponent >= 0:
        text = _int_to_decimal(significand << exponent)
    else:
        den = 1 << -exponent
        scaled, rest = divmod(significand * 10 ** 17, den)
        if 2 * rest > den or (2 * rest == den and scaled & 1):
            scaled += 1
        whole, fraction = divmod(scaled, 10 ** 17)
        text = (b"%d.%017d" % (whole, fraction)).rstrip(b"0").rstrip(b".")
    if sign < 0 and text != b"0":
        text = b"-" + text
    return text


def float_arg(raw: bytes, message: str = errors.NOT_FLOAT) -> float:
    value = parse_float(raw)
    if value is None:
        raise CommandError(message)
    return value


def format_human_float(value: float) -> bytes:
    """A double in fixed notation, no exponent, no trailing zeros.

    Not INCRBYFLOAT's (or HINCRBYFLOAT's) output: Redis computes those in long
    double and prints "%.17Lf"; use incr_long_double for them."""
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


def timeout_ms(raw: bytes) -> int | None:
    """A timeout in seconds as Redis's getTimeoutFromObjectOrReply reads it:
    strtold, times 1000 in long double arithmetic, rounded up to whole
    milliseconds (so "-0.001" is 0, i.e. forever, as on x86-64 Redis).
    None when the text is not a float; the caller checks the range."""
    if len(raw) >= MAX_LONG_DOUBLE_CHARS:
        return None
    parsed = _parse_real(raw, *_LD)
    if parsed is None:
        return None
    sign, significand, exponent = parsed
    if significand is None:   # infinity
        return sign * (LLONG_MAX + 1)
    if significand == 0:
        return 0
    product = _round_binary(sign, significand * 1000, exponent, 1, *_LD)
    if product is None:
        return sign * (LLONG_MAX + 1)
    sign, significand, exponent = product
    value = sign * significand
    if exponent >= 0:
        return value << exponent
    return -((-value) >> -exponent)   # ceil(value / 2**-exponent)
