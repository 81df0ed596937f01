"""CONFIG SET of the Redis parameters tenantkv added for issue 19: each
answers as redis-server does (value, range errors), and acllog-max-len acts."""

import redis

from conftest import read_reply, resp

# name -> (a valid new value, an out-of-range value or None)
ADDED = {
    "acllog-max-len": ("5", "-1"),
    "activerehashing": ("no", "maybe"),
    "rdbcompression": ("no", "2"),
    "rdb-save-incremental-fsync": ("no", None),
    "aof-rewrite-incremental-fsync": ("no", None),
    "dynamic-hz": ("no", None),
    "active-expire-effort": ("7", "11"),
    "jemalloc-bg-thread": ("no", None),
    "crash-log-enabled": ("no", None),
    "crash-memcheck-enabled": ("no", None),
    "lazyfree-lazy-eviction": ("yes", None),
    "lazyfree-lazy-expire": ("yes", None),
    "lazyfree-lazy-server-del": ("yes", None),
    "active-defrag-cycle-min": ("5", "100"),
    "active-defrag-cycle-max": ("50", "0"),
    "active-defrag-threshold-lower": ("20", "1001"),
    "active-defrag-threshold-upper": ("200", "-1"),
    "active-defrag-ignore-bytes": ("200mb", "0"),
    "active-defrag-max-scan-fields": ("2000", "0"),
    "repl-backlog-ttl": ("7200", "-1"),
    "repl-timeout": ("120", "0"),
    "repl-ping-replica-period": ("20", "0"),
    "repl-ping-slave-period": ("30", None),
    "repl-diskless-sync": ("no", None),
    "repl-diskless-sync-delay": ("0", "-1"),
    "repl-diskless-sync-max-replicas": ("3", "-1"),
    "replica-serve-stale-data": ("no", None),
    "slave-serve-stale-data": ("yes", None),
    "replica-priority": ("0", "-1"),
    "replica-lazy-flush": ("yes", None),
    "replica-ignore-maxmemory": ("no", None),
    "min-replicas-max-lag": ("3", "-1"),
    "min-slaves-max-lag": ("4", None),
}


def _answer(client, *args):
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return "ERR " + str(exc)


def test_added_parameters_answer_as_redis(make_server, redis_server):
    ours, theirs = make_server().client(), redis.Redis(port=redis_server.port)
    for name, (value, bad) in ADDED.items():
        for client in (ours, theirs):
            assert client.config_get(name), name
        assert ours.config_get(name) == theirs.config_get(name), name
        steps = [("CONFIG", "SET", name, value), ("CONFIG", "GET", name)]
        if bad is not None:
            steps.append(("CONFIG", "SET", name, bad))
        for step in steps:
            assert _answer(ours, *step) == _answer(theirs, *step), step


def test_acllog_max_len_keeps_the_newest(make_server):
    server = make_server()
    root = server.client()
    root.config_set("acllog-max-len", 2)
    with server.raw() as sock:
        for name in ("u1", "u2", "u3"):
            sock.sendall(resp("AUTH", name, "nope-pw"))
            assert read_reply(sock, timeout=10).startswith(b"-WRONGPASS")
    users = [entry["username"] for entry in root.acl_log()]
    assert users == ["u3", "u2"]
    root.config_set("acllog-max-len", 1)
    assert [entry["username"] for entry in root.acl_log()] == ["u3"]
    root.config_set("acllog-max-len", 0)
    assert root.acl_log() == []
