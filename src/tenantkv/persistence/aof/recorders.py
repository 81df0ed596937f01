"""What the append-only log records for each write command.

Determinism: a record must do at replay exactly what the command did live.
Commands whose effect depends on the clock or on chance are logged as their
effect (docs/aof-format.md has the list and the reasons): relative expiries
become absolute, SPOP becomes SREM of what it popped, INCRBYFLOAT the SET of
its result, a blocking pop its non-blocking form. Keys that expire (lazily or
by the active cycle) are logged as DEL (Journal.expired), as Redis propagates
them: replay runs with expiry suspended (replay.py), so that `SET k v PXAT t`
followed by `APPEND k x` at any later time loads as it ran.

recorder(conn, db, args, reply) -> list of argument lists to log. Commands
without one are logged as sent, unless they are in UNCHANGED_ON_ZERO and
replied 0 / null (they changed nothing). State-based recorders read the key
after the command ran and log what it is now: always right whatever the
options (NX, XX, GET, GT, LT...) did.
"""

from tenantkv.persistence.aof.format import ITEMS_PER_COMMAND
from tenantkv.protocol.encoder import EMPTY_ARRAY, NULL_ARRAY, OK


def nothing(reply) -> bool:
    return (reply is None or reply is NULL_ARRAY or reply is EMPTY_ARRAY
            or (type(reply) is int and reply == 0) or (type(reply) is list and not reply))


def _key_state(db, key: bytes) -> list:
    """The string under `key` now, with its expiry: SET [PXAT], or DEL."""
    value = db.data.get(key)
    if value is None:
        return [[b"DEL", key]]
    when = db.expires.get(key)
    if type(value) is not bytes:   # not a string (cannot happen after SET): its TTL only
        return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]
    if when is None:
        return [[b"SET", key, value]]
    return [[b"SET", key, value, b"PXAT", b"%d" % when]]


def _set_state(conn, db, args, reply):
    if len(args) == 3:   # plain SET k v (SETEX and PSETEX have 4): as sent
        return (args,)
    return _key_state(db, args[1])


def _expire_state(conn, db, args, reply):
    """EXPIRE & co., GETEX with an option: the key's expiry now, absolute."""
    if nothing(reply):
        return ()
    key = args[1]
    if key not in db.data:
        return [[b"DEL", key]]   # a time in the past deleted it
    when = db.expires.get(key)
    return [[b"PEXPIREAT", key, b"%d" % when]] if when is not None else [[b"PERSIST", key]]


def _getex(conn, db, args, reply):
    if reply is None or len(args) == 2:
        return ()   # a missing key, or no option: nothing changed
    return _expire_state(conn, db, args, 1)


def _spop(conn, db, args, reply):
    if nothing(reply):
        return ()
    members = [reply] if type(reply) is bytes else list(reply)
    return [[b"SREM", args[1], *members[i:i + ITEMS_PER_COMMAND]]
            for i in range(0, len(members), ITEMS_PER_COMMAND)]


def _incrbyfloat(conn, db, args, reply):
    return [[b"SET", args[1], reply, b"KEEPTTL"]]


def _hincrbyfloat(conn, db, args, reply):
    return [[b"HSET", args[1], args[2], reply]]


def _blpop(name: bytes):
    def record(conn, db, args, reply):
        return () if nothing(reply) else [[name, reply[0]]]
    return record


def _blmove(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], args[3], args[4]]]


def _brpoplpush(conn, db, args, reply):
    return () if reply is None else [[b"LMOVE", args[1], args[2], b"RIGHT", b"LEFT"]]


def _mpop(name: bytes):
    # BLMPOP timeout numkeys key... side [COUNT n] -> LMPOP 1 key side COUNT popped
    def record(conn, db, args, reply):
        if nothing(reply):
            return ()
        numkeys = int(args[2])
        side = args[3 + numkeys]
        return [[name, b"1", reply[0], side, b"COUNT", b"%d" % len(reply[1])]]
    return record


def _stream_length(db, key: bytes) -> bytes:
    value = db.data.get(key)
    return b"%d" % (len(value) if value is not None else 0)


def _xadd(conn, db, args, reply):
    """XADD as its effect: the id it gave (`*`, `ms-*`), and a trim as
    MAXLEN = the length it left (`~` and LIMIT depend on how the entries
    sat in blocks), as Redis rewrites it for its AOF and replicas."""
    if reply is None:
        return ()   # NOMKSTREAM on a missing key
    # the reply is the id's RESP bulk string (pre-encoded by XADD)
    sid = bytes(reply[reply.index(b"\n") + 1:-2]) if reply[:1] == b"$" else reply
    i = 2
    trims = False
    while True:   # the options, already checked by the command
        opt = args[i].lower()
        if opt in (b"maxlen", b"minid"):
            trims = True
            i += 3 if args[i + 1] in (b"~", b"=") else 2
        elif opt == b"limit":
            i += 2
        elif opt == b"nomkstream":
            i += 1
        else:
            break
    key = args[1]
    if trims:
        return [[b"XADD", key, b"MAXLEN", b"=", _stream_length(db, key), sid, *args[i + 1:]]]
    return [[b"XADD", key, sid, *args[i + 1:]]]


def _xtrim(conn, db, args, reply):
    if nothing(reply):
        return ()
    return [[b"XTRIM", args[1], b"MAXLEN", b"=", _stream_length(db, args[1])]]


def restore_records(db, key: bytes, payload: bytes, changed: bool = True) -> list:
    """What the log records for a RESTORE (commands/dump.py): the key's
    state now, its expiry absolute, REPLACE so that a replay does the same
    whatever the key held then; DEL when it is not there (a TTL already
    past: REPLACE deleted the old value, or nothing changed)."""
    if key not in db.data:
        return [[b"DEL", key]] if changed else []
    when = db.expires.get(key)
    return [[b"RESTORE", key, b"%d" % (when or 0), payload, b"ABSTTL", b"REPLACE"]]


def _restore(conn, db, args, reply):
    if reply is not OK:
        return ()   # a sliced RESTORE (a Deferred) logs itself at its end
    return restore_records(db, args[1], args[3])


RECORDERS = {
    "set": _set_state, "setex": _set_state, "psetex": _set_state,
    "expire": _expire_state, "pexpire": _expire_state,
    "expireat": _expire_state, "pexpireat": _expire_state,
    "getex": _getex,
    "spop": _spop,
    "incrbyfloat": _incrbyfloat, "hincrbyfloat": _hincrbyfloat,
    "blpop": _blpop(b"LPOP"), "brpop": _blpop(b"RPOP"),
    "bzpopmin": _blpop(b"ZPOPMIN"), "bzpopmax": _blpop(b"ZPOPMAX"),
    "blmove": _blmove, "brpoplpush": _brpoplpush,
    "blmpop": _mpop(b"LMPOP"), "bzmpop": _mpop(b"ZMPOP"),
    "restore": _restore,
    "xadd": _xadd, "xtrim": _xtrim,
}


# -- stream consumer groups: logged as their effects, as Redis propagates them -----

def _pending_record(key: bytes, group_name: bytes, group, sid: int, nack) -> list:
    """streamPropagateXCLAIM: an idempotent XCLAIM that recreates the pending
    entry `sid` (owner, delivery time, count) and the group's last id."""
    return [b"XCLAIM", key, group_name, nack.consumer.name, b"0", _format_id(sid),
            b"TIME", b"%d" % nack.delivery_time, b"RETRYCOUNT", b"%d" % nack.delivery_count,
            b"FORCE", b"JUSTID", b"LASTID", _format_id(group.last_id)]


def _format_id(sid: int) -> bytes:
    return b"%d-%d" % (sid >> 64, sid & 0xFFFFFFFFFFFFFFFF)


def _parse_id(text: bytes) -> int:
    ms, _, seq = text.partition(b"-")
    return int(ms) << 64 | int(seq or b"0")


def _group_of(db, key: bytes, group_name: bytes):
    stream = db.data.get(key)
    groups = getattr(stream, "groups", None)
    return groups.get(group_name) if groups else None


def _group_position(key: bytes, group_name: bytes, group) -> list:
    """streamPropagateGroupID: the group's last id and entries-read counter."""
    return [b"XGROUP", b"SETID", key, group_name, _format_id(group.last_id),
            b"ENTRIESREAD", b"%d" % group.entries_read]


def group_effects(db, key: bytes, group_name: bytes, ids, consumer_name=None) -> list:
    """What a group command did to `ids` of the group, as records: each one
    still pending recreated by an XCLAIM, each one no longer pending XACKed
    (its entry was deleted), the consumer (if named) created, and the group's
    position. State-based: read after the command ran, so always right."""
    group = _group_of(db, key, group_name)
    if group is None:
        return []
    records = []
    if consumer_name is not None and consumer_name in group.consumers:
        records.append([b"XGROUP", b"CREATECONSUMER", key, group_name, consumer_name])
    pel = group.pel
    gone = []
    for sid in ids:
        nack = pel.get(sid)
        if nack is None:
            gone.append(_format_id(sid))
        else:
            records.append(_pending_record(key, group_name, group, sid, nack))
    for i in range(0, len(gone), ITEMS_PER_COMMAND):
        records.append([b"XACK", key, group_name, *gone[i:i + ITEMS_PER_COMMAND]])
    records.append(_group_position(key, group_name, group))
    return records


def entry_ids(entries) -> list:
    """The ids in an entries reply: a Raw RESP array, or a list of Raw
    entries and [id, null] pairs (a deleted entry in a history read)."""
    from hiredis import Reader
    if type(entries) is list:
        ids = []
        for item in entries:
            if type(item) is list:
                ids.append(_parse_id(item[0]))
            else:
                ids.extend(entry_ids(item))
        return ids
    data = bytes(entries)
    if data.startswith(b"*"):
        reader = Reader()
        reader.feed(data)
        parsed = reader.gets()
        if data[1:2] == b"2" and parsed and type(parsed[0]) is bytes:   # one entry alone
            return [_parse_id(parsed[0])]
        return [_parse_id(item[0]) for item in parsed or ()]
    return []


def xreadgroup_effects(db, key: bytes, group_name: bytes, consumer_name: bytes, ids,
                       noack: bool = False) -> list:
    """XREADGROUP's delivery from `key` (`ids`, as bytes or ints)."""
    ids = [_parse_id(i) if type(i) is bytes else i for i in ids]
    return group_effects(db, key, group_name, () if noack else ids, consumer_name)


def _xreadgroup(conn, db, args, reply):
    if nothing(reply) or reply is NULL_ARRAY:
        return ()
    group_name = consumer_name = None
    noack = False
    for i, arg in enumerate(args):
        word = arg.lower()
        if word == b"group" and group_name is None and i + 2 < len(args):
            group_name, consumer_name = args[i + 1], args[i + 2]
        elif word == b"noack":
            noack = True
        elif word == b"streams":
            break
    pairs = reply.items() if type(reply) is dict else reply
    records = []
    for key, entries in pairs:
        records += xreadgroup_effects(db, key, group_name, consumer_name,
                                      entry_ids(entries), noack)
    return records


def _xclaim(conn, db, args, reply):
    ids = []
    for raw in args[5:]:
        try:
            ids.append(_parse_id(raw))
        except ValueError:
            break
    return group_effects(db, args[1], args[2], ids)


def _xautoclaim(conn, db, args, reply):
    if type(reply) is not list:
        return ()
    _, claimed, deleted = reply
    ids = [_parse_id(item) if type(item) is bytes else entry_ids(item)[0] for item in claimed]
    ids += [_parse_id(item) for item in deleted]
    return group_effects(db, args[1], args[2], ids)


RECORDERS.update({"xreadgroup": _xreadgroup, "xclaim": _xclaim, "xautoclaim": _xautoclaim})


def _xgroup(conn, db, args, reply):
    """XGROUP as sent, but HELP and the subcommands that changed nothing
    (DESTROY / DELCONSUMER / CREATECONSUMER replying 0 for nothing done)."""
    sub = args[1].lower()
    if sub == b"help" or (sub in (b"destroy", b"createconsumer") and reply == 0):
        return ()
    return (args,)


RECORDERS["xgroup"] = _xgroup
