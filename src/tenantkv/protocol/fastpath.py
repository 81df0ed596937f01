"""The request reader used by connections: hiredis for the common case, our
strict parser (reader.RequestReader) for everything else.

hiredis parses in C, several times faster than Python here, but it is a reply
parser: it accepts what Redis rejects (`*1\\r\\n:5\\r\\n`, `*-1`, nested arrays,
`+simple` elements), it knows no inline form, and it allocates the list for
`*N` as soon as it reads the header. So hiredis only sees a read that:
  - starts at a request boundary with '*' (no inline, no pending slow state),
  - announces no array of a million elements or more (checked before feeding),
and its result is used only when it is exactly a sequence of complete arrays of
plain bulk strings that cover the whole read. The CRLF count proves the last
part: complete requests of N bulk strings hold exactly 1 + 2N CRLFs unless an
argument itself contains one; any surplus (a partial request, a CRLF inside a
value) or deficit (a `+` element) sends the read to the strict parser, which
then gives Redis's exact answer. Nothing has run yet when that happens, so the
fallback just re-reads the same bytes.
"""

import re
from itertools import chain

import hiredis

from tenantkv.protocol.reader import RequestReader

# "*" followed by 7+ digits: an array of a million elements or more.
_HUGE_COUNT = re.compile(rb"\*\d{7}")


class Reader:
    __slots__ = ("fast", "slow")

    def __init__(self, max_bulk: int) -> None:
        self.fast = hiredis.Reader()
        self.slow = RequestReader(max_bulk)

    # The strict reader carries the limits and the pre-auth mode; expose it.
    @property
    def strict(self) -> RequestReader:
        return self.slow

    def buffered(self) -> int:
        return self.slow.buffered()

    def feed(self, data: bytes) -> list:
        slow = self.slow
        if (slow.buf or slow.pending or slow.args is not None or data[:1] != b"*"
                or slow.max_arg_unauth):
            return slow.feed(data)
        if data.find(b"*", 1) < 0:
            # A lone request: its count header must end within 9 bytes ("*999999\r\n").
            if data.find(b"\r\n", 0, 9) < 0:
                return slow.feed(data)
        elif _HUGE_COUNT.search(data) is not None:
            return slow.feed(data)
        fast = self.fast
        fast.feed(data)
        requests: list = []
        append = requests.append
        gets = fast.gets
        try:
            request = gets()
            while request is not False:
                append(request)
                request = gets()
        except hiredis.ProtocolError:
            self.fast = hiredis.Reader()
            return slow.feed(data)
        count = len(requests)
        if fast.has_data() or list(map(type, requests)).count(list) != count:
            self.fast = hiredis.Reader()
            return slow.feed(data)
        lengths = list(map(len, requests))
        nargs = sum(lengths)
        if (0 in lengths   # "*0": Redis skips empty requests; the strict reader does too
                or data.count(b"\r\n") != count + 2 * nargs
                or list(map(type, chain.from_iterable(requests))).count(bytes) != nargs):
            self.fast = hiredis.Reader()
            return slow.feed(data)
        return requests
