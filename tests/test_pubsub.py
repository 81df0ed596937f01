"""Pub/sub (issue 16): redis-py's PubSub (sync, asyncio, RESP3) against a real
tenantkv, RESP2 subscribed mode over raw sockets, tenant isolation, ACL
channel rules, the per-tenant limits, the pubsub output class, and the
append-only log never seeing a PUBLISH.

Byte-for-byte replies are compared with redis-server in
tests/compat/sessions/pubsub.txt; here is what a session cannot show.
"""

import asyncio
import glob
import os
import socket
import threading
import time

import pytest
import redis
import redis.asyncio

from conftest import exchange, locked_fixture, login, read_reply, resp

ROOT_PASSWORD = "pubsub-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)


def messages(pubsub, count: int, timeout: float = 5.0) -> list:
    """The next `count` messages (not confirmations) of a redis-py PubSub."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            got.append(message)
    return got


def no_message(pubsub, wait: float = 0.3) -> None:
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
    assert message is None, message


def raw_login(srv, name: str) -> socket.socket:
    sock = srv.raw()
    sock.settimeout(5)
    exchange(sock, resp("AUTH", name, USERS[name] if name != "root" else ROOT_PASSWORD), b"+OK\r\n")
    return sock


def recv_exactly(sock: socket.socket, expected: bytes) -> None:
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < len(expected) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got == expected


def pubsub_state(client: redis.Redis) -> tuple:
    return (sorted(client.pubsub_channels()), client.pubsub_numpat(),
            sorted(client.execute_command("PUBSUB", "SHARDCHANNELS")))


# -- redis-py -----------------------------------------------------------------------------------

def test_redis_py_pubsub_channels_patterns_sharded(srv):
    publisher = login(srv, "alice")
    sub = login(srv, "alice").pubsub()
    sub.subscribe("news", "sport")
    sub.psubscribe("n*")
    sub.ssubscribe("shard-1")
    confirmations = [sub.get_message(timeout=2) for _ in range(4)]
    assert [(m["type"], m["channel"], m["data"]) for m in confirmations] == [
        ("subscribe", b"news", 1), ("subscribe", b"sport", 2), ("psubscribe", b"n*", 3),
        ("ssubscribe", b"shard-1", 1)]
    # An exact subscriber plus a matching pattern: two deliveries.
    assert publisher.publish("news", "hello") == 2
    assert publisher.publish("sport", b"\x00goal\r\n") == 1
    assert publisher.publish("nothing-here", "x") == 1   # n*
    assert publisher.publish("other", "x") == 0
    assert publisher.spublish("shard-1", "sharded") == 1
    assert publisher.spublish("news", "x") == 0   # shard channels are a space of their own
    got = messages(sub, 5)
    assert [(m["type"], m["pattern"], m["channel"], m["data"]) for m in got] == [
        ("message", None, b"news", b"hello"),
        ("pmessage", b"n*", b"news", b"hello"),
        ("message", None, b"sport", b"\x00goal\r\n"),
        ("pmessage", b"n*", b"nothing-here", b"x"),
        ("smessage", None, b"shard-1", b"sharded")]
    assert sorted(publisher.pubsub_channels()) == [b"news", b"sport"]
    assert publisher.pubsub_channels("s*") == [b"sport"]
    assert publisher.pubsub_numsub("news", "none") == [(b"news", 1), (b"none", 0)]
    assert publisher.pubsub_numpat() == 1
    assert publisher.execute_command("PUBSUB", "SHARDCHANNELS") == [b"shard-1"]
    assert publisher.execute_command("PUBSUB", "SHARDNUMSUB", "shard-1") == [b"shard-1", 1]
    sub.unsubscribe()
    sub.punsubscribe()
    sub.sunsubscribe()
    time.sleep(0.2)
    assert pubsub_state(publisher) == ([], 0, [])
    sub.close()


def test_redis_py_listen_and_run_in_thread(srv):
    publisher = login(srv, "alice")
    sub = login(srv, "alice").pubsub(ignore_subscribe_messages=True)
    received = []
    done = threading.Event()

    def handler(message):
        received.append(message["data"])
        if len(received) == 3:
            done.set()
    sub.subscribe(**{"jobs": handler})
    worker = sub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        deadline = time.monotonic() + 5
        while publisher.pubsub_numsub("jobs") != [(b"jobs", 1)]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for i in range(3):
            assert publisher.publish("jobs", "job-%d" % i) == 1
        assert done.wait(5)
        assert received == [b"job-0", b"job-1", b"job-2"]
    finally:
        worker.stop()
        worker.join(5)
    # listen(): a generator over the same connection.
    listener = login(srv, "alice").pubsub()
    listener.subscribe("stream")
    it = listener.listen()
    assert next(it)["type"] == "subscribe"
    publisher.publish("stream", "one")
    assert next(it)["data"] == b"one"
    listener.close()


def test_redis_py_asyncio_pubsub(srv):
    async def run():
        kwargs = dict(host="127.0.0.1", port=srv.port, username="bob", password=USERS["bob"])
        publisher = redis.asyncio.Redis(**kwargs)
        subscriber = redis.asyncio.Redis(**kwargs)
        sub = subscriber.pubsub()
        await sub.subscribe("room")
        await sub.psubscribe("ro*")
        assert (await sub.get_message(timeout=2))["type"] == "subscribe"
        assert (await sub.get_message(timeout=2))["type"] == "psubscribe"
        assert await publisher.publish("room", "hi") == 2
        got = []
        while len(got) < 2:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=2)
            assert message is not None
            got.append((message["type"], message["data"]))
        assert got == [("message", b"hi"), ("pmessage", b"hi")]
        await sub.aclose()
        await publisher.aclose()
        await subscriber.aclose()
    asyncio.run(run())


def test_redis_py_resp3_pushes_mixed_with_replies(srv):
    """RESP3: any command runs while subscribed, and the messages arrive as
    pushes between the replies."""
    client = login(srv, "carol", protocol=3)
    sub = client.pubsub()
    sub.subscribe("c3")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    assert login(srv, "carol").publish("c3", "push") == 1
    got = messages(sub, 1)
    assert [(m["type"], m["data"]) for m in got] == [("message", b"push")]
    sub.close()
    # Raw: a PUBLISH to itself answers the push first, then the count.
    sock = raw_login(srv, "carol")
    sock.sendall(resp("HELLO", "3"))
    read_reply(sock)
    exchange(sock, resp("SUBSCRIBE", "me"), b">3\r\n$9\r\nsubscribe\r\n$2\r\nme\r\n:1\r\n")
    exchange(sock, resp("PUBLISH", "me", "x"),
             b">3\r\n$7\r\nmessage\r\n$2\r\nme\r\n$1\r\nx\r\n:1\r\n")
    exchange(sock, resp("GET", "nokey"), b"_\r\n")
    exchange(sock, resp("PING"), b"+PONG\r\n")
    # HELLO 2 while subscribed: RESP2's pub/sub mode from now on, as Redis.
    sock.sendall(resp("HELLO", "2"))
    read_reply(sock)
    exchange(sock, resp("GET", "nokey"),
             b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT "
             b"/ RESET are allowed in this context\r\n")
    sock.close()


# -- RESP2 subscribed mode, RESET, AUTH, close ---------------------------------------------------

CONTEXT = (b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
           b"RESET are allowed in this context\r\n")


def test_resp2_subscribed_mode_allows_only_the_subscribe_family(srv):
    sock = raw_login(srv, "dave")
    exchange(sock, resp("SUBSCRIBE", "a"), b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
    for args, name in ((("GET", "k"), b"get"), (("set", "k", "v"), b"set"),
                       (("CLIENT", "LIST"), b"client|list"), (("Publish", "a", "x"), b"publish"),
                       (("MULTI",), b"multi"), (("HELLO", "3"), b"hello")):
        exchange(sock, resp(*args), CONTEXT % name)
    # Errors that come first in Redis's order stay as they were.
    exchange(sock, resp("NOSUCH"), b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n")
    exchange(sock, resp("GET"), b"-ERR wrong number of arguments for 'get' command\r\n")
    exchange(sock, resp("PING"), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    exchange(sock, resp("ping", "hey"), b"*2\r\n$4\r\npong\r\n$3\r\nhey\r\n")
    # In a pipeline too (the batch path), in order.
    sock.sendall(resp("PSUBSCRIBE", "p*") + resp("GET", "k") + resp("PUNSUBSCRIBE")
                 + resp("Unsubscribe") + resp("GET", "k"))
    recv_exactly(sock, b"*3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:2\r\n" + CONTEXT % b"get"
                 + b"*3\r\n$12\r\npunsubscribe\r\n$2\r\np*\r\n:1\r\n"
                 + b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n" + b"$-1\r\n")
    # Shard subscriptions alone keep the mode; their count is their own.
    exchange(sock, resp("SSUBSCRIBE", "s"), b"*3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n")
    exchange(sock, resp("GET", "k"), CONTEXT % b"get")
    exchange(sock, resp("QUIT"), b"+OK\r\n")
    sock.close()
    time.sleep(0.2)
    assert pubsub_state(login(srv, "dave")) == ([], 0, [])


def test_reset_auth_and_close_leave_every_subscription(srv):
    alice = login(srv, "alice")
    sock = raw_login(srv, "alice")
    exchange(sock, resp("SUBSCRIBE", "r1"), b"*3\r\n$9\r\nsubscribe\r\n$2\r\nr1\r\n:1\r\n")
    exchange(sock, resp("PSUBSCRIBE", "r*"), b"*3\r\n$10\r\npsubscribe\r\n$2\r\nr*\r\n:2\r\n")
    assert pubsub_state(alice) == ([b"r1"], 1, [])
    exchange(sock, resp("RESET"), b"+RESET\r\n")
    assert pubsub_state(alice) == ([], 0, [])
    assert alice.publish("r1", "x") == 0
    # AUTH as another user (another tenant): alice's channels are left.
    exchange(sock, resp("AUTH", "alice", USERS["alice"]), b"+OK\r\n")
    sock.sendall(resp("HELLO", "3"))
    read_reply(sock)
    exchange(sock, resp("SUBSCRIBE", "r2"), b">3\r\n$9\r\nsubscribe\r\n$2\r\nr2\r\n:1\r\n")
    assert pubsub_state(alice) == ([b"r2"], 0, [])
    exchange(sock, resp("AUTH", "bob", USERS["bob"]), b"+OK\r\n")
    assert pubsub_state(alice) == ([], 0, [])
    assert pubsub_state(login(srv, "bob")) == ([], 0, [])
    # AUTH as the same user again keeps them (the same tenant).
    exchange(sock, resp("SUBSCRIBE", "b1"), b">3\r\n$9\r\nsubscribe\r\n$2\r\nb1\r\n:1\r\n")
    exchange(sock, resp("AUTH", "bob", USERS["bob"]), b"+OK\r\n")
    assert login(srv, "bob").pubsub_numsub("b1") == [(b"b1", 1)]
    # The close.
    sock.close()
    bob = login(srv, "bob")
    deadline = time.monotonic() + 5
    while pubsub_state(bob) != ([], 0, []):
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- isolation ------------------------------------------------------------------------------------

def test_tenants_see_only_their_own_channels_and_messages(srv):
    names = ["shared", "__keyspace@0__:k", "*", "a\x00b"]
    subs = {}
    for user in ("alice", "bob"):
        sub = login(srv, user).pubsub()
        sub.subscribe(*names)
        sub.psubscribe("sh*", "*")
        sub.ssubscribe("shared")
        for _ in range(len(names) + 3):
            assert sub.get_message(timeout=2) is not None
        subs[user] = sub
    alice, bob = login(srv, "alice"), login(srv, "bob")
    # Only the publisher's tenant's subscribers count, and get it.
    assert alice.publish("shared", "from-alice") == 3
    assert alice.spublish("shared", "s-alice") == 1
    assert bob.publish("shared", "from-bob") == 3
    got_a = messages(subs["alice"], 4)
    got_b = messages(subs["bob"], 3)
    assert {m["data"] for m in got_a} == {b"from-alice", b"s-alice"}
    assert {m["data"] for m in got_b} == {b"from-bob"} and len(got_b) == 3
    no_message(subs["alice"])
    no_message(subs["bob"])
    # PUBSUB shows the caller's own only (each tenant has the same names once).
    for client in (alice, bob):
        assert sorted(client.pubsub_channels()) == sorted(n.encode() for n in names)
        assert client.pubsub_numsub("shared") == [(b"shared", 1)]
        assert client.pubsub_numpat() == 2
    for client in (alice, bob):
        stats = client.info("stats")
        assert (stats["pubsub_channels"], stats["pubsub_patterns"],
                stats["pubsubshard_channels"]) == (len(names), 2, 1)
    # A third tenant sees nothing at all, and reaches no one.
    carol = login(srv, "carol")
    assert pubsub_state(carol) == ([], 0, [])
    assert carol.info("stats")["pubsub_channels"] == 0
    assert carol.publish("shared", "x") == 0
    assert carol.spublish("shared", "x") == 0
    no_message(subs["alice"])
    # Root's tenant is a tenant like the others.
    root = login(srv, "root", ROOT_PASSWORD)
    assert root.publish("shared", "x") == 0
    assert root.pubsub_channels() == []
    assert root.info("stats")["pubsub_channels"] == 2 * len(names)   # INFO: the server's
    for sub in subs.values():
        sub.close()


# -- ACL channel rules -------------------------------------------------------------------------

NOPERM_CHANNEL = "this user has no permissions to access one of the channels used as arguments"
NOPERM_CHANNEL_RAW = b"NOPERM " + NOPERM_CHANNEL.encode()


def test_acl_channel_rules_apply_within_the_tenant(srv):
    root = login(srv, "root", ROOT_PASSWORD)
    # Existing users have allchannels (of their own tenant).
    assert root.acl_getuser("dave")["channels"] == ["&*"]
    try:
        assert root.execute_command("ACL", "SETUSER", "dave", "resetchannels", "&news.*", "&chat")
        assert root.acl_getuser("dave")["channels"] == ["&news.*", "&chat"]
        assert [line for line in root.acl_list() if line.startswith("user dave ")][0].endswith(
            " ~* resetchannels &news.* &chat +@all")
        dave = login(srv, "dave")
        assert dave.publish("news.today", "x") == 0
        assert dave.publish("chat", "x") == 0
        for call in (lambda: dave.publish("other", "x"),
                     lambda: dave.spublish("other", "x"),
                     lambda: dave.execute_command("SUBSCRIBE", "news.today", "other"),
                     lambda: dave.execute_command("SSUBSCRIBE", "other"),
                     # A pattern must be one of the user's, literally (Redis 7.0).
                     lambda: dave.execute_command("PSUBSCRIBE", "news.t*")):
            with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_CHANNEL):
                call()
        entry = root.acl_log(count=1)[0]
        assert entry["reason"] == "channel" and entry["username"] == "dave"
        assert entry["object"] == "news.t*" and entry["context"] == "toplevel"
        # Inside MULTI: refused when queued, and EXEC aborts (Redis 7).
        sock = raw_login(srv, "dave")
        exchange(sock, resp("MULTI"), b"+OK\r\n")
        exchange(sock, resp("PUBLISH", "chat", "x"), b"+QUEUED\r\n")
        exchange(sock, resp("PUBLISH", "other", "x"), b"-" + NOPERM_CHANNEL_RAW + b"\r\n")
        exchange(sock, resp("EXEC"), b"-EXECABORT Transaction discarded because of previous "
                                     b"errors.\r\n")
        sock.close()
        entry = root.acl_log(count=1)[0]
        assert (entry["object"], entry["context"]) == ("other", "multi")
        sub = login(srv, "dave").pubsub()
        sub.psubscribe("news.*")
        assert sub.get_message(timeout=2)["type"] == "psubscribe"
        sub.subscribe("chat")
        assert sub.get_message(timeout=2)["type"] == "subscribe"
        # allchannels after a pattern is Redis's error.
        with pytest.raises(redis.ResponseError, match="Adding a pattern after the"):
            root.execute_command("ACL", "SETUSER", "dave", "allchannels", "&x")
        # Taking the rights away closes the subscriber, as Redis 7.
        assert root.execute_command("ACL", "SETUSER", "dave", "resetchannels", "&chat")
        deadline = time.monotonic() + 5
        while dave.pubsub_numpat() != 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert dave.pubsub_numsub("chat") == [(b"chat", 0)]
    finally:
        root.execute_command("ACL", "SETUSER", "dave", "allchannels")
    assert login(srv, "dave").publish("other", "x") == 0


# -- limits ----------------------------------------------------------------------------------------

def test_pubsub_limits_per_tenant(srv):
    from tenantkv.dispatch import pubsub
    client = login(srv, "carol")
    with pytest.raises(redis.ResponseError,
                       match="pub/sub limit: a pattern name is at most 1024 bytes"):
        client.execute_command("PSUBSCRIBE", "p" * (pubsub.MAX_PATTERN_BYTES + 1))
    with pytest.raises(redis.ResponseError, match="pub/sub limit: a channel name is at most 64 KB"):
        client.publish("c" * (pubsub.MAX_CHANNEL_BYTES + 1), "x")
    assert client.publish("c" * pubsub.MAX_CHANNEL_BYTES, "x") == 0
    patterns = ["pat-%d-*" % i for i in range(pubsub.MAX_TENANT_PATTERNS)]
    sock = raw_login(srv, "carol")
    sock.sendall(resp("PSUBSCRIBE", *patterns))
    got = b""
    while got.count(b"psubscribe") < len(patterns):
        got += read_reply(sock)
    other = raw_login(srv, "carol")
    # The same patterns again (another connection) cost nothing new.
    exchange(other, resp("PSUBSCRIBE", patterns[0]),
             b"*3\r\n$10\r\npsubscribe\r\n$7\r\npat-0-*\r\n:1\r\n")
    exchange(other, resp("PSUBSCRIBE", "one-more-*"),
             b"-ERR pub/sub limit: at most %d patterns per tenant\r\n" % pubsub.MAX_TENANT_PATTERNS)
    # A refused command subscribed to nothing; others' tenants are not limited by it.
    assert client.pubsub_numpat() == pubsub.MAX_TENANT_PATTERNS
    bob = raw_login(srv, "bob")
    exchange(bob, resp("PSUBSCRIBE", "one-more-*"),
             b"*3\r\n$10\r\npsubscribe\r\n$10\r\none-more-*\r\n:1\r\n")
    bob.close()
    sock.close()
    other.close()
    deadline = time.monotonic() + 5
    while client.pubsub_numpat() != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- output class ---------------------------------------------------------------------------------

def omem(client: redis.Redis, client_id: int) -> int:
    for entry in client.client_list():
        if int(entry["id"]) == client_id:
            return int(entry["omem"])
    return -1


def test_a_subscriber_that_does_not_read_is_closed_at_its_pubsub_limit(srv):
    root = login(srv, "root", ROOT_PASSWORD)
    root.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 60")
    try:
        publisher = login(srv, "alice")
        reader = login(srv, "alice").pubsub()   # reads all along
        reader.subscribe("firehose")
        assert reader.get_message(timeout=2)["type"] == "subscribe"
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", srv.port))
        stalled.settimeout(5)
        exchange(stalled, resp("AUTH", "alice", USERS["alice"]), b"+OK\r\n")
        exchange(stalled, resp("SUBSCRIBE", "firehose"),
                 b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n")
        payload = b"m" * 64 * 1024
        received = 0
        closed_at = None
        for i in range(200):   # 12.5 MB in all, far past the 1 MB hard limit
            count = publisher.publish("firehose", payload)
            if count == 1 and closed_at is None:
                closed_at = i
            while True:
                message = reader.get_message(ignore_subscribe_messages=True, timeout=0.01)
                if message is None:
                    break
                received += 1
        assert closed_at is not None and closed_at < 100, closed_at
        deadline = time.monotonic() + 10
        while received < 200:
            message = reader.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                received += 1
            assert time.monotonic() < deadline
        assert publisher.pubsub_numsub("firehose") == [(b"firehose", 1)]
        log = open(srv.log_path, "rb").read()
        assert b"scheduled to be closed ASAP for overcoming of output buffer limits." in log
        stalled.close()
        reader.close()
    finally:
        root.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")


# -- the append-only log ---------------------------------------------------------------------------

def test_publish_is_never_logged_nor_replayed(make_server, tmp_path):
    server = make_server("--appendonly", "yes", "--save", "")
    client = server.client()
    sub = server.client().pubsub()
    sub.subscribe("logged?")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    assert client.publish("logged?", "payload-not-in-log") == 1
    assert client.spublish("logged?", "payload-not-in-log") == 0
    client.set("after", "1")   # a write, so the log has something
    sub.close()
    server.stop()
    logged = b"".join(open(path, "rb").read()
                      for path in glob.glob(os.path.join(str(tmp_path), "appendonlydir", "*")))
    assert b"after" in logged
    assert b"payload-not-in-log" not in logged and b"PUBLISH" not in logged.upper()
    # Replay publishes nothing (there is nothing to publish, and no error).
    again = make_server("--appendonly", "yes", "--save", "")
    assert again.client().get("after") == b"1"


def test_store_migration_to_schema_5_gives_existing_users_all_channels(tmp_path):
    """A users.db of schema 4 (before channel rules) gains the channels
    column: its users keep pub/sub in their tenant (allchannels)."""
    import sqlite3
    from tenantkv.tenancy import SCHEMA_VERSION, UserStore
    from tenantkv.tenancy.permissions import channel_rules
    path = str(tmp_path / "users.db")
    with UserStore(path) as store:
        before = store.add("alice", b"pw")
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE users DROP COLUMN channels")
    con.execute("UPDATE schema_version SET version = 4")
    con.commit()
    con.close()
    with UserStore(path) as store:
        assert SCHEMA_VERSION >= 5 and store.schema_version() == SCHEMA_VERSION
        alice = store.get("alice")
        assert (alice.id, alice.channels, channel_rules(alice)) == (before.id, None, None)
        alice = store.apply("alice", {"channels": "news.* chat"})[0]
        assert channel_rules(alice) == (b"news.*", b"chat")
        assert channel_rules(store.apply("alice", {"channels": ""})[0]) == ()


def test_resp2_and_resp3_subscribers_of_one_message_get_their_own_encoding(srv):
    socks = []
    for protocol in ("2", "3", "2", "3"):
        sock = raw_login(srv, "bob")
        sock.sendall(resp("HELLO", protocol))
        read_reply(sock)
        sock.sendall(resp("SUBSCRIBE", "mix") + resp("PSUBSCRIBE", "mi*")
                     + resp("SSUBSCRIBE", "mix"))
        got = b""
        while got.count(b"subscribe") < 3:
            got += read_reply(sock)
        socks.append((protocol, sock))
    bob = login(srv, "bob")
    assert bob.publish("mix", "hello") == 8
    assert bob.spublish("mix", "shard") == 4
    for protocol, sock in socks:
        head = b"*" if protocol == "2" else b">"
        recv_exactly(sock, head + b"3\r\n$7\r\nmessage\r\n$3\r\nmix\r\n$5\r\nhello\r\n"
                     + head + b"4\r\n$8\r\npmessage\r\n$3\r\nmi*\r\n$3\r\nmix\r\n$5\r\nhello\r\n"
                     + head + b"3\r\n$8\r\nsmessage\r\n$3\r\nmix\r\n$5\r\nshard\r\n")
        sock.close()


def _reply_off_session(sock: socket.socket, publisher: socket.socket, protocol: int) -> list:
    """Redis's "PubSub messages with CLIENT REPLY OFF": the subscribe
    confirmations and the messages go out whatever the reply mode (RESP2
    arrays too: Redis's CLIENT_PUSHING); the replies (PING here) do not."""
    got = []
    sock.sendall(resp("HELLO", protocol))
    read_reply(sock)
    sock.sendall(resp("CLIENT", "REPLY", "OFF") + resp("SUBSCRIBE", "channel")
                 + resp("PSUBSCRIBE", "ch*"))
    got.append(read_reply(sock))
    publisher.sendall(resp("PUBLISH", "channel", "hello"))
    got.append(read_reply(publisher))
    got.append(read_reply(sock))
    sock.sendall(resp("CLIENT", "REPLY", "OFF") + resp("UNSUBSCRIBE", "channel")
                 + resp("PUNSUBSCRIBE", "ch*") + resp("PING"))
    got.append(read_reply(sock))
    return got


@pytest.mark.parametrize("protocol", [2, 3])
def test_pushes_go_out_with_client_reply_off_as_redis(srv, redis_server, protocol):
    ours = _reply_off_session(raw_login(srv, "alice"), raw_login(srv, "alice"), protocol)
    theirs = _reply_off_session(socket.create_connection(("127.0.0.1", redis_server.port)),
                                socket.create_connection(("127.0.0.1", redis_server.port)),
                                protocol)
    assert ours == theirs
    assert ours[0].startswith(b"*>"[protocol - 2:protocol - 1] + b"3\r\n$9\r\nsubscribe\r\n")
