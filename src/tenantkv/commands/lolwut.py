"""LOLWUT [VERSION v] [args...]: Redis 7.0's computer art (lolwut.c,
lolwut5.c, lolwut6.c).

VERSION 5 draws Georg Nees' "Schotter" in Braille characters, computed as
Redis does, in C `float`s (`_f32`), so that where Redis draws no random
rotation (two rows of squares or fewer) the bytes are Redis's; VERSION 6
draws the skyline with random windows, as Redis (never the same twice);
any other version, and none, answer the version line, as Redis 7.0 does for
its own version.

The drawing is pure Python, so its size is bounded (MAX_PIXELS) more tightly
than Redis bounds it: Redis's largest canvases (hundreds of millions of
pixels) would hold the loop for minutes; past the bound, an error.
"""

import math
import random
import struct

from tenantkv import REDIS_COMPAT_VERSION, errors
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.protocol.encoder import Verbatim
from tenantkv.util.numbers import parse_int

# Redis's defaults fit (VERSION 5: 25,872 pixels; 6: 1,600); the largest
# canvas takes ~10 ms to draw.
MAX_PIXELS = 32_768
_RAND_MAX = 2147483647
_RAND_MAX_F = 2147483648.0   # (float)RAND_MAX
_pack = struct.Struct("f")


def _f32(value: float) -> float:
    """`value` rounded to a C float."""
    return _pack.unpack(_pack.pack(value))[0]


def _rand() -> int:
    return random.getrandbits(31)   # as glibc's rand(): 0..RAND_MAX


def _c_round(value: float) -> int:
    """C's round(): halves away from zero."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def _long(raw: bytes) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError(errors.NOT_INTEGER)
    return value


class _Canvas:
    __slots__ = ("width", "height", "pixels")

    def __init__(self, width: int, height: int, color: int) -> None:
        if width * height > MAX_PIXELS:
            raise CommandError(errors.LOLWUT_TOO_BIG % MAX_PIXELS)
        self.width, self.height = width, height
        self.pixels = bytearray([color]) * (width * height)

    def draw(self, x: int, y: int, color: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.pixels[x + y * self.width] = color

    def get(self, x: int, y: int) -> int:
        if 0 <= x < self.width and 0 <= y < self.height:
            return self.pixels[x + y * self.width]
        return 0

    def line(self, x1: int, y1: int, x2: int, y2: int, color: int) -> None:
        dx, dy = abs(x2 - x1), abs(y2 - y1)
        sx = 1 if x1 < x2 else -1
        sy = 1 if y1 < y2 else -1
        err = dx - dy
        while True:
            self.draw(x1, y1, color)
            if x1 == x2 and y1 == y2:
                break
            e2 = err * 2
            if e2 > -dy:
                err -= dy
                x1 += sx
            if e2 < dx:
                err += dx
                y1 += sy

    def square(self, x: int, y: int, size: float, angle: float, color: int) -> None:
        size = float(_c_round(_f32(size / 1.4142135623)))
        k = _f32(math.pi / 4 + angle)
        px, py = [], []
        for _ in range(4):
            px.append(_c_round(math.sin(k) * size + x))
            py.append(_c_round(math.cos(k) * size + y))
            k = _f32(k + math.pi / 2)
        for j in range(4):
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4], color)


# -- version 5: Schotter -------------------------------------------------------------

def _schotter(cols: int, per_row: int, per_col: int) -> _Canvas:
    width = cols * 2
    padding = 2 if width > 4 else 0
    side = _f32(float(width - padding * 2) / per_row)
    height = int(_f32(_f32(side * per_col) + padding * 2))
    canvas = _Canvas(width, height, 0)
    half = _f32(side / 2)
    for y in range(per_col):
        for x in range(per_row):
            sx = int(_f32(_f32(_f32(x * side) + half) + padding))
            sy = int(_f32(_f32(_f32(y * side) + half) + padding))
            angle = 0.0
            if y > 1:   # rotated and moved at random, more so lower down
                r1, r2, r3 = (_f32(_f32(_f32(_f32(float(_rand())) / _RAND_MAX_F) / per_col) * y)
                              for _ in range(3))
                if _rand() % 2:
                    r1 = -r1
                if _rand() % 2:
                    r2 = -r2
                if _rand() % 2:
                    r3 = -r3
                angle = r1
                sx = int(_f32(sx + _f32(_f32(r2 * side) / 3)))
                sy = int(_f32(sy + _f32(_f32(r3 * side) / 3)))
            canvas.square(sx, sy, side, angle, 1)
    return canvas


# Braille dot bits of a 2x4 cell, by (dx, dy).
_DOTS = ((0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10),
         (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80))


def _braille(canvas: _Canvas) -> str:
    out = []
    get = canvas.get
    for y in range(0, canvas.height, 4):
        row = []
        for x in range(0, canvas.width, 2):
            byte = 0
            for dx, dy, bit in _DOTS:
                if get(x + dx, y + dy):
                    byte |= bit
            row.append(chr(0x2800 + byte))
        out.append("".join(row))
        if y != canvas.height - 1:
            out.append("\n")
    return "".join(out)


def _lolwut5(args: list) -> bytes:
    cols, per_row, per_col = 66, 8, 12
    if len(args) > 0:
        cols = _long(args[0])
    if len(args) > 1:
        per_row = _long(args[1])
    if len(args) > 2:
        per_col = _long(args[2])
    cols = min(max(cols, 1), 1000)
    per_row = min(max(per_row, 1), 200)
    per_col = min(max(per_col, 1), 200)
    text = _braille(_schotter(cols, per_row, per_col))
    return (text + "\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. "
            + REDIS_COMPAT_VERSION + "\n").encode()


# -- version 6: a skyline --------------------------------------------------------------

_COLORS = ("0;30;40m", "0;90;100m", "0;37;47m", "0;97;107m")
# A pixel's text by its colour (any other value: black, "just for safety")
_CELLS = ["\033[%s \033[0m" % _COLORS[c if c < 4 else 0] for c in range(256)]


def _skyscraper(canvas: _Canvas, xoff: int, width: int, height: int, windows: bool,
                color: int) -> None:
    starty = canvas.height - 1
    endy = starty - height + 1
    for y in range(starty, endy - 1, -1):
        for x in range(xoff, xoff + width):
            if y == endy and (x <= xoff + 1 or x >= xoff + width - 2):
                continue   # the roof is four pixels narrower
            c = color
            if windows and xoff + 1 < x < xoff + width - 2 and endy + 1 < y < starty - 1:
                relx, rely = x - (xoff + 1), y - (endy + 1)
                if (relx // 2) % 2 and rely % 2:
                    while True:
                        c = 1 + _rand() % 2
                        if c != color:
                            break
                    if relx % 2:
                        c = canvas.get(x - 1, y)
            canvas.draw(x, y, c)


def _skyline(canvas: _Canvas) -> None:
    h = canvas.height
    for color in (2, 1):
        offset = -10
        while offset < canvas.width:
            offset += _rand() % 8
            width = 10 + _rand() % 9
            if color == 2:
                height = h // 2 + (_rand() % h) // 2
            else:
                height = h // 2 + (_rand() % h) // 3
            _skyscraper(canvas, offset, width, height, False, color)
            offset += width // 2 if color == 2 else width + 1
    offset = -10
    while offset < canvas.width:
        offset += _rand() % 8
        width = 5 + _rand() % 14
        if width % 4:
            width += width % 3
        height = h // 3 + (_rand() % h) // 2
        _skyscraper(canvas, offset, width, height, True, 0)
        offset += width + 5


def _lolwut6(args: list) -> bytes:
    cols, rows = 80, 20
    if len(args) > 0:
        cols = _long(args[0])
    if len(args) > 1:
        rows = _long(args[1])
    cols = min(max(cols, 1), 1000)
    rows = min(max(rows, 1), 1000)
    canvas = _Canvas(cols, rows, 3)
    _skyline(canvas)
    lines = []
    pixels, width = canvas.pixels, canvas.width
    for y in range(rows):
        lines.append("".join(map(_CELLS.__getitem__, pixels[y * width:(y + 1) * width])))
    return ("\n".join(lines)
            + "\nDedicated to the 8 bit game developers of past and present.\n"
            "Original 8 bit image from Plaguemon by hikikomori. Redis ver. "
            + REDIS_COMPAT_VERSION + "\n").encode()


@command("lolwut")
def lolwut(conn, args):
    version = REDIS_COMPAT_VERSION
    rest = args[1:]
    if len(args) >= 3 and args[1].lower() == b"version":
        version = "%d.0.0" % (_long(args[2]) & 0xFFFFFFFF)   # C's (unsigned int)
        rest = args[3:]
    # Redis 7.0's choice, on the version's first characters
    if (version[0] == "5" and version[1] == "." and version[2] != "9") or \
            (version[0] == "4" and version[1] == "." and version[2] == "9"):
        return Verbatim(_lolwut5(rest))
    if (version[0] == "6" and version[1] == "." and version[2] != "9") or \
            (version[0] == "5" and version[1] == "." and version[2] == "9"):
        return Verbatim(_lolwut6(rest))
    return Verbatim(("Redis ver. %s\n" % REDIS_COMPAT_VERSION).encode())
