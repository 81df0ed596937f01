"""A snapshot loads each set and sorted set in the form the loading
server's limits give it (set-max-intset-entries, set-max-listpack-*,
zset-max-listpack-*), as a write under those limits would build it, both
ways: a compact value past the new limits loads in the big form, a big
value within them compact; the data (DEBUG DIGEST) is the same."""

from tests.conftest import ServerProcess


def _reload(client, settings: dict, keys: list) -> list:
    for name, value in settings.items():
        client.config_set(name, value)
    assert client.execute_command("DEBUG", "RELOAD") in (b"OK", "OK", True)
    return [client.object("encoding", key) for key in keys]


def test_sets_and_zsets_load_with_the_configured_limits(tmp_path):
    with ServerProcess(tmp_path, "--save", "") as proc:
        client = proc.client()
        client.sadd("s50", *["m%d" % i for i in range(50)])
        client.sadd("slong", "a", "x" * 40)
        client.sadd("ints", *range(50))
        client.sadd("sshrunk", *["m%d" % i for i in range(300)])
        client.srem("sshrunk", *["m%d" % i for i in range(5, 300)])
        client.zadd("z50", {"m%d" % i: i for i in range(50)})
        client.zadd("zlong", {"a": 1, "x" * 40: 2})
        client.zadd("zshrunk", {"m%d" % i: i for i in range(300)})
        client.zremrangebyrank("zshrunk", 5, -1)
        keys = ["s50", "slong", "ints", "sshrunk", "z50", "zlong", "zshrunk"]
        assert [client.object("encoding", k) for k in keys] == [
            b"listpack", b"listpack", b"intset", b"hashtable", b"listpack", b"listpack", b"skiplist"]
        digest = client.execute_command("DEBUG", "DIGEST")

        lowered = {"set-max-intset-entries": 10, "set-max-listpack-entries": 10,
                   "set-max-listpack-value": 30, "zset-max-listpack-entries": 10,
                   "zset-max-listpack-value": 30}
        assert _reload(client, lowered, keys) == [
            b"hashtable", b"hashtable", b"hashtable", b"listpack", b"skiplist", b"skiplist",
            b"listpack"]
        assert client.execute_command("DEBUG", "DIGEST") == digest

        raised = {"set-max-intset-entries": 512, "set-max-listpack-entries": 100,
                  "set-max-listpack-value": 64, "zset-max-listpack-entries": 100,
                  "zset-max-listpack-value": 64}
        assert _reload(client, raised, keys) == [
            b"listpack", b"listpack", b"intset", b"listpack", b"listpack", b"listpack",
            b"listpack"]
        assert client.execute_command("DEBUG", "DIGEST") == digest
        # the loaded forms take writes, crossing the limits again
        client.sadd("s50", *["n%d" % i for i in range(51)])
        client.zadd("z50", {"n%d" % i: i for i in range(51)})
        assert [client.object("encoding", k) for k in ("s50", "z50")] == [b"hashtable", b"skiplist"]
