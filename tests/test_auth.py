"""AUTH, HELLO AUTH and NOAUTH against a real server with users in its store."""

import socket
import threading
import time

import pytest
import redis

from conftest import WRONGPASS, ServerProcess, exchange, locked_fixture, read_reply, resp

ROOT_PASSWORD = "root-secret-for-tests"
NOAUTH = b"-NOAUTH Authentication required.\r\n"

# A server with auth required (default user off), root and two users.
locked = locked_fixture({"alice": "alice-pw", "bob": "bob-pw"}, ROOT_PASSWORD, auth_timeout=2)


def test_unauthenticated_client_gets_noauth_in_redis_order(locked):
    sock = locked.raw()
    exchange(sock, resp("PING"), NOAUTH)
    exchange(sock, resp("GET", "k"), NOAUTH)
    # unknown command and wrong arity come before NOAUTH, as in Redis
    exchange(sock, resp("NOSUCH"), b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n")
    exchange(sock, resp("GET"), b"-ERR wrong number of arguments for 'get' command\r\n")
    exchange(sock, resp("AUTH"), b"-ERR wrong number of arguments for 'auth' command\r\n")
    exchange(sock, resp("HELLO", "3"), b"-NOAUTH HELLO must be called with the client already "
             b"authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to "
             b"authenticate the client and select the RESP protocol version at the same time\r\n")
    exchange(sock, resp("AUTH", "a", "b", "c"), b"-ERR syntax error\r\n")
    # AUTH <password> is the default user, which does not exist here
    exchange(sock, resp("AUTH", ROOT_PASSWORD), WRONGPASS)
    exchange(sock, resp("AUTH", "root", "wrong"), WRONGPASS)
    exchange(sock, resp("AUTH", "nobody", ROOT_PASSWORD), WRONGPASS)
    exchange(sock, resp("AUTH", "root", ROOT_PASSWORD), b"+OK\r\n")
    exchange(sock, resp("PING"), b"+PONG\r\n")
    sock.close()


def test_requests_pipelined_after_auth_wait_for_it_in_order(locked):
    sock = locked.raw()
    exchange(sock, resp("GET", "k") + resp("AUTH", "alice", "alice-pw") + resp("SET", "k", "v")
             + resp("GET", "k") + resp("AUTH", "alice", "bad") + resp("GET", "k"),
             NOAUTH + b"+OK\r\n+OK\r\n$1\r\nv\r\n" + WRONGPASS + b"$1\r\nv\r\n")
    sock.close()


def test_hello_auth_and_redis_py_credentials(locked):
    sock = locked.raw()
    sock.sendall(resp("HELLO", "3", "AUTH", "bob", "bob-pw", "SETNAME", "b1") + resp("CLIENT", "GETNAME"))
    reply = read_reply(sock)
    assert reply.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n")
    assert b"$5\r\nproto\r\n:3\r\n" in reply and reply.endswith(b"$2\r\nb1\r\n")
    exchange(sock, resp("HELLO", "2", "AUTH", "bob", "wrong"), WRONGPASS)
    sock.close()
    client = locked.client(username="bob", password="bob-pw", protocol=3)
    assert client.ping() is True
    client.client_setname("b2")
    entry = [c for c in client.client_list() if c["name"] == "b2"][0]
    assert entry["user"] == "bob"
    with pytest.raises(redis.AuthenticationError):
        locked.client(username="bob", password="nope").ping()


def test_users_see_only_their_own_keyspace(locked):
    alice = locked.client(username="alice", password="alice-pw")
    bob = locked.client(username="bob", password="bob-pw")
    alice.flushall()
    bob.flushall()
    alice.set("same-name", "alice's")
    bob.set("same-name", "bob's")
    alice.set("only-alice", 1)
    assert alice.get("same-name") == b"alice's"
    assert bob.get("same-name") == b"bob's"
    assert bob.get("only-alice") is None
    assert sorted(bob.keys("*")) == [b"same-name"]
    assert bob.dbsize() == 1 and alice.dbsize() == 2
    bob.flushall()
    assert alice.dbsize() == 2
    # re-AUTH on a live connection switches tenant
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw") + resp("GET", "same-name"),
             b"+OK\r\n$7\r\nalice's\r\n")
    exchange(sock, resp("AUTH", "bob", "bob-pw") + resp("GET", "same-name"), b"+OK\r\n$-1\r\n")
    sock.close()


def test_reset_returns_to_unauthenticated(locked):
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    exchange(sock, resp("RESET") + resp("GET", "k"), b"+RESET\r\n" + NOAUTH)
    sock.close()


def test_limits_before_auth_close_the_connection(locked):
    sock = locked.raw()
    sock.sendall(resp(*(["ECHO"] + ["x"] * 11)))
    assert read_reply(sock) == b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    sock.close()
    sock = locked.raw()
    sock.sendall(resp("AUTH", "root", "x" * 20000))
    assert read_reply(sock) == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    sock.close()
    # after AUTH the usual limits apply (tenantkv parses a read at once: a
    # request pipelined behind AUTH is still held to the pre-AUTH limits)
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    exchange(sock, resp("ECHO", "y" * 20000), b"$20000\r\n" + b"y" * 20000 + b"\r\n")
    sock.close()


def test_unauthenticated_client_is_closed_after_the_deadline(locked):
    sock = locked.raw()
    started = time.monotonic()
    sock.settimeout(10)
    assert sock.recv(100) == b""   # closed by the server (auth_timeout = 2 s)
    assert 1.5 < time.monotonic() - started < 6
    sock.close()


def test_authenticating_clients_do_not_stall_others(locked):
    # 20 clients AUTH at once (argon2id each) while a 21st PINGs in a loop.
    pinger = locked.client(username="alice", password="alice-pw")
    pinger.ping()
    latencies = []
    stop = threading.Event()

    def ping_loop():
        while not stop.is_set():
            started = time.perf_counter()
            pinger.ping()
            latencies.append(time.perf_counter() - started)

    def authenticate():
        client = locked.client(username="bob", password="bob-pw")
        assert client.ping() is True
        client.close()

    thread = threading.Thread(target=ping_loop)
    thread.start()
    time.sleep(0.05)
    workers = [threading.Thread(target=authenticate) for _ in range(20)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    thread.join()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print("PING p99 during 20 concurrent AUTHs: %.1f ms over %d pings" % (p99 * 1000, len(latencies)))
    assert p99 < 0.05


def test_nopass_default_user(server):
    # the shared test server runs with auth.default_user = nopass (the default today)
    sock = server.raw()
    exchange(sock, resp("AUTH", "foo"), b"-ERR AUTH <password> called without any password "
             b"configured for the default user. Are you sure your configuration is correct?\r\n")
    exchange(sock, resp("AUTH", "default", "anything"), b"+OK\r\n")
    exchange(sock, resp("PING"), b"+PONG\r\n")
    sock.close()


@pytest.mark.parametrize("given", [None, "a-given-root-password"])
def test_first_start_creates_root(tmp_path, given, monkeypatch):
    monkeypatch.setenv("TENANTKV_AUTH__DEFAULT_USER", "off")
    if given:
        monkeypatch.setenv("TENANTKV_ROOT_PASSWORD", given)
    else:
        monkeypatch.delenv("TENANTKV_ROOT_PASSWORD", raising=False)
    with ServerProcess(tmp_path) as proc:
        path = tmp_path / "root.password"
        if given:
            assert not path.exists()
            password = given
        else:
            assert path.stat().st_mode & 0o777 == 0o600
            password = path.read_text().strip()
        assert len(password) >= 16
        client = proc.client(username="root", password=password)
        assert client.ping() is True
    log = open(proc.log_path).read()
    assert "root" in log and password not in log
    if not given:
        assert str(tmp_path / "root.password") in log
    # a restart keeps the users (no new root, the same password works)
    with ServerProcess(tmp_path) as proc:
        assert proc.client(username="root", password=password).ping() is True


def test_non_root_users_cannot_run_admin_commands(locked):
    sock = locked.raw()
    exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
    for command in (("SHUTDOWN",), ("DEBUG", "SLEEP", "0"), ("CONFIG", "SET", "hz", "20"), ("config", "get", "hz")):
        name = command[0].lower() + ("|" + command[1].lower() if command[0].lower() == "config" else "")
        exchange(sock, resp(*command),
                 b"-NOPERM this user has no permissions to run the '%s' command\r\n" % name.encode())
    exchange(sock, resp("OBJECT", "ENCODING", "nokey"), b"$-1\r\n")
    root = locked.client(username="root", password=ROOT_PASSWORD)
    assert root.config_get("hz")["hz"]
    assert locked.alive()
    sock.close()


def test_unauthenticated_shutdown_is_refused(locked):
    sock = locked.raw()
    exchange(sock, resp("SHUTDOWN", "NOSAVE"), NOAUTH)
    assert locked.alive()
    sock.close()


def _non_loopback_address():
    # An address of this host that is not loopback (protected mode refuses it).
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))   # no packet is sent: this only picks a route
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("protected", ["yes", "no"])
def test_protected_mode_refuses_non_loopback_clients_of_an_open_server(tmp_path, protected):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    with ServerProcess(tmp_path, "--bind", "127.0.0.1 %s" % address, "--protected-mode", protected) as proc:
        # The server took 127.0.0.1 (what ServerProcess waits for) an instant
        # before the outside address: a loaded machine may come in between.
        deadline = time.monotonic() + 10
        while True:
            try:
                outside = socket.create_connection((address, proc.port), timeout=5)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        outside.sendall(resp("PING"))
        reply = read_reply(outside)
        if protected == "yes":
            assert reply.startswith(b"-DENIED Redis is running in protected mode because protected "
                                    b"mode is enabled and no password is set for the default user.")
            assert reply.endswith(b"accepting connections from the outside.\r\n")
        else:
            assert reply == b"+PONG\r\n"
        outside.close()
        assert proc.client().ping() is True   # loopback is always fine


def test_client_commands_see_only_the_own_tenant_but_root_sees_all(locked):
    alice = locked.client(username="alice", password="alice-pw")
    bob = locked.client(username="bob", password="bob-pw")
    root = locked.client(username="root", password=ROOT_PASSWORD)
    alice.client_setname("alice-conn")
    bob.client_setname("bob-conn")
    alice_id = alice.client_id()
    assert {c["user"] for c in bob.client_list()} == {"bob"}
    assert "alice-conn" in {c["name"] for c in root.client_list()}
    # bob cannot kill (nor see) alice's client
    alice_addr = [c for c in root.client_list() if c["name"] == "alice-conn"][0]["addr"]
    with pytest.raises(redis.ResponseError, match="No such client"):
        bob.execute_command("CLIENT", "KILL", alice_addr)
    assert bob.execute_command("CLIENT", "KILL", "ID", alice_id) == 0
    assert alice.ping() is True
    # root can
    assert root.execute_command("CLIENT", "KILL", "ID", alice_id) == 1


def test_unauthenticated_client_that_does_not_read_is_closed(locked):
    # 200,000 pipelined requests, each answered NOAUTH (7 MB), never read:
    # before AUTH the unread replies are capped and the client is closed.
    sock = locked.raw()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chunk = resp("GET", "k") * 10000
    closed = False
    try:
        for _ in range(20):
            sock.sendall(chunk)
    except OSError:
        closed = True
    if not closed:
        sock.settimeout(10)
        try:
            while sock.recv(1 << 20):
                pass
            closed = True
        except ConnectionResetError:
            closed = True
    assert closed
    assert locked.alive()
    assert b"output buffer limit" in open(locked.log_path, "rb").read()
    sock.close()
