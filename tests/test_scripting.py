"""Lua scripting (issue 17, the engine): EVAL and SCRIPT against a real
server, the sandbox, tenant isolation, runaway scripts."""

import socket
import threading
import time

import pytest
import redis

from conftest import locked_fixture, locked_server, login, resp

ROOT_PASSWORD = "scripting-root"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}

srv = locked_fixture(USERS, ROOT_PASSWORD)


@pytest.fixture
def alice(srv):
    client = login(srv, "alice")
    client.flushall()
    client.script_flush()
    yield client
    client.close()


@pytest.fixture
def bob(srv):
    client = login(srv, "bob")
    client.flushall()
    client.script_flush()
    yield client
    client.close()


def test_eval_basics(alice):
    assert alice.eval("return {KEYS[1], ARGV[1], redis.call('set', KEYS[1], ARGV[1]),"
                      " redis.call('get', KEYS[1])}", 1, "k", "v") == [b"k", b"v", b"OK", b"v"]
    assert alice.eval("return {1, 2, 3.7, 'a', false, nil, 5}", 0) == [1, 2, 3, b"a", None]
    assert alice.eval("return redis.status_reply('fine')", 0) == b"fine"
    with pytest.raises(redis.ResponseError, match="^boom$"):
        alice.eval("return {err='boom'}", 0)
    assert alice.eval("return redis.sha1hex('')", 0) == b"da39a3ee5e6b4b0d3255bfef95601890afd80709"
    sha = alice.script_load("return redis.call('incr', KEYS[1])")
    assert alice.evalsha(sha, 1, "n") == 1
    assert alice.evalsha(sha.upper(), 1, "n") == 2
    assert alice.script_exists(sha, "0" * 40) == [True, False]


def test_error_texts_as_redis(alice):
    cases = {
        "return x": "ERR user_script:1: Script attempted to access nonexistent global variable 'x'"
                    " script: 03c387736bb5cc009ff35151572cee04677aa374, on @user_script:1.",
        "x=1": "ERR user_script:1: Attempt to modify a readonly table script:"
               " 7caf6056913504f0508c65faf2dc3f94ff65bcfd, on @user_script:1.",
        "error('x')": "ERR user_script:1: x script: 9851144f39f03a0d597a980c5aa79c80cb696891,"
                      " on @user_script:1.",
        "syntax error here": "ERR Error compiling script (new function): user_script:1:"
                             " '=' expected near 'error'",
    }
    for script, text in cases.items():
        with pytest.raises(redis.ResponseError) as info:
            alice.eval(script, 0)
        assert str(info.value) == text.removeprefix("ERR ") or str(info.value) == text
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        alice.set("s", "str")
        alice.eval("local r = redis.call('incr', 's') return r", 0)
    # pcall hands the error to the script as a table: here it returns it.
    assert alice.eval("return type(redis.pcall('incr', 's'))", 0) == b"table"
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        alice.eval_ro("local r = redis.call('set', 'a', '1') return r", 0)
    with pytest.raises(redis.ResponseError, match="Write commands are not allowed from read-only"):
        alice.eval("#!lua flags=no-writes\nlocal r = redis.call('set', 'a', '1') return r", 0)
    with pytest.raises(redis.ResponseError, match="Unexpected flag in script shebang: bogus"):
        alice.eval("#!lua flags=bogus\nreturn 1", 0)
    with pytest.raises(redis.exceptions.NoScriptError):
        alice.evalsha("0" * 40, 0)
    with pytest.raises(redis.ResponseError, match="can't be negative"):
        alice.eval("return 1", -1)
    assert alice.ping()   # the connection and the server are fine


SANDBOX = [
    "return python.eval('1')",
    "return python.builtins",
    "return python.import",
    "return io.open('/etc/passwd')",
    "return os.execute('true')",
    "return require('os')",
    "return dofile('/etc/passwd')",
    "return loadfile('/etc/passwd')",
    "return debug.getupvalue(redis.call, 1)",
    "return package.loaded",
    "return getfenv(0)",
    "return setfenv(1, {})",
    "return newproxy(true)",
    "return collectgarbage('stop')",
    "return loadstring(string.dump(function() return 1 end))()",
    "return load(function() return string.dump(function() return 1 end) end)()",
    "return rawset(redis, 'call', 1)",
    "redis.call = nil",
]


@pytest.mark.parametrize("script", SANDBOX)
def test_sandbox_refuses(alice, script):
    with pytest.raises(redis.ResponseError):
        alice.eval(script, 0)
    assert alice.ping()


def test_sandbox_no_python_anywhere(alice):
    # Every value a script can reach by walking its globals is a plain Lua
    # value: no userdata (a Python object) anywhere but cjson.null.
    found = alice.eval("""
        local seen, bad = {}, {}
        local function walk(t, path, depth)
          if seen[t] or depth > 4 then return end
          seen[t] = true
          for k, v in pairs(t) do
            local p = path .. '.' .. tostring(k)
            -- cjson.null is Lua's own (newproxy), as Redis's NULL lightuserdata
            if type(v) == 'userdata' and v ~= cjson.null then bad[#bad + 1] = p end
            if type(v) == 'table' then walk(v, p, depth + 1) end
            local mt = getmetatable(v)
            if type(mt) == 'table' then walk(mt, p .. '<mt>', depth + 1) end
          end
        end
        walk(_G, '_G', 0)
        walk(getmetatable('') or {}, 'string-mt', 0)
        return bad""", 0)
    assert found == []
    assert alice.eval("return os.clock() >= 0", 0) == 1
    assert alice.eval("return {loadstring('return 7')()}", 0) == [7]


def test_isolation(alice, bob):
    bob.set("secret", "b")
    sha = bob.script_load("return 'bob'")
    assert alice.script_exists(sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError):
        alice.evalsha(sha, 0)
    assert alice.eval("return redis.call('get', 'secret')", 0) is None
    alice.eval("redis.call('set', 'secret', 'a') redis.call('select', '3')"
               " redis.call('set', 'x', 'a')", 0)
    assert alice.eval("return redis.call('keys', '*')", 0) == [b"secret"]
    assert bob.get("secret") == b"b"
    assert bob.execute_command("select", 3) and bob.get("x") is None
    alice.script_flush()
    assert bob.script_exists(sha) == [True]


def test_redis_call_keeps_acl(srv, alice):
    root = login(srv, "root")
    try:
        root.execute_command("ACL", "SETUSER", "alice", "-flushall")
        with pytest.raises(redis.ResponseError, match="no permissions to run the 'flushall' command script: .*, on @user_script:1.$"):
            alice.eval("return redis.call('flushall')", 0)
    finally:
        root.execute_command("ACL", "SETUSER", "alice", "+flushall")
        root.close()


@pytest.mark.slow
def test_runaway_script_busy_kill_and_other_tenants(srv, alice, bob):
    """Issue 17's bar: during a 5-second `while true do end` of tenant A
    (busy-reply-threshold at its default, 5000 ms), tenant B's PING p99
    stays under 20 ms; then A's other client gets BUSY and SCRIPT KILL
    ends the script."""
    other = login(srv, "alice")
    runner = login(srv, "alice", socket_timeout=30)
    result = {}

    def run():
        try:
            runner.eval("while true do end", 0)
        except redis.ResponseError as exc:
            result["error"] = str(exc)
    thread = threading.Thread(target=run)
    start = time.monotonic()
    thread.start()
    try:
        time.sleep(0.2)
        latencies = []
        while time.monotonic() < start + 4.8:
            began = time.perf_counter()
            assert bob.ping()
            latencies.append(time.perf_counter() - began)
            time.sleep(0.002)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        assert len(latencies) > 200 and p99 < 0.020, (len(latencies), p99)
        # A's other client waits (the tenant is the unit of atomicity) until
        # the threshold, then gets BUSY; B never noticed.
        with pytest.raises(redis.ResponseError, match="^BUSY Redis is busy running a script"):
            other.get("k")
        assert time.monotonic() - start >= 4.9
        assert other.script_kill() is True
    finally:
        thread.join(10)
    assert not thread.is_alive()
    assert result["error"].startswith("Script killed by user with SCRIPT KILL...")
    assert other.ping()
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        other.script_kill()
    other.close()
    runner.close()


def test_script_kill_refused_after_a_write(srv, alice):
    root = login(srv, "root")
    root.config_set("busy-reply-threshold", "300")
    other = login(srv, "alice")
    runner = login(srv, "alice", socket_timeout=30)
    try:
        thread = threading.Thread(target=lambda: runner.eval(
            "redis.call('set', 'w', 1) local t = redis.call('time')[1]"
            " while tonumber(redis.call('time')[1]) < t + 2 do end return 1", 0))
        thread.start()
        time.sleep(0.6)
        with pytest.raises(redis.ResponseError, match="UNKILLABLE"):
            other.script_kill()
        thread.join(10)
        assert other.get("w") == b"1"
    finally:
        root.config_set("busy-reply-threshold", "5000")
        root.close()
        other.close()
        runner.close()


def test_log_records_effects(tmp_path):
    """Scripts go to the append-only log as their effects, in one MULTI/EXEC:
    a restart gets what SRANDMEMBER and TIME gave the script, and a script
    that took several loop turns is there whole."""
    from conftest import ServerProcess
    aof = ("--appendonly", "yes", "--save", "", "--appendfsync", "always")
    with ServerProcess(tmp_path, *aof) as proc:
        c = proc.client()
        c.sadd("pool", *range(100))
        picked = c.eval("local m = redis.call('srandmember', 'pool')"
                        " redis.call('set', 'picked', m)"
                        " redis.call('set', 'now', redis.call('time')[1]) return m", 0)
        # Long enough to leave its first slice: writes across loop turns.
        c.eval("for i = 1, 3000 do redis.call('rpush', 'long', i) end"
               " local x = 0 for i = 1, 3000000 do x = x + i end"
               " redis.call('select', '2') redis.call('set', 'in2', 'yes')", 0)
        now = c.get("now")
        c.close()
    log = b"".join(open(p, "rb").read() for p in (tmp_path / "appendonlydir").glob("*.incr.aof"))
    assert b"EVAL" not in log.upper().replace(b"EVALUATE", b"")
    assert log.count(b"MULTI") == 2 and log.count(b"EXEC") == 2
    with ServerProcess(tmp_path, *aof) as proc:
        c = proc.client()
        assert c.get("picked") == picked and c.get("now") == now
        assert c.llen("long") == 3000
        assert c.get("in2") is None and c.execute_command("select", 2) and c.get("in2") == b"yes"
        c.close()


HOSTILE = [
    ("local t = {} while true do t[#t+1] = string.rep('x', 1000000) .. #t end", "not enough memory"),
    ("local t = {} for i = 1, 100 do t[i] = string.rep('x', 1000000) .. i end"
     " return redis.call('ping')", "not enough memory"),
    ("local function f() return f() + 1 end return f()", "stack overflow"),
    ("local t = {} local c = t for i = 1, 2000 do c[1] = {} c = c[1] end return t",
     "reached lua stack limit"),
]


@pytest.mark.parametrize("script,error", HOSTILE)
def test_hostile_scripts_get_errors(alice, bob, script, error):
    # Each gets an error; the server, the tenant's state and the neighbours are fine.
    with pytest.raises(redis.ResponseError, match=error):
        alice.eval(script, 0)
    assert alice.eval("return redis.call('ping')", 0) == b"PONG"
    assert bob.ping()


def test_eval_inside_multi_and_watch(srv, alice):
    other = login(srv, "alice")
    pipe = alice.pipeline()
    pipe.watch("w")
    other.eval("redis.call('set', 'w', '1')", 0)   # a script's write invalidates WATCH
    pipe.multi()
    pipe.set("x", "y")
    with pytest.raises(redis.WatchError):
        pipe.execute()
    pipe = alice.pipeline()
    pipe.eval("return redis.call('incr', 'm')", 0)
    pipe.eval("return redis.call('incr', 'm')", 0)
    assert pipe.execute() == [1, 2]
    other.close()


def test_lua_memory_counts_toward_the_tenant_quota(srv, alice, bob):
    """What a script leaves in its Lua state (a table a function library
    keeps: the globals and library tables are read-only, as in Redis) is
    the tenant's memory: with a 4 MB quota, 6 MB kept in Lua makes the
    tenant's next write fail; FUNCTION FLUSH and SCRIPT FLUSH give it back."""
    root = login(srv, "root")
    root.config_set("tenant-quota-memory", "4mb")
    try:
        alice.set("before", "x")
        alice.function_load("#!lua name=stash\n local stash = {}"
                            " redis.register_function{function_name='stash', flags={'no-writes'},"
                            " callback=function() for i = 1, 6 do"
                            " stash[i] = string.rep('x', 1000000) .. i end end}")
        alice.fcall("stash", 0)
        with pytest.raises(redis.ResponseError, match="'memory' quota"):
            alice.set("after", "x" * 1000)
        bob.set("bob", "fine")   # another tenant does not pay for it
        alice.function_flush()
        alice.script_flush()
        assert alice.set("after", "x" * 1000)
    finally:
        root.config_set("tenant-quota-memory", "0")
        root.close()


def test_script_kill_goes_through_pcall(srv, alice):
    root = login(srv, "root")
    root.config_set("busy-reply-threshold", "200")
    other = login(srv, "alice")
    runner = login(srv, "alice", socket_timeout=30)
    result = {}

    def run():
        try:
            runner.eval("while true do pcall(function() while true do end end) end", 0)
        except redis.ResponseError as exc:
            result["error"] = str(exc)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.5)
        assert other.script_kill() is True
        thread.join(10)
        assert not thread.is_alive()
        assert result["error"].startswith("Script killed by user with SCRIPT KILL...")
    finally:
        if thread.is_alive():
            other.script_kill()
        root.config_set("busy-reply-threshold", "5000")
        root.close()
        other.close()
        runner.close()


def test_shebang_script_refused_over_quota(srv, alice):
    root = login(srv, "root")
    try:
        alice.set("big", "x" * 200_000)
        root.config_set("tenant-quota-memory", "100kb")
        with pytest.raises(redis.ResponseError, match="quota"):
            alice.eval("#!lua\nreturn 1", 0)
        assert alice.eval("#!lua flags=allow-oom\nreturn 1", 0) == 1
        assert alice.eval("#!lua flags=no-writes\nreturn 1", 0) == 1
        assert alice.eval("return 1", 0) == 1   # no shebang: checked at its first write
        with pytest.raises(redis.ResponseError, match="quota"):
            alice.eval("return redis.call('set', 'more', 'x')", 0)
    finally:
        root.config_set("tenant-quota-memory", "0")
        root.close()


def _errorstats(client) -> dict:
    return {k: v for k, v in client.info("errorstats").items() if k.startswith("errorstat_")}


def test_script_error_replies_count_in_errorstats_as_redis(srv, redis_server):
    """redis.error_reply and {err=...} replies are error replies: INFO
    errorstats counts them by their first word, "ERR" for an empty one
    (Redis's unit/scripting "LUA redis.error_reply API")."""
    reference = redis.Redis(port=redis_server.port)
    ours = login(srv, "alice")
    results = []
    for client in (ours, reference):
        before = _errorstats(client)
        for script in ('return redis.error_reply("MY_ERR_CODE custom msg")',
                       'return redis.error_reply("")', "return {err='OTHER x'}"):
            with pytest.raises(redis.ResponseError):
                client.eval(script, 0)
        after = _errorstats(client)
        results.append({k: after[k]["count"] - before.get(k, {"count": 0})["count"]
                        for k in after if after[k] != before.get(k)})
    assert results[0] == results[1] == {"errorstat_MY_ERR_CODE": 1, "errorstat_ERR": 1,
                                        "errorstat_OTHER": 1}


def _spin(seconds: float) -> str:
    """Lua that runs `seconds` of the server's CPU (os.clock) in pure Lua."""
    return "local t0 = os.clock() while os.clock() - t0 < %s do end" % seconds


def test_long_script_pauses_for_others_and_stays_atomic(srv, alice, bob):
    """A script of ~0.5 s runs in slices on the loop thread (issue 18, L):
    another tenant is answered between the slices, while the script's own
    tenant waits and then sees all of its writes, never a part."""
    other = login(srv, "alice")
    runner = login(srv, "alice", socket_timeout=30)
    result = {}
    script = ("redis.call('set', 'a', 'first') %s redis.call('set', 'b', 'second')"
              " return redis.call('get', 'a')" % _spin(0.5))
    thread = threading.Thread(target=lambda: result.setdefault("r", runner.eval(script, 0)))
    thread.start()
    try:
        time.sleep(0.15)
        latencies = []
        for _ in range(10):
            began = time.perf_counter()
            assert bob.ping()
            latencies.append(time.perf_counter() - began)
        assert thread.is_alive()   # bob was served while the script ran
        assert min(latencies) < 0.1, latencies
        # Alice's other client waits for the end: both writes, or neither.
        assert other.mget("a", "b") == [b"first", b"second"]
        assert not thread.is_alive() or thread.join(5) is None
    finally:
        thread.join(10)
    assert result["r"] == b"first"
    other.close()
    runner.close()


def test_paused_scripts_of_several_tenants_each_get_their_own(srv, alice, bob):
    """Three tenants' long scripts paused at once (each in its own runner):
    each ends with its own keys, arguments and reply."""
    clients = {name: login(srv, name, socket_timeout=30) for name in ("alice", "bob", "root")}
    results = {}
    for name, client in clients.items():
        client.set("who", name)
    script = ("local got = {} for i = 1, 5 do %s got[#got + 1] = redis.call('get', KEYS[1]) end"
              " return {ARGV[1], got[1], got[5]}" % _spin(0.05))

    def run(name, client):
        results[name] = client.eval(script, 1, "who", "arg-" + name)
    threads = [threading.Thread(target=run, args=item) for item in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for name, client in clients.items():
        assert results[name] == [b"arg-" + name.encode(), name.encode(), name.encode()]
        client.delete("who")
        client.close()


def test_script_of_a_killed_client_ends_if_it_wrote_nothing(srv, alice):
    """A runaway script whose client is closed (root's CLIENT KILL) and that
    changed nothing is ended (nobody waits for it): its tenant is served
    again at once, without SCRIPT KILL and before busy-reply-threshold."""
    # A raw socket: redis-py would reconnect and send the EVAL again.
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    password = srv.passwords["alice"].encode()
    sock.sendall(resp("AUTH", "alice", password) + resp("CLIENT", "ID"))
    replies = b""
    while replies.count(b"\r\n") < 2:
        replies += sock.recv(100)
    runner_id = int(replies.split(b"\r\n")[1][1:])
    sock.sendall(resp("EVAL", "while true do end", 0))
    root = login(srv, "root")
    try:
        time.sleep(0.3)
        assert root.client_kill_filter(_id=runner_id) == 1
        began = time.monotonic()
        assert alice.set("after", "1")
        assert time.monotonic() - began < 3
        assert sock.recv(100) == b""   # closed, no reply
    finally:
        sock.close()
        root.close()


def test_shutdown_nosave_stops_a_paused_script(tmp_path):
    """SHUTDOWN NOSAVE (root) while a tenant's script spins: the server
    exits at once."""
    with locked_server(tmp_path, USERS, ROOT_PASSWORD) as proc:
        sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        sock.sendall(resp("AUTH", "alice", USERS["alice"]) + resp("EVAL", "while true do end", 0))
        assert sock.recv(5) == b"+OK\r\n"
        time.sleep(0.3)
        # A raw socket: redis-py would retry on the closed connection.
        root = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        began = time.monotonic()
        root.sendall(resp("AUTH", "root", ROOT_PASSWORD) + resp("SHUTDOWN", "NOSAVE"))
        assert root.recv(5) == b"+OK\r\n"
        while proc.alive() and time.monotonic() < began + 10:
            time.sleep(0.02)
        assert not proc.alive() and time.monotonic() - began < 5
        sock.close()
        root.close()


def test_long_script_without_writes_moves_to_a_thread_and_runs_once(srv, alice, bob):
    """A script past its first slice that has not written ends there and
    runs again on a worker thread: its writes after that happen once, its
    redis.setresp of the first run is forgotten, its reply is the second
    run's."""
    alice.set("k", "v")
    script = ("redis.setresp(3) local v = redis.call('get', 'k') %s"
              " redis.call('incr', 'n') return {v, redis.call('incr', 'n')}" % _spin(0.3))
    assert alice.eval(script, 0) == [b"v", 2]
    assert alice.get("n") == b"2"
    assert bob.ping()


@pytest.mark.parametrize("find", ["string.find", "string['fi' .. 'nd']"])
def test_a_long_c_call_holds_only_its_tenant(srv, alice, bob, find):
    """A pattern that backtracks for seconds inside C (the count hook never
    fires there) does not hold the loop thread: a script naming find runs
    on a worker thread, one that reaches it otherwise moves there before
    the call (prelude.lua's guards); bob is served meanwhile."""
    runner = login(srv, "alice", socket_timeout=120)
    result = {}
    script = "return %s(string.rep('a', 28), string.rep('a*', 8) .. 'b')" % find
    thread = threading.Thread(target=lambda: result.setdefault("r", runner.eval(script, 0)))
    thread.start()
    time.sleep(0.2)
    latencies = []
    while thread.is_alive():
        began = time.perf_counter()
        assert bob.ping()
        latencies.append(time.perf_counter() - began)
        time.sleep(0.005)
    thread.join()
    assert result == {"r": None}
    assert len(latencies) > 20 and max(latencies) < 0.5, (len(latencies), max(latencies))
    runner.close()


def test_a_long_c_call_after_a_write_is_refused(srv, alice, bob):
    """A script that has written cannot move to a thread: a guarded call
    that may run for seconds on the loop thread gets an error (its write
    stays, as after any script error); a cheap one runs."""
    # (Not naming find: such a script runs on a thread from its start.)
    script = ("redis.call('set', 'w', '1') local f = string['fi' .. 'nd']"
              " local ok = f(string.rep('a', 100), '^a+$') ~= nil"
              " return {ok and 1 or 0, f(string.rep('a', 28), string.rep('a*', 8) .. 'b')}")
    began = time.monotonic()
    with pytest.raises(redis.ResponseError, match="^tenantkv: a pattern search or sort"):
        alice.eval(script, 0)
    assert time.monotonic() - began < 1
    assert alice.get("w") == b"1"
    assert alice.eval("redis.call('set', 'w', '2') return string['fi' .. 'nd']"
                      "(string.rep('a', 1000), '^(a+)$') and 1", 0) == 1
    assert bob.ping()
