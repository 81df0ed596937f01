"""Connections and buffers (issue 15): what a client can make the server hold
before it authenticates, how many such clients there may be, and the output
a client that does not read may leave unsent (client-output-buffer-limit)."""

import resource
import socket
import threading
import time

import pytest
import redis

from conftest import (closed, exchange, free_port, locked_server, login, read_reply, resp)

ROOT_PASSWORD = "root-pw-connection-limits"
LONG_PASSWORD = "p" * 1024   # ACL GENPASS 4096's length: the longest Redis makes
NOAUTH = b"-NOAUTH Authentication required.\r\n"
TOO_BIG = b"-ERR Protocol error: unauthenticated request too big (over 2048 bytes before AUTH)\r\n"


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("connection-limits")
    with locked_server(data_dir, {"alice": "alice-pw", "bob": "bob-pw", "long": LONG_PASSWORD},
                       ROOT_PASSWORD) as proc:
        yield proc


def rss_mb(pid: int) -> float:
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect_from(port: int, source: str, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True   # nothing to read, not closed
    except OSError:
        return False


def client_ids(client: redis.Redis) -> set:
    return {int(entry["id"]) for entry in client.client_list()}


def wait_gone(client: redis.Redis, client_id: int, timeout: float) -> float:
    """Seconds until `client_id` left CLIENT LIST (or AssertionError)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if client_id not in client_ids(client):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("client %d still connected after %.1f s" % (client_id, timeout))


# -- before AUTH -----------------------------------------------------------------------

def test_unauthenticated_input_is_capped_with_a_clear_error(locked):
    # A partial request held before AUTH: 2 KB at most, then an error and the close.
    sock = locked.raw()
    sock.sendall(b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$16000\r\n" + b"x" * 1900)
    time.sleep(0.2)
    sock.sendall(b"x" * 1000)
    assert read_reply(sock) == TOO_BIG and closed(sock)
    # A whole request over 2 KB in one read (each argument under Redis's 16 KB).
    sock = locked.raw()
    sock.sendall(resp("AUTH", "alice", "x" * 3000))
    assert read_reply(sock) == TOO_BIG and closed(sock)
    # Redis's own pre-auth rules stay, with its texts.
    sock = locked.raw()
    sock.sendall(b"*11\r\n")
    assert read_reply(sock) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    # What follows an AUTH in one read waits for the password check: capped too.
    sock = locked.raw()
    sock.sendall(resp("AUTH", "alice", "alice-pw") + resp("SET", "k", "v" * 1000) * 3)
    assert read_reply(sock).endswith(TOO_BIG) and closed(sock)
    # The longest password Redis generates fits, with a long client name.
    sock = locked.raw()
    sock.sendall(resp("HELLO", "3", "AUTH", "long", LONG_PASSWORD, "SETNAME", "n" * 700)
                 + resp("CLIENT", "GETNAME"))
    reply = read_reply(sock)
    assert reply.startswith(b"%7\r\n") and reply.endswith(b"$700\r\n" + b"n" * 700 + b"\r\n")
    # Once authenticated, the usual limits apply: 100 KB values are fine.
    exchange(sock, resp("SET", "k", "v" * 100000), b"+OK\r\n")
    sock.close()
    assert locked.alive()


def test_unauthenticated_connections_are_capped_per_address_and_in_total(locked):
    root = login(locked, "root")
    root.config_set("unauthenticated-maxclients-per-address", 5)
    held = []
    try:
        rejected = int(root.info("stats")["rejected_connections"])
        held = [connect_from(locked.port, "127.0.0.3") for _ in range(5)]
        for sock in held:
            exchange(sock, resp("PING"), NOAUTH)
        extra = connect_from(locked.port, "127.0.0.3")
        assert read_reply(extra) == (b"-ERR max number of unauthenticated clients from this "
                                     b"address reached\r\n")
        assert closed(extra)
        assert int(root.info("stats")["rejected_connections"]) == rejected + 1
        # Another address connects and logs in; so does this one once a slot frees
        # (an AUTH counts the connection out of the unauthenticated ones).
        other = connect_from(locked.port, "127.0.0.4")
        exchange(other, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
        exchange(held[0], resp("AUTH", "bob", "bob-pw"), b"+OK\r\n")
        again = connect_from(locked.port, "127.0.0.3")
        exchange(again, resp("AUTH", "bob", "bob-pw") + resp("PING"), b"+OK\r\n+PONG\r\n")
        held += [other, again]
        # The total: here 6 unauthenticated connections at most, whatever the
        # address. At the cap a newcomer is let in and the oldest closed, so a
        # flood from many addresses cannot keep users out.
        root.config_set("unauthenticated-maxclients-per-address", 0)
        root.config_set("unauthenticated-maxclients", 6)
        held += [connect_from(locked.port, "127.0.0.%d" % n) for n in (5, 6)]   # 4 + 2
        for sock in held[-2:]:
            exchange(sock, resp("PING"), NOAUTH)
        newcomer = connect_from(locked.port, "127.0.0.7")
        assert read_reply(held[1]) == b"-ERR max number of unauthenticated clients reached\r\n"
        assert closed(held[1])
        assert all(map(still_open, held[2:5] + held[-2:]))
        exchange(newcomer, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
        held.append(newcomer)
        # Logged in, it counts out: the next newcomer fits, the one after it
        # pushes out the next oldest.
        held.append(connect_from(locked.port, "127.0.0.8"))
        exchange(held[-1], resp("PING"), NOAUTH)
        assert still_open(held[2])
        held.append(connect_from(locked.port, "127.0.0.9"))
        exchange(held[-1], resp("PING"), NOAUTH)
        assert closed(held[2])
        assert all(map(still_open, held[3:5]))
        assert root.config_get("unauthenticated-maxclients*") == {
            "unauthenticated-maxclients": "6", "unauthenticated-maxclients-per-address": "0"}
    finally:
        for sock in held:
            sock.close()
        root.config_set("unauthenticated-maxclients", 0)
        root.config_set("unauthenticated-maxclients-per-address", 1000)
        root.close()


def test_users_log_in_during_a_flood_from_many_addresses(locked):
    # The flood keeps the unauthenticated connections at their total cap (50
    # here), from 250 addresses, each under its own cap; users still log in.
    root = login(locked, "root")
    root.config_set("unauthenticated-maxclients", 50)
    stop = threading.Event()
    opened = [0]

    def flood():
        socks = []
        while not stop.is_set():
            n = opened[0]
            try:
                socks.append(connect_from(locked.port, "127.0.4.%d" % (1 + n % 250)))
            except OSError:
                pass
            opened[0] += 1
            if len(socks) > 300:
                socks.pop(0).close()
        for sock in socks:
            sock.close()

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        deadline = time.monotonic() + 10
        while opened[0] < 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for _ in range(5):
            alice = login(locked, "alice")
            assert alice.set("k", "v") and alice.get("k") == b"v"
            alice.close()
        assert opened[0] > 250   # the flood went on meanwhile
    finally:
        stop.set()
        flooder.join()
        root.config_set("unauthenticated-maxclients", 0)
        root.close()


@pytest.mark.slow
def test_a_flood_of_unauthenticated_connections_costs_little_and_users_still_log_in(tmp_path):
    flood, per_source = 5000, 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < flood + 2200:
        pytest.skip("RLIMIT_NOFILE hard limit %d is too low" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, flood + 2200), hard))
    # Each flooding connection holds the most it may before AUTH: an AUTH whose
    # password is nearly 2 KB, never finished.
    partial = b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$1990\r\n" + b"x" * 1980
    socks = []
    try:
        with locked_server(tmp_path, {"alice": "alice-pw"}, ROOT_PASSWORD,
                           auth_timeout=120) as server:
            pid = server.process.pid
            root = login(server, "root")
            before = rss_mb(pid)
            # First, 2,000 that try to hold what Redis's own pre-auth rules allow
            # (10 arguments of 16 KB: 174 KB of RSS each, measured): refused,
            # and their memory freed at once, not at the auth timeout.
            big = b"*10\r\n" + (b"$16384\r\n" + b"x" * 16384 + b"\r\n") * 9 + b"$16384\r\n"
            for i in range(2000):
                sock = connect_from(server.port, "127.0.2.%d" % (1 + i // per_source))
                try:
                    sock.sendall(big)
                except OSError:
                    pass   # refused while sending
                socks.append(sock)
            for i in range(flood):
                # 10 flooding addresses of 500 each (the cap per address is 1000).
                sock = connect_from(server.port, "127.0.1.%d" % (1 + i // per_source))
                sock.sendall(partial)
                socks.append(sock)
            # A real user logs in during the flood, from its own address.
            alice = login(server, "alice")
            assert alice.set("k", "v") and alice.get("k") == b"v"
            deadline = time.monotonic() + 30
            while int(root.info("clients")["connected_clients"]) != flood + 2:
                assert time.monotonic() < deadline, "the flood was not all accepted"
                time.sleep(0.2)
            grown = rss_mb(pid) - before
            print("RSS growth for %d unauthenticated connections: %.1f MB" % (flood, grown))
            assert grown <= 40, "5,000 unauthenticated connections cost %.1f MB" % grown
            assert all(closed(sock) for sock in socks[:2000:100])   # refused
            assert all(map(still_open, socks[2000::100]))   # held, not closed
            assert login(server, "alice").ping() is True
    finally:
        for sock in socks:
            sock.close()


# -- output limits ---------------------------------------------------------------------

def stalled_reader(server, value_size: int, login_as: tuple | None = None):
    """A client that asks for a big value and never reads: (its socket, its id)."""
    sock = connect_from(server.port, "127.0.0.1", rcvbuf=4096)
    if login_as:
        exchange(sock, resp("AUTH", *login_as), b"+OK\r\n")
    sock.sendall(resp("CLIENT", "ID"))
    reply = read_reply(sock)
    client_id = int(reply[1:-2])
    sock.sendall(resp("SET", "big", "x" * value_size) + resp("GET", "big"))
    return sock, client_id


def omem(client: redis.Redis, client_id: int) -> int:
    for entry in client.client_list():
        if int(entry["id"]) == client_id:
            return int(entry["omem"])
    return -1


def test_output_buffer_limit_hard_and_soft(make_server):
    server = make_server()
    other = server.client()
    assert other.config_get("client-output-buffer-limit") == {"client-output-buffer-limit":
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"}
    # Redis's default for normal clients is no limit: a reader that never
    # reads keeps its 8 MB reply queued (root: no tenant limit either).
    sock, reader = stalled_reader(server, 8 * 1024 * 1024)
    deadline = time.monotonic() + 10
    while omem(other, reader) < 1024 * 1024:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert reader in client_ids(other)
    # Over the hard limit: closed (here by the cron, the client being paused).
    other.config_set("client-output-buffer-limit", "normal 1mb 512kb 2")
    wait_gone(other, reader, 5)
    sock.close()
    assert other.ping() is True
    log = open(server.log_path, "rb").read()
    assert b"Client id=%d addr=" % reader in log
    assert b"scheduled to be closed ASAP for overcoming of output buffer limits." in log

    # At once, where the output grows past the hard limit.
    sock, reader = stalled_reader(server, 8 * 1024 * 1024)
    wait_gone(other, reader, 5)
    sock.close()

    # Over the soft limit only (no hard limit): closed once over it for longer
    # than the seconds, not before.
    other.config_set("client-output-buffer-limit", "normal 0 512kb 3")
    sent = time.monotonic()   # the server sees the output over the limit after this
    sock, reader = stalled_reader(server, 8 * 1024 * 1024)
    deadline = time.monotonic() + 10
    while omem(other, reader) < 1024 * 1024:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1)
    assert reader in client_ids(other)
    wait_gone(other, reader, 15)
    assert time.monotonic() - sent >= 3
    sock.close()
    # A client that reads is not affected by either limit.
    other.set("big", b"y" * (8 * 1024 * 1024))
    assert len(other.get("big")) == 8 * 1024 * 1024
    assert other.ping() is True


def test_tenant_output_limit_bounds_normal_clients_of_non_root_tenants(locked):
    root = login(locked, "root")
    bob = login(locked, "bob")
    try:
        root.config_set("tenant-client-output-limit", "2mb")
        assert root.config_get("tenant-client-output-limit") == {
            "tenant-client-output-limit": str(2 * 1024 * 1024)}
        # alice's reader that never reads: over 2 MB, closed, though the
        # normal class has no limit.
        sock, reader = stalled_reader(locked, 8 * 1024 * 1024, ("alice", "alice-pw"))
        wait_gone(root, reader, 5)
        sock.close()
        # root's is not bounded by it.
        sock, reader = stalled_reader(locked, 8 * 1024 * 1024, ("root", ROOT_PASSWORD))
        deadline = time.monotonic() + 10
        while omem(root, reader) < 2 * 1024 * 1024 + 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        assert reader in client_ids(root)
        sock.close()
        # Another tenant's client noticed nothing.
        assert bob.set("b", "1") and bob.get("b") == b"1"
    finally:
        root.config_set("tenant-client-output-limit", "64mb")
        root.close()
        bob.close()


# -- CONFIG GET/SET client-output-buffer-limit, as redis-server answers ------------------

OBUF_VALUES = [
    "normal 1mb 512kb 2", "", "normal", "normal 1 2", "normal 1 2 3 pubsub", "replica 1 2 3",
    "slave 1gb 2g 10", "master 1 2 3", "NORMAL 1 2 3", "foo 1 2 3", "normal -1 2 3",
    "normal 1 2 -3", "normal 1 2 +3", "normal 1 2 3x", "normal 1 2  3", " normal 1 2 3",
    "normal 1 2 3 ", "normal 1 2 4294967296", "normal 1 2 99999999999999999999",
    "normal 1 2 2147483648", "normal 1k 2KB 0", "normal 18446744073709551615 1 1",
    "normal 18446744073709551616 1 1", "normal 0 0 0 normal 5 5 5", "pubsub 1 1 1 foo 1 1 1",
    "normal 1.5mb 1 1", "normal 1 1 0x10", "normal 1 1 010", "normal 1 1 ", "normal\t1 1 1",
    'normal "1" 1 1', "normal 1 1 -0", "normal 99999999999999999999999 1 1", "normal  1 1",
    "normal 1 1 \t3", "normal 1 1 +", "normal 1 1 9223372036854775808", "normal 1 1 4294967297",
    "normal 1 1 -4294967296", "normal 1 1 -4294967295", "normal 1MB 1Gb 1",
    "normal 1 1 1 master 1 1 1", "normal 1 1 1 normal 1 2 x", "normal 1 1 -", "normal 1 1 1\t",
    "normal +1 1 1", "normal 1b 1B 1", "normal 1 1 -9223372036854775809", "Replica 5 5 5",
    "PubSub 6 6 6", "normal 1 1 1 slave x", "foo",
    "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
]


def config_outcome(client: redis.Redis, value: str) -> tuple:
    try:
        result = client.config_set("client-output-buffer-limit", value)
    except redis.ResponseError as exc:
        result = "error: %s" % exc
    return result, client.config_get("client-output-buffer-*"), \
        client.config_get("CLIENT-OUTPUT-BUFFER-LIMIT")


def test_config_client_output_buffer_limit_answers_as_redis(make_server, redis_server):
    tenantkv = make_server().client()
    reference = redis.Redis(port=redis_server.port)
    reference.config_set("client-output-buffer-limit",
                         "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
    for value in OBUF_VALUES:
        expected = config_outcome(reference, value)
        actual = config_outcome(tenantkv, value)
        assert actual == expected, value
    # A failed parameter leaves every other of the same CONFIG SET unchanged.
    for client in (reference, tenantkv):
        with pytest.raises(redis.ResponseError, match="Invalid client class"):
            client.config_set("maxmemory", "10mb", "client-output-buffer-limit", "foo 1 1 1")
        assert client.config_get("maxmemory") == {"maxmemory": "0"}
