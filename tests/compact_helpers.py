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
