"""DEBUG DIGEST and DEBUG DIGEST-VALUE: Redis's content hash (debug.c), bit for bit.

Redis builds the digest from SHA-1s combined two ways: `xor` (order does not
matter: set members, hash fields, keys of a database) and `mix` (xor, then
SHA-1 of the result: order matters, as for list elements). The same data gives
the same digest here and in redis-server 7.0, so a reload can be checked
against itself and a compat session can compare the two servers.
"""

from hashlib import sha1

from tenantkv.keyspace.intset import IntSet
from tenantkv.keyspace.hashpack import PackedHash
from tenantkv.keyspace.packedset import PackedSet
from tenantkv.keyspace.quicklist import QuickList
from tenantkv.keyspace.stream import MAX_SEQ, Stream
from tenantkv.keyspace.zset import PackedZSet, ZSet
from tenantkv.util.steps import run_whole

ZERO = bytes(20)
_TYPES = {bytes: 0, QuickList: 1, set: 2, IntSet: 2, PackedSet: 2, ZSet: 3, PackedZSet: 3,
          dict: 4, PackedHash: 4, Stream: 6}   # OBJ_STRING ... OBJ_HASH, OBJ_STREAM


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(20, "big")


def _xor_digest(digest: bytes, data: bytes) -> bytes:
    return _xor(digest, sha1(data).digest())


def _mix_digest(digest: bytes, data: bytes) -> bytes:
    return sha1(_xor(digest, sha1(data).digest())).digest()


def _score(score: float) -> bytes:
    # Redis 7.0 formats with "%.17g" (C's printf; Python's % is the same)
    return b"%.17g" % score


def value_digest(value, has_expire: bool, start: bytes = ZERO) -> bytes:
    """xorObjectDigest: the digest of one value, its steps applied to `start`
    (zeros for DEBUG DIGEST-VALUE; the key's digest inside DEBUG DIGEST)."""
    return run_whole(value_steps(value, has_expire, start))


# Elements of one value hashed between two yields of value_steps.
STEP = 1024


def value_steps(value, has_expire: bool, start: bytes = ZERO):
    """value_digest as a generator (dispatch/slices.py): yields every STEP
    elements, returns the digest. A big set or hash takes a second."""
    digest = _mix_digest(start, _TYPES[type(value)].to_bytes(4, "big"))
    kind = type(value)
    if kind is bytes:
        digest = _mix_digest(digest, value)
    elif kind is QuickList:
        for n, element in enumerate(value, 1):
            digest = _mix_digest(digest, element)
            if not n % STEP:
                yield
    elif kind is set or kind is IntSet or kind is PackedSet:   # an intset's members as decimal text, as Redis's
        acc = int.from_bytes(digest, "big")
        for n, member in enumerate(value, 1):
            acc ^= int.from_bytes(sha1(member).digest(), "big")
            if not n % STEP:
                yield
        digest = acc.to_bytes(20, "big")
    elif kind is ZSet or kind is PackedZSet:   # either form: the same digest
        acc = int.from_bytes(digest, "big")
        for n, (member, score) in enumerate(value.items(), 1):
            element = _mix_digest(_mix_digest(ZERO, member), _score(score))
            acc ^= int.from_bytes(sha1(element).digest(), "big")   # xorDigest hashes again
            if not n % STEP:
                yield
        digest = acc.to_bytes(20, "big")
    elif kind is dict or kind is PackedHash:   # either form: the same digest
        acc = int.from_bytes(digest, "big")
        for n, (field, item) in enumerate(value.items(), 1):
            element = _mix_digest(_mix_digest(ZERO, field), item)
            acc ^= int.from_bytes(sha1(element).digest(), "big")
            if not n % STEP:
                yield
        digest = acc.to_bytes(20, "big")
    elif kind is Stream:   # Redis: each entry's "ms.seq", then its fields and values, in order
        for n, (sid, fields) in enumerate(value.entries(), 1):
            digest = _mix_digest(digest, b"%d.%d" % (sid >> 64, sid & MAX_SEQ))
            for item in fields:
                digest = _mix_digest(digest, item)
            if not n % STEP:
                yield
    if has_expire:
        digest = _xor_digest(digest, b"!!expire!!")
    return digest


def key_digest(db, key: bytes) -> str:
    """DEBUG DIGEST-VALUE for one key: hex, 40 zeros for a missing key.
    As Redis, a logically expired key not yet deleted still counts."""
    return run_whole(key_steps(db, key))


def key_steps(db, key: bytes):
    """key_digest as a generator (dispatch/slices.py)."""
    value = db.data.get(key)
    if value is None:
        return "0" * 40
    return (yield from value_steps(value, key in db.expires)).hex()


_STRING_TYPE = int.from_bytes(sha1(bytes(4)).digest(), "big")   # OBJ_STRING, as 4 bytes
_EXPIRE = int.from_bytes(sha1(b"!!expire!!").digest(), "big")


def dataset_digest(dbs) -> str:
    """computeDatasetDigest over `dbs` (a tenant's databases), as hex."""
    return run_whole(dataset_steps(dbs))


def dataset_steps(dbs):
    """dataset_digest as a generator (dispatch/slices.py): yields every
    STEP keys and inside big values; returns the hex digest. Walks a
    snapshot of each database's names; a key the expiry cycle removes
    between two yields is left out, as if it had expired before."""
    final = ZERO
    for db in dbs:   # a tenant's Databases yields only those made: db.index, not the position
        if not db.data:
            continue
        final = _mix_digest(final, db.index.to_bytes(4, "big"))
        acc = int.from_bytes(final, "big")
        expires = db.expires
        from_bytes = int.from_bytes
        data = db.data
        for n, key in enumerate(list(data), 1):   # names only: 1M (key, value) tuples take ~0.1 s
            value = data.get(key)
            if value is None:
                continue   # expired (or evicted) between two slices: gone before the command
            if type(value) is bytes:   # most keys: the steps below written out
                # mix(ZERO, key) is sha1(sha1(key)); then mix the type, the value
                digest = sha1(sha1(key).digest()).digest()
                digest = sha1((from_bytes(digest, "big") ^ _STRING_TYPE).to_bytes(20, "big")).digest()
                mixed = from_bytes(digest, "big") ^ from_bytes(sha1(value).digest(), "big")
                digest = sha1(mixed.to_bytes(20, "big")).digest()
                if key in expires:
                    digest = (from_bytes(digest, "big") ^ _EXPIRE).to_bytes(20, "big")
            else:
                # the key-value digest: mix(key), then the value's rules on top
                digest = yield from value_steps(value, key in expires, _mix_digest(ZERO, key))
            acc ^= from_bytes(sha1(digest).digest(), "big")
            if not n % STEP:
                yield
        final = acc.to_bytes(20, "big")
    return final.hex()
