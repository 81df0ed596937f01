"""The replication backlog: the last `size` bytes of the replication stream.

A replica that lost its link for a moment asks for the stream from the
offset it reached (PSYNC replid offset); when those bytes are still here
the primary sends them and goes on (a partial resynchronization) instead of
a whole snapshot. As Redis's repl_backlog, offsets are those of the stream
since the replication id began: the first byte of the stream is offset 1,
and `end` is master_repl_offset.

A bytearray used as a ring would avoid the copy when old bytes are dropped;
dropping here is one `del` of the oldest part at most once per quarter of
the size (the buffer holds between size and 1.25 x size bytes), which
amortises to well under a byte copied per byte fed.
"""


class Backlog:
    __slots__ = ("size", "data", "start", "end")

    def __init__(self, size: int, offset: int) -> None:
        self.size = size
        self.data = bytearray()
        self.end = offset          # offset of the last byte fed (master_repl_offset)
        self.start = offset + 1    # offset of data[0]

    def feed(self, chunk: bytes) -> None:
        data = self.data
        data += chunk
        self.end += len(chunk)
        extra = len(data) - self.size
        if extra > self.size >> 2:
            del data[:extra]
            self.start += extra

    def histlen(self) -> int:
        """repl_backlog_histlen: the bytes a replica could still be sent."""
        return min(len(self.data), self.size)

    def first_offset(self) -> int:
        """repl_backlog_first_byte_offset."""
        return self.end - self.histlen() + 1

    def has(self, offset: int) -> bool:
        """Whether the stream from `offset` (the next byte a replica needs)
        is here: between the oldest byte kept and one past the newest."""
        return self.first_offset() <= offset <= self.end + 1

    def since(self, offset: int) -> bytes:
        """The bytes from `offset` to the end (has(offset) must hold)."""
        return bytes(self.data[offset - self.start:])

    def resize(self, size: int) -> None:
        self.size = size
        extra = len(self.data) - size
        if extra > 0:
            del self.data[:extra]
            self.start += extra
