"""Client-side caching (CLIENT TRACKING, issue 16): Redis 7.0's replies,
errors and invalidations, per tenant.

Raw RESP3 sessions are replayed against redis-server and tenantkv and must
match byte for byte (client ids aside); the tenancy tests use a server that
requires AUTH, with two users whose tenants write the same key names.
"""

import select
import socket
import time

import pytest
import redis
from redis.cache import CacheConfig
from redis.connection import CacheProxyConnection

from conftest import locked_fixture, read_exactly, read_reply, resp

ROOT_PASSWORD = "tracking-root-secret"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)

PUSH_K = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
PUSH_NULL = b">2\r\n$10\r\ninvalidate\r\n_\r\n"


def connect(port: int, user: str | None = None, password: str | None = None,
            protocol: int = 3) -> socket.socket:
    """A raw connection, logged in (HELLO AUTH) when `user` is given; the
    HELLO reply is read and dropped."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if user is None:
        sock.sendall(resp("HELLO", protocol))
    else:
        sock.sendall(resp("HELLO", protocol, "AUTH", user, password))
    reply = read_reply(sock)
    assert reply.startswith(b"%7" if protocol == 3 else b"*14"), reply
    return sock


def ask(sock: socket.socket, *args) -> bytes:
    sock.sendall(resp(*args))
    return read_reply(sock)


def quiet(sock: socket.socket, wait: float = 0.3) -> bool:
    """Nothing arrives on `sock` within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return sock.recv(65536) == b""
    except socket.timeout:
        return True


def client_id(sock: socket.socket) -> int:
    return int(ask(sock, "CLIENT", "ID")[1:-2])


def alice(srv, protocol: int = 3) -> socket.socket:
    return connect(srv.port, "alice", USERS["alice"], protocol)


def bob(srv, protocol: int = 3) -> socket.socket:
    return connect(srv.port, "bob", USERS["bob"], protocol)


# -- the same sessions against redis-server ------------------------------------

# (client, command): what every client receives after each step is compared.
SESSIONS = {
    "default": [
        ("a", ("CLIENT", "TRACKINGINFO")), ("a", ("CLIENT", "GETREDIR")),
        ("a", ("CLIENT", "TRACKING", "on")), ("a", ("CLIENT", "TRACKINGINFO")),
        ("a", ("CLIENT", "GETREDIR")),
        ("b", ("SET", "k", "1")), ("a", ("GET", "k")), ("b", ("SET", "k", "2")),
        ("b", ("SET", "k", "3")),   # nothing: k is no longer remembered
        ("a", ("MGET", "k", "x")), ("b", ("MSET", "k", "1", "x", "2")),
        ("a", ("GET", "k")), ("a", ("SET", "k", "5")),   # its own write: reply, then push
        ("a", ("GET", "k")), ("b", ("DEL", "k")), ("b", ("DEL", "k")),
        ("a", ("HGETALL", "h")), ("b", ("HSET", "h", "f", "v")),
        ("a", ("EXISTS", "k")), ("b", ("EXPIRE", "nothing", "10")), ("b", ("SET", "k", "v")),
        ("a", ("GET", "k")), ("b", ("FLUSHDB",)), ("a", ("GET", "k")), ("a", ("FLUSHALL",)),
        ("a", ("CLIENT", "TRACKING", "off")), ("a", ("GET", "k")), ("b", ("SET", "k", "1")),
    ],
    "optin": [
        ("a", ("CLIENT", "TRACKING", "on", "optin")), ("a", ("GET", "k")),
        ("b", ("SET", "k", "1")),   # not cached without CACHING yes
        ("a", ("CLIENT", "CACHING", "yes")), ("a", ("CLIENT", "TRACKINGINFO")),
        ("a", ("GET", "k")), ("a", ("GET", "other")), ("b", ("MSET", "k", "2", "other", "2")),
        ("a", ("CLIENT", "CACHING", "yes")), ("a", ("MULTI",)), ("a", ("GET", "k")),
        ("a", ("GET", "other")), ("a", ("EXEC",)), ("a", ("GET", "third")),
        ("b", ("MSET", "k", "3", "other", "3", "third", "3")),
        ("a", ("CLIENT", "CACHING", "no")), ("a", ("CLIENT", "TRACKING", "on", "optout")),
        ("a", ("CLIENT", "TRACKING", "off")), ("a", ("CLIENT", "CACHING", "yes")),
    ],
    "optout": [
        ("a", ("CLIENT", "TRACKING", "on", "optout")), ("a", ("CLIENT", "CACHING", "no")),
        ("a", ("CLIENT", "TRACKINGINFO")), ("a", ("GET", "k")), ("a", ("GET", "other")),
        ("b", ("MSET", "k", "1", "other", "1")),   # only other was cached
        ("a", ("CLIENT", "CACHING", "yes")), ("a", ("CLIENT", "TRACKING", "on", "optin")),
    ],
    "noloop": [
        ("a", ("CLIENT", "TRACKING", "on", "noloop")), ("a", ("GET", "k")),
        ("a", ("SET", "k", "1")),   # its own write: no push
        ("a", ("GET", "k")), ("b", ("SET", "k", "2")),   # another's: a push
        ("a", ("CLIENT", "TRACKINGINFO")),
    ],
    "bcast": [
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "prefix", "user:", "prefix", "obj:")),
        ("a", ("CLIENT", "TRACKINGINFO")),
        ("b", ("SET", "user:1", "a")), ("b", ("SET", "other", "a")),
        ("b", ("MSET", "obj:2", "1", "obj:1", "2", "user:9", "3", "x", "4")),
        ("a", ("SET", "user:2", "a")),   # its own writes are announced too (no NOLOOP)
        ("a", ("GET", "user:3")), ("b", ("SET", "user:3", "x")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "prefix", "user:x")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "prefix", "abc")),
        ("a", ("CLIENT", "TRACKINGINFO")), ("b", ("SET", "abcd", "1")),
        ("a", ("CLIENT", "TRACKING", "on")), ("b", ("FLUSHALL",)),
        ("a", ("CLIENT", "TRACKING", "off")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "noloop")),   # every key: prefix ""
        ("a", ("SET", "mine", "1")), ("b", ("SET", "theirs", "1")),
        ("a", ("CLIENT", "TRACKINGINFO")),
    ],
    "errors": [
        ("a", ("CLIENT", "TRACKING", "on", "optin", "optout")),
        ("a", ("CLIENT", "TRACKING", "on", "prefix", "a")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "optin")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "optout")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "prefix", "ab", "prefix", "a")),
        ("a", ("CLIENT", "TRACKING", "on", "bcast", "prefix", "a", "prefix", "a")),
        ("a", ("CLIENT", "TRACKING", "maybe")), ("a", ("CLIENT", "TRACKING", "on", "bogus")),
        ("a", ("CLIENT", "TRACKING", "on", "redirect")),
        ("a", ("CLIENT", "TRACKING", "on", "redirect", "x")),
        ("a", ("CLIENT", "TRACKING", "on", "redirect", "987654")),
        ("a", ("CLIENT", "TRACKING", "on", "redirect", "0")),
        ("a", ("CLIENT", "TRACKING",)), ("a", ("CLIENT", "CACHING")),
        ("a", ("CLIENT", "CACHING", "yes")), ("a", ("CLIENT", "CACHING", "no")),
        ("a", ("CLIENT", "GETREDIR", "x")), ("a", ("CLIENT", "TRACKINGINFO", "x")),
        ("a", ("CLIENT", "TRACKING", "on", "optin")), ("a", ("CLIENT", "CACHING", "maybe")),
        ("a", ("CLIENT", "CACHING", "no")), ("a", ("CLIENT", "TRACKING", "on", "bcast")),
        ("a", ("CLIENT", "TRACKING", "on", "optout")),
        ("a", ("CLIENT", "TRACKING", "on", "optin", "noloop")), ("a", ("CLIENT", "TRACKINGINFO")),
    ],
}


def drain(socks: dict, who: str, quiet_for: float = 0.05) -> dict:
    """Everything the clients receive after `who` sent a command: waits for
    `who`'s reply (up to 10 s), then until no client has received anything
    for `quiet_for` seconds."""
    got = {name: b"" for name in socks}
    by_sock = {sock: name for name, sock in socks.items()}
    deadline = time.monotonic() + 10
    while True:
        wait = quiet_for if got[who] else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(list(by_sock), [], [], wait)
        if not ready:
            if got[who] or time.monotonic() >= deadline:
                return got
            continue
        for sock in ready:
            got[by_sock[sock]] += sock.recv(65536)


def play(connect_one, steps) -> list:
    socks: dict = {}
    seen = []
    try:
        for who, command in steps:
            if who not in socks:
                socks[who] = connect_one()
            socks[who].sendall(resp(*command))
            got = drain(socks, who)
            for name in sorted(socks):
                seen.append((who, " ".join(command), name, got[name]))
    finally:
        for sock in socks.values():
            sock.close()
    return seen


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_session_as_redis(srv, redis_server, name):
    """Each session's every reply and push, as redis-server 7.0 sends them."""
    flush = connect(redis_server.port)
    ask(flush, "FLUSHALL")
    flush.close()
    flush = alice(srv)
    ask(flush, "FLUSHALL")
    flush.close()
    expected = play(lambda: connect(redis_server.port), SESSIONS[name])
    got = play(lambda: alice(srv), SESSIONS[name])
    for want, have in zip(expected, got):
        assert have == want
    assert len(got) == len(expected)


# -- redis-py's client-side cache ------------------------------------------------------


def test_redis_py_cache_invalidated_by_another_clients_set(srv, monkeypatch):
    """redis-py 8.2's cache: a cached GET is served without the server, and
    another client's SET invalidates it (a RESP3 push)."""
    # redis-py enables its cache only for servers that say 7.4 or later;
    # tenantkv says 7.2 (the commands it has). Its tracking is Redis 7.0's,
    # which is what the cache needs, so the gate is lowered here.
    monkeypatch.setattr(CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.2.0")
    cached = redis.Redis(port=srv.port, username="alice", password=USERS["alice"],
                         protocol=3, cache_config=CacheConfig())
    writer = redis.Redis(port=srv.port, username="alice", password=USERS["alice"])
    other = redis.Redis(port=srv.port, username="bob", password=USERS["bob"])
    try:
        writer.set("k", "v1")
        other.set("k", "bob's")
        calls = lambda: writer.info("commandstats").get("cmdstat_get", {}).get("calls", 0)
        before = calls()
        assert cached.get("k") == b"v1"
        assert cached.get("k") == b"v1"
        assert calls() == before + 1   # the second GET came from the cache
        other.set("k", "bob's again")   # another tenant's k: alice's cache keeps it
        time.sleep(0.2)
        assert cached.get("k") == b"v1"
        assert calls() == before + 1
        writer.set("k", "v2")
        deadline = time.monotonic() + 5
        while cached.get("k") != b"v2":   # the push is read with the next command
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert calls() >= before + 2
    finally:
        cached.close()
        writer.close()
        other.close()


# -- REDIRECT over RESP2 -------------------------------------------------------------


def test_redirect_to_resp2_subscriber(srv):
    """RESP2 has no push: invalidations go, as messages on
    __redis__:invalidate, to the client the tracking one redirects to."""
    sub = alice(srv, protocol=2)
    sub_id = client_id(sub)
    assert ask(sub, "SUBSCRIBE", "__redis__:invalidate") == (
        b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n")
    tracked = alice(srv, protocol=2)
    writer = alice(srv)
    assert ask(tracked, "CLIENT", "TRACKING", "on", "REDIRECT", sub_id) == b"+OK\r\n"
    assert ask(tracked, "CLIENT", "GETREDIR") == b":%d\r\n" % sub_id
    ask(tracked, "GET", "k")
    assert ask(writer, "SET", "k", "1") == b"+OK\r\n"
    message = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
    assert read_exactly(sub, len(message) + 11) == message + b"*1\r\n$1\r\nk\r\n"
    assert quiet(tracked)
    ask(writer, "FLUSHALL")
    # The null of the tracking client's protocol (RESP2's), as Redis.
    assert read_exactly(sub, len(message) + 5) == message + b"$-1\r\n"
    # BCAST redirected the same way.
    ask(tracked, "CLIENT", "TRACKING", "off")
    assert ask(tracked, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p",
               "REDIRECT", sub_id) == b"+OK\r\n"
    ask(writer, "MSET", "p1", "1", "q", "1")
    assert read_exactly(sub, len(message) + 12) == message + b"*1\r\n$2\r\np1\r\n"
    # The target gone: the redirect is broken (a RESP3 client is told).
    sub.close()
    three = alice(srv)
    three_sub = alice(srv)
    assert ask(three, "CLIENT", "TRACKING", "on", "REDIRECT", client_id(three_sub)) == b"+OK\r\n"
    ask(three, "GET", "k")
    three_sub_id = client_id(three_sub)
    three_sub.close()
    time.sleep(0.2)
    ask(writer, "SET", "k", "2")
    assert read_reply(three) == b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % three_sub_id
    assert b"broken_redirect" in ask(three, "CLIENT", "TRACKINGINFO")
    for sock in (tracked, writer, three):
        sock.close()


def test_redirect_to_another_tenants_client_does_not_exist(srv):
    """Another tenant's client id is as unknown as one never used, even for
    root; a client that changes tenant stops being a target."""
    bobs = bob(srv)
    bobs_id = client_id(bobs)
    mine = alice(srv)
    never = b"-ERR The client ID you want redirect to does not exist\r\n"
    assert ask(mine, "CLIENT", "TRACKING", "on", "REDIRECT", bobs_id) == never
    assert ask(mine, "CLIENT", "TRACKING", "on", "REDIRECT", 10**9) == never
    root = connect(srv.port, "root", ROOT_PASSWORD)
    assert ask(root, "CLIENT", "TRACKING", "on", "REDIRECT", bobs_id) == never
    assert ask(mine, "CLIENT", "TRACKINGINFO").startswith(b"%3\r\n$5\r\nflags\r\n~1\r\n$3\r\noff")
    # Redirect to a client of alice that then logs in as bob: it is bob's
    # now, so alice's invalidations are not sent to it (the redirect is broken).
    target = alice(srv)
    assert ask(mine, "CLIENT", "TRACKING", "on", "REDIRECT", client_id(target)) == b"+OK\r\n"
    ask(mine, "GET", "k")
    assert ask(target, "AUTH", "bob", USERS["bob"]) == b"+OK\r\n"
    writer = alice(srv)
    ask(writer, "SET", "k", "secret")
    assert read_reply(mine).startswith(b">2\r\n$21\r\ntracking-redir-broken")
    assert quiet(target)
    for sock in (bobs, mine, root, target, writer):
        sock.close()


# -- tenants --------------------------------------------------------------------------


def test_two_tenants_same_key_names(srv):
    """Alice's and Bob's caches of the same names: each tenant's writes,
    flushes and BCAST prefixes reach its own clients only."""
    a, b = alice(srv), bob(srv)
    a_bcast, b_bcast = alice(srv), bob(srv)
    a_write, b_write = alice(srv), bob(srv)
    for sock in (a, b):
        assert ask(sock, "CLIENT", "TRACKING", "on") == b"+OK\r\n"
        ask(sock, "MGET", "k", "shared")
    for sock in (a_bcast, b_bcast):
        assert ask(sock, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "k") == b"+OK\r\n"
    assert ask(a_write, "SET", "k", "alice") == b"+OK\r\n"
    assert read_exactly(a, len(PUSH_K)) == PUSH_K
    assert read_exactly(a_bcast, len(PUSH_K)) == PUSH_K
    assert quiet(b) and quiet(b_bcast)
    ask(b, "GET", "k")   # bob's is still remembered: his own write invalidates it
    assert ask(b_write, "SET", "k", "bob") == b"+OK\r\n"
    assert read_exactly(b, len(PUSH_K)) == PUSH_K
    assert read_exactly(b_bcast, len(PUSH_K)) == PUSH_K
    assert quiet(a) and quiet(a_bcast)
    assert ask(a_write, "FLUSHALL") == b"+OK\r\n"
    assert read_exactly(a, len(PUSH_NULL)) == PUSH_NULL
    assert read_exactly(a_bcast, len(PUSH_NULL)) == PUSH_NULL
    assert quiet(b) and quiet(b_bcast)
    # Bob's table survived alice's flush: "shared" is still his to invalidate.
    ask(b_write, "SET", "shared", "1")
    shared = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nshared\r\n"
    assert read_exactly(b, len(shared)) == shared
    # INFO counts the caller's tenant only.
    info = ask(a_write, "INFO", "clients")
    assert b"tracking_clients:2\r\n" in info
    for sock in (a, b, a_bcast, b_bcast, a_write, b_write):
        sock.close()


def test_changing_tenant_stops_tracking(srv):
    """Tracking is the tenant's: AUTH as another user turns it off, so the
    old tenant's key names cannot reach the new session."""
    sock = alice(srv)
    assert ask(sock, "CLIENT", "TRACKING", "on") == b"+OK\r\n"
    ask(sock, "GET", "k")
    assert ask(sock, "AUTH", "bob", USERS["bob"]) == b"+OK\r\n"
    assert ask(sock, "CLIENT", "TRACKINGINFO").startswith(b"%3\r\n$5\r\nflags\r\n~1\r\n$3\r\noff")
    writer = alice(srv)
    ask(writer, "SET", "k", "1")
    assert quiet(sock)
    sock.close()
    writer.close()


def test_client_list_flags_and_redir(srv):
    target = alice(srv)
    target_id = client_id(target)
    sock = alice(srv, protocol=2)
    ask(sock, "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", target_id)
    line = ask(sock, "CLIENT", "INFO")
    assert b" flags=tB " in line and b" redir=%d " % target_id in line
    target.close()
    time.sleep(0.2)
    ask(connect(srv.port, "alice", USERS["alice"]), "SET", "x", "1")
    time.sleep(0.2)
    line = ask(sock, "CLIENT", "INFO")
    assert b" flags=tRB " in line
    ask(sock, "CLIENT", "TRACKING", "off")
    assert b" flags=N " in ask(sock, "CLIENT", "INFO")
    assert b" redir=-1 " in ask(sock, "CLIENT", "INFO")
    sock.close()


# -- bounds ---------------------------------------------------------------------------


def test_table_limit_per_tenant(srv):
    """tracking-table-max-keys bounds each tenant's table: past it the
    oldest keys are invalidated (as Redis evicts), and another tenant's
    table is not touched."""
    root = connect(srv.port, "root", ROOT_PASSWORD)
    b = bob(srv)
    a = alice(srv)
    try:
        assert ask(root, "CONFIG", "SET", "tracking-table-max-keys", "10") == b"+OK\r\n"
        ask(b, "CLIENT", "TRACKING", "on")
        ask(b, "MGET", *["b%d" % i for i in range(10)])
        ask(a, "CLIENT", "TRACKING", "on")
        ask(a, "MGET", *["a%d" % i for i in range(10)])
        assert quiet(a)
        a.sendall(resp("MGET", *["a%d" % i for i in range(10, 15)]))
        got = read_reply(a)
        for i in range(5):   # the five oldest went
            assert b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\na%d\r\n" % i in got
        assert b"a5" not in got
        info = ask(a, "INFO", "stats")
        assert b"tracking_total_keys:10\r\n" in info
        assert b"tracking_total_items:10\r\n" in info
        assert quiet(b)   # bob's 10 keys are his: not evicted for alice's
        assert b"tracking_total_keys:20\r\n" in ask(root, "INFO", "stats")
        # Lowering the limit trims every table at once.
        assert ask(root, "CONFIG", "SET", "tracking-table-max-keys", "4") == b"+OK\r\n"
        assert read_reply(b).count(b"invalidate") == 6
        assert b"tracking_total_keys:8\r\n" in ask(root, "INFO", "stats")
    finally:
        ask(root, "CONFIG", "SET", "tracking-table-max-keys", "1000000")
        for sock in (root, a, b):
            sock.close()


def test_prefix_bound_and_server_stays_up(srv):
    """A tenant's BCAST prefixes are bounded (each of its writes is checked
    against them); going over is a clear error, and nothing else changes."""
    a = alice(srv)
    many = []
    for i in range(1001):
        many += ["PREFIX", "p%04d:" % i]
    reply = ask(a, "CLIENT", "TRACKING", "on", "BCAST", *many)
    assert reply == (b"-ERR too many client tracking prefixes in this tenant "
                     b"(at most 1000 BCAST prefixes, 65536 bytes in all)\r\n")
    assert ask(a, "CLIENT", "TRACKINGINFO").startswith(b"%3\r\n$5\r\nflags\r\n~1\r\n$3\r\noff")
    assert ask(a, "CLIENT", "TRACKING", "on", "BCAST", *many[:2000]) == b"+OK\r\n"
    other = alice(srv)
    assert ask(other, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "zz") == (
        b"-ERR too many client tracking prefixes in this tenant (at most 1000 BCAST prefixes, 65536 bytes in all)\r\n")
    assert ask(other, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "x" * 65537) == (
        b"-ERR too many client tracking prefixes in this tenant (at most 1000 BCAST prefixes, 65536 bytes in all)\r\n")
    b = bob(srv)   # another tenant has its own room
    assert ask(b, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "zz") == b"+OK\r\n"
    ask(other, "SET", "p0999:x", "1")
    assert read_reply(a) == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\np0999:x\r\n"
    a.close()
    time.sleep(0.2)   # its prefixes are freed with it
    assert ask(other, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "zz") == b"+OK\r\n"
    other.close()
    b.close()


def test_expiry_invalidates(srv):
    a = alice(srv)
    writer = alice(srv)
    ask(writer, "SET", "k", "v", "PX", "1000")
    a.sendall(resp("CLIENT", "TRACKING", "on") + resp("GET", "k"))
    assert read_exactly(a, 12) == b"+OK\r\n$1\r\nv\r\n"
    # The active expiry cycle deletes it without anyone reading it.
    assert read_exactly(a, len(PUSH_K), timeout=10) == PUSH_K
    a.close()
    writer.close()


def test_reset_turns_tracking_off(srv):
    a = alice(srv)
    writer = alice(srv)
    # a key of its own: other tests of this server write "k"
    a.sendall(resp("CLIENT", "TRACKING", "on") + resp("GET", "reset:k") + resp("RESET")
              + resp("AUTH", "alice", USERS["alice"]) + resp("CLIENT", "GETREDIR"))
    expected = b"+OK\r\n_\r\n+RESET\r\n+OK\r\n:-1\r\n"
    assert read_exactly(a, len(expected)) == expected
    ask(writer, "SET", "reset:k", "1")
    assert quiet(a)
    a.close()
    writer.close()


# -- keys that leave without a command: reload, eviction ------------------------------


def test_debug_reload_and_eviction_invalidate(make_server):
    """DEBUG RELOAD replaces every key (the flush null); a key evicted under
    maxmemory is invalidated like a write by nobody."""
    server = make_server()
    a = connect(server.port)
    admin = connect(server.port)
    ask(admin, "SET", "k", "v")
    assert ask(a, "CLIENT", "TRACKING", "on") == b"+OK\r\n"
    assert ask(a, "GET", "k") == b"$1\r\nv\r\n"
    assert ask(admin, "DEBUG", "RELOAD") == b"+OK\r\n"
    assert read_exactly(a, len(PUSH_NULL)) == PUSH_NULL
    assert ask(a, "GET", "k") == b"$1\r\nv\r\n"
    info = ask(admin, "INFO", "memory").decode()
    used = int(info.split("used_memory:")[1].split("\r\n")[0])
    # volatile-ttl with k the only key that has a TTL: the first eviction
    # takes k (allkeys-random left it alive ~2% of the time).
    assert ask(admin, "EXPIRE", "k", 1000) == b":1\r\n"
    ask(admin, "CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
    assert ask(admin, "CONFIG", "SET", "maxmemory", used + 2 * 1024**2) == b"+OK\r\n"
    value = "x" * 10_000
    for i in range(1000):   # 10 MB into 2 MB of room: k goes first
        admin.sendall(resp("SET", "filler:%d" % i, value))
        if read_exactly(admin, 5) != b"+OK\r\n":
            break   # OOM: nothing volatile is left (ask() below reads the rest)
    got = read_reply(a)
    ask(admin, "CONFIG", "SET", "maxmemory", 0)
    assert got == PUSH_K
    assert ask(admin, "EXISTS", "k") == b":0\r\n"
    a.close()
    admin.close()


def test_table_bytes_bound(srv):
    """Key names are remembered even for missing keys, and one may be
    512 MB: a tenant's table holds at most 64 MB of names, the oldest
    invalidated past it."""
    a = alice(srv)
    ask(a, "CLIENT", "TRACKING", "on")
    ask(a, "GET", "small")
    first = b"1" * (40 * 1024**2)
    a.sendall(resp("GET", first))
    assert read_exactly(a, 3) == b"_\r\n"
    assert quiet(a)
    a.sendall(resp("GET", b"2" * (40 * 1024**2)))   # 80 MB: both older names go
    small = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nsmall\r\n"
    head = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n" % len(first)
    assert read_exactly(a, 3 + len(small) + len(head)) == b"_\r\n" + small + head
    assert read_exactly(a, len(first) + 2) == first + b"\r\n"
    assert b"tracking_total_keys:1\r\n" in ask(a, "INFO", "stats")
    a.close()


def test_append_only_log_keeps_no_tracking(make_server, tmp_path):
    """With the log on: an expiry is both logged (its DEL) and invalidated;
    CLIENT TRACKING and the invalidations are not logged, and the replay
    after a restart is the data alone."""
    server = make_server("--appendonly", "yes", "--save", "")
    a = connect(server.port)
    writer = connect(server.port)
    assert ask(a, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "b") == b"+OK\r\n"
    tracked = connect(server.port)
    tracked.sendall(resp("CLIENT", "TRACKING", "on") + resp("GET", "k"))
    assert read_exactly(tracked, 8) == b"+OK\r\n_\r\n"
    ask(writer, "SET", "k", "v", "PX", "300")
    assert read_exactly(tracked, len(PUSH_K)) == PUSH_K
    tracked.sendall(resp("GET", "k"))
    assert read_exactly(tracked, 7) == b"$1\r\nv\r\n"
    assert read_exactly(tracked, len(PUSH_K), timeout=10) == PUSH_K   # expired: invalidated
    ask(writer, "SET", "b1", "1")
    push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nb1\r\n"
    assert read_exactly(a, len(push)) == push
    for sock in (a, writer, tracked):
        sock.close()
    server.stop()
    log = b"".join(path.read_bytes() for path in (tmp_path / "appendonlydir").glob("*.aof"))
    assert b"TRACKING" not in log.upper() and b"invalidate" not in log
    assert b"PEXPIREAT" in log.upper() or b"PXAT" in log.upper() or b"DEL" in log.upper()
    again = make_server("--appendonly", "yes", "--save", "")
    check = connect(again.port)
    assert ask(check, "EXISTS", "k") == b":0\r\n"
    assert ask(check, "GET", "b1") == b"$1\r\n1\r\n"
    check.close()


def test_debug_pause_cron(make_server, srv):
    """DEBUG PAUSE-CRON 1 (Redis 7.0's, for its tracking tests) stops the
    cron's work, here the active expiry; 0 resumes it. Root only."""
    server = make_server()
    admin = connect(server.port)
    assert ask(admin, "DEBUG", "PAUSE-CRON", "x").startswith(b"-ERR value is not an integer")
    assert ask(admin, "DEBUG", "PAUSE-CRON", "1") == b"+OK\r\n"
    assert ask(admin, "SET", "k", "v", "PX", "50") == b"+OK\r\n"
    time.sleep(0.5)   # 5 cron runs at hz 10, had it run
    assert ask(admin, "DBSIZE") == b":1\r\n"   # expired, not yet removed
    assert ask(admin, "DEBUG", "PAUSE-CRON", "0") == b"+OK\r\n"
    deadline = time.monotonic() + 10
    while ask(admin, "DBSIZE") != b":0\r\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ask(admin, "DBSIZE") == b":0\r\n"
    admin.close()
    a = alice(srv)
    assert ask(a, "DEBUG", "PAUSE-CRON", "1").startswith(b"-NOPERM")
    a.close()


def test_info_lazyfree_pending_objects(make_server, srv):
    """Redis's suite waits for INFO's lazyfree_pending_objects to reach 0;
    the queue is every tenant's, so only root's INFO shows it."""
    server = make_server()
    admin = connect(server.port)
    assert b"\r\nlazyfree_pending_objects:0\r\n" in ask(admin, "INFO", "memory")
    admin.close()
    a = alice(srv)
    assert b"lazyfree_pending_objects" not in ask(a, "INFO", "memory")
    a.close()


# -- a client's own invalidations: after its reply (eviction's: before) ---------------

# (client, command) or ("sleep", seconds). Every client's bytes after each
# step are compared: the order of a reply and a push shows in them.
OWN_INVALIDATIONS = [
    ("a", ("DEBUG", "SET-ACTIVE-EXPIRE", "0")),   # a key that expires does so lazily
    ("a", ("CLIENT", "TRACKING", "on")),
    ("a", ("MSET", "x", "1", "y", "2")), ("a", ("GET", "y")),
    ("a", ("PEXPIRE", "y", "600")),               # its own write: the reply, then the push
    ("a", ("GET", "y")), ("sleep", 0.7),
    ("a", ("MGET", "x", "y")),                    # y expires while MGET reads it
    ("a", ("MULTI",)), ("a", ("INCR", "x")), ("a", ("GET", "x")),
    ("a", ("EXEC",)),                             # the whole EXEC reply, then the push
    ("a", ("MULTI",)), ("a", ("FLUSHDB",)), ("a", ("EXEC",)),   # then the null
    ("a", ("LRANGE", "l2", "0", "-1")),
    ("a", ("BLMOVE", "l1", "l2", "LEFT", "LEFT", "0")),
    ("b", ("RPUSH", "l1", "foo")),                # a: BLMOVE's reply, then the push of l2
    ("a", ("CLIENT", "TRACKING", "on", "noloop")), ("a", ("GET", "x")),
    ("a", ("SET", "x", "1")), ("a", ("PEXPIRE", "x", "600")), ("a", ("GET", "x")),
    ("sleep", 0.7), ("a", ("GET", "x")),          # NOLOOP: its own expiry is not sent
    ("a", ("DEBUG", "SET-ACTIVE-EXPIRE", "1")),
]


def play_own(port: int) -> list:
    socks = {name: connect(port) for name in ("a", "b")}
    seen = []
    try:
        for who, command in OWN_INVALIDATIONS:
            if who == "sleep":
                time.sleep(command)
                continue
            socks[who].sendall(resp(*command))
            got = {name: b"" for name in socks}
            by_sock = {sock: name for name, sock in socks.items()}
            # Until nothing arrives for 0.1 s (BLMOVE's step has no reply).
            while True:
                ready, _, _ = select.select(list(by_sock), [], [], 0.1)
                if not ready:
                    break
                for sock in ready:
                    got[by_sock[sock]] += sock.recv(65536)
            seen += [(" ".join(command), name, got[name]) for name in sorted(got)]
    finally:
        for sock in socks.values():
            sock.close()
    return seen


def test_own_invalidations_follow_the_reply_as_redis(make_server, redis_server):
    """A key the client's own command changes (a write without NOLOOP, a
    lazy expiry while it reads, a FLUSHDB in its MULTI, the push of its
    served BLMOVE) is invalidated after that command's reply, after the
    whole EXEC reply, as redis-server 7.0 does (its tracking_pending_keys)."""
    flush = connect(redis_server.port)
    ask(flush, "FLUSHALL")
    flush.close()
    expected = play_own(redis_server.port)
    got = play_own(make_server().port)
    for want, have in zip(expected, got):
        assert have == want
    assert len(got) == len(expected)


def test_eviction_invalidation_precedes_the_reply(make_server):
    """A key evicted to make room for the client's own write is invalidated
    before that write's reply (Redis evicts before the command runs)."""
    server = make_server()
    a = connect(server.port)
    admin = connect(server.port)
    ask(admin, "SET", "k", "v", "EX", "1000")   # volatile-ttl: k, the soonest to expire
    assert ask(a, "CLIENT", "TRACKING", "on") == b"+OK\r\n"
    assert ask(a, "GET", "k") == b"$1\r\nv\r\n"
    info = ask(admin, "INFO", "memory").decode()
    used = int(info.split("used_memory:")[1].split("\r\n")[0])
    ask(admin, "CONFIG", "SET", "maxmemory-policy", "volatile-ttl")
    # No eviction by the cron (its push would follow some earlier reply).
    assert ask(admin, "DEBUG", "PAUSE-CRON", "1") == b"+OK\r\n"
    assert ask(admin, "CONFIG", "SET", "maxmemory", used + 2 * 1024**2) == b"+OK\r\n"
    value = "x" * 10_000
    got = b""
    after_reply = b""
    for i in range(1000):   # 10 MB into 2 MB of room: k goes first, then fillers
        a.sendall(resp("SET", "filler:%d" % i, value, "EX", "100000"))
        got = read_exactly(a, 5)
        if got != b"+OK\r\n":
            break
        # A push after the reply (in the same write) would be here already.
        if select.select([a], [], [], 0)[0]:
            after_reply = read_reply(a)
            break
    else:
        got = b""
    # The push, then the reply of the write that evicted k.
    got += read_exactly(a, len(PUSH_K))
    ask(admin, "CONFIG", "SET", "maxmemory", 0)
    ask(admin, "DEBUG", "PAUSE-CRON", "0")
    assert after_reply == b""
    assert got == PUSH_K + b"+OK\r\n"
    a.close()
    admin.close()

