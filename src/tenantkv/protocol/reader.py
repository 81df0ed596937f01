"""The request reader every connection uses: hiredis for the common case, the
strict parser (protocol/strict.py, RequestReader) for everything else.

hiredis parses in C, several times faster than Python here, but it is a reply
parser: it accepts what Redis rejects (`*1\\r\\n:5\\r\\n`, `*-1`, nested arrays,
`+simple` elements), it knows no inline form, and it allocates the list for
`*N` as soon as it reads the header. So hiredis only sees a read that:
  - starts at a request boundary with '*' (no inline, no pending slow state),
  - announces no array of a million elements or more (checked before hiredis
    parses a header: the first one by position, the others by a search that
    runs only when the read holds more than one request),
and its result is used only when it is exactly a sequence of complete arrays of
plain bulk strings that cover the whole read. The CRLF count proves the last
part: complete requests of N bulk strings hold exactly 1 + 2N CRLFs unless an
argument itself contains one; any surplus (a partial request, a CRLF inside a
value) or deficit sends the read to the strict parser, which then gives
Redis's exact answer. Nothing has run yet when that happens, so the fallback
just re-reads the same bytes.

Elements that are not bulk strings: hiredis gives int, float, bool, None,
list, dict, ReplyError for most (the type check refuses them), but bytes for
three: `+simple`, `=verbatim` and `(bignum`. Counting CRLFs does not exclude
them (a `+` element's missing CRLF is made up by one inside an argument, `=`
has as many as `$`), so their type bytes are counted instead: each of `+ = (`
must occur in the read exactly as often as in the arguments, i.e. never as a
type byte. Reads without any of the three (most) pay three memchr calls.
"""

import re
from itertools import chain

import hiredis

from tenantkv.protocol.strict import DEFAULT_MAX_QUERY_BUFFER, RequestReader

# "*" followed by 7+ digits: an array of a million elements or more.
_HUGE_COUNT = re.compile(rb"\*\d{7}")
# The type bytes of the elements hiredis returns as bytes besides bulk strings:
# '+', '=', '('.
_NON_BULK_TYPES = (43, 61, 40)


class Reader:
    __slots__ = ("fast", "slow", "strict_only")

    def __init__(self, max_bulk: int, max_query_buffer: int = DEFAULT_MAX_QUERY_BUFFER) -> None:
        self.fast = hiredis.Reader()
        self.slow = RequestReader(max_bulk)
        self.slow.max_query_buffer = max_query_buffer
        # True while the strict reader holds part of a request (or enforces the
        # pre-auth limits): then every read goes to it. One flag to test per
        # read instead of the strict reader's whole state.
        self.strict_only = False

    # The strict reader carries the limits and the pre-auth mode; expose it.
    @property
    def strict(self) -> RequestReader:
        return self.slow

    def refresh(self) -> None:
        """Call after changing the strict reader's pre-auth mode."""
        slow = self.slow
        self.strict_only = bool(slow.buf or slow.pending or slow.args is not None
                                or slow.max_arg_unauth)

    def buffered(self) -> int:
        # The fast path never keeps anything: only the strict reader holds input.
        return self.slow.buffered()

    def feed(self, data: bytes) -> list:
        # The first request's count header must end within 9 bytes
        # ("*999999\r\n"): hiredis allocates the array as it reads the header.
        # (`data` is never empty: asyncio does not deliver empty reads.)
        if self.strict_only or data[0] != 42 or not 0 < data.find(b"\r\n") < 9:   # 42: '*'
            return self._feed_strict(data)
        fast = self.fast
        fast.feed(data)
        try:
            # `request` is a list, None for "*-1", or False if incomplete.
            request = fast.gets()
            if not fast.has_data():
                # One request in the read: the usual case without pipelining.
                if request and data.count(b"\r\n") == 1 + 2 * len(request):
                    if len(data) < 65536:
                        joined = b"".join(request)   # TypeError unless all bytes
                        # (three memchr calls: cheaper than any one search)
                        if 43 in data or 61 in data or 40 in data:
                            _check_type_bytes(data, joined)
                    else:
                        _check_bulk_strings(request, data)
                    return [request]
            elif request is not False and _HUGE_COUNT.search(data) is None:
                # A pipeline (nothing past the first request is parsed yet, so
                # the check for huge counts still comes before any allocation).
                requests = [request]
                append = requests.append
                gets = fast.gets
                request = gets()
                while request is not False:
                    append(request)
                    request = gets()
                # len() also raises TypeError for a top-level integer or null.
                lengths = list(map(len, requests))
                # has_data() is False also when hiredis took the lone '*' of a
                # next request at the very end of the read (it waits for its
                # count line, holding state the next read would not find):
                # a read of whole requests ends with CRLF.
                if (not fast.has_data()
                        and data.endswith(b"\r\n")
                        and 0 not in lengths   # "*0": skipped by the strict reader
                        and data.count(b"\r\n") == len(lengths) + 2 * sum(lengths)):
                    # Raises TypeError for anything but arrays of bulk strings
                    # (chaining a top-level string yields ints, which fail too).
                    _check_bulk_strings(chain.from_iterable(requests), data)
                    return requests
        except (hiredis.ProtocolError, TypeError):
            pass
        self.fast = hiredis.Reader()
        return self._feed_strict(data)

    def _feed_strict(self, data: bytes) -> list:
        try:
            return self.slow.feed(data)
        finally:
            self.refresh()


def _check_bulk_strings(items, data: bytes) -> None:
    """Raise TypeError unless every item is a bulk string: bytes (not an int,
    a nested array, a null or an error, which hiredis also produces) read
    from a `$` element (not `+`, `=` or `(`: _check_type_bytes)."""
    if len(data) < 65536:
        joined = b"".join(items)   # one C call; raises TypeError on anything but bytes-like
        if 43 in data or 61 in data or 40 in data:
            _check_type_bytes(data, joined)
    else:
        # Large values: check types without copying them.
        items = list(items)
        if list(map(type, items)).count(bytes) != len(items):
            raise TypeError
        if 43 in data or 61 in data or 40 in data:
            _check_type_bytes(data, items)


def _check_type_bytes(data: bytes, values) -> None:
    """Raise TypeError if one of `+ = (` occurs in `data` outside `values` (the
    arguments joined, or a list of them; each a distinct part of `data`):
    then it is the type byte of a `+simple`, `=verbatim` or `(bignum` element,
    which Redis refuses. (Also when it is in the 2 bytes after a bulk, which
    neither Redis nor hiredis checks: the strict parser then answers, as Redis
    would.)"""
    for byte in _NON_BULK_TYPES:
        if byte in data:
            inside = values.count(byte) if type(values) is bytes else \
                sum(value.count(byte) for value in values)
            if data.count(byte) != inside:
                raise TypeError
