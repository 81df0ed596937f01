"""Stream consumer groups: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM,
XAUTOCLAIM and XINFO GROUPS / CONSUMERS (the groups of XINFO STREAM FULL too).

The groups, consumers and pending entries are keyspace/streamgroups.py's;
the stream is keyspace/stream.py's (commands/streams.py has its own
commands). Argument checks, replies and error texts follow Redis 7.0's
t_stream.c in its order of checks.

XREADGROUP, XCLAIM and XAUTOCLAIM are logged as their effects
(persistence/aof/recorders.py): each entry they left pending as
``XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID``, the
group's position as ``XGROUP SETID key group id ENTRIESREAD n``, as Redis
propagates them. A parked XREADGROUP (BLOCK) is served from
dispatch/blocking.py: by XADD, and with Redis 7.0's errors when its group
(XGROUP DESTROY) or its key (DEL, RENAME, another type) goes away.
"""

from tenantkv import errors
from tenantkv.commands import streams
from tenantkv.commands.streams import parse_id, read_args, stream_info
from tenantkv.dispatch import lazyfree, slices
from tenantkv.dispatch.blocking import Blocked, metered, serve_ready
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace.database import now_ms
from tenantkv.keyspace.stream import MAX_ID, MAX_SEQ, Stream, format_id
from tenantkv.keyspace.streamgroups import (INVALID, GroupLimit, Nack, advance, create_group,
                                            lag, lookup_group, next_entries)
from tenantkv.persistence.aof.recorders import entry_ids, xreadgroup_effects
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, OK, Raw
from tenantkv.util.keyspace_events import STREAM
from tenantkv.util.numbers import LLONG_MAX, parse_int
from tenantkv.util.steps import run_whole

# Without COUNT, a parked XREADGROUP is served at most this many entries
# (Redis's XREAD_BLOCKED_DEFAULT_COUNT).
BLOCKED_DEFAULT_COUNT = 1000
# tenantkv's bound on the entries one XREADGROUP delivers (or re-reads), all
# its streams together, and on XAUTOCLAIM's COUNT: the rest stay for the
# next call, as with a COUNT (XAUTOCLAIM's cursor goes on from there), so
# one call cannot build a reply and a PEL of millions of entries in one turn
# of the loop (~5 us an entry: 50 ms at most).
MAX_DELIVERED = 10000


# -- helpers -------------------------------------------------------------------------

def _interval_id(raw: bytes, missing_seq: int) -> tuple:
    """streamParseIntervalIDOrReply: (id, exclusive)."""
    if len(raw) > 1 and raw[:1] == b"(":
        return parse_id(raw[1:], missing_seq, True), True
    return parse_id(raw, missing_seq), False


def _ll(raw: bytes, message: str = errors.NOT_INTEGER) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError(message)
    return value


def _stream(conn, key: bytes):
    return conn.db.read_typed(key, Stream)


def _group_or_error(conn, key: bytes, name: bytes):
    """(stream, group) for XPENDING / XCLAIM / XAUTOCLAIM, or their NOGROUP."""
    stream = _stream(conn, key)
    group = lookup_group(stream, name) if stream is not None else None
    if group is None:
        raise CommandError(errors.nogroup_key_or_group(key, name))
    return stream, group


def _consumer(group, name: bytes, now: int):
    try:
        return group.get_or_create(name, now)
    except GroupLimit as exc:
        raise CommandError(errors.group_limit(exc.what, exc.limit)) from None


# -- XGROUP ----------------------------------------------------------------------------

XGROUP_HELP = [
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
]

container("xgroup", help=XGROUP_HELP)


def _xgroup_common(conn, args: list, create: bool = False, setid: bool = False):
    """xgroupCommand's shared part, in its order: the options (CREATE and
    SETID), the key (WRONGTYPE; missing without MKSTREAM), the group.
    Returns (stream or None, group or None, mkstream, entries_read)."""
    mkstream = False
    entries_read = INVALID
    i = 5
    n = len(args)
    while i < n:
        word = args[i].lower()
        if create and word == b"mkstream":
            mkstream = True
            i += 1
        elif (create or setid) and word == b"entriesread" and i + 1 < n:
            entries_read = _ll(args[i + 1])
            if entries_read < 0 and entries_read != INVALID:
                raise CommandError(errors.ENTRIESREAD_RANGE)
            i += 2
        else:
            raise CommandError(errors.subcommand_syntax(args[1], "XGROUP"))
    key = args[2]
    stream = conn.db.write_typed(key, Stream)
    group = None
    if not mkstream:
        if stream is None:
            raise CommandError(errors.XGROUP_NO_KEY)
        group = lookup_group(stream, args[3])
    return stream, group, mkstream, entries_read


def _require_group(group, args: list) -> None:
    if group is None:
        raise CommandError(errors.nogroup_of_key(args[3], args[2]))


@subcommand("xgroup", "create")
def xgroup_create(conn, args):
    stream, group, mkstream, entries_read = _xgroup_common(conn, args, create=True)
    if len(args) > 8:
        raise CommandError(errors.subcommand_syntax(args[1], "XGROUP"))
    if args[4] == b"$":
        last_id = stream.last_id if stream is not None else 0
    else:
        last_id = parse_id(args[4], 0, True)
    if stream is None:   # MKSTREAM, now that nothing can fail
        stream = Stream()
        conn.db.set(args[2], stream)
    try:
        created = create_group(stream, args[3], last_id, entries_read)
    except GroupLimit as exc:
        raise CommandError(errors.group_limit(exc.what, exc.limit)) from None
    if created is None:
        raise CommandError(errors.BUSYGROUP)
    return OK


@subcommand("xgroup", "setid")
def xgroup_setid(conn, args):
    stream, group, _, entries_read = _xgroup_common(conn, args, setid=True)
    _require_group(group, args)
    if len(args) not in (5, 7):
        raise CommandError(errors.subcommand_syntax(args[1], "XGROUP"))
    if args[4] == b"$":
        last_id = stream.last_id
    else:
        last_id = parse_id(args[4])
    group.last_id = last_id
    group.entries_read = entries_read
    return OK


@subcommand("xgroup", "destroy")
def xgroup_destroy(conn, args):
    stream, group, _, _ = _xgroup_common(conn, args)
    if group is None:
        return 0
    del stream.groups[args[3]]
    if len(group.pel) >= lazyfree.BIG:   # its pending entries freed in slices
        lazyfree.free(conn.server.loop, group)
    # Its parked XREADGROUPs are answered -NOGROUP (signalKeyAsReady: the
    # blocked clients hear of it, WATCH does not).
    db = conn.db
    if db.blocked and args[2] in db.blocked:
        events = conn.server.events
        events.ready.append((db, args[2]))
        if not events.in_exec:
            serve_ready(events)
    return 1


@subcommand("xgroup", "createconsumer")
def xgroup_createconsumer(conn, args):
    _, group, _, _ = _xgroup_common(conn, args)
    _require_group(group, args)
    try:
        created = group.create_consumer(args[4], now_ms())
    except GroupLimit as exc:
        raise CommandError(errors.group_limit(exc.what, exc.limit)) from None
    return 0 if created is None else 1


@subcommand("xgroup", "delconsumer")
def xgroup_delconsumer(conn, args):
    _, group, _, _ = _xgroup_common(conn, args)
    _require_group(group, args)
    consumer = group.consumers.get(args[4])
    if consumer is None:
        return 0
    return group.delete_consumer(consumer)


# -- XREADGROUP ----------------------------------------------------------------------

NEW = -1   # the ">" id


def _serve_new(conn, stream, group, consumer, limit: int, noack: bool, now: int):
    """Deliver the entries after the group's last id (streamReplyWithRange
    with a group), at most `limit`: (the entries' reply, a Raw array, and
    their number)."""
    ids, body = next_entries(stream, group.last_id, limit)
    if not ids:
        return EMPTY_ARRAY, 0
    for sid in ids:   # each one is past the group's last id
        advance(stream, group, sid)
        if not noack:
            group.deliver(sid, consumer, now)
    return Raw(b"*%d\r\n%s" % (len(ids), body)), len(ids)


def _serve_history(stream, consumer, start: int, limit: int, now: int):
    """The consumer's own pending entries from `start`, at most `limit`
    (streamReplyWithRangeFromConsumerPEL): a deleted entry as [id, null];
    the others count a delivery. (reply, number of entries)."""
    pel = consumer.pel
    parts = []
    raw = True
    for sid in pel.irange(minimum=start):
        data = stream.entry_reply(sid)
        if data is None:
            parts.append([format_id(sid), NULL_ARRAY])
            raw = False
        else:
            parts.append(data)
            nack = pel[sid]
            nack.delivery_time = now
            nack.delivery_count += 1
        if len(parts) >= limit:
            break
    if raw:
        return Raw(b"*%d\r\n%s" % (len(parts), b"".join(parts))), len(parts)
    return [p if type(p) is list else Raw(p) for p in parts], len(parts)


def _top(conn, served: list):
    """XREAD's reply: RESP3 a map key -> entries, RESP2 pairs."""
    if conn.resp3:
        return dict(served)
    return [[key, entries] for key, entries in served]


@command("xreadgroup")
def xreadgroup(conn, args):
    r = read_args(conn, args, True)
    keys = r.keys
    group_name, consumer_name, count, noack = r.group, r.consumer, r.count, r.noack
    db = conn.db
    targets = []
    for j, key in enumerate(keys):
        stream = db.read_typed(key, Stream)
        group = lookup_group(stream, group_name) if stream is not None else None
        if group is None:
            raise CommandError(errors.nogroup_readgroup(key, group_name))
        raw = r.ids[j]
        if raw == b"$":
            raise CommandError(errors.XREADGROUP_DOLLAR)
        sid = NEW if raw == b">" else parse_id(raw, 0, True)
        targets.append((key, stream, group, sid))

    now = now_ms()
    served = []
    budget = MAX_DELIVERED   # for all the streams of the call together
    for key, stream, group, sid in targets:
        if budget <= 0:
            break   # the other streams wait for the next call
        limit = min(count, budget) if count else budget
        if sid == NEW:
            if not stream.length or stream.last_entry_id() <= group.last_id:
                continue
            consumer, _ = _consumer(group, consumer_name, now)
            entries, n = _serve_new(conn, stream, group, consumer, limit, noack, now)
        else:
            consumer, _ = _consumer(group, consumer_name, now)
            start = sid + 1 if sid < MAX_ID else 0   # streamIncrID wraps, unchecked
            entries, n = _serve_history(stream, consumer, start, limit, now)
        served.append((key, entries))
        budget -= n
    if served:
        return _top(conn, served)
    if r.timeout < 0:
        return NULL_ARRAY
    if conn.server.events.in_exec or streams._in_script(conn):
        return NULL_ARRAY   # nothing blocks inside MULTI (CLIENT_DENY_BLOCKING)
    return _park(conn, keys, group_name, consumer_name, count or BLOCKED_DEFAULT_COUNT,
                 noack, r.timeout)


def _park(conn, keys, group_name: bytes, consumer_name: bytes, count: int, noack: bool,
          block: int):
    """Park the client on `keys` (all read with ">"): served by the first of
    them that gets an entry after its group's last id (serveClientsBlockedOn-
    StreamKey); answered -NOGROUP when the group is gone, -UNBLOCKED when
    the key is (the `gone` text, dispatch/blocking.py)."""
    def serve(conn, key):
        stream = conn.db.data.get(key)
        group = lookup_group(stream, group_name)
        if group is None:
            raise CommandError(errors.NOGROUP_BLOCKED)
        if stream.last_id <= group.last_id:
            return None
        return metered(conn, (key,), _serve_parked, conn, key, stream, group)

    def _serve_parked(conn, key, stream, group):
        now = now_ms()
        consumer, created = _consumer(group, consumer_name, now)
        entries, _ = _serve_new(conn, stream, group, consumer, min(count, MAX_DELIVERED),
                                noack, now)
        _served(conn, key, group_name, consumer_name, entries, noack, created)
        return _top(conn, [(key, entries)])

    waiter = Blocked(conn, keys, Stream, serve, block / 1000.0, NULL_ARRAY)
    waiter.gone = errors.UNBLOCKED_STREAM_GONE
    return waiter


def _served(conn, key: bytes, group_name: bytes, consumer_name: bytes, entries, noack: bool,
            created: bool):
    """A parked XREADGROUP was served outside any handler: log its effects
    (as the recorder would) and its consumer's creation event. WATCH and
    tracking hear nothing of it, as of any XREADGROUP (Redis signals no
    modified key for a delivery)."""
    db = conn.db
    events = conn.server.events
    journal = events.journal
    if journal is not None:
        name = conn.tenant.name
        for record in xreadgroup_effects(db, key, group_name, consumer_name,
                                         entry_ids(entries), noack):
            journal.emit(name, db.index, record)
    notifier = events.notifier
    if created and notifier is not None:
        flags = notifier.listening(conn)
        if flags:
            notifier.send(conn.tenant, db.index, flags, [(STREAM, b"xgroup-createconsumer", key)])


# -- XACK ------------------------------------------------------------------------------

@command("xack")
def xack(conn, args):
    stream = _stream(conn, args[1])
    group = lookup_group(stream, args[2]) if stream is not None else None
    if group is None:
        return 0
    if len(args) == 4:   # one id, the usual XACK
        return 1 if group.ack(parse_id(args[3], 0, True)) else 0
    ids = [parse_id(raw, 0, True) for raw in args[3:]]   # all or nothing: parsed first
    acked = 0
    for sid in ids:
        if group.ack(sid):
            acked += 1
    return acked


# -- XPENDING ----------------------------------------------------------------------

@command("xpending")
def xpending(conn, args):
    n = len(args)
    key, group_name = args[1], args[2]
    if n != 3 and (n < 6 or n > 9):
        raise CommandError(errors.SYNTAX)
    min_idle = 0
    consumer_name = None
    if n >= 6:
        at = 3
        if args[3].lower() == b"idle":
            min_idle = _ll(args[4])
            if n < 8:
                raise CommandError(errors.SYNTAX)
            at = 5
        count = max(_ll(args[at + 2]), 0)
        start, excl = _interval_id(args[at], 0)
        if excl:
            if start == MAX_ID:
                raise CommandError(errors.STREAM_BAD_START)
            start += 1
        end, excl = _interval_id(args[at + 1], MAX_SEQ)
        if excl:
            if end == 0:
                raise CommandError(errors.STREAM_BAD_END)
            end -= 1
        if at + 3 < n:
            consumer_name = args[at + 3]
    stream = _stream(conn, key)
    group = lookup_group(stream, group_name) if stream is not None else None
    if group is None:
        raise CommandError(errors.nogroup_key_or_group(key, group_name))
    pel = group.pel
    if n == 3:
        if not pel:
            return [0, None, None, NULL_ARRAY]
        owners = [[c.name, b"%d" % len(c.pel)] for c in group.sorted_consumers() if c.pel]
        return [len(pel), format_id(pel.keys()[0]), format_id(pel.keys()[-1]), owners]
    if consumer_name is not None:
        consumer = group.consumers.get(consumer_name)
        if consumer is None:
            return EMPTY_ARRAY
        pel = consumer.pel
    if not count or start > end:
        return EMPTY_ARRAY
    job = _pending_job(pel, start, end, count, min_idle, now_ms())
    if len(pel) > slices.BIG:   # a scan that may be long: in slices
        return slices.run(conn, job)
    return run_whole(job)


def _pending_job(pel, start: int, end: int, count: int, min_idle: int, now: int):
    """XPENDING's rows (a job, dispatch/slices.py: it yields every STEP
    entries looked at, an IDLE filter may skip most of a big PEL)."""
    out = []
    seen = 0
    for sid in pel.irange(start, end):
        nack = pel[sid]
        idle = now - nack.delivery_time
        seen += 1
        if seen >= slices.STEP:
            seen = 0
            yield
        if min_idle and idle < min_idle:
            continue
        out.append([format_id(sid), nack.consumer.name, max(idle, 0), nack.delivery_count])
        if len(out) >= count:
            break
    return out


# -- XCLAIM / XAUTOCLAIM ----------------------------------------------------------

@command("xclaim")
def xclaim(conn, args):
    key, group_name, name = args[1], args[2], args[3]
    stream, group = _group_or_error(conn, key, group_name)
    min_idle = max(_ll(args[4], errors.XCLAIM_MIN_IDLE), 0)
    n = len(args)
    ids = []
    j = 5
    while j < n:
        try:
            ids.append(parse_id(args[j], 0, True))
        except CommandError:
            break
        j += 1
    now = now_ms()
    delivery = -1
    retrycount = -1
    force = justid = False
    last_id = 0
    while j < n:
        word = args[j].lower()
        more = n - 1 - j
        if word == b"force":
            force = True
        elif word == b"justid":
            justid = True
        elif word == b"idle" and more:
            j += 1
            delivery = now - _ll(args[j], errors.XCLAIM_IDLE)
        elif word == b"time" and more:
            j += 1
            delivery = _ll(args[j], errors.XCLAIM_TIME)
        elif word == b"retrycount" and more:
            j += 1
            retrycount = _ll(args[j], errors.XCLAIM_RETRYCOUNT)
        elif word == b"lastid" and more:
            j += 1
            last_id = parse_id(args[j], 0, True)
        else:
            raise CommandError(errors.xclaim_option(args[j]))
        j += 1
    if last_id > group.last_id:
        group.last_id = last_id
    if delivery == -1 or delivery < 0 or delivery > now:
        delivery = now
    consumer = None
    out = []
    pel = group.pel
    for sid in ids:
        nack = pel.get(sid)
        if sid not in stream:
            if nack is not None:   # its entry is gone: so is the pending entry
                group.ack(sid)
            continue
        if force and nack is None:
            nack = pel[sid] = Nack(None, now)
        if nack is None:
            continue
        if nack.consumer is not None and min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer, _ = _consumer(group, name, now)
        group.claim(sid, nack, consumer)
        nack.delivery_time = delivery
        if retrycount >= 0:
            nack.delivery_count = retrycount
        elif not justid:
            nack.delivery_count += 1
        out.append(format_id(sid) if justid else Raw(stream.entry_reply(sid)))
    return out


@command("xautoclaim")
def xautoclaim(conn, args):
    key, group_name, name = args[1], args[2], args[3]
    min_idle = max(_ll(args[4], errors.XAUTOCLAIM_MIN_IDLE), 0)
    start, excl = _interval_id(args[5], 0)
    if excl:
        if start == MAX_ID:
            raise CommandError(errors.STREAM_BAD_START)
        start += 1
    count = 100
    justid = False
    j = 6
    n = len(args)
    max_count = LLONG_MAX // 16   # LONG_MAX / max(sizeof(streamID), attempts_factor)
    while j < n:
        word = args[j].lower()
        if word == b"count" and n - 1 - j:
            count = parse_int(args[j + 1])
            if count is None or count < 1 or count > max_count:
                raise CommandError(errors.XAUTOCLAIM_COUNT)
            j += 1
        elif word == b"justid":
            justid = True
        else:
            raise CommandError(errors.SYNTAX)
        j += 1
    stream, group = _group_or_error(conn, key, group_name)
    count = min(count, MAX_DELIVERED)
    attempts = count * 10
    pel = group.pel
    now = now_ms()
    consumer = None
    claimed = []
    deleted = []
    cursor = 0
    # The PEL's ids from start that the scan may look at (attempts bounds it).
    at = pel.bisect_left(start)
    candidates = list(pel.islice(at, at + attempts + 1))
    k = 0
    while attempts and count and k < len(candidates):
        sid = candidates[k]
        k += 1
        attempts -= 1
        nack = pel[sid]
        if sid not in stream:
            group.ack(sid)
            deleted.append(format_id(sid))
            count -= 1
            continue
        if min_idle and now - nack.delivery_time < min_idle:
            continue
        if consumer is None:
            consumer, _ = _consumer(group, name, now)
        group.claim(sid, nack, consumer)
        nack.delivery_time = now
        if not justid:
            nack.delivery_count += 1
        claimed.append(format_id(sid) if justid else Raw(stream.entry_reply(sid)))
        count -= 1
    # The cursor: the next pending id after the last one looked at, else 0-0.
    following = pel.irange(minimum=candidates[k - 1] + 1 if k else start)
    for sid in following:
        cursor = sid
        break
    return [format_id(cursor), claimed, deleted]


# -- XINFO GROUPS / CONSUMERS / STREAM FULL's groups -------------------------------------

def _info_stream(conn, key: bytes):
    stream = _stream(conn, key)
    if stream is None:
        raise CommandError(errors.NO_SUCH_KEY)
    return stream


@subcommand("xinfo", "groups")
def info_groups(conn, args):
    stream = _info_stream(conn, args[2])
    groups = stream.groups
    if not groups:
        return EMPTY_ARRAY
    out = []
    for name in sorted(groups):
        group = groups[name]
        out.append({
            b"name": name,
            b"consumers": len(group.consumers),
            b"pending": len(group.pel),
            b"last-delivered-id": format_id(group.last_id),
            b"entries-read": None if group.entries_read == INVALID else group.entries_read,
            b"lag": lag(stream, group),
        })
    return out


@subcommand("xinfo", "consumers")
def info_consumers(conn, args):
    stream = _info_stream(conn, args[2])
    group = lookup_group(stream, args[3])
    if group is None:
        raise CommandError(errors.nogroup_of_key(args[3], args[2]))
    now = now_ms()
    return [{b"name": c.name, b"pending": len(c.pel), b"idle": max(now - c.seen_time, 0)}
            for c in group.sorted_consumers()]


def full_groups(stream, count: int):
    """XINFO STREAM FULL's "groups" (a job, dispatch/slices.py: it yields
    every STEP pending entries listed): each group with its PEL and
    consumers, at most `count` (0: all) pending entries each."""
    groups = stream.groups
    if not groups:
        return EMPTY_ARRAY
    listed = 0
    out = []
    for name in sorted(groups):
        group = groups[name]
        pending = []
        for sid, nack in group.pel.items():
            if count and len(pending) >= count:
                break
            pending.append([format_id(sid), nack.consumer.name, nack.delivery_time,
                            nack.delivery_count])
            listed += 1
            if listed >= slices.STEP:
                listed = 0
                yield
        consumers = []
        for consumer in group.sorted_consumers():
            own = []
            for sid, nack in consumer.pel.items():
                if count and len(own) >= count:
                    break
                own.append([format_id(sid), nack.delivery_time, nack.delivery_count])
                listed += 1
                if listed >= slices.STEP:
                    listed = 0
                    yield
            consumers.append({b"name": consumer.name, b"seen-time": consumer.seen_time,
                              b"pel-count": len(consumer.pel), b"pending": own})
        out.append({
            b"name": name,
            b"last-delivered-id": format_id(group.last_id),
            b"entries-read": None if group.entries_read == INVALID else group.entries_read,
            b"lag": lag(stream, group),
            b"pel-count": len(group.pel),
            b"pending": pending,
            b"consumers": consumers,
        })
    return out


def full_info(conn, stream, count: int) -> dict:
    """XINFO STREAM key FULL [COUNT n] (commands/streams.py calls it): the
    stream's fields, at most `count` entries (0: all), the groups."""
    info = stream_info(stream)
    body, n = stream.range_reply(0, MAX_ID, count)
    info[b"entries"] = Raw(b"*%d\r\n%s" % (n, body))
    job = full_groups(stream, count)
    big = sum(len(group.pel) for group in stream.groups.values()) if stream.groups else 0

    def finish(groups):
        info[b"groups"] = groups
        return info
    if big > slices.BIG:   # long lists of pending entries: in slices
        return slices.run(conn, job, finish)
    return finish(run_whole(job))


streams.full_info = full_info   # the hook commands/streams.py leaves for FULL
