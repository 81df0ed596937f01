"""Helpers shared by the compact-collection tests (test_hash_compact.py,
test_set_intset.py, test_set_listpack.py, test_zset_compact.py,
test_list_compact.py, test_load_limits.py): a random command sent to
tenantkv and to the real redis-server compared reply by reply, and values
written to a snapshot or the log that must load back the same (DEBUG
DIGEST). Test modules import them with `from compact_helpers import ...`."""

import contextlib
import time
from typing import NamedTuple

import pytest
import redis

from conftest import ServerProcess


def raw_client(port: int) -> redis.Redis:
    """A client that shows replies as they come (a list stays a list: order)."""
    client = redis.Redis(port=port)
    client.response_callbacks.clear()
    return client


def call(client: redis.Redis, *args):
    """The reply to `args`, or ("error", its text): an error is a reply to
    compare like any other, not the end of the test."""
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return ("error", str(exc))


def flushed_pair(ours, reference) -> tuple:
    """Raw clients (raw_client) of tenantkv and of the reference
    redis-server, both emptied: the two sides of a comparison."""
    pair = raw_client(ours.port), raw_client(reference.port)
    for client in pair:
        client.flushall()
    return pair


def own_server_fixture(name: str):
    """A module-scoped fixture: a server of the module's own, without
    snapshots, for tests that CONFIG SET the encoding limits (the shared
    `server` must keep the defaults). In a test module:
    `ours = own_server_fixture("intset")`."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        with ServerProcess(tmp_path_factory.mktemp(name), "--save", "") as proc:
            yield proc

    return fixture


def encodings(client: redis.Redis, keys) -> list:
    return [client.object("encoding", key) for key in keys]


# How a restart finds the data: a snapshot (SAVE); the log rewritten with a
# snapshot as its base or as commands (BGREWRITEAOF); the log as written
# command by command.
RESTART_MODES = ["kdb", "aof-rewrite-kdb", "aof-rewrite-aof", "aof-log"]


def restart_flags(mode: str) -> list:
    if mode == "kdb":
        return ["--save", ""]
    return ["--appendonly", "yes", "--save", "",
            "--aof-use-rdb-preamble", "no" if mode == "aof-rewrite-aof" else "yes"]


def wait_for_rewrite(client: redis.Redis, timeout: float = 30.0) -> None:
    """Wait until no log rewrite runs or is scheduled (after BGREWRITEAOF)."""
    deadline = time.time() + timeout
    time.sleep(0.1)
    while time.time() < deadline:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.05)
    raise AssertionError("the log rewrite did not finish in %s s" % timeout)


class Restarted(NamedTuple):
    client: redis.Redis   # on the restarted server
    digest: bytes         # DEBUG DIGEST before the restart (the same after it)
    before: object        # what `record` returned before the restart


@contextlib.contextmanager
def restarted(tmp_path, mode: str, fill, record=lambda client: None, after_persist=None):
    """Start a server with `mode`'s flags, fill(client), persist it as `mode`
    says (SAVE, or BGREWRITEAOF and its end; "aof-log": nothing, every write
    is in the log), then after_persist(client) if given (writes the log
    carries past the rewrite), record(client); stop it, start it again on the
    same data: DEBUG DIGEST must be the same. Yields a Restarted while the
    second server runs."""
    flags = restart_flags(mode)
    with ServerProcess(tmp_path, *flags) as proc:
        client = proc.client(single_connection_client=True)
        fill(client)
        if mode == "kdb":
            assert client.save()
        elif mode.startswith("aof-rewrite"):
            client.bgrewriteaof()
            wait_for_rewrite(client)
        if after_persist is not None:
            after_persist(client)
        digest = client.execute_command("DEBUG", "DIGEST")
        before = record(client)
        client.close()
    with ServerProcess(tmp_path, *flags) as proc:
        client = proc.client()
        assert client.execute_command("DEBUG", "DIGEST") == digest
        yield Restarted(client, digest, before)


def assert_reload_keeps(client: redis.Redis, digest: bytes) -> None:
    """DEBUG RELOAD (save and load again) keeps the data set as it was."""
    assert client.execute_command("DEBUG", "RELOAD") == b"OK"
    assert client.execute_command("DEBUG", "DIGEST") == digest


# -- sets: what test_set_intset.py and test_set_listpack.py send alike --------
# Each helper makes the same random draws, in the same order, as the code it
# replaced: a seeded test still sends the same commands.

def same_members(got, want, ordered: bool = False) -> None:
    """A reply holding members compared with Redis's: as it is when
    `ordered` (an intset answers in numeric order) or when it is no list (an
    error, a count, nil); else in any order (a hash order is Redis's own)."""
    if ordered or not isinstance(want, list):
        assert got == want
    else:
        assert sorted(got) == sorted(want)


def set_args(rng, op: str, key, keys, member, members):
    """The arguments of the set commands whose replies are compared as they
    are, for `op`; None for another op. member(rng) / members(rng): the
    module's own random member(s)."""
    if op == "srem":
        return ("SREM", key, *members(rng))
    if op == "sismember":
        return ("SISMEMBER", key, member(rng))
    if op == "smismember":
        return ("SMISMEMBER", key, *members(rng))
    if op == "scard":
        return ("SCARD", key)
    if op == "smove":
        return ("SMOVE", key, rng.choice(keys), member(rng))
    if op == "sintercard":
        return ("SINTERCARD", 2, key, rng.choice(keys), "LIMIT", rng.randint(0, 5))
    if op == "algebra_store":
        name = rng.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
        return (name, rng.choice(keys), *rng.sample(keys, rng.randint(1, 3)))
    return None


def spop_both(rng, a, b, key, counts):
    """SPOP `key` on tenantkv (a) with a count drawn from `counts` ("most":
    all but one or two, where Redis rebuilds the rest), checked: as many
    popped, each once, from the members. Then the reference (b) loses the very
    members tenantkv lost (SREM: Redis's own log records SPOP so), rebuilt
    as Redis's SPOP rebuilds what is left (case 3 of spopWithCountCommand:
    done through SUNIONSTORE, which does it too, keeping the TTL).
    Returns (count, reply, members before), or None when `key` is no set
    (then the replies were compared: nil / [] / WRONGTYPE)."""
    count = rng.choice(counts)
    if count == "most":
        count = max(0, int(b.scard(key)) - rng.randint(1, 2))
    extra = [] if count is None else [count]
    if b.type(key) != b"set":
        assert call(a, "SPOP", key, *extra) == call(b, "SPOP", key, *extra)
        return None
    before = set(b.smembers(key))
    got = call(a, "SPOP", key, *extra)
    popped = [got] if count is None else got
    assert len(popped) == len(set(popped)) == (1 if count is None else min(count, len(before)))
    assert set(popped) <= before
    if popped:
        b.srem(key, *popped)
    left = len(before) - len(popped)
    if count and left and left * 5 <= count and b.object("encoding", key) == b"hashtable":
        ttl = b.pttl(key)
        b.sunionstore(key, key)
        if ttl > 0:
            b.pexpire(key, ttl)
    return count, got, before


def srandmember_both(rng, a, b, key, counts):
    """SRANDMEMBER `key` with a count drawn from `counts` on both servers,
    checked: an error, nil or [] as Redis's; else members of the set, as
    many as asked (distinct ones for a count >= 0). Returns (count, reply,
    Redis's reply, members) for a reply with members, else None."""
    count = rng.choice(counts)
    extra = [] if count is None else [count]
    got, want = call(a, "SRANDMEMBER", key, *extra), call(b, "SRANDMEMBER", key, *extra)
    if isinstance(want, tuple) or want is None or want == []:
        assert got == want
        return None
    members = set(b.smembers(key))
    if count is None:
        assert got in members
        return None
    assert set(got) <= members
    if count < 0:
        assert len(got) == -count
    else:
        assert len(got) == len(set(got)) == min(count, len(members))
    return count, got, want, members
