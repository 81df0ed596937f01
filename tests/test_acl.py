"""ACL SETUSER/DELUSER/LIST/GETUSER/LOG/... against a real server whose users
live in its store (default user off, root made offline)."""

import functools
import glob
import os
import time

import pytest
import redis

import conftest
from conftest import WRONGPASS, closed, exchange, locked_fixture, read_reply, resp

ROOT_PASSWORD = "acl-root-secret"
# redis-py drops the error code ("ERR ", "NOPERM ") from the exception's text
NOPERM = "this user has no permissions to run the '%s' command"


srv = locked_fixture({}, ROOT_PASSWORD)


@pytest.fixture(scope="module")
def root(srv):
    client = srv.client(username="root", password=ROOT_PASSWORD, decode_responses=True)
    yield client
    client.close()


# Text replies throughout, as root's.
login = functools.partial(conftest.login, decode_responses=True)


def wrongpass(srv, name, password):
    """One AUTH attempt that must fail (a raw socket: redis-py retries failed
    connections, and every failure counts for the brute-force throttle)."""
    sock = srv.raw()
    exchange(sock, resp("AUTH", name, password), WRONGPASS)
    sock.close()


def test_root_creates_users_online_and_they_log_in(srv, root):
    assert root.execute_command("ACL", "SETUSER", "carol", "on", ">carol-pw") == "OK"
    carol = login(srv, "carol", "carol-pw")
    carol.set("k", "v")
    assert carol.get("k") == "v"
    assert carol.execute_command("ACL", "WHOAMI") == "carol"
    # a new user is off until said otherwise, as in Redis
    root.execute_command("ACL", "SETUSER", "dora", ">dora-pw")
    wrongpass(srv, "dora", "dora-pw")
    root.execute_command("ACL", "SETUSER", "dora", "on")
    login(srv, "dora", "dora-pw")
    # a password change keeps live connections, the old password stops working
    root.execute_command("ACL", "SETUSER", "carol", ">carol-new")
    assert carol.get("k") == "v"
    wrongpass(srv, "carol", "carol-pw")
    assert login(srv, "carol", "carol-new").get("k") == "v"
    assert "carol" in root.execute_command("ACL", "USERS")


def test_rules_limit_commands(srv, root):
    root.execute_command("ACL", "SETUSER", "reader", "on", ">r-pw", "+@all", "-@write")
    reader = login(srv, "reader", "r-pw")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM % "set"):
        reader.set("k", "v")
    assert reader.get("k") is None
    # a new user whose SETUSER names rules starts from -@all, as in Redis
    root.execute_command("ACL", "SETUSER", "nothing", "on", ">n-pw", "-@write")
    with pytest.raises(redis.exceptions.NoPermissionError):
        srv.client(username="nothing", password="n-pw").get("k")
    root.execute_command("ACL", "SETUSER", "ro", "on", ">ro-pw", "+@read", "+ping")
    ro = login(srv, "ro", "ro-pw")
    assert ro.get("k") is None
    with pytest.raises(redis.exceptions.NoPermissionError):
        ro.execute_command("DEL", "k")
    # rules change live connections at once
    root.execute_command("ACL", "SETUSER", "ro", "+del")
    assert ro.execute_command("DEL", "k") == 0
    root.execute_command("ACL", "SETUSER", "ro", "nocommands")
    with pytest.raises(redis.exceptions.NoPermissionError):
        ro.get("k")
    # admin commands stay root-only whatever the rules say
    root.execute_command("ACL", "SETUSER", "ro", "allcommands")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM % r"config\|get"):
        ro.config_get("maxclients")
    assert ro.get("k") is None
    root.execute_command("ACL", "SETUSER", "ro", "-get")
    with pytest.raises(redis.exceptions.NoPermissionError):
        ro.get("k")
    assert root.execute_command("ACL", "DRYRUN", "ro", "get", "k") == \
        "This user has no permissions to run the 'get' command"
    assert root.execute_command("ACL", "DRYRUN", "ro", "set", "k", "v") == "OK"


def test_rules_for_containers_and_their_categories(srv, root):
    # A subcommand has its own categories (Redis 7's): MEMORY USAGE and
    # OBJECT ENCODING are @read, CONFIG GET root-only ("admin"); a user's
    # MEMORY USAGE sees its own keys only. -memory denies all of MEMORY.
    root.execute_command("ACL", "SETUSER", "mem", "on", ">mem-pw", "-@all", "+@read", "+set", "+ping")
    mem = login(srv, "mem", "mem-pw")
    mem.set("k", "v")
    assert mem.execute_command("MEMORY", "USAGE", "k") > 0
    assert mem.execute_command("OBJECT", "ENCODING", "k") == "embstr"
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM % r"object\|help"):
        mem.execute_command("OBJECT", "HELP")
    assert "memory|usage" in root.execute_command("ACL", "CAT", "read")
    root.execute_command("ACL", "SETUSER", "mem", "-memory")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM % r"memory\|usage"):
        mem.execute_command("MEMORY", "USAGE", "k")
    root.execute_command("ACL", "SETUSER", "mem", "+@all")
    assert mem.execute_command("CONFIG", "HELP")[0].startswith("CONFIG <subcommand>")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM % r"config\|get"):
        mem.execute_command("CONFIG", "GET", "maxclients")
    mem.close()
    raw = srv.client(username="mem", password="mem-pw")
    assert raw.execute_command("KDB", "EXPORT")   # open to users: their own tenant
    raw.close()
    root.execute_command("ACL", "DELUSER", "mem")


def test_setuser_errors_use_redis_texts(root):
    cases = {
        ("foo",): "Error in ACL SETUSER modifier 'foo': Syntax error",
        ("+nosuchcmd",): "Error in ACL SETUSER modifier '+nosuchcmd': Unknown command or category name in ACL",
        ("+@nosuchcat",): "Error in ACL SETUSER modifier '+@nosuchcat': Unknown command or category name in ACL",
        ("#abc",): "Error in ACL SETUSER modifier '#abc': The password hash must be exactly 64 "
                   "characters and contain only lowercase hexadecimal characters",
        ("<nosuch",): "Error in ACL SETUSER modifier '<nosuch': The password you are trying to "
                      "remove from the user does not exist",
    }
    for rules, text in cases.items():
        with pytest.raises(redis.ResponseError) as info:
            root.execute_command("ACL", "SETUSER", "erruser", *rules)
        assert str(info.value) == text
    with pytest.raises(redis.ResponseError, match="Usernames can't contain spaces or null characters"):
        root.execute_command("ACL", "SETUSER", "a b")
    with pytest.raises(redis.ResponseError, match="nopass"):
        root.execute_command("ACL", "SETUSER", "erruser", "nopass")
    # all or nothing: a failed SETUSER creates nobody
    assert "erruser" not in root.execute_command("ACL", "USERS")
    # key and channel patterns are accepted (isolation is the tenant)
    assert root.execute_command("ACL", "SETUSER", "patterns", "~*", "&*", "allkeys", "resetchannels") == "OK"


def test_namespaces_share_a_tenant(srv, root):
    for name in ("t1", "t2"):
        root.execute_command("ACL", "SETUSER", name, "on", ">%s-pw" % name, "namespace:team")
    root.execute_command("ACL", "SETUSER", "t3", "on", ">t3-pw")
    t1, t2, t3 = (login(srv, n, n + "-pw") for n in ("t1", "t2", "t3"))
    t1.set("shared", "yes")
    assert t2.get("shared") == "yes"
    assert t3.get("shared") is None
    assert t3.dbsize() == 0
    # binding a live user moves its connections
    root.execute_command("ACL", "SETUSER", "t3", "namespace:team")
    assert t3.get("shared") == "yes"
    root.execute_command("ACL", "SETUSER", "t3", "namespace:")
    assert t3.get("shared") is None
    assert "namespace:team" in root.execute_command("ACL", "GETUSER", "t1")["flags"]


def test_deluser_drops_data_and_disconnects(srv, root):
    root.execute_command("ACL", "SETUSER", "gone", "on", ">gone-pw")
    gone = login(srv, "gone", "gone-pw")
    gone.set("k", "v")
    sock = srv.raw()
    exchange(sock, resp("AUTH", "gone", "gone-pw"), b"+OK\r\n")
    assert root.execute_command("ACL", "DELUSER", "gone", "nosuch") == 1
    assert closed(sock)
    wrongpass(srv, "gone", "gone-pw")
    # a new user of the same name gets a fresh, empty tenant
    root.execute_command("ACL", "SETUSER", "gone", "on", ">gone-pw")
    assert login(srv, "gone", "gone-pw").get("k") is None
    assert root.execute_command("ACL", "DELUSER", "nosuch") == 0
    # the last root cannot go
    with pytest.raises(redis.ResponseError, match="last enabled root"):
        root.execute_command("ACL", "DELUSER", "root")
    with pytest.raises(redis.ResponseError, match="last enabled root"):
        root.execute_command("ACL", "SETUSER", "root", "off")


def test_namespace_data_stays_while_a_user_remains(srv, root):
    for name in ("n1", "n2"):
        root.execute_command("ACL", "SETUSER", name, "on", ">pw", "namespace:ns")
    login(srv, "n1", "pw").set("k", "v")
    root.execute_command("ACL", "DELUSER", "n1")
    n2 = login(srv, "n2", "pw")
    assert n2.get("k") == "v"
    root.execute_command("ACL", "DELUSER", "n2")
    root.execute_command("ACL", "SETUSER", "n3", "on", ">pw", "namespace:ns")
    assert login(srv, "n3", "pw").get("k") is None


def test_non_root_cannot_manage_users(srv, root):
    root.execute_command("ACL", "SETUSER", "plain", "on", ">plain-pw")
    plain = login(srv, "plain", "plain-pw")
    for sub, args in (("setuser", ("x",)), ("deluser", ("root",)), ("list", ()), ("users", ()),
                      ("getuser", ("root",)), ("log", ()), ("save", ()), ("load", ())):
        with pytest.raises(redis.exceptions.NoPermissionError) as info:
            plain.execute_command("ACL", sub.upper(), *args)
        assert str(info.value) == NOPERM % ("acl|" + sub)
    assert plain.execute_command("ACL", "WHOAMI") == "plain"
    assert len(plain.execute_command("ACL", "GENPASS")) == 64
    assert len(plain.execute_command("ACL", "GENPASS", "7")) == 2
    assert "read" in plain.execute_command("ACL", "CAT")
    # root makes it root, live
    root.execute_command("ACL", "SETUSER", "plain", "root")
    assert "plain" in plain.execute_command("ACL", "USERS")
    root.execute_command("ACL", "SETUSER", "plain", "noroot")
    with pytest.raises(redis.exceptions.NoPermissionError):
        plain.execute_command("ACL", "USERS")


def test_acl_log_records_auth_failures_and_noperm(srv, root):
    assert root.execute_command("ACL", "LOG", "RESET") == "OK"
    wrongpass(srv, "carol", "wrong")
    root.execute_command("ACL", "SETUSER", "logged", "on", ">pw", "+@all", "-get")
    logged = login(srv, "logged", "pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        logged.get("k")
    entries = root.execute_command("ACL", "LOG")
    assert [(e["reason"], e["object"], e["username"]) for e in entries] == \
        [("command", "get", "logged"), ("auth", "AUTH", "carol")]
    entry = entries[0]
    assert list(entry) == ["count", "reason", "context", "object", "username", "age-seconds",
                           "client-info", "entry-id", "timestamp-created", "timestamp-last-updated"]
    assert entry["context"] == "toplevel" and entry["count"] == 1
    assert 0 <= float(entry["age-seconds"]) < 30
    assert "user=logged" in entry["client-info"]
    assert int(entries[0]["entry-id"]) > int(entries[1]["entry-id"])
    assert len(root.execute_command("ACL", "LOG", "1")) == 1
    root.execute_command("ACL", "LOG", "RESET")
    assert root.execute_command("ACL", "LOG") == []


def test_list_and_getuser_shapes(srv, root):
    root.execute_command("ACL", "SETUSER", "shown", "on", ">shown-pw", "-@all", "+@read", "+ping")
    lines = root.execute_command("ACL", "LIST")
    line = [x for x in lines if x.startswith("user shown ")][0]
    words = line.split()
    assert words[:3] == ["user", "shown", "on"]
    assert words[3].startswith("#") and len(words[3]) == 65
    assert words[4:] == ["~*", "&*", "-@all", "+@read", "+ping"]
    assert any(x.startswith("user root on root #") for x in lines)
    user = root.execute_command("ACL", "GETUSER", "shown")
    assert user == {"flags": ["on"], "passwords": [words[3][1:]], "commands": "-@all +@read +ping",
                    "keys": "~*", "channels": "&*", "selectors": []}
    assert root.execute_command("ACL", "GETUSER", "nosuch") is None
    sock = srv.raw()   # raw: redis-py turns the flags into a list in RESP3 too
    exchange(sock, resp("HELLO", "3", "AUTH", "root", ROOT_PASSWORD), b"")
    read_reply(sock)
    sock.sendall(resp("ACL", "GETUSER", "shown"))
    assert read_reply(sock).startswith(b"%6\r\n$5\r\nflags\r\n~1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n$64\r\n")
    sock.close()
    root.execute_command("ACL", "SETUSER", "shown", "resetpass")
    assert root.execute_command("ACL", "GETUSER", "shown")["passwords"] == []
    wrongpass(srv, "shown", "shown-pw")


def test_no_password_in_the_user_database(srv, root):
    secret = "Pl41n-Text-Secret-%d" % time.time_ns()
    root.execute_command("ACL", "SETUSER", "secretive", "on", ">" + secret)
    login(srv, "secretive", secret)
    assert root.execute_command("ACL", "SAVE") == "OK"
    files = glob.glob(os.path.join(srv.data_dir, "users.db*")) + \
        glob.glob(os.path.join(srv.data_dir, "backups", "*"))
    assert any("backups" in f for f in files)
    for path in files + [srv.log_path]:
        with open(path, "rb") as handle:
            data = handle.read()
        assert secret.encode() not in data, path


def test_acl_load_refreshes_connections(srv, root):
    root.execute_command("ACL", "SETUSER", "loaded", "on", ">pw")
    client = login(srv, "loaded", "pw")
    assert root.execute_command("ACL", "LOAD") == "OK"
    assert client.ping() is True


def test_acl_subcommand_errors(root):
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'NOSUCH'. Try ACL HELP."):
        root.execute_command("ACL", "NOSUCH")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'acl|whoami' command"):
        root.execute_command("ACL", "WHOAMI", "x")
    with pytest.raises(redis.ResponseError, match="Unknown category 'nosuch'"):
        root.execute_command("ACL", "CAT", "nosuch")
    with pytest.raises(redis.ResponseError, match="positive number up to 4096"):
        root.execute_command("ACL", "GENPASS", "0")
    assert root.execute_command("ACL", "HELP")[0].startswith("ACL <subcommand>")
