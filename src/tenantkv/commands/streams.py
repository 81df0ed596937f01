"""Stream commands without consumer groups: XADD, XLEN, XRANGE, XREVRANGE,
XDEL, XTRIM, XSETID, XREAD (BLOCK: dispatch/blocking.py), XINFO STREAM and
XINFO HELP. The value is keyspace/stream.py's `Stream`; the group commands
(XGROUP, XREADGROUP, XACK, ...) live in commands/streamgroups.py and share
the parsers here (`parse_id`, `read_args`, `read_reply`).

Argument checks follow Redis 7.0's t_stream.c in its order: XADD/XTRIM parse
their options before the key is looked up, XRANGE its ids then COUNT, XINFO
looks the key up before its options. A reply that may be large (an XRANGE
or XREAD without COUNT over many entries) runs as a sliced job
(dispatch/slices.py), so one tenant's big stream cannot freeze the others.
"""

from tenantkv import errors
from tenantkv.dispatch import slices
from tenantkv.dispatch.blocking import block_or_timeout
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import now_ms
from tenantkv.keyspace.stream import MAX_ID, MAX_SEQ, Stream, format_id
from tenantkv.keyspace.types import register_type
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, OK, Raw
from tenantkv.util.numbers import LLONG_MAX, parse_int

register_type(Stream, "stream", lambda value: "stream")

_NODE_ENTRIES = (None, "stream-node-max-entries")
_NODE_BYTES = (None, "stream-node-max-bytes")
_LISTPACK_MAX = 1 << 30   # STREAM_LISTPACK_MAX_SIZE
XREAD_BLOCKED_DEFAULT_COUNT = 1000
_SPACES = b" \t\n\v\f\r"


# -- ids ----------------------------------------------------------------------------------

def _ull(text: bytes):
    """Redis's string2ull: string2ll, else strtoull (which takes leading
    spaces, a sign -- a minus wraps around -- and leading zeros)."""
    if text.isdigit():
        value = int(text)
        return value if value <= MAX_SEQ else None
    value = parse_int(text)
    if value is not None:
        return value if value >= 0 else None
    rest = text.lstrip(_SPACES)
    negative = rest[:1] == b"-"
    if rest[:1] in (b"-", b"+"):
        rest = rest[1:]
    if not rest.isdigit():
        return None
    value = int(rest)
    if value > MAX_SEQ:
        return None
    return -value & MAX_SEQ if negative else value


def parse_id(raw: bytes, missing_seq: int = 0, strict: bool = False) -> int:
    """streamGenericParseIDOrReply: <ms>[-<seq>], "-" and "+" unless
    `strict`; a missing seq is `missing_seq`."""
    ms_part, dash, seq_part = raw.partition(b"-")
    if ms_part.isdigit() and seq_part.isdigit() and len(raw) < 41:   # the usual form
        ms, seq = int(ms_part), int(seq_part)
        if ms <= MAX_SEQ and seq <= MAX_SEQ:
            return ms << 64 | seq
    if len(raw) > 127:
        raise CommandError(errors.STREAM_BAD_ID)
    if b"\0" in raw:   # Redis reads a C string
        raw = raw[:raw.index(b"\0")]
    if raw == b"-" or raw == b"+":
        if strict:
            raise CommandError(errors.STREAM_BAD_ID)
        return 0 if raw == b"-" else MAX_ID
    ms_part, dash, seq_part = raw.partition(b"-")
    ms = _ull(ms_part)
    seq = _ull(seq_part) if dash else missing_seq
    if ms is None or seq is None:
        raise CommandError(errors.STREAM_BAD_ID)
    return ms << 64 | seq


def _parse_add_id(raw: bytes) -> tuple:
    """XADD's explicit id: (id, seq_given), `<ms>-*` giving seq_given False."""
    if raw.endswith(b"-*") and len(raw) <= 127 and b"\0" not in raw:
        ms = _ull(raw[:-2])
        if ms is None or raw[:-2].find(b"-") >= 0:
            raise CommandError(errors.STREAM_BAD_ID)
        return ms << 64, False
    return parse_id(raw, 0, True), True


def _interval(raw: bytes, missing_seq: int) -> tuple:
    """streamParseIntervalIDOrReply: (id, exclusive)."""
    if len(raw) > 1 and raw[:1] == b"(":
        return parse_id(raw[1:], missing_seq, True), True
    return parse_id(raw, missing_seq), False


# -- XADD / XTRIM options ------------------------------------------------------------

class Trim:
    __slots__ = ("strategy", "approx", "limit", "maxlen", "minid", "no_mkstream", "id",
                 "id_given", "seq_given", "idpos")

    def __init__(self) -> None:
        self.strategy = None   # b"maxlen" | b"minid" | None
        self.approx = False
        self.limit = 0
        self.maxlen = 0
        self.minid = 0
        self.no_mkstream = False
        self.id = 0
        self.id_given = False
        self.seq_given = True
        self.idpos = 0


def trim_args(conn, args: list, xadd: bool) -> Trim:
    """streamParseAddOrTrimArgsOrReply: the options from args[2] on; for
    XADD, `idpos` is the position of the id (or of "*")."""
    t = Trim()
    n = len(args)
    i = 2
    limit_given = False
    while i < n:
        more = n - 1 - i
        opt = args[i]
        low = opt.lower()
        if xadd and opt == b"*":
            break
        if (low == b"maxlen" or low == b"minid") and more:
            # one strategy, an optional ~ or = before its threshold
            if t.strategy is not None:
                raise CommandError(errors.STREAM_MAXLEN_MINID)
            t.approx = False
            nxt = args[i + 1]
            if more >= 2 and nxt in (b"~", b"="):
                t.approx = nxt == b"~"
                i += 1
            if low == b"maxlen":
                value = parse_int(args[i + 1])
                if value is None:
                    raise CommandError(errors.NOT_INTEGER)
                if value < 0:
                    raise CommandError(errors.STREAM_MAXLEN_NEGATIVE)
                t.maxlen = value
            else:
                t.minid = parse_id(args[i + 1], 0, True)
            i += 1
            t.strategy = low
        elif low == b"limit" and more:
            value = parse_int(args[i + 1])
            if value is None:
                raise CommandError(errors.NOT_INTEGER)
            if value < 0:
                raise CommandError(errors.STREAM_LIMIT_NEGATIVE)
            t.limit = value
            limit_given = True
            i += 1
        elif xadd and low == b"nomkstream":
            t.no_mkstream = True
        elif xadd:
            t.id, t.seq_given = _parse_add_id(opt)
            t.id_given = True
            break
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    t.idpos = i
    if t.limit and t.strategy is None:
        raise CommandError(errors.STREAM_LIMIT_NO_STRATEGY)
    if not xadd and t.strategy is None:
        raise CommandError(errors.STREAM_XTRIM_NO_STRATEGY)
    if conn.transport is None:
        # the log's replay (Redis's mustObeyClient): the record's trim is exact
        t.limit = 0
    elif limit_given:
        if not t.approx:
            raise CommandError(errors.STREAM_LIMIT_NOT_APPROX)
    elif t.approx:
        limit = 100 * conn.server.config.values[_NODE_ENTRIES]
        t.limit = 10000 if limit <= 0 else min(limit, 1000000)
    else:
        t.limit = 0
    return t


def _trim(s: Stream, t: Trim) -> int:
    if t.strategy == b"maxlen":
        return s.trim_maxlen(t.maxlen, t.approx, t.limit)
    return s.trim_minid(t.minid, t.approx, t.limit)


# -- XADD ---------------------------------------------------------------------------

@command("xadd")
def xadd(conn, args):
    if args[2] == b"*" and len(args) & 1:   # XADD key * field value ...: no option
        t = None
        field_pos = 3
    else:
        t = trim_args(conn, args, True)
        field_pos = t.idpos + 1
        rest = len(args) - field_pos
        if rest < 2 or rest & 1:
            raise CommandError(errors.wrong_arity("xadd"))
        if t.id_given and t.seq_given and t.id == 0:
            raise CommandError(errors.STREAM_XADD_ZERO)
    db = conn.db
    key = args[1]
    s = db.data.get(key)
    if type(s) is not Stream or db.expires:   # else a stream no TTL can apply to
        s = db.write_typed(key, Stream)
        if s is None:
            if t is not None and t.no_mkstream:
                return None
            s = Stream()
            db.set(key, s)
    last = s.last_id
    if t is None or not t.id_given:
        if last == MAX_ID:
            raise CommandError(errors.STREAM_EXHAUSTED)
        ms = now_ms()
        if ms > last >> 64:
            seq = 0
        else:
            ms, seq = (last + 1) >> 64, (last + 1) & MAX_SEQ
    else:
        if last == MAX_ID:
            raise CommandError(errors.STREAM_EXHAUSTED)
        if t.seq_given:
            sid = t.id
            if sid <= last:
                raise CommandError(errors.STREAM_XADD_SMALL)
        elif last >> 64 == t.id >> 64:
            if last & MAX_SEQ == MAX_SEQ:
                # Redis 7.0 returns C_ERR here without setting errno: its reply
                # is then the other error of streamAppendItem
                raise CommandError(errors.STREAM_TOO_LARGE)
            sid = last + 1
        else:
            sid = t.id
            if sid <= last:
                raise CommandError(errors.STREAM_XADD_SMALL)
        ms, seq = sid >> 64, sid & MAX_SEQ
    values = conn.server.config.values
    max_bytes = values[_NODE_BYTES]
    if max_bytes == 0 or max_bytes > _LISTPACK_MAX:
        max_bytes = _LISTPACK_MAX
    # the reply: the id's bulk string, cut from the entry's RESP
    reply = Raw(s.append(ms, seq, args[field_pos:], values[_NODE_ENTRIES], max_bytes))
    if t is not None and t.strategy is not None:
        _trim(s, t)
    return reply


# -- reads --------------------------------------------------------------------------

@command("xlen")
def xlen(conn, args):
    s = conn.db.read_typed(args[1], Stream)
    return 0 if s is None else s.length


def _range(conn, args, rev: bool):
    start_arg, end_arg = (args[3], args[2]) if rev else (args[2], args[3])
    lo, exclusive = _interval(start_arg, 0)
    if exclusive:
        if lo == MAX_ID:
            raise CommandError(errors.STREAM_BAD_START)
        lo += 1
    hi, exclusive = _interval(end_arg, MAX_SEQ)
    if exclusive:
        if hi == 0:
            raise CommandError(errors.STREAM_BAD_END)
        hi -= 1
    count = -1
    j = 4
    n = len(args)
    while j < n:
        if args[j].lower() == b"count" and j + 1 < n:
            count = parse_int(args[j + 1])
            if count is None:
                raise CommandError(errors.NOT_INTEGER)
            if count < 0:
                count = 0
            j += 2
        else:
            raise CommandError(errors.SYNTAX)
    s = conn.db.read_typed(args[1], Stream)
    if s is None:
        return EMPTY_ARRAY
    if count == 0:
        return NULL_ARRAY
    if count == -1:
        count = 0
    if (not count or count > slices.BIG) and s.length > slices.BIG:
        total = s.count_range(lo, hi)
        if count:
            total = min(total, count)
        if total > slices.BIG:
            return slices.run(conn, _range_job(s, [(b"*%d\r\n" % total, lo, hi, count, rev)]))
    body, got = s.range_reply(lo, hi, count, rev)
    return Raw(b"*%d\r\n%b" % (got, body))


def _range_job(s: Stream, segments: list):
    """A big range reply (dispatch/slices.py): `segments` of (head, lo, hi,
    count, rev), each head then its entries, a Piece per ~STEP entries."""
    pending = []
    n = 0
    for head, lo, hi, count, rev in segments:
        pending.append(head)
        for part, k in s.range_parts(lo, hi, count, rev):
            pending.append(part)
            n += k
            if n >= slices.STEP:
                yield slices.Piece(b"".join(pending))
                pending = []
                n = 0
    return Raw(b"".join(pending))


@command("xrange")
def xrange(conn, args):
    return _range(conn, args, False)


@command("xrevrange")
def xrevrange(conn, args):
    return _range(conn, args, True)


# -- XDEL, XTRIM, XSETID -------------------------------------------------------------

@command("xdel")
def xdel(conn, args):
    s = conn.db.write_typed(args[1], Stream)
    if s is None:
        return 0
    ids = [parse_id(raw, 0, True) for raw in args[2:]]   # all checked before any delete
    if len(ids) <= slices.STEP:
        return s.delete_many(ids)
    return slices.run(conn, _xdel_job(s, ids))


def _xdel_job(s: Stream, ids: list):
    """A big XDEL (dispatch/slices.py): the ids found STEP at a time (~4 us
    each) and the blocks they touch rebuilt a few hundred at a time, all
    reading only; then the new blocks put in place at once, so a job
    refused inside EXEC has changed nothing."""
    hits: dict = {}
    for start in range(0, len(ids), slices.STEP):
        s.locate(ids[start:start + slices.STEP], hits)
        yield
    touched = list(hits)
    rebuilt = []
    for start in range(0, len(touched), 256):
        rebuilt += s.rebuilt(hits, touched[start:start + 256])
        yield
    return s.install(rebuilt)


@command("xtrim")
def xtrim(conn, args):
    t = trim_args(conn, args, False)
    s = conn.db.write_typed(args[1], Stream)
    if s is None:
        return 0
    return _trim(s, t)


@command("xsetid")
def xsetid(conn, args):
    sid = parse_id(args[2], 0, True)
    entries_added = -1
    max_deleted = 0
    i = 3
    n = len(args)
    while i < n:
        opt = args[i].lower()
        if opt == b"entriesadded" and i + 1 < n:
            entries_added = parse_int(args[i + 1])
            if entries_added is None:
                raise CommandError(errors.NOT_INTEGER)
            if entries_added < 0:
                raise CommandError(errors.STREAM_ENTRIES_ADDED_NEGATIVE)
            i += 2
        elif opt == b"maxdeletedid" and i + 1 < n:
            max_deleted = parse_id(args[i + 1], 0, True)
            if sid < max_deleted:
                raise CommandError(errors.STREAM_XSETID_BELOW_DELETED)
            i += 2
        else:
            raise CommandError(errors.SYNTAX)
    s = conn.db.write_typed(args[1], Stream)
    if s is None:
        raise CommandError(errors.NO_SUCH_KEY)
    if s.length:
        if sid < s.last_entry_id():
            raise CommandError(errors.STREAM_XSETID_SMALL)
        if entries_added != -1 and s.length > entries_added:
            raise CommandError(errors.STREAM_XSETID_ENTRIES_ADDED)
    s.last_id = sid
    if entries_added != -1:
        s.entries_added = entries_added
    if max_deleted:
        s.max_deleted_id = max_deleted
    return OK


# -- XREAD ------------------------------------------------------------------------

class ReadArgs:
    """XREAD / XREADGROUP's parsed options (xreadCommand's loop)."""
    __slots__ = ("timeout", "count", "keys", "ids", "group", "consumer", "noack")

    def __init__(self) -> None:
        self.timeout = -1     # ms; -1: no BLOCK
        self.count = 0
        self.keys: list = []
        self.ids: list = []   # the raw id arguments, resolved by the caller
        self.group = None
        self.consumer = None
        self.noack = False


def _in_script(conn) -> bool:
    scripts = conn.tenant.scripts
    return scripts is not None and scripts.running is not None \
        and getattr(scripts.running, "conn", None) is conn


def read_args(conn, args: list, group: bool) -> ReadArgs:
    """The options of XREAD (group False) or XREADGROUP, as Redis checks them."""
    r = ReadArgs()
    n = len(args)
    i = 1
    streams_arg = 0
    while i < n:
        more = n - i - 1
        opt = args[i].lower()
        if opt == b"block" and more:
            if _in_script(conn):
                raise CommandError(errors.stream_block_in_script(args[0]))
            i += 1
            value = parse_int(args[i])
            if value is None:
                raise CommandError(errors.TIMEOUT_NOT_INTEGER)
            if value < 0:
                raise CommandError(errors.NEGATIVE_TIMEOUT)
            if value > LLONG_MAX - now_ms():
                # Redis 7.0 adds the time to it unchecked; the wrapped deadline,
                # unsigned in its timeout table, never comes: no timeout
                value = 0
            r.timeout = value
        elif opt == b"count" and more:
            i += 1
            value = parse_int(args[i])
            if value is None:
                raise CommandError(errors.NOT_INTEGER)
            r.count = max(value, 0)
        elif opt == b"streams" and more:
            streams_arg = i + 1
            rest = n - streams_arg
            if rest & 1:
                raise CommandError(errors.STREAM_UNBALANCED)
            half = rest // 2
            r.keys = args[streams_arg:streams_arg + half]
            r.ids = args[streams_arg + half:]
            break
        elif opt == b"group" and more >= 2:
            if not group:
                raise CommandError(errors.STREAM_GROUP_OPTION)
            r.group = args[i + 1]
            r.consumer = args[i + 2]
            i += 2
        elif opt == b"noack":
            if not group:
                raise CommandError(errors.STREAM_NOACK_OPTION)
            r.noack = True
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    if not streams_arg:
        raise CommandError(errors.SYNTAX)
    if group and r.group is None:
        raise CommandError(errors.STREAM_MISSING_GROUP)
    return r


def read_reply(conn, items: list) -> Raw:
    """XREAD's reply from [(key, body, n), ...]: RESP2 an array of [key,
    entries], RESP3 a map key -> entries."""
    resp3 = conn.resp3
    parts = [(b"%%%d\r\n" if resp3 else b"*%d\r\n") % len(items)]
    for key, body, n in items:
        if not resp3:
            parts.append(b"*2\r\n")
        parts.append(b"$%d\r\n%b\r\n*%d\r\n" % (len(key), key, n))
        parts.append(body)
    return Raw(b"".join(parts))


@command("xread")
def xread(conn, args):
    r = read_args(conn, args, False)
    db = conn.db
    after: dict = {}   # key -> the id its entries must follow (the first one named wins)
    streams = []
    for key, raw in zip(r.keys, r.ids):
        s = db.read_typed(key, Stream)
        if raw == b"$":
            gt = s.last_id if s is not None else 0
        elif raw == b">":
            raise CommandError(errors.STREAM_GT_ID)
        else:
            gt = parse_id(raw, 0, True)
        streams.append((key, s, gt))
        after.setdefault(key, gt)
    items = []
    total = 0
    for key, s, gt in streams:
        if s is None or not s.length or s.last_entry_id() <= gt:
            continue
        if not r.count or r.count > slices.BIG:
            total += s.count_range(gt + 1, MAX_ID) if s.length > slices.BIG else s.length
        items.append((key, s, gt))
    if items:
        if total > slices.BIG:
            return slices.run(conn, _read_job(conn, items, r.count))
        return read_reply(conn, [(key,) + s.range_reply(gt + 1, MAX_ID, r.count)
                                 for key, s, gt in items])
    if r.timeout == -1:
        return NULL_ARRAY
    if _in_script(conn):
        return NULL_ARRAY
    count = r.count or XREAD_BLOCKED_DEFAULT_COUNT

    def serve(conn, key):
        # Redis serves a reader when an XADD (or a new key) signals the key,
        # if the last id passed its own; here any write wakes the key, so
        # wait for an entry past it (an XSETID alone serves nobody)
        s = conn.db.get(key)
        gt = after[key]
        if s.last_entry_id() <= gt:
            return None
        body, n = s.range_reply(gt + 1, MAX_ID, count)
        return read_reply(conn, [(key, body, n)])
    return block_or_timeout(conn, list(after), Stream, serve, r.timeout / 1000.0, NULL_ARRAY)


def _read_job(conn, items: list, count: int):
    resp3 = conn.resp3
    yield slices.Piece((b"%%%d\r\n" if resp3 else b"*%d\r\n") % len(items))
    for key, s, gt in items:
        n = s.count_range(gt + 1, MAX_ID)
        if count:
            n = min(n, count)
        head = b"%s$%d\r\n%b\r\n*%d\r\n" % (b"" if resp3 else b"*2\r\n", len(key), key, n)
        reply = yield from _range_job(s, [(head, gt + 1, MAX_ID, count, False)])
        yield slices.Piece(bytes(reply))
    return Raw(b"")


# -- XINFO ------------------------------------------------------------------------

XINFO_HELP = [
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
]

container("xinfo", help=XINFO_HELP)


def radix_tree_nodes(s: Stream) -> int:
    """An estimate of Redis's rax node count for XINFO (1 empty, 2 for one
    key, then about 2.6 a key, as measured on redis-server)."""
    k = len(s.blocks)
    return 1 if k == 0 else 2 if k == 1 else (13 * k) // 5


def stream_info(s: Stream) -> dict:
    """The fields XINFO STREAM (without FULL) and FULL share, in Redis's order."""
    return {
        b"length": s.length,
        b"radix-tree-keys": len(s.blocks),
        b"radix-tree-nodes": radix_tree_nodes(s),
        b"last-generated-id": format_id(s.last_id),
        b"max-deleted-entry-id": format_id(s.max_deleted_id),
        b"entries-added": s.entries_added,
        b"recorded-first-entry-id": format_id(s.first_id()),
    }


# XINFO STREAM key FULL [COUNT n] belongs to the consumer groups
# (commands/streamgroups.py sets it): full_info(conn, s, count) -> reply.
full_info = None


@subcommand("xinfo", "stream")
def xinfo_stream(conn, args):
    s = conn.db.read_typed(args[2], Stream)
    if s is None:
        raise CommandError(errors.NO_SUCH_KEY)
    opts = args[3:]
    if opts:
        if len(opts) not in (1, 3) or opts[0].lower() != b"full":
            raise CommandError(errors.subcommand_syntax(args[1], "XINFO"))
        count = 10
        if len(opts) == 3:
            if opts[1].lower() != b"count":
                raise CommandError(errors.subcommand_syntax(args[1], "XINFO"))
            count = parse_int(opts[2])
            if count is None:
                raise CommandError(errors.NOT_INTEGER)
            if count < 0:
                count = 10
        if full_info is None:
            raise CommandError(errors.subcommand_syntax(args[1], "XINFO"))
        return full_info(conn, s, count)
    info = stream_info(s)
    info[b"groups"] = len(s.groups) if s.groups else 0
    first, n = s.range_reply(0, MAX_ID, 1)
    info[b"first-entry"] = Raw(first) if n else None
    last, n = s.range_reply(0, MAX_ID, 1, True)
    info[b"last-entry"] = Raw(last) if n else None
    return info
