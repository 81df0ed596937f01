"""Brute-force throttling of AUTH, its INFO counters and ACL LOG, and the
timing of unknown-user versus wrong-password replies, on a real server.

Every test here connects from its own 127.0.0.x addresses (all of 127/8 is
loopback on Linux): the throttle counts failures per address, so a test's
failures must not slow the next test down.
"""

import asyncio
import selectors
import socket
import statistics
import threading
import time

import redis

from conftest import locked_fixture, read_exactly, resp

ROOT_PASSWORD = "root-secret-for-bf"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"




locked = locked_fixture({"alice": "alice-pw", "bob": "bob-pw"}, ROOT_PASSWORD)


def connect(proc, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proc.port), timeout=10, source_address=(source, 0))


def timed_auth(sock, username: str, password: str, expected: bytes) -> float:
    start = time.perf_counter()
    sock.sendall(resp("AUTH", username, password))
    assert read_exactly(sock, len(expected), timeout=10) == expected
    return time.perf_counter() - start


def root_client(proc, source: str) -> redis.Redis:
    """redis-py as root, from `source` (an address no test throttles)."""
    pool = redis.ConnectionPool(port=proc.port, username="root", password=ROOT_PASSWORD,
                                connection_class=_SourceConnection, source=source)
    return redis.Redis(connection_pool=pool)


class _SourceConnection(redis.Connection):
    def __init__(self, *args, source: str = "127.0.0.1", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.source = source

    def _connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.socket_connect_timeout,
                                        source_address=(self.source, 0))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.socket_timeout)
        return sock


def stats(proc) -> dict:
    return root_client(proc, "127.0.0.250").info("stats")


def test_info_stats_has_redis_acl_counters_in_order(locked):
    info = stats(locked)
    keys = list(info)
    tail = keys[keys.index("total_error_replies"):]
    assert tail == ["total_error_replies", "acl_access_denied_auth", "acl_access_denied_cmd",
                    "acl_access_denied_key", "acl_access_denied_channel", "auth_throttled"]
    assert keys.index("unexpected_error_replies") == keys.index("total_error_replies") - 1


def test_failures_per_user_are_throttled_counted_and_logged(locked):
    before = stats(locked)
    # 14 wrong passwords for bob, each from its own address: only bob's
    # count grows; the first 10 are free, then 50, 100, 200, 400 ms.
    times = []
    for i in range(14):
        sock = connect(locked, "127.0.4.%d" % (i + 1))
        times.append(timed_auth(sock, "bob", "guess-%d" % i, WRONGPASS))
        sock.close()
    print("\nper-user throttle, seconds per attempt:", " ".join("%.3f" % t for t in times))
    assert max(times[:10]) < 0.5
    assert times[13] >= 0.35
    after = stats(locked)
    assert after["acl_access_denied_auth"] - before["acl_access_denied_auth"] == 14
    assert after["auth_throttled"] - before["auth_throttled"] >= 4
    # CONFIG RESETSTAT keeps the ACL counters, as Redis does
    root = root_client(locked, "127.0.0.250")
    root.config_resetstat()
    kept = stats(locked)
    assert kept["acl_access_denied_auth"] == after["acl_access_denied_auth"]
    assert kept["auth_throttled"] == after["auth_throttled"]
    try:
        log = root.acl_log()
    except redis.ResponseError as exc:   # ACL LOG not there yet
        assert "unknown" in str(exc).lower()
    else:
        entry = [e for e in log if e["username"] == "bob" and e["reason"] == "auth"][0]
        assert entry["count"] >= 14 and str(entry["client-info"]).count("127.0.4.")
    # The right password still works (after the delay), and clears bob's count.
    sock = connect(locked, "127.0.4.100")
    assert timed_auth(sock, "bob", "bob-pw", b"+OK\r\n") < 6
    sock.close()
    sock = connect(locked, "127.0.4.101")
    assert timed_auth(sock, "bob", "wrong-again", WRONGPASS) < 0.3
    sock.close()


def test_unknown_user_and_wrong_password_take_the_same_time(locked):
    # Fresh addresses and fresh unknown names: no attempt here is throttled;
    # alice's count is cleared by a good login every few rounds.
    unknown, wrong = [], []
    for i in range(50):
        a = connect(locked, "127.0.1.%d" % (i + 1))
        b = connect(locked, "127.0.2.%d" % (i + 1))
        pairs = [(unknown, a, "ghost-%d" % i), (wrong, b, "alice")]
        if i % 2:
            pairs.reverse()
        for samples, sock, name in pairs:
            samples.append(timed_auth(sock, name, "not-the-password-%d" % i, WRONGPASS))
        a.close()
        b.close()
        if i % 8 == 7:
            good = connect(locked, "127.0.3.1")
            timed_auth(good, "alice", "alice-pw", b"+OK\r\n")
            good.close()
    m_unknown, m_wrong = statistics.median(unknown), statistics.median(wrong)
    print("\nmedian AUTH: unknown user %.2f ms, wrong password %.2f ms (%+.1f%%)"
          % (m_unknown * 1e3, m_wrong * 1e3, (m_unknown / m_wrong - 1) * 100))
    assert abs(m_unknown - m_wrong) <= 0.10 * max(m_unknown, m_wrong)


def test_burst_of_wrong_passwords_is_throttled_while_others_log_in(locked):
    """1,000 wrong passwords from 127.0.0.1 (20 connections, 50 pipelined AUTHs
    each, a new user name every time: only the address's count can stop it)
    while alice logs in from 127.0.0.2."""
    window = 4.0
    attackers = [connect(locked, "127.0.0.1") for _ in range(20)]
    selector = selectors.DefaultSelector()
    for n, sock in enumerate(attackers):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    legit = {}

    def log_in_during_the_burst():
        time.sleep(1.5)
        sock = connect(locked, "127.0.0.2")
        legit["seconds"] = timed_auth(sock, "alice", "alice-pw", b"+OK\r\n")
        sock.sendall(resp("SET", "k", "v"))
        legit["set"] = read_exactly(sock, 5, timeout=5)
        sock.close()

    thread = threading.Thread(target=log_in_during_the_burst)
    start = time.monotonic()
    for n, sock in enumerate(attackers):
        sock.sendall(b"".join(resp("AUTH", "guess-%d-%d" % (n, i), "password-%d" % i)
                              for i in range(50)))
    thread.start()
    received = b""
    while (left := start + window - time.monotonic()) > 0:
        for key, _ in selector.select(left):
            received += key.fileobj.recv(65536)
    thread.join(10)
    replies = received.count(b"-WRONGPASS")
    assert received == WRONGPASS * replies
    rate = replies / window
    print("\nattacker: %d of 1000 attempts answered in %.0f s: %.1f attempts/s; "
          "alice from 127.0.0.2 logged in in %.3f s during the burst"
          % (replies, window, rate, legit.get("seconds", -1)))
    assert rate < 20
    assert legit.get("seconds", 99) < 1.0 and legit["set"] == b"+OK\r\n"
    for sock in attackers:
        selector.unregister(sock)
        sock.close()
    info = stats(locked)
    assert info["auth_throttled"] >= replies - 40
    # The server is fine afterwards, and others still log in at once.
    sock = connect(locked, "127.0.0.3")
    assert timed_auth(sock, "bob", "bob-pw", b"+OK\r\n") < 1.0
    sock.close()


def test_throttle_forgets_idle_entries_beyond_its_bound(monkeypatch):
    """In-process: the table of tracked addresses and names stays bounded."""
    import tenantkv.commands  # noqa: F401  (the import order the server uses)
    from tenantkv.server import auth

    monkeypatch.setattr(auth, "MAX_TRACKED", 100)

    async def run():
        throttle = auth.Throttle(asyncio.get_running_loop())
        busy = throttle.gate(("addr", "busy"))
        await throttle.acquire(busy)          # in flight: must never be forgotten
        for i in range(1000):
            gate = throttle.gate(("user", b"name-%d" % i))
            throttle.failed(gate, 0.0)
        assert len(throttle.gates) <= 100
        assert throttle.gates.get(("addr", "busy")) is busy
        throttle.release(busy, checked=True)

    asyncio.run(run())


def test_retries_of_the_same_wrong_password_are_not_new_guesses(locked):
    # redis-py alone tries one wrong password about eleven times (AUTH user
    # pass, AUTH pass, retries): the throttle counts each pair once.
    times = []
    for i in range(25):
        sock = connect(locked, "127.0.5.1")
        times.append(timed_auth(sock, "carol", "same-typo", WRONGPASS))
        sock.close()
    assert max(times) < 0.3, times
