"""Generic key commands: DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, MOVE, FLUSH*,
OBJECT, and expiry (EXPIRE family, TTL, PERSIST)."""

import random
from itertools import islice

from tenantkv import errors
from tenantkv.dispatch import lazyfree, slices
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.keyspace import database
from tenantkv.keyspace.database import now_ms
from tenantkv.keyspace.types import copy_value, encoding, type_name
from tenantkv.protocol.encoder import OK, Status
from tenantkv.util.glob import glob_match
from tenantkv.util.numbers import LLONG_MAX, LLONG_MIN, int_arg, parse_int
from tenantkv.util.options import Flag, Options, Value, option_name


@command("del")
def del_(conn, args):
    db = conn.db
    if conn.root and not conn.server.config.values[_LAZY_DEL]:
        return sum(1 for key in args[1:] if db.delete(key))
    return _unlink(conn, db, args)


@command("unlink")
def unlink(conn, args):
    return _unlink(conn, conn.db, args)


_LAZY_DEL = (None, "lazyfree-lazy-user-del")
_LAZY_FLUSH = (None, "lazyfree-lazy-user-flush")


def _unlink(conn, db, args) -> int:
    """DEL that hands a big value to lazy free (dispatch/lazyfree.py):
    UNLINK, DEL under lazyfree-lazy-user-del, and any DEL of a non-root
    user (a DEL of a 10M-member set would free it for ~0.4 s)."""
    data = db.data
    deleted = 0
    for key in args[1:]:
        value = data.get(key)
        if value is None or not db.delete(key):
            continue
        deleted += 1
        if type(value) is not bytes and lazyfree.size(value) >= lazyfree.BIG:
            lazyfree.free(conn.server.loop, value)
    return deleted


@command("exists")
def exists(conn, args):
    db = conn.db
    return sum(1 for key in args[1:] if db.read(key) is not None)   # a hit or miss per key


@command("touch")
def touch(conn, args):
    return exists(conn, args)


@command("type")
def type_(conn, args):
    value = conn.db.read(args[1])
    return Status("none" if value is None else type_name(value))


@command("keys")
def keys(conn, args):
    db = conn.db
    db.purge_expired()
    pattern = args[1]
    if pattern == b"*":
        if database.REPLICA_HIDES and db.expires:
            hidden = _hidden(db)
            return [key for key in db.data if key not in hidden]
        return list(db.data)   # one C call: ~10 ms for 1M keys
    return slices.run(conn, _matching(db, pattern))


def _hidden(db):
    """On a replica: the expired keys it holds until its primary's DEL
    comes (purge_expired leaves them). No read sees them, KEYS neither (as
    Redis 7's replicas)."""
    if not database.REPLICA_HIDES or not db.expires:
        return ()
    now = now_ms()
    return {key for key, when in db.expires.items() if when <= now}


def _matching(db, pattern: bytes):
    """KEYS's job (dispatch/slices.py): the keys matching `pattern`, in the
    dict's order. Walks a snapshot of the names; a key expired or evicted
    between two slices is left out, as if it had gone before the command."""
    names = list(db.data)
    found = []
    step = slices.STEP
    for start in range(0, len(names), step):
        found += [key for key in names[start:start + step] if glob_match(pattern, key)]
        yield
    data = db.data
    hidden = _hidden(db)
    return [key for key in found if key in data and key not in hidden]


@command("dbsize")
def dbsize(conn, args):
    return len(conn.db.data)


@command("randomkey")
def randomkey(conn, args):
    db = conn.db
    for _ in range(100):
        if not db.data:
            return None
        key = next(islice(db.data, random.randrange(len(db.data)), None))
        if db.get(key) is not None:
            return key
    db.purge_expired()
    return next(iter(db.data), None)


# -- SCAN --------------------------------------------------------------------
# A Python dict has no stable bucket order to walk as Redis's reverse-binary
# cursor does, so a SCAN that needs more than one call works on a snapshot of
# the key names taken at cursor 0 (pointers only: the keys are shared). Each
# call returns the next slice of the snapshot, skipping keys deleted since.
# Every key present for the whole scan is returned exactly once; keys added
# during it may or may not be, as in Redis. The cursor is snapshot id << 32 |
# position.
#
# A snapshot costs 8 bytes per name (64 x SCAN 0 on 1M keys took 431 MB), so
# a tenant's live snapshots are bounded, over all its databases: at most
# MAX_SCANS of them and SCAN_NAMES names (a single bigger one is kept alone).
# The least recently used goes first; its cursor then answers Redis's
# "invalid cursor" error rather than ending the scan early without a word
# (a client must not believe it saw every key). A cursor never issued, or
# of a finished scan, answers an empty last step, as before.

MAX_SCANS = 64
# COUNT is a hint (a SCAN may answer fewer names, with a cursor to go on):
# for a non-root user it is taken as at most this many, so that one call
# stays in the milliseconds (COUNT 100000000 over 1M keys took 0.4-0.8 s).
SCAN_COUNT_MAX = 20_000
SCAN_NAMES = 2_000_000   # 16 MB of pointers per tenant
_POSITION_BITS = 32
_EVICTED_KEPT = 1024     # evicted cursors remembered per tenant, for the error


def scan_keys(conn, db, cursor: int, count: int) -> tuple:
    """(next cursor, candidate keys) for one SCAN step over `db`."""
    return scan_snapshot(conn, db, None, db.data, cursor, count)


def scan_snapshot(conn, db, owner, names, cursor: int, count: int) -> tuple:
    """(next cursor, candidate names) for one step over the names of `names`
    (a dict: db.data for SCAN, a hash for HSCAN). `owner` tells whose names a
    snapshot holds (None: the database's keys, else the key HSCAN walks), so a
    cursor is never replayed against another collection. The caller skips
    names that are gone since the snapshot was taken."""
    tenant = conn.tenant
    live = tenant.scans   # (db, snapshot id) -> its length, least recently used first
    if cursor == 0:
        if len(names) <= count:
            return 0, list(names)
        db.scan_ids += 1
        snapshot_id = db.scan_ids
        snapshot = list(names)
        _make_room(tenant, len(snapshot))
        db.scans[snapshot_id] = (owner, snapshot)
        live[(db, snapshot_id)] = len(snapshot)
        tenant.scan_names += len(snapshot)
        position = 0
    else:
        snapshot_id, position = cursor >> _POSITION_BITS, cursor & ((1 << _POSITION_BITS) - 1)
        entry = db.scans.get(snapshot_id)
        if entry is None or entry[0] != owner:
            if (db, snapshot_id) in tenant.scans_evicted:
                raise CommandError(errors.INVALID_CURSOR)
            return 0, []   # never issued or finished: Redis never errors here
        snapshot = entry[1]
        live[(db, snapshot_id)] = live.pop((db, snapshot_id), len(snapshot))   # recently used
    batch = snapshot[position:position + count]
    position += count
    if position >= len(snapshot):
        del db.scans[snapshot_id]
        tenant.scan_names -= live.pop((db, snapshot_id), 0)
        return 0, batch
    return (snapshot_id << _POSITION_BITS) | position, batch


def drop_scans(tenant, db) -> list:
    """Forget `db`'s SCAN snapshots (it was emptied: no key of theirs is
    left to return, so their cursors end the scan, as a cursor never issued
    does). A snapshot holds its names alive: kept, it would pin the memory of
    every flushed key until 64 newer scans pushed it out. Returns the
    snapshots, for the caller to free (lazily, when big)."""
    if not db.scans:
        return []
    live = tenant.scans
    for snapshot_id in db.scans:
        tenant.scan_names -= live.pop((db, snapshot_id), 0)
    snapshots = [names for _, names in db.scans.values()]
    db.scans = {}
    return snapshots


def _make_room(tenant, size: int) -> None:
    """Drop the tenant's least recently used snapshots until one of `size`
    names fits its bounds."""
    live = tenant.scans
    evicted = tenant.scans_evicted
    while live and (len(live) >= MAX_SCANS or tenant.scan_names + size > SCAN_NAMES):
        (db, snapshot_id), length = next(iter(live.items()))
        del live[(db, snapshot_id)]
        tenant.scan_names -= length
        db.scans.pop(snapshot_id, None)
        evicted[(db, snapshot_id)] = None
        if len(evicted) > _EVICTED_KEPT:
            del evicted[next(iter(evicted))]


def scan_collection(conn, args, read, whole, values, names=None):
    """HSCAN / SSCAN / ZSCAN key cursor [MATCH pattern] [COUNT count].

    `read(db, key)`: the collection, or None (a keyspace hit or miss);
    `whole(db, key, c)`: every member in Redis's order when Redis answers a
    small encoding (listpack, intset) in one reply whatever the cursor and
    COUNT, else None; `values(c)`: a function member -> the value to reply
    after it (None: removed since the snapshot), or `values` None for sets
    (members only); `names(c)`: the dict or set whose names the cursor walks
    (default: the collection itself)."""
    cursor = parse_cursor(args[2])
    db = conn.db
    key = args[1]
    collection = read(db, key)
    if collection is None:
        return [b"0", []]
    pattern, count, _ = parse_scan_options(args, 3, allow_type=False)
    if count > SCAN_COUNT_MAX and not conn.root:
        count = SCAN_COUNT_MAX
    batch = whole(db, key, collection)
    if batch is not None:
        next_cursor = 0
    else:
        walked = collection if names is None else names(collection)
        next_cursor, batch = scan_snapshot(conn, db, key, walked, cursor, count)
    reply = []
    value_of = values(collection) if values is not None else None
    for member in batch:
        if value_of is None:
            if member not in collection:
                continue   # removed since the snapshot
            value = None
        else:
            value = value_of(member)
            if value is None:
                continue   # removed since the snapshot
        if pattern is not None and not glob_match(pattern, member):
            continue
        reply.append(member)
        if value is not None:
            reply.append(value)
    return [b"%d" % next_cursor, reply]


def _scan_count(raw: bytes) -> int:
    count = int_arg(raw)
    if count < 1:
        raise CommandError(errors.SYNTAX)
    return count


# scanGenericCommand: MATCH and COUNT (below 1: a syntax error), TYPE for SCAN
# only; repeated, the last one counts.
_MATCH = Value("MATCH")
_COUNT = Value("COUNT", parse=_scan_count)
SCAN_OPTIONS = Options(_MATCH, _COUNT, Value("TYPE"))
COLLECTION_SCAN_OPTIONS = Options(_MATCH, _COUNT)   # HSCAN, SSCAN, ZSCAN


def parse_scan_options(args: list, start: int, allow_type: bool = True) -> tuple:
    """(pattern or None for every name, count, type name or None)."""
    options = (SCAN_OPTIONS if allow_type else COLLECTION_SCAN_OPTIONS).parse(args, start)
    pattern = options.get("match")
    if pattern == b"*":
        pattern = None
    kind = options.get("type")
    if kind is not None:   # compared as Redis does: strcasecmp
        kind = option_name(kind).decode("latin-1")
    return pattern, options.get("count", 10), kind


_ULONG = 1 << 64


def parse_cursor(raw: bytes) -> int:
    """The cursor as Redis 7.2's parseScanCursorOrReply reads it: strtoul(base 10)
    of the C string (up to a NUL), refused if it starts with a space, has junk
    after the digits, or overflows. So "" is 0 and "-1" is 2**64 - 1."""
    if b"\0" in raw:
        raw = raw[:raw.index(b"\0")]
    if not raw:
        return 0
    digits = raw[1:] if raw[:1] in (b"+", b"-") else raw
    if not digits.isdigit() or not digits.isascii():
        raise CommandError(errors.INVALID_CURSOR)
    value = int(digits)
    if value >= _ULONG:
        raise CommandError(errors.INVALID_CURSOR)
    return (_ULONG - value) % _ULONG if raw[:1] == b"-" else value


@command("scan")
def scan(conn, args):
    cursor = parse_cursor(args[1])
    pattern, count, kind = parse_scan_options(args, 2)
    if count > SCAN_COUNT_MAX and not conn.root:
        count = SCAN_COUNT_MAX
    db = conn.db
    next_cursor, batch = scan_keys(conn, db, cursor, count)
    found = []
    for key in batch:
        value = db.get(key)
        if value is None:
            continue
        if pattern is not None and not glob_match(pattern, key):
            continue
        if kind is not None and type_name(value) != kind:
            continue
        found.append(key)
    return [b"%d" % next_cursor, found]


# -- renaming and copying ------------------------------------------------------

def _move_key(src_db, key, dst_db, new_key) -> None:
    marked = src_db.marked_encoding(key, src_db.data[key])
    value = src_db.data.pop(key)
    when = src_db.expires.pop(key, None)
    src_db.encodings.pop(key, None)
    dst_db.data[new_key] = value
    dst_db.expires.pop(new_key, None)
    dst_db.encodings.pop(new_key, None)
    if when is not None:
        dst_db.expires[new_key] = when
    if marked is not None:
        dst_db.mark_encoding(new_key, value, marked)


@command("rename")
def rename(conn, args):
    db = conn.db
    if db.get(args[1]) is None:
        raise CommandError(errors.NO_SUCH_KEY)
    if args[1] != args[2]:
        _move_key(db, args[1], db, args[2])
    return OK


@command("renamenx")
def renamenx(conn, args):
    db = conn.db
    if db.get(args[1]) is None:
        raise CommandError(errors.NO_SUCH_KEY)
    if args[1] == args[2] or db.get(args[2]) is not None:
        return 0
    _move_key(db, args[1], db, args[2])
    return 1


def _db_index(conn, raw: bytes) -> int:
    index = parse_int(raw)
    if index is None:
        raise CommandError(errors.NOT_INTEGER)
    if not 0 <= index < len(conn.tenant.dbs):
        raise CommandError(errors.DB_INDEX)
    return index


@command("move")
def move(conn, args):
    index = _db_index(conn, args[2])
    src = conn.db
    if index == src.index:
        raise CommandError(errors.SAME_OBJECT)
    dst = conn.tenant.dbs[index]
    if src.get(args[1]) is None or dst.get(args[1]) is not None:
        return 0
    _move_key(src, args[1], dst, args[1])
    return 1


def _swapdb_index(raw: bytes, message: str) -> int:
    # getIntFromObjectOrReply: a C int, else the argument's own message
    index = parse_int(raw)
    if index is None or not -(1 << 31) <= index < (1 << 31):
        raise CommandError(message)
    return index


# What SWAPDB exchanges: the data and everything kept per key of it (TTLs,
# string encodings, the accounting's sizes and access clocks). WATCHed and
# blocked keys stay with the index (their clients stay in the db they
# chose), as do the SCAN snapshots and the hit/miss counters.
_SWAPPED = ("data", "expires", "encodings", "used", "access")


@command("swapdb")
def swapdb(conn, args):
    """SWAPDB within the caller's tenant: its databases only (dispatch/
    observers.py touches the WATCHed keys and wakes the blocked clients of
    both, as Redis's dbSwapDatabases)."""
    first = _swapdb_index(args[1], errors.SWAPDB_FIRST_INDEX)
    second = _swapdb_index(args[2], errors.SWAPDB_SECOND_INDEX)
    dbs = conn.tenant.dbs
    if not (0 <= first < len(dbs) and 0 <= second < len(dbs)):
        raise CommandError(errors.DB_INDEX)
    if first != second and (dbs.get(first) is not None or dbs.get(second) is not None):
        a, b = dbs[first], dbs[second]
        for name in _SWAPPED:
            held = getattr(a, name)
            setattr(a, name, getattr(b, name))
            setattr(b, name, held)
    return OK


@command("copy")
def copy(conn, args):
    dst = conn.db
    replace = False
    i = 3
    while i < len(args):
        option = args[i].lower()
        if option == b"replace":
            replace = True
        elif option == b"db" and i + 1 < len(args):
            dst = conn.tenant.dbs[_db_index(conn, args[i + 1])]
            i += 1
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    src = conn.db
    if src is dst and args[1] == args[2]:
        raise CommandError(errors.SAME_OBJECT)
    value = src.read(args[1])   # the source is a read lookup in Redis (a hit or miss)
    if value is None:
        return 0
    if dst.get(args[2]) is not None:
        if not replace:
            return 0
        dst.delete(args[2])
    copied = dst.data[args[2]] = copy_value(value)
    when = src.expires.get(args[1])
    if when is not None:
        dst.expires[args[2]] = when
    marked = src.marked_encoding(args[1], value)
    if marked is not None:
        dst.mark_encoding(args[2], copied, marked)
    return 1


def _flush(conn, args: list, dbs) -> None:
    """Empty `dbs` now; free their old contents lazily (dispatch/lazyfree.py)
    with ASYNC, or under lazyfree-lazy-user-flush without SYNC, and always for
    a non-root user: freeing 1M keys holds the loop ~40 ms, 10M ~0.4 s."""
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"async", b"sync")):
        raise CommandError(errors.SYNTAX)
    mode = args[1].lower() if len(args) == 2 else None
    lazy = (not conn.root or mode == b"async"
            or (mode is None and conn.server.config.values[_LAZY_FLUSH]))
    for db in dbs:
        data, expires = db.data, db.expires
        db.clear()
        snapshots = drop_scans(conn.tenant, db)
        if lazy and len(data) >= lazyfree.BIG:
            lazyfree.free(conn.server.loop, data)
            if len(expires) >= lazyfree.BIG:
                lazyfree.free(conn.server.loop, expires)
        if lazy:
            for snapshot in snapshots:
                if len(snapshot) >= lazyfree.BIG:
                    lazyfree.free(conn.server.loop, snapshot)


@command("flushdb")
def flushdb(conn, args):
    _flush(conn, args, (conn.db,))
    return OK


@command("flushall")
def flushall(conn, args):
    _flush(conn, args, list(conn.tenant.dbs))
    return OK


# -- OBJECT --------------------------------------------------------------------

OBJECT_HELP = [
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
]


container("object", help=OBJECT_HELP)


@subcommand("object", "encoding")
def _object_encoding(conn, args):
    return _object(conn, args, b"encoding")


@subcommand("object", "refcount")
def _object_refcount(conn, args):
    return _object(conn, args, b"refcount")


@subcommand("object", "freq")
def _object_freq(conn, args):
    return _object(conn, args, b"freq")


@subcommand("object", "idletime")
def _object_idletime(conn, args):
    return _object(conn, args, b"idletime")


def _object(conn, args, sub: bytes):
    # A hit or miss, even for FREQ/IDLETIME's errors; but no keymiss
    # notification (Redis's objectCommandLookup: LOOKUP_NONOTIFY).
    db = conn.db
    value = db.get(args[2])
    if value is None:
        db.misses += 1
        return None
    db.hits += 1
    if sub == b"encoding":
        return (conn.db.marked_encoding(args[2], value) or encoding(value)).encode()
    if sub == b"refcount":
        # Redis shares small integers (refcount INT_MAX); everything else has 1.
        if type(value) is bytes and len(value) <= 5 and parse_int(value) is not None \
                and 0 <= parse_int(value) < 10000:
            return 2147483647
        return 1
    policy = conn.server.config["limits.maxmemory_policy"]
    if sub == b"freq":
        if "lfu" not in policy:
            raise CommandError(errors.OBJECT_FREQ_WITHOUT_LFU)
        # Tracked while maxmemory is set with an LFU policy (server/memory.py)
        freq = conn.server.memory.object_freq(conn.db, args[2])
        return 0 if freq is None else freq
    if "lfu" in policy:
        raise CommandError(errors.OBJECT_IDLETIME_WITH_LFU)
    # Access times are kept only while maxmemory is set with an LRU policy
    # (server/memory.py): a per-key clock costs memory; else 0.
    idle = conn.server.memory.object_idletime(conn.db, args[2])
    return 0 if idle is None else idle


# -- expiry --------------------------------------------------------------------

# parseExtendedExpireArgumentsOrReply: NX alone, or XX with GT or LT.
EXPIRE_OPTIONS = Options(
    Flag("NX"), Flag("XX"), Flag("GT"), Flag("LT"),
    incompatible=[(("NX", "XX"), errors.EXPIRE_NX_AND_OTHERS),
                  (("NX", "GT"), errors.EXPIRE_NX_AND_OTHERS),
                  (("NX", "LT"), errors.EXPIRE_NX_AND_OTHERS),
                  (("GT", "LT"), errors.EXPIRE_GT_AND_LT)],
    unknown=errors.expire_unsupported_option)


def _expire_generic(conn, args, base_ms: int, unit_ms: int, name: str) -> int:
    # As Redis's expireGenericCommand: the options first, then the time.
    if len(args) > 3:
        options = EXPIRE_OPTIONS.parse(args, 3)
        nx, xx, gt, lt = "nx" in options, "xx" in options, "gt" in options, "lt" in options
    else:
        nx = xx = gt = lt = False
    raw = parse_int(args[2])
    if raw is None:
        raise CommandError(errors.NOT_INTEGER)
    # LLONG_MIN / 1000 in C truncates toward zero.
    if unit_ms == 1000 and (raw > LLONG_MAX // 1000 or raw < -(-LLONG_MIN // 1000)):
        raise CommandError(errors.invalid_expire(name))
    when = raw * unit_ms
    if when > LLONG_MAX - base_ms:
        raise CommandError(errors.invalid_expire(name))
    when += base_ms
    db = conn.db
    key = args[1]
    if db.get(key) is None:
        return 0
    current = db.expires.get(key)
    if nx and current is not None:
        return 0
    if xx and current is None:
        return 0
    if gt and (current is None or when <= current):
        return 0
    if lt and current is not None and when >= current:
        return 0
    if when <= now_ms():
        db.delete(key)
        return 1
    db.set_expire(key, when)
    return 1



@command("expire")
def expire(conn, args):
    return _expire_generic(conn, args, now_ms(), 1000, "expire")


@command("pexpire")
def pexpire(conn, args):
    return _expire_generic(conn, args, now_ms(), 1, "pexpire")


@command("expireat")
def expireat(conn, args):
    return _expire_generic(conn, args, 0, 1000, "expireat")


@command("pexpireat")
def pexpireat(conn, args):
    return _expire_generic(conn, args, 0, 1, "pexpireat")


def _ttl(conn, key: bytes, in_ms: bool, absolute: bool) -> int:
    db = conn.db
    if db.read(key) is None:
        return -2
    when = db.expires.get(key)
    if when is None:
        return -1
    value = when if absolute else max(0, when - now_ms())
    return value if in_ms else (value + 500) // 1000


@command("ttl")
def ttl(conn, args):
    return _ttl(conn, args[1], False, False)


@command("pttl")
def pttl(conn, args):
    return _ttl(conn, args[1], True, False)


@command("expiretime")
def expiretime(conn, args):
    return _ttl(conn, args[1], False, True)


@command("pexpiretime")
def pexpiretime(conn, args):
    return _ttl(conn, args[1], True, True)


@command("persist")
def persist(conn, args):
    db = conn.db
    if db.get(args[1]) is None:
        return 0
    return 1 if db.persist(args[1]) else 0
