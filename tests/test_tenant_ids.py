"""Tenant identity is unique forever (issue 13, point 4): a users.db restored
from an older backup never hands a newer user's data to a new user; data no
user owns is kept, unreachable, and reported (log and root's INFO); users made
before schema 3 keep their "user:<id>" tenant and its data."""

import os
import re
import shutil
import subprocess
import sys
import sqlite3

import pytest
import redis

from conftest import ServerProcess, add_user, login, schema2_users_db
from tenantkv.persistence.kdb import format as kdb

ROOT_PW = "root-pw-ids"
OFF = {"TENANTKV_AUTH__DEFAULT_USER": "off"}


def start(data_dir, mode: str, **users) -> ServerProcess:
    flags = ("--appendonly", "yes") if mode == "aof" else ()
    return ServerProcess(data_dir, *flags, env=OFF, passwords={"root": ROOT_PW, **users})


def make_user(root: redis.Redis, name: str, password: str) -> None:
    assert root.execute_command("ACL", "SETUSER", name, "on", ">" + password, "+@all") == b"OK"


def persistence_info(client: redis.Redis) -> dict:
    return client.info("persistence")


def log_text(proc: ServerProcess) -> str:
    with open(proc.log_path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def tenant_of(data_dir, name: str) -> str:
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "users.db"), uri=True)
    try:
        return con.execute("SELECT tenant FROM users WHERE username = ?", (name,)).fetchone()[0]
    finally:
        con.close()


def orphans(root: redis.Redis) -> dict:
    """KDB ORPHANS as a dict (a map in RESP3, pairs in a flat array in RESP2)."""
    reply = root.execute_command("KDB", "ORPHANS")
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


def restore(data_dir, backup: str) -> None:
    """README's procedure: remove users.db and its -wal/-shm, copy the backup in."""
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(data_dir, "users.db" + suffix)
        if os.path.exists(path):
            os.unlink(path)
    shutil.copyfile(backup, os.path.join(data_dir, "users.db"))
    os.chmod(os.path.join(data_dir, "users.db"), 0o600)


def assert_orphaned(proc: ServerProcess, root: redis.Redis, tenant: str, keys: int) -> None:
    info = persistence_info(root)
    assert (info["orphan_tenants"], info["orphan_keys"]) == (1, keys)
    line = [l for l in log_text(proc).splitlines() if tenant in l]   # " # ": a warning (Redis style)
    assert len(line) == 1 and " # " in line[0] and "holds %d keys" % keys in line[0], line


@pytest.mark.parametrize("mode", ["snapshot", "aof"])
def test_restored_users_db_never_hands_data_to_a_new_user(tmp_path, mode):
    add_user(tmp_path, "root", ROOT_PW, "--root")
    with start(tmp_path, mode) as proc:
        root = login(proc, "root")
        make_user(root, "alice", "alice-pw")
        login(proc, "alice", "alice-pw").set("mine", "alice's")
        assert root.execute_command("ACL", "SAVE") == b"OK"
        backups = sorted(os.listdir(tmp_path / "backups"))
        make_user(root, "bob", "bob-pw")
        bob = login(proc, "bob", "bob-pw")
        bob.set("medical", "bob's diagnosis")
        bob.mset({"b%d" % i: i for i in range(9)})
        bob.select(3)
        bob.set("elsewhere", "x")
        if mode == "snapshot":
            assert root.save()
    bob_tenant = tenant_of(tmp_path, "bob")
    assert re.fullmatch(r"tenant:[0-9a-f]{32}", bob_tenant)
    restore(tmp_path, str(tmp_path / "backups" / backups[-1]))

    with start(tmp_path, mode) as proc:
        root = login(proc, "root")
        assert_orphaned(proc, root, bob_tenant, 11)
        with pytest.raises(redis.AuthenticationError):
            login(proc, "bob", "bob-pw")
        make_user(root, "carol", "carol-pw")
        for db in (0, 3):
            carol = login(proc, "carol", "carol-pw", db=db)
            assert carol.dbsize() == 0 and carol.keys("*") == []
            assert carol.get("medical") is None and carol.get("elsewhere") is None
            assert "orphan_tenants" not in persistence_info(carol)   # root's business
        assert login(proc, "alice", "alice-pw").get("mine") == b"alice's"
        # bob again, by name: a new user, not the old tenant
        make_user(root, "bob", "bob-pw2")
        assert login(proc, "bob", "bob-pw2").dbsize() == 0
        assert persistence_info(root)["orphan_keys"] == 11

    # Kept across a further restart (and the saves it makes), still nobody's.
    with start(tmp_path, mode) as proc:
        root = login(proc, "root")
        assert_orphaned(proc, root, bob_tenant, 11)
        assert login(proc, "carol", "carol-pw").dbsize() == 0
        assert login(proc, "bob", "bob-pw2").get("medical") is None
        assert orphans(root) == {bob_tenant.encode(): 11}


def _schema2_users_db(path: str) -> None:
    """users.db as the code before schema 3 wrote it: ids 1 (root), 2 (alice),
    3 (gone, deleted), 4 (team member); tenants "user:<id>"."""
    schema2_users_db(path, [(1, "root", ROOT_PW, True, None), (2, "alice", "alice-pw", False, None),
                            (3, "gone", "gone-pw", False, None), (4, "member", "member-pw", False, "team")])
    con = sqlite3.connect(path)
    con.execute("DELETE FROM users WHERE id = 3")
    con.commit()
    con.close()


def test_users_from_before_schema3_keep_their_tenant_and_data(tmp_path):
    _schema2_users_db(str(tmp_path / "users.db"))
    empty = [({}, {}) for _ in range(15)]
    kdb.write_snapshot({"user:2": [({b"k": b"alice-v"}, {})] + empty,
                        "team": [({b"t": b"team-v"}, {})] + empty}, str(tmp_path / "dump.kdb"))
    with start(tmp_path, "snapshot", alice="alice-pw", member="member-pw") as proc:
        root = login(proc, "root")
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (0, 0)
        assert "no user owns" not in log_text(proc)
        alice = login(proc, "alice")
        assert alice.get("k") == b"alice-v"
        assert login(proc, "member").get("t") == b"team-v"
        # A new user never lands on a "user:<id>" tenant, not even gone's id 3.
        make_user(root, "dave", "dave-pw")
        dave = login(proc, "dave", "dave-pw")
        assert dave.dbsize() == 0
        dave.set("d", "dave-v")
        assert alice.execute_command("ACL", "WHOAMI") == b"alice"
    assert tenant_of(tmp_path, "alice") == "user:2"
    assert re.fullmatch(r"tenant:[0-9a-f]{32}", tenant_of(tmp_path, "dave"))

    with start(tmp_path, "snapshot", alice="alice-pw") as proc:
        root = login(proc, "root")
        assert login(proc, "alice").get("k") == b"alice-v"
        assert login(proc, "dave", "dave-pw").get("d") == b"dave-v"
        # ACL DELUSER drops the tenant the user really had, old key or new.
        assert root.execute_command("ACL", "DELUSER", "dave", "alice") == 2
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (0, 0)
        assert root.save()
    with start(tmp_path, "snapshot") as proc:
        root = login(proc, "root")
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (0, 0)
        assert "no user owns" not in log_text(proc)
        assert login(proc, "member", "member-pw").get("t") == b"team-v"


def test_kdb_load_reports_orphans_and_root_exports_and_drops_them(tmp_path):
    add_user(tmp_path, "root", ROOT_PW, "--root")
    empty = [({}, {}) for _ in range(15)]
    kdb.write_snapshot({"user:77": [({b"a": b"1", b"b": b"2"}, {})] + empty,
                        "ghost": [({b"g": b"3"}, {})] + empty}, str(tmp_path / "other.kdb"))
    with start(tmp_path, "aof") as proc:
        root = login(proc, "root")
        make_user(root, "eve", "eve-pw")
        eve = login(proc, "eve", "eve-pw")
        assert persistence_info(root)["orphan_tenants"] == 0
        assert root.execute_command("KDB", "LOAD", "other.kdb") == 3
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (2, 3)
        log = log_text(proc)
        assert "Tenant 'user:77' holds 2 keys" in log and "Tenant 'ghost' holds 1 keys" in log
        for args in (("ORPHANS",), ("EXPORT-ORPHAN", "user:77"), ("DROP-ORPHAN", "user:77")):
            with pytest.raises(redis.exceptions.NoPermissionError, match="'kdb\\|%s'" % args[0].lower()):
                eve.execute_command("KDB", *args)
        assert orphans(root) == {b"ghost": 1, b"user:77": 2}
        for sub in ("EXPORT-ORPHAN", "DROP-ORPHAN"):
            with pytest.raises(redis.ResponseError, match="^no such orphaned tenant"):
                root.execute_command("KDB", sub, "user:1")
        # Root hands user:77's data to the right user: export, then that user imports.
        payload = root.execute_command("KDB", "EXPORT-ORPHAN", "user:77")
        assert eve.execute_command("KDB", "IMPORT", payload) == 2
        assert eve.mget("a", "b") == [b"1", b"2"]
        # Binding a user to the namespace adopts it: no longer an orphan.
        assert root.execute_command("ACL", "SETUSER", "eve", "namespace:ghost") == b"OK"
        assert orphans(root) == {b"user:77": 2}
        with pytest.raises(redis.ResponseError, match="^no such orphaned tenant"):
            root.execute_command("KDB", "DROP-ORPHAN", "ghost")
        assert root.execute_command("KDB", "DROP-ORPHAN", "user:77") == 2
        assert orphans(root) == {}
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (0, 0)
    with start(tmp_path, "aof") as proc:   # the drop went through the log
        root = login(proc, "root")
        info = persistence_info(root)
        assert (info["orphan_tenants"], info["orphan_keys"]) == (0, 0)
        assert "no user owns" not in log_text(proc)
        assert login(proc, "eve", "eve-pw").get("g") == b"3"


def test_acl_load_after_an_offline_delete_reports_the_orphan(tmp_path):
    """`tenantkv user del` while the server runs, then ACL LOAD: the user's data
    is an orphan at once in root's INFO (not only after a restart)."""
    data_dir = tmp_path
    add_user(data_dir, "root", ROOT_PW, "--root")
    with start(data_dir, "snapshot") as proc:
        root = login(proc, "root")
        make_user(root, "dave", "dave-pw")
        dave = login(proc, "dave", "dave-pw")
        dave.set("k1", "v1")
        dave.set("k2", "v2")
        dave_tenant = tenant_of(data_dir, "dave")
        assert persistence_info(root)["orphan_tenants"] == 0
        subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", str(data_dir),
                        "user", "del", "dave"], check=True, capture_output=True)
        assert root.execute_command("ACL", "LOAD") == b"OK"
        assert_orphaned(proc, root, dave_tenant, 2)
        assert orphans(root) == {dave_tenant.encode(): 2}
