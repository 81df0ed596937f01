"""The strict request reader: RESP multibulk and the inline (telnet) form, with Redis's limits.

A pure-Python incremental parser: it checks every header before anything is
allocated (so `*4000000000` or `$9999999999` cost nothing), rejects what Redis
rejects with Redis's exact texts, and copies each argument once.

A big argument (BIG_ARG and over: a large SET's value) is read straight into
the bytes object that becomes the argument, as Redis reads a big argument into
the sds that becomes the value: each read is copied in and dropped, so a 400 MB
SET holds 400 MB, not the reads, their join and the slice cut from it (1.2 GB
measured before). CPython has no public way to fill a `bytes` in place from
Python; new_bytes() does what C extensions do (PyBytes_FromStringAndSize with
NULL, then write the buffer before anyone sees the object), through ctypes,
after checking the layout once. The allocation is virtual until written:
memory grows with what the client actually sent.
"""

import ctypes
import sys

from tenantkv import errors
from tenantkv.errors import ProtocolError, QueryBufferExceeded

INLINE_MAX = 64 * 1024            # PROTO_INLINE_MAX_SIZE
# Redis reads 16 KB at a time and looks for the newline after each read, so an
# inline line that arrives at once is accepted if its newline falls within the
# first 80 KB; we accept the same lines.
INLINE_LINE_MAX = INLINE_MAX + 16 * 1024
MAX_ARGS = 1024 * 1024
DEFAULT_MAX_BULK = 512 * 1024 * 1024
DEFAULT_MAX_QUERY_BUFFER = 1024 * 1024 * 1024
BIG_ARG = 1024 * 1024   # from this size an argument is read in place (see above)


def _bytes_filler():
    """-> new_bytes(size) giving (a bytes object of that size, a writable
    memoryview of its contents), or None where that cannot be done safely."""
    if sys.implementation.name != "cpython":
        return None
    try:
        api = ctypes.pythonapi
        from_size = api.PyBytes_FromStringAndSize
        from_size.restype = ctypes.py_object
        from_size.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        from_memory = api.PyMemoryView_FromMemory
        from_memory.restype = ctypes.py_object
        from_memory.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    except AttributeError:
        return None
    offset = bytes.__basicsize__ - 1   # PyBytesObject.ob_sval (basicsize counts its NUL)
    pybuf_write = 0x200

    def new_bytes(size: int):
        value = from_size(None, size)
        return value, from_memory(id(value) + offset, size, pybuf_write)

    try:
        probe, view = new_bytes(16)
        view[:] = b"0123456789abcdef"
        view.release()
        if probe != b"0123456789abcdef" or hash(probe) != hash(b"0123456789abcdef"):
            return None
    except Exception:
        return None
    return new_bytes


new_bytes = _bytes_filler()


class RequestReader:
    __slots__ = ("buf", "pending", "pending_len", "need", "args", "args_bytes", "remaining",
                 "bulk_len", "max_bulk", "max_args", "max_arg_unauth", "max_query_buffer",
                 "big", "big_view", "big_filled", "big_skip")

    def __init__(self, max_bulk: int = DEFAULT_MAX_BULK) -> None:
        self.buf = b""
        # Chunks of an incomplete request wait here until `need` bytes are in,
        # so a 100 MB value arriving in 64 KB reads is joined once, not 1,600 times.
        self.pending: list = []
        self.pending_len = 0
        self.need = 0
        self.args: list | None = None   # arguments of the multibulk being read
        self.args_bytes = 0             # their total size, counted by buffered()
        self.remaining = 0
        self.bulk_len = -1
        self.max_bulk = max_bulk
        self.max_args = MAX_ARGS
        self.max_arg_unauth = 0         # set while the client is not authenticated
        self.max_query_buffer = DEFAULT_MAX_QUERY_BUFFER   # client-query-buffer-limit
        # A big argument being read in place: the bytes object, a writable
        # view of it, how much of it has arrived, CRLF bytes still to skip.
        self.big = None
        self.big_view = None
        self.big_filled = 0
        self.big_skip = 0

    def buffered(self) -> int:
        # Input held for this client: raw bytes plus the arguments already cut
        # from an unfinished request (a `*100000` of 10 KB arguments must not
        # escape the query buffer limit by being parsed piecemeal).
        return self.pending_len + len(self.buf) + self.args_bytes + self.big_filled

    def feed(self, data: bytes) -> list:
        """Add bytes; return the complete requests (lists of bytes) now available.

        Raises ProtocolError for malformed input (exc.requests holds the
        requests before it), QueryBufferExceeded when the input held for an
        unfinished request grows past the limit.
        """
        if self.big is not None:
            return self._feed_big(data)
        if self.pending or self.buf:
            self.pending.append(data)
            self.pending_len += len(data)
            if self.pending_len + len(self.buf) < self.need:
                self._check_held()
                return []
            data = self.buf + b"".join(self.pending)
            self.pending = []
            self.pending_len = 0
        requests = self._parse(data)
        if self.buf or self.args is not None:
            self._check_held()
        return requests

    def _check_held(self) -> None:
        if self.buffered() > self.max_query_buffer:
            if self.max_arg_unauth:   # before AUTH: say why, then close
                exc = ProtocolError(errors.protocol_unauthenticated_size(self.max_query_buffer))
                exc.requests = []
                raise exc
            # As Redis: the client is closed at once, running nothing of this read.
            exc = QueryBufferExceeded("query buffer limit exceeded")
            exc.requests = []
            raise exc

    def _check_unauth_request(self, args: list) -> None:
        """Before AUTH a whole request is held to the input limit too, not
        only its unfinished part: 10 arguments of 16 KB arriving in one read
        would otherwise be held while AUTH's password check waits its turn."""
        if sum(map(len, args)) > self.max_query_buffer:
            raise ProtocolError(errors.protocol_unauthenticated_size(self.max_query_buffer))

    def _start_big(self, buf: bytes, pos: int, bulk_len: int) -> bool:
        """Begin reading the argument at buf[pos:] (incomplete) in place.
        False if it cannot be allocated now (the usual path then applies)."""
        try:
            value, view = new_bytes(bulk_len)
        except MemoryError:
            return False
        available = len(buf) - pos   # < bulk_len + 2: the argument is incomplete
        take = min(available, bulk_len)
        view[:take] = memoryview(buf)[pos:pos + take]
        self.big, self.big_view = value, view
        self.big_filled = take
        self.big_skip = 2 - (available - take)
        return True

    def _end_big(self) -> None:
        if self.big_view is not None:
            self.big_view.release()
        self.big = self.big_view = None
        self.big_filled = self.big_skip = 0

    def _feed_big(self, data: bytes) -> list:
        filled = self.big_filled
        missing = self.bulk_len - filled
        size = len(data)
        pos = 0
        if missing:
            pos = missing if missing < size else size
            self.big_view[filled:filled + pos] = data if pos == size else memoryview(data)[:pos]
            self.big_filled = filled + pos
            if pos == size:
                self._check_held()
                return []
        skip = min(self.big_skip, size - pos)   # the CRLF after the argument
        self.big_skip -= skip
        pos += skip
        if self.big_skip:
            return []
        value = self.big
        self._end_big()
        self.args.append(value)
        self.args_bytes += len(value)
        self.bulk_len = -1
        self.remaining -= 1
        out = []
        if not self.remaining:
            out.append(self.args)
            self.args = None
            self.args_bytes = 0
        try:
            out += self._parse(data[pos:] if pos else data)
        except ProtocolError as exc:
            exc.requests = out + exc.requests
            raise
        if self.buf or self.args is not None:
            self._check_held()
        return out

    def _parse(self, buf: bytes) -> list:
        out: list = []
        try:
            return self._parse_into(buf, out)
        except ProtocolError as exc:
            # The requests before the bad one still run, as in Redis.
            exc.requests = out
            self.buf = b""
            self.args = None
            self.args_bytes = 0
            self.bulk_len = -1
            self.pending = []
            self.pending_len = 0
            self.need = 0
            self._end_big()
            raise

    def _parse_into(self, buf: bytes, out: list) -> list:
        # Header lines are found as Redis finds them: the first '\r', with one
        # more byte (taken to be '\n') required after it; the '$' is checked
        # once the whole line is in.
        pos = 0
        n = len(buf)
        args = entry_args = self.args
        start = len(args) if args is not None else 0
        while pos < n:
            if args is None:
                if buf[pos] != 42:  # not '*': an inline request
                    nl = buf.find(b"\n", pos)
                    if nl < 0 or nl - pos >= INLINE_LINE_MAX:
                        if n - pos > INLINE_MAX:
                            raise ProtocolError(errors.PROTOCOL_INLINE_TOO_BIG)
                        break
                    line = buf[pos:nl]
                    pos = nl + 1
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    request = split_args(line)
                    if request is None:
                        raise ProtocolError(errors.PROTOCOL_UNBALANCED_QUOTES)
                    if request:
                        if self.max_arg_unauth:
                            self._check_unauth_request(request)
                        out.append(request)
                    continue
                nl = buf.find(b"\r", pos)
                if nl < 0:
                    if n - pos > INLINE_MAX:
                        raise ProtocolError(errors.PROTOCOL_MBULK_COUNT_TOO_BIG)
                    break
                if nl + 1 >= n:
                    break
                count = _strict_int(buf[pos + 1:nl])
                if count is None or count > self.max_args:
                    raise ProtocolError(errors.PROTOCOL_MBULK_LENGTH)
                if self.max_arg_unauth and count > 10:
                    raise ProtocolError(errors.PROTOCOL_MBULK_UNAUTHENTICATED)
                pos = nl + 2
                if count <= 0:
                    continue
                args = []
                self.remaining = count
            while self.remaining:
                bulk_len = self.bulk_len
                if bulk_len < 0:
                    nl = buf.find(b"\r", pos)
                    if nl < 0:
                        if n - pos > INLINE_MAX:
                            raise ProtocolError(errors.PROTOCOL_BULK_COUNT_TOO_BIG)
                        break
                    if nl + 1 >= n:
                        break
                    if buf[pos] != 36:  # '$'
                        # Error replies are one line: Redis shows CR/LF as a space.
                        got = buf[pos]
                        raise ProtocolError(errors.protocol_expected_dollar(
                            " " if got in (10, 13) else chr(got)))
                    bulk_len = _strict_int(buf[pos + 1:nl])
                    if bulk_len is None or bulk_len < 0 or bulk_len > self.max_bulk:
                        raise ProtocolError(errors.PROTOCOL_BULK_LENGTH)
                    if self.max_arg_unauth and bulk_len > self.max_arg_unauth:
                        raise ProtocolError(errors.PROTOCOL_BULK_UNAUTHENTICATED)
                    pos = nl + 2
                    self.bulk_len = bulk_len
                end = pos + bulk_len
                if end + 2 > n:
                    if bulk_len >= BIG_ARG and new_bytes is not None \
                            and self._start_big(buf, pos, bulk_len):
                        pos = n   # taken in; the rest arrives in _feed_big
                    break
                args.append(buf[pos:end])
                pos = end + 2
                self.bulk_len = -1
                self.remaining -= 1
            if self.remaining:
                break
            if self.max_arg_unauth:
                self._check_unauth_request(args)
            out.append(args)
            args = None
        self.args = args
        if args is None:
            self.args_bytes = 0
        elif args is entry_args:
            self.args_bytes += sum(map(len, args[start:]))
        else:
            self.args_bytes = sum(map(len, args))
        rest = buf[pos:] if pos < n else b""
        self.buf = rest
        # While a bulk is incomplete we know how many bytes it still needs.
        self.need = self.bulk_len + 2 if (args is not None and self.bulk_len >= 0) else 0
        return out


def _strict_int(raw: bytes) -> int | None:
    # string2ll: digits only, no leading zero, optional '-'.
    if raw.isdigit():
        if raw[0] == 48 and len(raw) > 1:
            return None
        return int(raw) if len(raw) < 20 else None
    if raw[:1] == b"-" and raw[1:].isdigit() and raw[1] != 48 and len(raw) < 21:
        return int(raw)
    return None


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"
_BLANK = b" \t\n\x0b\x0c\r"     # isspace(): skipped between arguments
_END = b" \n\r\t"               # what ends an unquoted argument in sdssplitargs


def split_args(line: bytes) -> list | None:
    """sdssplitargs: split an inline line, honouring "..." and '...' quoting.

    Returns None for unbalanced quotes (or a closing quote not followed by a space).
    A NUL byte is kept as data (Redis, reading C strings, stalls on it instead).
    """
    # bytes.split() splits on \v and \f too, which Redis keeps inside an argument.
    if b'"' in line or b"'" in line or b"\x0b" in line or b"\x0c" in line:
        return _split_quoted(line)
    return line.split()


def _split_quoted(line: bytes) -> list | None:
    args = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _BLANK:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            if in_double:
                if i >= n:
                    return None
                c = line[i]
                if (c == 92 and i + 3 < n and line[i + 1] == 120
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    current.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _BLANK:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_single:
                if i >= n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _BLANK:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _END:
                    break
                if c == 34:
                    in_double = True
                elif c == 39:
                    in_single = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
