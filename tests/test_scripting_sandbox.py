"""Scripts (issue 17), what Redis's unit/scripting asks and a session
cannot show: tenants, root and the others, a paused script's clock
(tests/compat/sessions/scripting-sandbox.txt compares the replies)."""

import pytest
import redis

from conftest import locked_fixture, login

ROOT_PASSWORD = "sandbox-root"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)


@pytest.fixture
def alice(srv):
    client = login(srv, "alice")
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def bob(srv):
    client = login(srv, "bob")
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def root(srv):
    client = login(srv, "root")
    yield client
    client.close()


def test_a_script_cannot_change_what_later_scripts_see(alice, bob):
    """Globals and library tables are read-only (Redis 7): a script that
    tries to replace one is refused, and the next scripts of its tenant
    (same Lua state) and of others see the originals."""
    for body in ("redis = nil", "string.format = nil", "cjson.encode = nil",
                 "getmetatable('').__index = {upper = function() return 'x' end}",
                 "_G.KEYS = {}", "rawset(_G, 'redis', 1)", "setmetatable(_G, nil)"):
        with pytest.raises(redis.ResponseError, match="Attempt to modify a readonly table"):
            alice.eval(body, 0)
    check = "return {string.format('%d', 1), ('a'):upper(), cjson.encode({1}), type(redis.call)}"
    assert alice.eval(check, 0) == bob.eval(check, 0) == [b"1", b"A", b"[1]", b"function"]
    # A function library's own table is the way to keep state, as in Redis.
    alice.function_load("#!lua name=keep\nlocal n = 0\n"
                        "redis.register_function('bump', function() n = n + 1 return n end)")
    assert [alice.fcall("bump", 0) for _ in range(3)] == [1, 2, 3]


def test_debug_set_disable_deny_scripts_is_roots(srv, alice, root):
    """The switch is the server's: a tenant cannot turn it on; root's lets
    every script call the commands Redis refuses in scripts."""
    with pytest.raises(redis.ResponseError, match="no permissions"):
        alice.execute_command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1")
    script = "return redis.call('debug', 'protocol', 'integer')"
    with pytest.raises(redis.ResponseError, match="not allowed from script"):
        root.eval(script, 0)
    try:
        assert root.execute_command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "1") == b"OK"
        assert root.eval(script, 0) == 12345
        # A tenant's own ACL rules still apply inside its scripts.
        with pytest.raises(redis.ResponseError, match="no permissions"):
            alice.eval(script, 0)
    finally:
        root.execute_command("DEBUG", "SET-DISABLE-DENY-SCRIPTS", "0")
    with pytest.raises(redis.ResponseError, match="not allowed from script"):
        root.eval(script, 0)


def test_acl_check_cmd_reads_the_callers_rules(srv, root):
    root.execute_command("ACL", "SETUSER", "carol", "on", ">carol-pw", "+@scripting", "+get", "+ping")
    try:
        carol = login(srv, "carol", "carol-pw")
        assert carol.eval("return redis.acl_check_cmd('get', 'k')", 0) == 1
        assert carol.eval("return redis.acl_check_cmd('set', 'k', 'v')", 0) is None
        assert root.eval("return redis.acl_check_cmd('set', 'k', 'v')", 0) == 1
        with pytest.raises(redis.ResponseError, match="Invalid command passed to redis.acl_check_cmd"):
            carol.eval("return redis.acl_check_cmd('nosuch')", 0)
        carol.close()
    finally:
        root.execute_command("ACL", "DELUSER", "carol")


def test_allow_oom_passes_maxmemory_for_root_only(srv, alice, root):
    """allow-oom lets root's script write past maxmemory, as in Redis; a
    tenant's allow-oom script still meets its memory quota (else any tenant
    could declare the flag and grow without bound)."""
    allow = "#!lua flags=allow-oom\nreturn redis.call('set', KEYS[1], ARGV[1])"
    alice.set("big", "x" * 1_500_000)
    root.config_set("tenant-quota-memory", "1mb")
    try:
        with pytest.raises(redis.ResponseError, match="quota"):
            alice.eval(allow, 1, "k", "v")
    finally:
        root.config_set("tenant-quota-memory", "0")
    alice.delete("big")
    root.config_set("maxmemory", "1")
    try:
        with pytest.raises(redis.ResponseError, match="used memory > .maxmemory."):
            root.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "rk", "v")
        assert root.eval(allow, 1, "rk", "v") == b"OK"
        with pytest.raises(redis.ResponseError, match="used memory > .maxmemory."):
            alice.eval(allow, 1, "k", "v")
    finally:
        root.config_set("maxmemory", "0")
    assert root.get("rk") == b"v"
    root.delete("rk")


def test_no_key_expires_in_the_middle_of_a_paused_script(srv, alice):
    """A script that wrote, then runs ~0.3 s (so it pauses between slices
    and other work runs): a key it set with PX 50 is still there for it at
    its end, as in Redis (its clock is its start; the active expiry skips
    the paused tenant), and gone after."""
    script = ("redis.call('set', KEYS[1], 'v', 'px', 50)"
              " local t0 = os.clock() while os.clock() - t0 < 0.3 do end"
              " local before = redis.call('exists', KEYS[1])"
              " local t1 = os.clock() while os.clock() - t1 < 0.1 do end"
              " return {before, redis.call('exists', KEYS[1])}")
    got = alice.eval(script, 1, "short")
    assert got == [1, 1], got
    assert alice.exists("short") == 0


def test_info_memory_counts_the_tenants_own_scripts(alice, bob):
    """INFO memory's number_of_cached_scripts (Redis's SCRIPTING FLUSH ASYNC
    test reads it): the caller's tenant's own."""
    alice.script_flush()
    bob.script_flush()
    for i in range(3):
        alice.script_load("return %d" % i)
    assert alice.info("memory")["number_of_cached_scripts"] == 3
    assert bob.info("memory")["number_of_cached_scripts"] == 0
    alice.script_flush("ASYNC")
    assert alice.info("memory")["number_of_cached_scripts"] == 0
