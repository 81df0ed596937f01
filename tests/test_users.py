"""The user store (SQLite file on disk), argon2id hashing, root bootstrap and the
offline admin CLI (`tenantkv user ...`, run as a subprocess)."""

import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import argon2
import pytest

from conftest import schema2_users_db

from tenantkv import config as config_module
from tenantkv.tenancy import (DUMMY_HASH, SCHEMA_VERSION, BootstrapError, NoSuchUser, User, UserExists,
                              UserStore, ensure_root, hash_password, hashing, needs_rehash,
                              verify_password)

SECRET = b"Zq7-distinctive-PASSWORD-xy81"


@pytest.fixture
def store(tmp_path):
    s = UserStore(str(tmp_path / "users.db"))
    yield s
    s.close()


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_schema_migrations_are_idempotent(tmp_path):
    path = str(tmp_path / "users.db")
    UserStore(path).close()
    con = sqlite3.connect(path)
    first = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()
    for _ in range(2):
        again = UserStore(path)
        assert again.schema_version() == SCHEMA_VERSION
        again.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall() == first
    columns = [row[1] for row in con.execute("PRAGMA table_info(users)")]
    assert columns == ["id", "username", "password", "created_at", "updated_at", "root_user",
                       "enabled", "namespace", "rules", "password_set", "tenant", "quota",
                       "channels"]
    con.close()


def test_schema3_keeps_old_tenant_keys_and_never_reuses_them(tmp_path):
    path = str(tmp_path / "users.db")
    schema2_users_db(path, [(1, "old1", "pw", False, None), (2, "old2", "pw", False, None)])
    with UserStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        old1, old2 = store.get("old1"), store.get("old2")
        assert (old1.tenant_key, old2.tenant_key) == ("user:%d" % old1.id, "user:%d" % old2.id)
        store.delete("old2")
        # Simulate a restored users.db whose AUTOINCREMENT hands out old2's id again.
        with store._lock:
            store._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'users'", (old1.id,))
        newer = store.add("newer", b"pw")
        assert newer.id == old2.id and newer.tenant_key != old2.tenant_key
        assert re.fullmatch(r"tenant:[0-9a-f]{32}", newer.tenant_key)
        made = store.apply("made", {}, create=True)[0]
        assert re.fullmatch(r"tenant:[0-9a-f]{32}", made.tenant_key) and made.tenant_key != newer.tenant_key
        assert store.owned_tenants() == {old1.tenant_key, newer.tenant_key, made.tenant_key}
        store.set_namespace("made", "team")
        assert store.owned_tenants() == {old1.tenant_key, newer.tenant_key, made.tenant_key, "team"}
        with store._lock, pytest.raises(sqlite3.IntegrityError):   # unique forever, by the index too
            store._conn.execute("UPDATE users SET tenant = ? WHERE username = 'made'", (old1.tenant_key,))


def test_schema_newer_than_code_is_refused(tmp_path):
    path = str(tmp_path / "users.db")
    UserStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 999")
    con.commit()
    con.close()
    with pytest.raises(Exception, match="schema version 999"):
        UserStore(path)


def test_wal_mode_pragmas_and_file_mode(store, tmp_path):
    with store._lock:
        con = store._conn
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2      # FULL
        assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.add("alice", b"pw-alice")
    assert mode(tmp_path / "users.db") == 0o600
    assert mode(tmp_path / "users.db-wal") == 0o600


def test_missing_parent_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        UserStore(str(tmp_path / "nope" / "users.db"))


def test_add_get_list_delete(store):
    assert store.count() == 0 and store.list() == []
    bob = store.add("bob", b"pw-bob")
    alice = store.add("alice", b"pw-alice", root=True)
    assert isinstance(bob, User) and bob.id != alice.id
    assert (alice.username, alice.root, alice.enabled, alice.namespace) == ("alice", True, True, None)
    assert alice.created_at == alice.updated_at and abs(alice.created_at - time.time()) < 60
    assert store.get("alice") == alice and store.get(b"alice") == alice
    assert store.get_by_id(bob.id) == bob
    assert store.get("carol") is None and store.get_by_id(12345) is None
    assert [u.username for u in store.list()] == ["alice", "bob"]
    assert store.count() == 2
    with pytest.raises(UserExists):
        store.add("alice", b"other")
    assert verify_password(store.get("alice").password, b"pw-alice")   # unchanged
    assert store.delete("bob") == bob
    assert store.delete("bob") is None
    assert store.get("bob") is None and store.count() == 1
    # ids are never reused, so a new user cannot inherit a deleted user's tenant
    assert store.add("bob", b"pw-bob2").id > bob.id
    assert "pw-" not in repr(alice) and alice.password not in repr(alice)


def test_password_root_enabled_namespace(store):
    user = store.add("carol", b"old")
    changed = store.set_password("carol", b"new")
    assert changed.id == user.id and changed.password != user.password
    assert verify_password(changed.password, b"new") and not verify_password(changed.password, b"old")
    assert store.set_root("carol", True).root and not store.set_root("carol", False).root
    assert not store.set_enabled("carol", False).enabled and store.get("carol").enabled is False
    assert store.set_enabled("carol", True).enabled
    # A new user's tenant is random 128 bits, never derived from its id.
    assert user.tenant_key == user.own_tenant and re.fullmatch(r"tenant:[0-9a-f]{32}", user.tenant_key)
    assert store.set_namespace("carol", "team").tenant_key == "team"
    assert store.get("carol").namespace == "team" and store.get("carol").own_tenant == user.own_tenant
    assert store.set_namespace("carol", None).tenant_key == user.own_tenant
    for call in (lambda: store.set_password("nobody", b"x"), lambda: store.set_root("nobody", True),
                 lambda: store.set_enabled("nobody", True), lambda: store.set_namespace("nobody", "t")):
        with pytest.raises(NoSuchUser):
            call()
    with pytest.raises(ValueError):
        store.set_namespace("carol", "user:1")          # would alias another user's tenant
    with pytest.raises(TypeError):
        store.add("dave", "a str password")             # passwords are bytes


def test_set_hash_rehash_and_compare(store):
    user = store.add("erin", b"pw")
    fresh = hash_password(b"pw")
    assert store.set_hash("erin", fresh, expected=user.password)
    assert store.get("erin").password == fresh
    assert not store.set_hash("erin", hash_password(b"pw"), expected=user.password)   # raced
    assert store.get("erin").password == fresh
    with pytest.raises(ValueError):
        store.set_hash("erin", "plain text password")


@pytest.mark.parametrize("name", ["", "a b", "tab\tname", "nul\x00", "x" * 129, "caf\u00e9", "new\nline"])
def test_bad_usernames_refused(store, name):
    with pytest.raises(ValueError, match="username"):
        store.add(name, b"pw")
    assert store.count() == 0


def test_good_usernames(store):
    for name in ["a", "x" * 128, "app:reader", "Some.User-1_@!"]:
        assert store.get(store.add(name, b"pw").username).username == name


def test_no_plain_password_in_database_files(tmp_path):
    path = str(tmp_path / "users.db")
    store = UserStore(path)
    store.add("mallory", SECRET)
    store.set_password("mallory", SECRET + b"2")
    stored = store.get("mallory").password
    # read while the WAL file is live, then after the checkpoint on close
    blobs = [open(p, "rb").read() for p in (path, path + "-wal") if os.path.exists(p)]
    assert os.path.exists(path + "-wal")
    store.close()
    blobs.append(open(path, "rb").read())
    for blob in blobs:
        assert SECRET not in blob and SECRET.decode() not in blob.decode("latin-1")
    assert stored.startswith("$argon2id$")
    params = argon2.extract_parameters(stored)
    assert params.type == argon2.Type.ID
    assert params.memory_cost >= 19456 and params.time_cost >= 2 and params.parallelism >= 1
    assert params.salt_len >= 16


def test_verify_and_needs_rehash():
    stored = hash_password(b"correct horse")
    other = hash_password(b"correct horse")
    assert stored != other                                  # salted
    assert verify_password(stored, b"correct horse")
    assert not verify_password(stored, b"correct horsE")
    assert not verify_password(stored, b"")
    for garbage in ("", "not a hash", "$argon2id$v=19$m=1,t=1,p=1$bad", "$2b$12$abcdefghijk"):
        assert verify_password(garbage, b"x") is False
        assert needs_rehash(garbage)
    assert not needs_rehash(stored)
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(b"pw")
    assert verify_password(weaker, b"pw") and needs_rehash(weaker)
    old_variant = argon2.PasswordHasher(type=argon2.Type.I, time_cost=hashing.TIME_COST,
                                        memory_cost=hashing.MEMORY_COST).hash(b"pw")
    assert needs_rehash(old_variant)


def test_dummy_hash_costs_as_much_as_a_real_one():
    real = hash_password(b"real password")
    assert DUMMY_HASH == hashing.DUMMY_HASH == hashing.dummy_hash()   # made once
    assert argon2.extract_parameters(DUMMY_HASH) == argon2.extract_parameters(real)

    def best(stored) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            verify_password(stored, b"wrong")
            times.append(time.perf_counter() - start)
        return min(times)

    real_time, dummy_time = best(real), best(DUMMY_HASH)
    assert 0.4 < dummy_time / real_time < 2.5, (real_time, dummy_time)
    assert hashing.verify_dummy(b"anything") is False


def test_store_from_threads(store):
    store.add("t0", b"pw")
    errors = []

    def work(i):
        try:
            for _ in range(20):
                assert store.get("t0") is not None
                store.set_enabled("t0", i % 2 == 0)
                store.count()
        except Exception as exc:   # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_backup(store, tmp_path):
    store.add("frank", b"pw-frank", root=True)
    dest = str(tmp_path / "copy.db")
    store.backup(dest)
    store.add("grace", b"pw-grace")        # the live store goes on
    assert mode(dest) == 0o600
    assert not os.path.exists(dest + "-wal")
    copy = UserStore(dest)
    assert [u.username for u in copy.list()] == ["frank"]
    assert verify_password(copy.get("frank").password, b"pw-frank")
    copy.close()
    backups = tmp_path / "backups"
    paths = [store.backup_rotate(str(backups), keep=2) for _ in range(3)]
    assert sorted(os.listdir(backups)) == sorted(os.path.basename(p) for p in paths[1:])


def test_bootstrap_with_password(store, tmp_path):
    user, path = ensure_root(store, "admin", b"given-root-pw", str(tmp_path))
    assert path is None and not os.path.exists(tmp_path / "root.password")
    assert (user.username, user.root) == ("admin", True)
    assert verify_password(store.get("admin").password, b"given-root-pw")
    assert ensure_root(store, "admin", b"other", str(tmp_path)) == (None, None)
    assert verify_password(store.get("admin").password, b"given-root-pw")


def test_bootstrap_generates_password_file(store, tmp_path):
    user, path = ensure_root(store, "root", None, str(tmp_path))
    assert path == str(tmp_path / "root.password") and user.root and user.username == "root"
    assert mode(path) == 0o600
    password = open(path, "rb").read().strip()
    assert len(password) >= 24
    assert verify_password(store.get("root").password, password)
    before = open(path, "rb").read()
    assert ensure_root(store, "root", None, str(tmp_path)) == (None, None)   # no-op
    assert open(path, "rb").read() == before and store.count() == 1


def test_bootstrap_refuses_stale_password_file(store, tmp_path):
    (tmp_path / "root.password").write_text("stale\n")
    with pytest.raises(BootstrapError, match="root.password"):
        ensure_root(store, "root", b"", str(tmp_path))   # empty = none given
    assert store.count() == 0
    assert (tmp_path / "root.password").read_text() == "stale\n"


def test_bootstrap_skipped_when_users_exist(store, tmp_path):
    store.add("someone", b"pw")
    assert ensure_root(store, "root", None, str(tmp_path)) == (None, None)
    assert store.get("root") is None and not os.path.exists(tmp_path / "root.password")


def test_config_auth_settings(tmp_path):
    config = config_module.load(env={})
    assert config["auth.root_user"] == "root" and config["auth.root_password"] == ""
    assert config["auth.auth_timeout"] == 10 and config["auth.backup_interval"] == 3600
    assert config["auth.backup_keep"] == 7 and config["auth.default_user"] == "off"
    assert config_module.users_db_path(config) == os.path.join("./data", "users.db")
    assert config_module.backup_dir_path(config) == os.path.join("./data", "backups")
    toml = tmp_path / "c.toml"
    toml.write_text('[server.network]\nroot_user = "boss"\n[server.db]\nbackup_path = "/b"\n'
                    'backup_interval = 60\n[auth]\nusers_db = "/x/u.db"\nroot_password = "s3cret"\n')
    config = config_module.load(str(toml), env={})
    assert config["auth.root_user"] == "boss" and config["auth.backup_dir"] == "/b"
    assert config["auth.backup_interval"] == 60 and config_module.users_db_path(config) == "/x/u.db"
    assert "s3cret" not in repr(config)
    # no Redis name: CONFIG GET/SET cannot see any of the auth settings
    assert not any(s.section == "auth" for s in config_module.BY_REDIS_NAME.values())
    with pytest.raises(config_module.ConfigError):
        config_module.load(env={"TENANTKV_AUTH__ROOT_USER": "bad name"})


# -- the offline CLI -------------------------------------------------------------

def cli(tmp_path, *args, stdin: bytes = b""):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKV_")}
    return subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", str(tmp_path), *args],
                          input=stdin, capture_output=True, env=env, timeout=60)


def test_cli_round_trip(tmp_path):
    done = cli(tmp_path, "user", "add", "alice", "--password-stdin", stdin=SECRET + b"\n")
    assert done.returncode == 0, done.stderr
    db = str(tmp_path / "users.db")
    with UserStore(db) as store:
        alice = store.get("alice")
        assert verify_password(alice.password, SECRET) and not alice.root
    assert SECRET not in open(db, "rb").read()

    listing = cli(tmp_path, "user", "list")
    assert listing.returncode == 0 and b"alice" in listing.stdout and SECRET not in listing.stdout

    assert cli(tmp_path, "user", "passwd", "alice", "--password-stdin", stdin=b"second\n").returncode == 0
    assert cli(tmp_path, "user", "set-root", "alice", "on").returncode == 0
    with UserStore(db) as store:
        alice = store.get("alice")
        assert alice.root and verify_password(alice.password, b"second")
    assert cli(tmp_path, "user", "set-root", "alice", "off").returncode == 0
    with UserStore(db) as store:
        assert not store.get("alice").root

    root = cli(tmp_path, "user", "add", "boss", "--root", "--password-stdin", stdin=b"pw")
    assert root.returncode == 0
    with UserStore(db) as store:
        assert store.get("boss").root

    for args, stdin, message in [
            (("user", "add", "alice", "--password-stdin"), b"x\n", b"already exists"),
            (("user", "add", "bad name", "--password-stdin"), b"x\n", b"bad user name"),
            (("user", "add", "carol", "--password-stdin"), b"\n", b"empty password"),
            (("user", "add", "carol"), b"", b"--password-stdin"),          # no terminal to ask
            (("user", "del", "nobody"), b"", b"no such user"),
            (("user", "passwd", "nobody", "--password-stdin"), b"x\n", b"no such user"),
            (("user", "set-root", "nobody", "on"), b"", b"no such user")]:
        done = cli(tmp_path, *args, stdin=stdin)
        assert done.returncode == 1, args
        assert message in done.stderr and done.stderr.count(b"\n") == 1, done.stderr

    assert cli(tmp_path, "user", "del", "alice").returncode == 0
    listing = cli(tmp_path, "user", "list")
    assert b"alice" not in listing.stdout and b"boss" in listing.stdout


def test_cli_db_resolution_and_help(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[auth]\nusers_db = "%s"\n' % (tmp_path / "elsewhere.db"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKV_")}
    done = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--config", str(toml), "user", "add",
                           "zed", "--password-stdin"], input=b"pw\n", capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert os.path.exists(tmp_path / "elsewhere.db")
    explicit = str(tmp_path / "explicit.db")
    assert cli(tmp_path, "--db", explicit, "user", "add", "y", "--password-stdin", stdin=b"pw").returncode == 0
    with UserStore(explicit) as store:
        assert [u.username for u in store.list()] == ["y"]
    missing = cli(tmp_path / "void", "user", "list")
    assert missing.returncode == 1 and b"no user database" in missing.stderr
    helped = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "user", "--help"],
                            capture_output=True, text=True)
    assert helped.returncode == 0
    for action in ("add", "del", "list", "passwd", "set-root"):
        assert action in helped.stdout
