"""A snapshot loads each set and sorted set in the form the loading
server's limits give it (set-max-intset-entries, set-max-listpack-*,
zset-max-listpack-*), as a write under those limits would build it, both
ways: a compact value past the new limits loads in the big form, a big
value within them compact; the data (DEBUG DIGEST) is the same."""

from tests.conftest import ServerProcess

# The settings a load follows, in the order the tuples below give them.
LIMITS = ("set-max-intset-entries", "set-max-listpack-entries", "set-max-listpack-value",
          "zset-max-listpack-entries", "zset-max-listpack-value")


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

        lowered = dict(zip(LIMITS, (10, 10, 30, 10, 30)))
        raised = dict(zip(LIMITS, (512, 100, 64, 100, 64)))
        for settings, expected in [
                (lowered, [b"hashtable", b"hashtable", b"hashtable", b"listpack", b"skiplist",
                           b"skiplist", b"listpack"]),
                (raised, [b"listpack", b"listpack", b"intset", b"listpack", b"listpack",
                          b"listpack", b"listpack"])]:
            assert _reload(client, settings, keys) == expected, settings
            assert client.execute_command("DEBUG", "DIGEST") == digest
        # the loaded forms take writes, crossing the limits again
        client.sadd("s50", *["n%d" % i for i in range(51)])
        client.zadd("z50", {"n%d" % i: i for i in range(51)})
        assert [client.object("encoding", k) for k in ("s50", "z50")] == [b"hashtable", b"skiplist"]
