"""The server process, its configuration, and the server/connection commands."""

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from conftest import NO_RETRY, ServerProcess, free_port, raw_command, read_exactly, read_reply


# -- process lifecycle ------------------------------------------------------------

@pytest.mark.parametrize("how", ["SHUTDOWN", "SIGTERM", "SIGINT"])
def test_graceful_shutdown_exits_zero(tmp_path, how):
    with ServerProcess(tmp_path) as proc:
        client = proc.client(retry=NO_RETRY)
        client.set("k", "v")
        idle = proc.raw()          # an idle client must not keep the server up
        if how == "SHUTDOWN":
            client.shutdown()      # redis-py expects the connection to drop
        else:
            proc.process.send_signal(getattr(signal, how))
        assert proc.process.wait(10) == 0
        assert read_reply(idle, timeout=2) == b""
    with open(proc.log_path) as log:
        text = log.read()
    assert "Traceback" not in text


def _run_server(*args, env=None, timeout=10):
    return subprocess.run([sys.executable, "-m", "tenantkv", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, named", [
    (["--port", "seventy"], None, "port"),
    (["--maxmemory", "lots"], None, "maxmemory"),
    (["--no-such-option", "1"], None, "no-such-option"),
    ([], {"TENANTKV_NETWORK__PORT": "-5"}, "port"),
    ([], {"TENANTKV_LIMITS__PROTO_MAX_BULK_LEN": "big"}, "proto_max_bulk_len"),
])
def test_bad_configuration_is_a_clear_startup_error(tmp_path, args, env, named):
    result = _run_server("--dir", str(tmp_path), *args, env=env)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_toml_file_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[network]\nport = "abc"\n')
    result = _run_server("--config", str(path), "--dir", str(tmp_path))
    assert result.returncode != 0
    assert "network.port" in result.stderr
    path.write_text("[network\nport = 1\n")
    result = _run_server("--config", str(path))
    assert result.returncode != 0 and "bad.toml" in result.stderr


def test_config_precedence_file_env_flags(tmp_path):
    port = free_port()
    path = tmp_path / "tenantkv.toml"
    path.write_text('[network]\nport = 1\n[limits]\nmaxmemory = "10mb"\n'
                    '[expiry]\nhz = 20\n[server.db]\npath = "%s"\n' % tmp_path)
    env = {**os.environ, "TENANTKV_NETWORK__PORT": str(port), "TENANTKV_EXPIRY__HZ": "30",
           "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
    process = subprocess.Popen([sys.executable, "-m", "tenantkv", "--config", str(path),
                                "--hz", "40"], env=env, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_for_port
        wait_for_port(port, process)
        client = redis.Redis(port=port)
        assert client.config_get("maxmemory") == {"maxmemory": "10485760"}   # file
        assert client.config_get("hz") == {"hz": "40"}                         # flag beats env
        assert client.config_get("dir")["dir"] == str(tmp_path)                # article alias
    finally:
        process.terminate()
        process.wait(10)


def test_loglevel_controls_what_is_logged(tmp_path):
    (tmp_path / "verbose").mkdir()
    (tmp_path / "quiet").mkdir()
    with ServerProcess(tmp_path / "verbose", "--loglevel", "verbose") as verbose:
        verbose.client().ping()
    with ServerProcess(tmp_path / "quiet", "--loglevel", "warning") as quiet:
        quiet.client().ping()
    with open(verbose.log_path) as log:
        text = log.read()
    assert " - Accepted 127.0.0.1:" in text and " * Ready to accept connections" in text
    with open(quiet.log_path) as log:
        text = log.read()
    assert "Accepted" not in text and "Ready to accept" not in text


def test_config_set_loglevel_applies_at_once(tmp_path):
    with ServerProcess(tmp_path, "--loglevel", "warning") as proc:
        client = proc.client()
        client.ping()
        assert client.config_set("loglevel", "verbose") is True
        proc.client().ping()
    with open(proc.log_path) as log:
        assert log.read().count("Accepted") == 1


# -- INFO, CONFIG, COMMAND, HELP ---------------------------------------------------

def test_info_fields_monitoring_tools_parse(r):
    info = r.info("everything")
    assert str(info["redis_version"]).startswith("7.2.")
    assert "tenantkv_version" in info
    assert len(info["run_id"]) == 40
    assert info["role"] == "master"
    assert info["redis_mode"] == "standalone"
    for field in ("uptime_in_seconds", "connected_clients", "used_memory", "used_memory_human",
                  "total_commands_processed", "instantaneous_ops_per_sec", "keyspace_hits",
                  "keyspace_misses", "expired_keys", "used_cpu_sys", "used_cpu_user",
                  "rdb_changes_since_last_save", "loading", "tcp_port", "process_id"):
        assert field in info, field
    r.set("a", 1)
    r.get("a")
    r.get("a")
    stats = r.info("commandstats")
    assert stats["cmdstat_get"]["calls"] >= 2
    assert r.info("keyspace")["db0"]["keys"] == 1
    with pytest.raises(redis.ResponseError):
        r.execute_command("NOSUCHCOMMAND")
    assert r.info("errorstats")["errorstat_ERR"]["count"] >= 1
    sections = raw_command(r, "INFO", "server", "clients").decode()
    assert "# Server" in sections and "# Clients" in sections and "# Memory" not in sections


def test_commandstats_count_single_and_pipelined_requests_alike(server):
    # A read holding one request and a pipelined batch take different paths
    # through the server; INFO commandstats must not tell them apart.
    r = server.client()
    r.config_resetstat()
    sock = server.raw()

    def exchange(data: bytes, expected: bytes) -> None:
        sock.sendall(data)
        assert read_exactly(sock, len(expected)) == expected

    incr_counter = b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n"
    incr_text = b"*2\r\n$4\r\nINCR\r\n$4\r\ntext\r\n"
    not_integer = b"-ERR value is not an integer or out of range\r\n"
    exchange(b"*3\r\n$3\r\nSET\r\n$4\r\ntext\r\n$1\r\nx\r\n", b"+OK\r\n")
    for n in range(1, 4):                                  # one request per read
        exchange(incr_counter, b":%d\r\n" % n)
    exchange(incr_text, not_integer)
    exchange(incr_counter * 5 + incr_text + b"*1\r\n$4\r\nINCR\r\n",    # one read
             b"".join(b":%d\r\n" % n for n in range(4, 9)) + not_integer
             + b"-ERR wrong number of arguments for 'incr' command\r\n")
    stats = r.info("commandstats")
    assert stats["cmdstat_incr"]["calls"] == 3 + 1 + 5 + 1
    assert stats["cmdstat_incr"]["failed_calls"] == 2
    assert stats["cmdstat_incr"]["rejected_calls"] == 1
    assert stats["cmdstat_set"]["calls"] == 1
    assert stats["cmdstat_incr"]["usec"] > 0
    assert r.get("counter") == b"8"
    assert [c["cmd"] for c in r.client_list() if c["id"] != str(r.client_id())] == ["incr"]


def test_config_get_glob_set_and_resetstat(r):
    values = r.config_get("max*")
    assert "maxclients" in values and "maxmemory" in values
    assert all(name.startswith("max") for name in values)
    assert r.config_set("maxmemory", "2mb") is True
    assert r.config_get("maxmemory") == {"maxmemory": "2097152"}
    r.config_set("maxmemory", "0")
    with pytest.raises(redis.ResponseError, match="Unknown option or number of arguments"):
        r.config_set("no-such-parameter", "1")
    with pytest.raises(redis.ResponseError, match="argument couldn't be parsed"):
        r.config_set("hz", "fast")
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("databases", "32")
    with pytest.raises(redis.ResponseError, match="Unable to listen on this port"):
        r.config_set("port", "1234")   # nothing rebinds the listener yet
    with pytest.raises(redis.ResponseError, match="between 0 and 2147483647 inclusive"):
        r.config_set("hz", "-1")
    assert r.config_set("hz", "0") is True
    assert r.config_get("hz") == {"hz": "1"}   # clamped to 1..500, as Redis
    r.config_set("hz", "10")
    r.get("x")
    assert r.config_resetstat() is True
    assert r.info("stats")["keyspace_misses"] == 0


def test_config_set_of_a_secret_is_refused_not_kept_in_clear(r, server):
    """requirepass does nothing here (users have their own passwords): a
    password is refused with a pointer to ACL SETUSER, never stored nor
    shown; "" (none, as now) is accepted. masterauth (a replica's password
    on its primary) is kept and shown to root's CONFIG GET, as Redis does,
    but never written to the log."""
    r.config_set("masterauth", "s3cret-masterauth")
    assert r.config_get("masterauth") == {"masterauth": "s3cret-masterauth"}
    r.config_set("masterauth", "")
    for name, hint in (("requirepass", "ACL SETUSER"),):
        with pytest.raises(redis.ResponseError,
                           match=r"CONFIG SET failed \(possibly related to argument '%s'\) - .*%s"
                           % (name, hint)):
            r.config_set(name, "s3cret-" + name)
        assert r.config_get(name) == {name: ""}
        assert r.config_set(name, "") is True
    # All or nothing, as every CONFIG SET: the other parameter is not changed.
    with pytest.raises(redis.ResponseError, match="requirepass"):
        r.execute_command("CONFIG", "SET", "maxmemory", "1mb", "requirepass", "x")
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert "s3cret" not in open(server.log_path, errors="replace").read()
    assert r.ping()   # the password-less development login still works


def _keyspace(r) -> tuple:
    stats = r.info("stats")
    return stats["keyspace_hits"], stats["keyspace_misses"]


def test_keyspace_hits_and_misses_count_read_lookups(r, server):
    # As Redis (checked against redis-server 7.0): read lookups count, one per
    # key; write lookups (INCR, SET, DEL...) and key iteration (KEYS, SCAN) do not.
    r.set("a", "1")
    r.set("b", "2")
    r.set("gone", "x", px=1)
    assert r.config_resetstat() is True
    assert _keyspace(r) == (0, 0)
    assert r.get("a") == b"1"
    assert _keyspace(r) == (1, 0)
    assert r.get("nope") is None
    assert _keyspace(r) == (1, 1)
    assert r.mget("a", "b", "nope") == [b"1", b"2", None]
    assert _keyspace(r) == (3, 2)
    assert r.incr("a") == 2 and r.incr("counter") == 1
    r.set("c", "3")
    r.delete("c", "nope")
    r.keys("*")
    r.scan(0)
    assert _keyspace(r) == (3, 2)
    time.sleep(0.01)
    assert r.get("gone") is None            # an expired key is a miss
    assert r.exists("a", "nope", "b") == 2   # one per key
    assert r.ttl("a") == -1 and r.type("nope") == b"none"
    assert r.strlen("b") == 1
    assert _keyspace(r) == (7, 5)
    other = server.client(protocol=2, db=1)
    assert other.get("nope") is None   # every database (and tenant) adds to the server's counts
    other.close()
    assert _keyspace(r) == (7, 6)
    assert r.config_resetstat() is True
    assert _keyspace(r) == (0, 0)
    r.get("a")
    assert _keyspace(r) == (1, 0)


def test_command_table_introspection(r):
    count = r.command_count()
    names = raw_command(r, "COMMAND", "LIST")
    assert b"get" in names and b"config|get" in names   # subcommands too, as Redis lists them
    assert count == len([n for n in names if b"|" not in n]) and count > 50
    info = raw_command(r, "COMMAND", "INFO", "get", "set", "mset", "nosuch")
    assert info[0][:6] == [b"get", 2, [b"readonly", b"fast"], 1, 1, 1]
    assert info[1][1] == -3 and info[2][3:6] == [1, -1, 2]
    assert info[3] is None
    docs = raw_command(r, "COMMAND", "DOCS", "set")
    assert docs[0] == b"set" and b"summary" in docs[1]
    assert raw_command(r, "COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2") == [b"a", b"b"]
    full = raw_command(r, "COMMAND")
    assert len(full) == count
    help_text = r.execute_command("HELP")
    assert any(b"SET" in line for line in help_text)
    assert any(b"EXPIRE" in line for line in r.execute_command("HELP", "expire"))


def test_time_lastsave_debug(r):
    seconds, micros = r.time()
    assert seconds > 1_700_000_000 and 0 <= micros < 1_000_000
    assert r.lastsave() is not None
    r.set("k", "hello")
    assert b"encoding:embstr" in r.execute_command("DEBUG", "OBJECT", "k")
    assert r.execute_command("DEBUG", "SLEEP", "0.05") == b"OK"
    with pytest.raises(redis.ResponseError, match="no such key"):
        r.execute_command("DEBUG", "OBJECT", "missing")


# -- connection commands and RESP3 shapes --------------------------------------------

def test_hello_reply_resp2_and_resp3(server):
    sock = server.raw()
    sock.sendall(b"HELLO 3 SETNAME conn1\r\n")
    reply = read_reply(sock)
    assert reply.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.")
    for field in (b"proto\r\n:3", b"id\r\n:", b"mode\r\n$10\r\nstandalone",
                  b"role\r\n$6\r\nmaster", b"modules\r\n*0"):
        assert field in reply
    sock.sendall(b"CLIENT GETNAME\r\nHELLO 4\r\nHELLO 2\r\n")
    reply = read_reply(sock)
    assert reply.startswith(b"$5\r\nconn1\r\n-NOPROTO unsupported protocol version\r\n*14\r\n")


@pytest.mark.parametrize("command, expected", [
    (b"GET missing", b"_\r\n"),
    (b"MGET missing k", b"*2\r\n_\r\n$1\r\nv\r\n"),
    (b"CONFIG GET maxclients", b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"),
    (b"INCRBYFLOAT f 1.5", b"$3\r\n1.5\r\n"),
    (b"EXISTS k", b":1\r\n"),
    (b"TTL k", b":-1\r\n"),
    (b"SET k v GET", b"$1\r\nv\r\n"),
    (b"OBJECT ENCODING missing", b"_\r\n"),
    (b"COMMAND INFO nosuch", b"*1\r\n_\r\n"),
    (b"PING", b"+PONG\r\n"),
])
def test_resp3_reply_shapes(server, command, expected):
    sock = server.raw()
    sock.sendall(b"HELLO 3\r\nSET k v\r\nDEL f\r\n")
    read_reply(sock)
    sock.sendall(command + b"\r\n")
    assert read_reply(sock) == expected


def test_resp3_verbatim_text_from_client_info(server):
    sock = server.raw()
    sock.sendall(b"HELLO 3\r\n")
    read_reply(sock)
    sock.sendall(b"CLIENT INFO\r\n")
    reply = read_reply(sock)
    header, _, body = reply.partition(b"\r\n")
    assert header.startswith(b"=") and body.startswith(b"txt:id=")
    assert int(header[1:]) == len(body) - 2


def test_redis_py_resp3_client(r3):
    assert r3.execute_command("HELLO", "3")[b"proto"] == 3
    assert r3.client_info()["name"] == ""
    assert r3.set("k", "v") is True
    assert r3.get("missing") is None
    assert r3.incrbyfloat("f", 2.5) == 2.5


def test_select_and_client_commands(r):
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", "16")
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1" or r.client_getname() == b"worker-1"
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        r.client_setname("has space")
    me = r.client_id()
    listing = r.client_list()
    assert any(entry["id"] == str(me) and entry["name"] == "worker-1" for entry in listing)
    assert r.execute_command("CLIENT", "NO-EVICT", "on") == b"OK"
    assert r.execute_command("CLIENT", "NO-TOUCH", "off") == b"OK"
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"])
    other_id = other.client_id()
    assert r.client_kill_filter(_id=other_id) == 1
    assert all(entry["id"] != str(other_id) for entry in r.client_list())


def test_reset_returns_connection_to_defaults(server):
    sock = server.raw()
    sock.sendall(b"HELLO 3\r\nSELECT 5\r\nCLIENT SETNAME n\r\n")
    read_reply(sock)
    sock.sendall(b"RESET\r\nCLIENT GETNAME\r\nSET inzero 1\r\nSELECT 0\r\nGET inzero\r\n")
    assert read_reply(sock) == b"+RESET\r\n$-1\r\n+OK\r\n+OK\r\n$1\r\n1\r\n"


def test_quit_replies_ok_and_closes(server):
    sock = server.raw()
    sock.sendall(b"QUIT\r\nPING\r\n")
    assert read_reply(sock) == b"+OK\r\n"


def test_example_config_file_loads_and_states_the_defaults():
    # tenantkv.toml documents the settings: it must parse, and every value in
    # it must be the embedded default it describes.
    from pathlib import Path

    from tenantkv import config as config_module
    example = Path(__file__).resolve().parent.parent / "tenantkv.toml"
    loaded = config_module.load(str(example), env={})
    defaults = config_module.load(None, env={})
    assert loaded.values == defaults.values
