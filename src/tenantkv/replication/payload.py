"""What a full synchronization sends: the user store and the whole dataset.

The replica must authenticate the same users, with the same passwords and
the same tenant keys, as the primary (a tenant's data is filed under its
key, "user:<id>" or "tenant:<hex>", which the user rows name). So the
payload holds both, written by the primary's fork child into one file:

    TKVSYNC1\\n
    <decimal length of the users part>\\n
    <users part: JSON, a list of user rows (tenancy/store.py's columns)>
    <a .kdb snapshot of every tenant (persistence/kdb/format.py)>

and sent as Redis sends its RDB: `$<length>\\r\\n` then the bytes. The
rows hold the argon2id hashes, never a password; the link carries them
(use TLS between hosts: tls-replication).
"""

import json

MAGIC = b"TKVSYNC1\n"
MAX_USERS_PART = 1 << 30


class PayloadError(Exception):
    pass


def write(fileobj, rows: list, dump_dataset) -> None:
    """Write the payload: `rows` (dicts) then `dump_dataset(fileobj)`."""
    users = json.dumps(rows, separators=(",", ":")).encode("utf-8")
    fileobj.write(MAGIC)
    fileobj.write(b"%d\n" % len(users))
    fileobj.write(users)
    dump_dataset(fileobj)


def split(data) -> tuple:
    """(rows, the .kdb part as a memoryview) of a payload; PayloadError if
    it is not one."""
    view = memoryview(data)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        raise PayloadError("not a tenantkv sync payload (bad header)")
    at = len(MAGIC)
    newline = bytes(view[at:at + 24]).find(b"\n")
    if newline <= 0:
        raise PayloadError("bad users length")
    length = int(bytes(view[at:at + newline]))
    if not 0 <= length <= MAX_USERS_PART or at + newline + 1 + length > len(view):
        raise PayloadError("bad users length")
    at += newline + 1
    try:
        rows = json.loads(bytes(view[at:at + length]))
    except ValueError as exc:
        raise PayloadError("bad users part: %s" % exc) from None
    if type(rows) is not list or any(type(row) is not dict for row in rows):
        raise PayloadError("bad users part: not a list of rows")
    return rows, view[at + length:]
