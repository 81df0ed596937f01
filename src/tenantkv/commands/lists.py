"""List commands: pushes, pops, ranges, LPOS, LMOVE, LMPOP, and their blocking
forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP; parking: dispatch/blocking.py).

A list is a keyspace/quicklist.py `QuickList` in db.data (packed chunks of
elements, as Redis's quicklist of listpacks): O(1) at both ends, O(n) from
the nearer end for an index. An empty list is deleted. Redis 7.0 stores
every list as a quicklist (listpack-encoded lists came in 7.2), so OBJECT
ENCODING says "quicklist" whatever the size.

Argument checks come in Redis's order (t_list.c): where Redis parses an
index or count before it looks the key up, so do we, and the other way round.
"""

from itertools import islice

from tenantkv import errors
from tenantkv.dispatch.blocking import (block_or_timeout, metered, mpop_args, parse_timeout,
                                       pop_or_block, served)
from tenantkv.dispatch.table import command
from tenantkv.errors import CommandError
from tenantkv.dispatch import slices
from tenantkv.keyspace.quicklist import KEY, QuickList, _offset, resp
from tenantkv.keyspace.types import register_type
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, OK, Raw
from tenantkv.util.numbers import LLONG_MAX, LLONG_MIN, parse_int
from tenantkv.util.ranges import rank_range


def _long(raw: bytes, message: str = errors.NOT_INTEGER) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError(message)
    return value


def _range_long(raw: bytes, low: int, high: int, message: str | None = None) -> int:
    """getRangeLongFromObjectOrReply: `message` for both a non-integer and a value
    out of [low, high]; without one, Redis's two generic texts."""
    value = _long(raw, message or errors.NOT_INTEGER)
    if value < low or value > high:
        raise CommandError(message or errors.out_of_range(low, high))
    return value


def _where(raw: bytes) -> bool:
    """LEFT/RIGHT: True for the head."""
    word = raw.lower()
    if word == b"left":
        return True
    if word == b"right":
        return False
    raise CommandError(errors.SYNTAX)


register_type(QuickList, "list", lambda value: "quicklist")


# -- pushes ------------------------------------------------------------------------

def _push(conn, args: list, head: bool, create: bool) -> int:
    db = conn.db
    key = args[1]
    lst = db.write_typed(key, QuickList)
    if lst is None:
        if not create:
            return 0
        lst = QuickList()
        db.set(key, lst)
    if len(args) == 3:   # one element: the usual push, without a slice of args
        if head:
            lst.appendleft(args[2])
        else:
            lst.append(args[2])
    elif head:
        lst.extendleft(args[2:])
    else:
        lst.extend(args[2:])
    return lst.n


# LPUSH/RPUSH/LPOP/RPOP of one element are the hot list commands (redis-
# benchmark's rows): written out, without _push/_pop's extra call and flags,
# and, as GET, without write_typed's call when the database has no TTLs.

@command("lpush")
def lpush(conn, args):
    if len(args) != 3:
        return _push(conn, args, True, True)
    db = conn.db
    lst = db.data.get(args[1])
    if type(lst) is not QuickList or db.expires:   # else a list no TTL can apply to
        lst = db.write_typed(args[1], QuickList)
        if lst is None:
            db.set(args[1], QuickList([args[2]]))
            return 1
    lst.appendleft(args[2])
    return lst.n


@command("rpush")
def rpush(conn, args):
    if len(args) != 3:
        return _push(conn, args, False, True)
    db = conn.db
    lst = db.data.get(args[1])
    if type(lst) is not QuickList or db.expires:   # else a list no TTL can apply to
        lst = db.write_typed(args[1], QuickList)
        if lst is None:
            db.set(args[1], QuickList([args[2]]))
            return 1
    lst.append(args[2])
    return lst.n


@command("lpushx")
def lpushx(conn, args):
    return _push(conn, args, True, False)


@command("rpushx")
def rpushx(conn, args):
    return _push(conn, args, False, False)


# -- pops --------------------------------------------------------------------------

def _pop(conn, args: list, head: bool):
    if len(args) > 3:
        raise CommandError(errors.wrong_arity(args[0].decode("latin-1").lower()))
    has_count = len(args) == 3
    count = _range_long(args[2], 0, LLONG_MAX, errors.NOT_POSITIVE) if has_count else 1
    db = conn.db
    key = args[1]
    lst = db.write_typed(key, QuickList)
    if lst is None:
        return NULL_ARRAY if has_count else None
    if not has_count:
        value = lst.popleft() if head else lst.pop()
        if not lst.n:
            db.delete(key)
        return value
    if count == 0:
        return EMPTY_ARRAY
    return _pop_many(db, key, lst, head, count)


@command("lpop")
def lpop(conn, args):
    if len(args) != 2:
        return _pop(conn, args, True)
    db = conn.db
    key = args[1]
    lst = db.data.get(key)
    if type(lst) is not QuickList or db.expires:   # else a list no TTL can apply to
        lst = db.write_typed(key, QuickList)
        if lst is None:
            return None
    value = lst.popleft()
    if not lst.n:
        db.delete(key)
    return value


@command("rpop")
def rpop(conn, args):
    if len(args) != 2:
        return _pop(conn, args, False)
    db = conn.db
    key = args[1]
    lst = db.data.get(key)
    if type(lst) is not QuickList or db.expires:   # else a list no TTL can apply to
        lst = db.write_typed(key, QuickList)
        if lst is None:
            return None
    value = lst.pop()
    if not lst.n:
        db.delete(key)
    return value


def _pop_many(db, key: bytes, lst: QuickList, head: bool, count: int) -> list:
    reply = lst.pop_many(head, count)
    if not lst.n:
        db.delete(key)
    return reply


@command("lmpop")
def lmpop(conn, args):
    numkeys = _range_long(args[1], 1, LLONG_MAX, errors.NUMKEYS_POSITIVE)
    where_idx = 1 + numkeys + 1
    if where_idx >= len(args):
        raise CommandError(errors.SYNTAX)
    head = _where(args[where_idx])
    count = -1
    j = where_idx + 1
    while j < len(args):
        if count == -1 and args[j].lower() == b"count" and j + 1 < len(args):
            count = _range_long(args[j + 1], 1, LLONG_MAX, errors.COUNT_POSITIVE)
            j += 2
        else:
            raise CommandError(errors.SYNTAX)
    if count == -1:
        count = 1
    db = conn.db
    for key in args[2:where_idx]:
        lst = db.write_typed(key, QuickList)
        if lst:
            return [key, _pop_many(db, key, lst, head, count)]
    return NULL_ARRAY


# -- reads -------------------------------------------------------------------------

@command("llen")
def llen(conn, args):
    lst = conn.db.read_typed(args[1], QuickList)
    return 0 if lst is None else len(lst)


@command("lrange")
def lrange(conn, args):
    start = _long(args[2])
    end = _long(args[3])
    lst = conn.db.read_typed(args[1], QuickList)
    if lst is None:
        return EMPTY_ARRAY
    begin, end = rank_range(len(lst), start, end)
    if begin == end:
        return EMPTY_ARRAY
    if end - begin > slices.BIG:   # built a run of entries per step
        return slices.run(conn, _range_job(lst, begin, end))
    # the reply straight from the packed entries: no object per element
    return Raw(lst.range_reply(begin, end))


def _range_job(lst, begin: int, end: int):
    """LRANGE's job: range_reply's bytes, walking the chunks from the head
    (as _regions does from the nearer end) CHUNKS_PER_STEP at a time and
    turning each step's entries into RESP at once. Walks a snapshot of the
    chunk list: its chunks are immutable bytes, and none of the tenant's
    writes runs meanwhile. (_regions walks them all before any reply:
    ~35 ms for a 2M-element list.)"""
    chunks = lst._list()
    yield slices.Piece(b"*%d\r\n" % (end - begin))
    skip, want = begin, end - begin
    for start in range(0, len(chunks), CHUNKS_PER_STEP):
        group = []
        for chunk in chunks[start:start + CHUNKS_PER_STEP]:
            k = chunk.count(KEY)
            if skip >= k:
                skip -= k
                continue
            take = min(k - skip, want)
            a = _offset(chunk, skip)
            b = len(chunk) if skip + take == k else _offset(chunk, skip + take)
            group.append(chunk if not a and b == len(chunk) else chunk[a:b])
            skip = 0
            want -= take
            if not want:
                break
        # resp() of no count: "*0\r\n" and the entries as bulk strings
        yield slices.Piece(resp(b"".join(group), 0)[4:]) if group else None
        if not want:
            break
    return Raw(b"")


CHUNKS_PER_STEP = 256   # ~0.5 ms of entries (chunks of ~1 KB; measured)


@command("lindex")
def lindex(conn, args):
    lst = conn.db.read_typed(args[1], QuickList)
    if lst is None:
        return None
    index = _long(args[2])
    n = len(lst)
    if index < 0:
        index += n
    if index < 0 or index >= n:
        return None
    return lst[index]   # walks the chunks from the nearer end


@command("lpos")
def lpos(conn, args):
    element = args[2]
    rank, count, maxlen = 1, -1, 0
    j = 3
    argc = len(args)
    while j < argc:
        opt = args[j].lower()
        more = j + 1 < argc
        if opt == b"rank" and more:
            rank = _long(args[j + 1])
            if rank == 0:
                raise CommandError(errors.RANK_ZERO)
        elif opt == b"count" and more:
            count = _range_long(args[j + 1], 0, LLONG_MAX, errors.COUNT_NEGATIVE)
        elif opt == b"maxlen" and more:
            maxlen = _range_long(args[j + 1], 0, LLONG_MAX, errors.MAXLEN_NEGATIVE)
        else:
            raise CommandError(errors.SYNTAX)
        j += 2
    lst = conn.db.read_typed(args[1], QuickList)
    if lst is None:
        return EMPTY_ARRAY if count != -1 else None
    n = len(lst)
    from_tail = rank < 0
    if from_tail:
        # Redis 7.0 negates a C long: -LONG_MIN stays LONG_MIN, which every
        # match count passes, so that rank means the last match.
        rank = 1 if rank == LLONG_MIN else -rank
        items = reversed(lst)
    else:
        items = iter(lst)
    if maxlen:
        items = islice(items, maxlen)
    matches = 0
    found = []
    for index, value in enumerate(items):
        if value == element:
            matches += 1
            if matches >= rank:
                found.append(n - index - 1 if from_tail else index)
                if count != -1:
                    if count and len(found) >= count:
                        break
                else:
                    break
    if count != -1:
        return found
    return found[0] if found else None


# -- writes in place -----------------------------------------------------------------

@command("lset")
def lset(conn, args):
    db = conn.db
    lst = db.write_typed(args[1], QuickList)
    if lst is None:
        raise CommandError(errors.NO_SUCH_KEY)
    index = _long(args[2])
    n = len(lst)
    if index < 0:
        index += n
    if index < 0 or index >= n:
        raise CommandError(errors.INDEX_RANGE)
    lst[index] = args[3]
    return OK


@command("linsert")
def linsert(conn, args):
    where = args[2].lower()
    if where == b"after":
        after = True
    elif where == b"before":
        after = False
    else:
        raise CommandError(errors.SYNTAX)
    db = conn.db
    lst = db.write_typed(args[1], QuickList)
    if lst is None:
        return 0
    if not lst.insert_at(args[3], args[4], after):
        return -1
    return lst.n


@command("lrem")
def lrem(conn, args):
    count = _long(args[2])
    db = conn.db
    key = args[1]
    lst = db.write_typed(key, QuickList)
    if lst is None:
        return 0
    removed = lst.remove(args[3], count)
    if not lst.n:
        db.delete(key)
    return removed


@command("ltrim")
def ltrim(conn, args):
    start = _long(args[2])
    end = _long(args[3])
    db = conn.db
    key = args[1]
    lst = db.write_typed(key, QuickList)
    if lst is None:
        return OK
    n = len(lst)
    start, end = rank_range(n, start, end)
    if start == end:
        db.delete(key)
        return OK
    lst.trim(start, end)
    return OK


# -- moves ---------------------------------------------------------------------------

def _move(conn, src_key: bytes, dst_key: bytes, from_head: bool, to_head: bool):
    db = conn.db
    src = db.write_typed(src_key, QuickList)
    if src is None:
        return None
    dst = db.write_typed(dst_key, QuickList)
    value = src.popleft() if from_head else src.pop()
    if dst is None:
        dst = QuickList()
        db.set(dst_key, dst)
    if to_head:
        dst.appendleft(value)
    else:
        dst.append(value)
    if not src:
        db.delete(src_key)
    return value


@command("lmove")
def lmove(conn, args):
    from_head = _where(args[3])
    to_head = _where(args[4])
    return _move(conn, args[1], args[2], from_head, to_head)


@command("rpoplpush")
def rpoplpush(conn, args):
    return _move(conn, args[1], args[2], False, True)


# -- blocking forms: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP -------------------------
#
# Try once as the non-blocking form, else park the client until a push
# (dispatch/blocking.py). Replies as Redis 7.0's: BLPOP/BRPOP [key, element],
# BLMPOP [key, [elements]], BLMOVE the element; a null array on timeout.

def _blocking_pop(conn, args, head: bool):
    timeout = parse_timeout(args[-1])
    name = b"LPOP" if head else b"RPOP"

    def pop(conn, key: bytes):
        db = conn.db
        lst = db.write_typed(key, QuickList)
        if not lst:
            return None
        value = lst.popleft() if head else lst.pop()
        if not lst.n:
            db.delete(key)
        return [key, value]
    return pop_or_block(conn, args[1:-1], QuickList, pop, lambda key, reply: [name, key], timeout)


@command("blpop")
def blpop(conn, args):
    return _blocking_pop(conn, args, True)


@command("brpop")
def brpop(conn, args):
    return _blocking_pop(conn, args, False)


def _blocking_move(conn, src: bytes, dst: bytes, from_head: bool, to_head: bool, raw_timeout: bytes):
    timeout = parse_timeout(raw_timeout)
    value = _move(conn, src, dst, from_head, to_head)
    if value is not None:
        return value

    record = [b"LMOVE", src, dst, b"LEFT" if from_head else b"RIGHT",
              b"LEFT" if to_head else b"RIGHT"]

    def serve(conn, key):
        value = metered(conn, (src, dst), _move, conn, src, dst, from_head, to_head)
        if value is not None:
            served(conn, record, src, dst)
        return value
    return block_or_timeout(conn, [src], QuickList, serve, timeout, NULL_ARRAY, None)


@command("blmove")
def blmove(conn, args):
    from_head = _where(args[3])
    to_head = _where(args[4])
    return _blocking_move(conn, args[1], args[2], from_head, to_head, args[5])


@command("brpoplpush")
def brpoplpush(conn, args):
    return _blocking_move(conn, args[1], args[2], False, True, args[3])


@command("blmpop")
def blmpop(conn, args):
    timeout, keys, side, count = mpop_args(args, (b"left", b"right"))
    head = side == 0

    def pop(conn, key):
        db = conn.db
        lst = db.write_typed(key, QuickList)
        if not lst:
            return None
        return [key, _pop_many(db, key, lst, head, count)]

    def record(key, reply):
        return [b"LMPOP", b"1", key, b"LEFT" if head else b"RIGHT", b"COUNT", b"%d" % len(reply[1])]
    return pop_or_block(conn, keys, QuickList, pop, record, timeout)
