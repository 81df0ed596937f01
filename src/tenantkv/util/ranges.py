"""Index ranges as Redis reads them (LRANGE, LTRIM, ZRANGE by rank ...)."""


def rank_range(length: int, start: int, stop: int) -> tuple:
    """The half-open range [begin, end) that inclusive `start`..`stop` select
    in a sequence of `length`: negative indexes count from the end, the ends
    are clamped, and an empty selection is (0, 0)."""
    if start < 0:
        start += length
    if stop < 0:
        stop += length
    start = max(start, 0)
    if start > stop or start >= length:
        return 0, 0
    if stop >= length:
        stop = length - 1
    return start, stop + 1
