"""MULTI/EXEC/WATCH across clients: what a single-connection transcript
(tests/compat/sessions/transactions.txt) cannot show. Every test talks to a
real server process through redis-py or raw sockets."""

import threading
import time

import pytest
import redis

from conftest import locked_server, read_reply, resp


def _info_clients(r) -> dict:
    return r.info("clients")


def test_redis_py_transactional_pipeline(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("a", 1).incr("a").lpush("l", "x", "y").hset("h", "f", "v").zadd("z", {"m": 2})
    assert pipe.execute() == [True, 2, 2, 1, 1]
    assert r.get("a") == b"2"
    # An error while running does not stop the rest (redis-py raises after).
    pipe = r.pipeline(transaction=True)
    pipe.set("s", "text").incr("s").set("after", 1)
    with pytest.raises(redis.ResponseError):
        pipe.execute()
    assert r.get("after") == b"1"


def test_queuing_error_aborts_through_redis_py(r):
    pipe = r.pipeline(transaction=True)
    pipe.set("q", 1)
    pipe.execute_command("NOSUCH")
    with pytest.raises(redis.ResponseError, match="EXECABORT|unknown command"):
        pipe.execute()
    assert r.get("q") is None


def test_write_by_another_client_aborts_exec(server, r):
    other = server.client()
    for write in (lambda: other.set("w", "x"), lambda: other.delete("w"),
                  lambda: other.expire("w", 100), lambda: other.rename("src", "w"),
                  lambda: other.append("w", "+"), lambda: other.flushdb()):
        r.set("w", "start")
        r.set("src", "v")
        with r.pipeline() as pipe:
            pipe.watch("w")
            write()
            pipe.multi()
            pipe.set("w", "mine")
            with pytest.raises(redis.WatchError):
                pipe.execute()
    # Untouched: the transaction runs.
    r.set("w", "start")
    with r.pipeline() as pipe:
        pipe.watch("w")
        other.set("unrelated", 1)
        pipe.multi()
        pipe.set("w", "mine")
        assert pipe.execute() == [True]
    assert r.get("w") == b"mine"
    other.close()


def test_watch_race_50_clients_exact_total(server, r):
    """50 clients increment one counter by GET + MULTI/SET/EXEC, retrying
    when WATCH reports a conflict: no increment may be lost or doubled."""
    r.set("counter", 0)
    clients, per_client = 50, 20
    retries = []
    errors = []
    start = threading.Barrier(clients)

    def worker():
        client = server.client()
        try:
            start.wait()
            done = conflicts = 0
            while done < per_client:
                with client.pipeline() as pipe:
                    try:
                        pipe.watch("counter")
                        value = int(pipe.get("counter"))
                        pipe.multi()
                        pipe.set("counter", value + 1)
                        pipe.execute()
                        done += 1
                    except redis.WatchError:
                        conflicts += 1
            retries.append(conflicts)
        except Exception as exc:   # reported below; a thread cannot fail the test
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert int(r.get("counter")) == clients * per_client
    assert len(retries) == clients
    print("WATCH race: %d increments, %d retries" % (clients * per_client, sum(retries)))
    # Nobody watches any more: the write hooks are off again.
    assert _info_clients(r)["watching_clients"] == 0
    assert _info_clients(r)["total_watched_keys"] == 0


def test_nothing_interleaves_inside_exec(server, r):
    """A writer sets a and b to the same value in each transaction; a reader
    that MGETs them in between never sees them differ."""
    stop = threading.Event()
    seen = []

    def writer():
        client = server.client()
        i = 0
        while not stop.is_set():
            i += 1
            pipe = client.pipeline(transaction=True)
            for _ in range(20):
                pipe.incr("filler")
            pipe.set("a", i).set("b", i)
            pipe.execute()
        client.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(2000):
            a, b = r.mget("a", "b")
            seen.append((a, b))
            assert a == b
    finally:
        stop.set()
        thread.join(10)
    assert len({a for a, _ in seen}) > 1   # the writer did make progress


def test_disconnect_forgets_watches(server, r):
    sock = server.raw()
    sock.sendall(resp("WATCH", "k1", "k2"))
    assert read_reply(sock) == b"+OK\r\n"
    sock.sendall(resp("MULTI"))
    assert read_reply(sock) == b"+OK\r\n"
    assert _info_clients(r)["watching_clients"] == 1
    assert _info_clients(r)["total_watched_keys"] == 2
    sock.close()
    for _ in range(100):
        if _info_clients(r)["watching_clients"] == 0:
            break
        time.sleep(0.02)
    assert _info_clients(r)["total_watched_keys"] == 0


def test_reset_discards_and_unwatches(server, r):
    sock = server.raw()
    for args, reply in [(("WATCH", "x"), b"+OK\r\n"), (("MULTI",), b"+OK\r\n"),
                        (("SET", "x", 1), b"+QUEUED\r\n"), (("RESET",), b"+RESET\r\n"),
                        (("EXEC",), b"-ERR EXEC without MULTI\r\n")]:
        sock.sendall(resp(*args))
        assert read_reply(sock) == reply
    assert r.get("x") is None
    assert _info_clients(r)["watching_clients"] == 0
    sock.close()


def test_pipelined_transaction_in_one_read(server, r):
    """MULTI ... EXEC and a later command in a single write from the client."""
    sock = server.raw()
    sock.sendall(resp("MULTI") + resp("SET", "p", "1") + resp("INCR", "p") + resp("EXEC")
                 + resp("GET", "p"))
    expected = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n$1\r\n2\r\n"
    data = b""
    while len(data) < len(expected):
        data += sock.recv(4096)
    assert data == expected
    sock.close()


def test_watch_is_per_tenant(tmp_path):
    """The same key name in another tenant is another key: writing it does not
    fail a watcher's EXEC."""
    with locked_server(tmp_path, {"alice": "alice-pw", "bob": "bob-pw"}, "root-pw") as srv:
        alice = srv.client(username="alice", password="alice-pw")
        bob = srv.client(username="bob", password="bob-pw")
        alice.set("shared", "a")
        with alice.pipeline() as pipe:
            pipe.watch("shared")
            bob.set("shared", "b")
            pipe.multi()
            pipe.set("shared", "a2")
            assert pipe.execute() == [True]
        with alice.pipeline() as pipe:
            pipe.watch("shared")
            alice.set("shared", "again")
            pipe.multi()
            pipe.set("shared", "a3")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert alice.get("shared") == b"again"
        assert bob.get("shared") == b"b"
