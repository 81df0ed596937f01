"""tenantkv-cli (issue 6), the non-interactive half: output byte for byte as the
real redis-cli's against the same server (ours, and a real redis-server when the
binary exists), and the options (-x, -r/-i, --scan, -u, -a, TENANTKV_PASSWORD,
-n, -3, --json, -v, --pipe, --stat, --latency)."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import free_port, locked_fixture

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
REDIS_CLI = shutil.which("redis-cli")

needs_redis_cli = pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed")


def cli_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TENANTKV_PASSWORD", "REDISCLI_AUTH", "NO_COLOR")}
    env["PYTHONPATH"] = SRC
    env.update(extra or {})
    return env


def tkv(port, *args, input=None, env=None, timeout=60):
    """tenantkv-cli -p PORT ARGS (from this working tree)."""
    return subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-p", str(port), *args],
                          input=input, capture_output=True, env=cli_env(env), timeout=timeout)


def rcli(port, *args, input=None, env=None, timeout=60):
    return subprocess.run([REDIS_CLI, "-p", str(port), *args], input=input, capture_output=True,
                          env=cli_env(env), timeout=timeout)


# -- servers --------------------------------------------------------------------

@pytest.fixture(params=["tenantkv", "redis"])
def target(request, server):
    """The port of a server loaded with the DATA below: ours, or a real redis-server."""
    if REDIS_CLI is None:
        pytest.skip("redis-cli is not installed")
    if request.param == "tenantkv":
        port = server.port
    else:
        port = request.getfixturevalue("redis_server").port
    load_data(port)
    return request.param, port


BINARY = b'bin\x00ary "quoted" \'single\' back\\slash \t\r\n \x01\x7f\x80\xff caf\xc3\xa9'


def load_data(port):
    import redis
    client = redis.Redis(port=port)
    client.flushall()
    client.set("str", "hello world")
    client.set("bin", BINARY)
    client.set("num", "42")
    client.rpush("list", *["item%d" % i for i in range(12)])
    client.rpush("short", "a", "b")
    client.hset("h", mapping={"f1": "v1", "f2": "two words", "f3": "3"})
    client.sadd("s", "only")
    client.zadd("z", {"m%02d" % i: i * 1.5 for i in range(11)})
    client.zadd("zsmall", {"a": 1, "b": 2.5})
    client.set("k:1", "x")
    client.set("k:2", "y")
    client.close()


# Commands covering every reply type; run in one session through stdin
# (redis-cli's way of reading commands when stdin is not a terminal), so each
# CLI makes one connection.
COMMANDS = r"""
GET str
GET bin
GET nokey
STRLEN str
EXISTS str list nokey
INCRBY num 0
TYPE h
PING
ECHO "with \"quotes\", a nul \x00 and \xff"
ECHO 'single quoted \' inside'
ECHO ""
MGET str nokey num
LRANGE list 0 -1
LRANGE short 0 -1
LRANGE nolist 0 -1
HGETALL h
HGETALL noh
HGET h f2
SMEMBERS s
SMEMBERS nos
ZRANGE z 0 -1 WITHSCORES
ZRANGE zsmall 0 -1 WITHSCORES
ZRANGE z 0 2
ZRANGE z 50 60 WITHSCORES
ZSCORE zsmall b
ZSCORE zsmall nomember
ZINCRBY zsmall 0 a
BLPOP nolist 0.01
COMMAND INFO get
COMMAND INFO get nosuchcommand
NOSUCHCOMMAND x y
GET
LPUSH str x
SET k v EX -1
"""

# What differs between two connections (ids, addresses, times): masked.
VOLATILE = r"""
HELLO 3
CLIENT INFO
HELLO 2
"""

DEBUG_PROTOCOL = """
DEBUG PROTOCOL string
DEBUG PROTOCOL integer
DEBUG PROTOCOL double
DEBUG PROTOCOL null
DEBUG PROTOCOL array
DEBUG PROTOCOL set
DEBUG PROTOCOL map
DEBUG PROTOCOL verbatim
DEBUG PROTOCOL true
DEBUG PROTOCOL false
DEBUG PROTOCOL push
DEBUG PROTOCOL string
"""

MODES = {
    "default": [],          # stdout is a pipe: raw
    "no-raw": ["--no-raw"],
    "raw": ["--raw"],
    "json": ["--json"],
    "csv": ["--csv"],
    "quoted-json": ["--quoted-json"],
}


def mask(data: bytes) -> bytes:
    return re.sub(rb"\d+", b"N", data)


def both(port, args, commands):
    mine = tkv(port, *args, input=commands.encode())
    theirs = rcli(port, *args, input=commands.encode())
    assert mine.returncode == theirs.returncode, (mine.stderr, theirs.stderr)
    assert mine.stderr == theirs.stderr
    return mine.stdout, theirs.stdout


def show(mine: bytes, theirs: bytes) -> str:
    ml, tl = mine.split(b"\n"), theirs.split(b"\n")
    for i, (a, b) in enumerate(zip(ml, tl)):
        if a != b:
            return "line %d:\n  tenantkv-cli: %r\n  redis-cli:    %r" % (i + 1, a, b)
    return "lengths differ: %d vs %d lines" % (len(ml), len(tl))


@pytest.mark.parametrize("protocol", ["-2", "-3"])
@pytest.mark.parametrize("mode", list(MODES))
def test_output_matches_redis_cli(target, protocol, mode):
    name, port = target
    mine, theirs = both(port, [protocol, *MODES[mode]], COMMANDS)
    assert mine == theirs, show(mine, theirs)
    # and what was fed was understood: no "Invalid argument(s)"
    assert b"Invalid argument" not in mine


@pytest.mark.parametrize("protocol", ["-2", "-3"])
@pytest.mark.parametrize("mode", ["default", "no-raw", "json"])
def test_volatile_replies_match_redis_cli(target, protocol, mode):
    """HELLO (maps with nested values) and CLIENT INFO (a verbatim string,
    printed raw): equal but for the numbers (ids, ports, ages)."""
    name, port = target
    mine, theirs = both(port, [protocol, *MODES[mode]], VOLATILE)
    assert mask(mine) == mask(theirs), show(mask(mine), mask(theirs))


@pytest.mark.parametrize("protocol", ["-2", "-3"])
@pytest.mark.parametrize("mode", list(MODES))
def test_debug_protocol_matches_redis_cli(redis_server, protocol, mode):
    """Every RESP3 type redis-server can send (DEBUG PROTOCOL), incl. verbatim,
    booleans, a set, a map and a push (not shown when stdout is not a terminal)."""
    if REDIS_CLI is None:
        pytest.skip("redis-cli is not installed")
    mine, theirs = both(redis_server.port, [protocol, *MODES[mode]], DEBUG_PROTOCOL)
    assert mine == theirs, show(mine, theirs)


@pytest.mark.parametrize("args", [
    ["GET", "bin"], ["LRANGE", "list", "0", "-1"], ["HGETALL", "h"], ["-3", "HGETALL", "h"],
    ["-3", "SMEMBERS", "s"], ["-3", "ZSCORE", "zsmall", "b"], ["-3", "ZRANGE", "z", "0", "-1", "WITHSCORES"],
    ["GET", "nokey"], ["LRANGE", "nolist", "0", "-1"], ["NOSUCHCOMMAND"], ["EXISTS", "str", "list"],
    ["COMMAND", "INFO", "get"], ["-3", "COMMAND", "INFO", "get"], ["-e", "NOSUCHCOMMAND"],
    ["-d", "|", "--raw", "LRANGE", "short", "0", "-1"], ["-D", "#", "--raw", "GET", "str"],
])
@pytest.mark.parametrize("mode", ["default", "no-raw", "raw"])
def test_arguments_match_redis_cli(target, args, mode):
    """A command given as arguments: same stdout, stderr and exit status."""
    name, port = target
    mine = tkv(port, *MODES[mode], *args)
    theirs = rcli(port, *MODES[mode], *args)
    assert (mine.stdout, mine.stderr, mine.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)


# -- exit status, -e ----------------------------------------------------------------------

def test_error_reply_exit_status(server):
    # as redis-cli: an error reply is printed and the exit status is 0 ...
    out = tkv(server.port, "NOSUCHCOMMAND")
    assert out.returncode == 0
    assert out.stdout.startswith(b"ERR unknown command")
    # ... unless -e: then it goes to stderr and the status is 1
    out = tkv(server.port, "-e", "NOSUCHCOMMAND")
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr.startswith(b"ERR unknown command")


def test_connection_refused():
    port = free_port()
    out = tkv(port, "PING")
    assert out.returncode == 1
    assert out.stderr == b"Could not connect to Redis at 127.0.0.1:%d: Connection refused\n" % port


def test_unknown_option(server):
    out = tkv(server.port, "--bogus", "PING")
    assert out.returncode == 1
    assert out.stderr == b"Unrecognized option or bad number of args for: '--bogus'\n"


# -- -x, -r/-i, -n, -3, --json --------------------------------------------------------------

def test_x_reads_last_argument_from_stdin(server, r):
    out = tkv(server.port, "-x", "SET", "fromstdin", input=b"line one\nbin\x00ary\n")
    assert out.stdout == b"OK\n", out.stderr
    assert r.get("fromstdin") == b"line one\nbin\x00ary\n"   # as redis-cli: kept whole


def test_repeat_and_interval(server, r):
    start = time.monotonic()
    out = tkv(server.port, "-r", "3", "-i", "0.2", "INCR", "counter")
    elapsed = time.monotonic() - start
    assert out.stdout == b"1\n2\n3\n"
    assert elapsed >= 0.4
    out = tkv(server.port, "--no-raw", "-r", "2", "INCR", "counter")
    assert out.stdout == b"(integer) 4\n(integer) 5\n"


def test_repeat_forever_until_interrupted(server, r):
    proc = subprocess.Popen([sys.executable, "-m", "tenantkv.cli.client", "-p", str(server.port),
                             "-r", "-1", "-i", "0.05", "INCR", "forever"],
                            stdout=subprocess.PIPE, env=cli_env())
    try:
        lines = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.terminate()
        proc.wait(10)
    assert lines == [b"%d\n" % i for i in range(1, 6)]


def test_db_option(server, r):
    out = tkv(server.port, "-n", "2", "SET", "indb2", "v")
    assert out.stdout == b"OK\n"
    assert r.get("indb2") is None
    import redis
    other = redis.Redis(port=server.port, db=2)
    assert other.get("indb2") == b"v"
    other.delete("indb2")
    other.close()


def test_db_out_of_range_is_reported_and_the_command_runs(server):
    out = tkv(server.port, "-n", "999", "PING")
    assert out.stdout == b"PONG\n"
    assert b"SELECT 999 failed: ERR DB index is out of range" in out.stderr


def test_resp3(server, r):
    r.hset("h3", mapping={"a": "1", "b": "2"})
    out = tkv(server.port, "-3", "--no-raw", "HGETALL", "h3")
    assert out.stdout == b'1# "a" => "1"\n2# "b" => "2"\n'
    out = tkv(server.port, "--no-raw", "HGETALL", "h3")
    assert out.stdout == b'1) "a"\n2) "1"\n3) "b"\n4) "2"\n'


def test_json(server, r):
    r.hset("hj", mapping={"a": "1", "q": 'say "hi"\n'})
    r.zadd("zj", {"x": 1.5})
    out = tkv(server.port, "--json", "HGETALL", "hj")     # RESP3 by default: an object
    assert json.loads(out.stdout) == {"a": "1", "q": 'say "hi"\n'}
    out = tkv(server.port, "--json", "-2", "HGETALL", "hj")
    assert json.loads(out.stdout) == ["a", "1", "q", 'say "hi"\n']
    out = tkv(server.port, "--json", "ZRANGE", "zj", "0", "-1", "WITHSCORES")
    assert json.loads(out.stdout) == [["x", 1.5]]
    assert json.loads(tkv(server.port, "--json", "GET", "nokey").stdout) is None


# -- URLs, passwords -------------------------------------------------------------------------

WARNING = (b"Warning: Using a password with '-a' or '-u' option on the command line "
           b"interface may not be safe.\n")


locked = locked_fixture({"alice": "alice-secret"}, "root-pw")


def test_locked_server_needs_auth(locked):
    out = tkv(locked.port, "PING")
    assert out.stdout.startswith(b"NOAUTH")


def test_password_option_warns(locked):
    out = tkv(locked.port, "--user", "alice", "-a", "alice-secret", "ACL", "WHOAMI")
    assert out.stdout == b"alice\n"
    assert out.stderr == WARNING
    out = tkv(locked.port, "--user", "alice", "--pass", "alice-secret", "--no-auth-warning", "PING")
    assert (out.stdout, out.stderr) == (b"PONG\n", b"")


@needs_redis_cli
def test_password_warning_and_auth_failure_as_redis_cli(locked):
    args = ["--user", "alice", "-a", "wrong", "PING"]
    mine, theirs = tkv(locked.port, *args), rcli(locked.port, *args)
    assert (mine.stdout, mine.stderr, mine.returncode) == \
        (theirs.stdout, theirs.stderr, theirs.returncode)
    assert mine.stderr.startswith(WARNING + b"AUTH failed: WRONGPASS")


def test_password_from_environment(locked):
    out = tkv(locked.port, "--user", "alice", "ACL", "WHOAMI", env={"TENANTKV_PASSWORD": "alice-secret"})
    assert (out.stdout, out.stderr) == (b"alice\n", b"")      # no warning
    out = tkv(locked.port, "--user", "alice", "ACL", "WHOAMI", env={"REDISCLI_AUTH": "alice-secret"})
    assert out.stdout == b"alice\n"
    # -a wins over the environment
    out = tkv(locked.port, "--user", "alice", "-a", "wrong", "--no-auth-warning", "PING",
              env={"TENANTKV_PASSWORD": "alice-secret"})
    assert b"AUTH failed" in out.stderr


def test_uri(locked):
    url = "redis://alice:alice-secret@127.0.0.1:%d/3" % locked.port
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-u", url, "SET", "viaurl", "1"],
                         capture_output=True, env=cli_env())
    assert out.stdout == b"OK\n"
    assert out.stderr == WARNING
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-u", url, "--no-auth-warning",
                          "-n", "0", "EXISTS", "viaurl"], capture_output=True, env=cli_env())
    assert out.stdout == b"0\n"      # -n after -u: database 0
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-u", url, "--no-auth-warning",
                          "GET", "viaurl"], capture_output=True, env=cli_env())
    assert out.stdout == b"1\n"


def test_uri_parsing():
    from tenantkv.cli.client import Options, UsageError, parse_args, parse_uri
    opts = parse_args(["-u", "rediss://us%40er:p%3Ass@example.com:6380/5", "GET", "k"])
    assert (opts.tls, opts.user, opts.password, opts.host, opts.port, opts.db) == \
        (True, "us@er", "p:ss", "example.com", 6380, 5)
    assert opts.command == ["GET", "k"]
    opts = parse_args(["-u", "redis://:only-pass@h"])
    assert (opts.user, opts.password, opts.host, opts.port, opts.tls) == (None, "only-pass", "h", 6379, False)
    opts = parse_args(["-u", "redis://h2:7000"])
    assert (opts.password, opts.host, opts.port, opts.db) == (None, "h2", 7000, 0)
    with pytest.raises(UsageError):
        parse_uri("http://x", Options())


def test_verbose_shows_resp_and_hides_the_password(locked):
    out = tkv(locked.port, "--user", "alice", "-a", "alice-secret", "--no-auth-warning", "-v",
              "GET", "nokey")
    assert out.stdout == b"\n"
    err = out.stderr.decode()
    assert '-> "*3\\r\\n$4\\r\\nAUTH\\r\\n$5\\r\\nalice\\r\\n$12\\r\\n(redacted)\\r\\n"' in err
    assert '<- "+OK\\r\\n"' in err
    assert '-> "*2\\r\\n$3\\r\\nGET\\r\\n$5\\r\\nnokey\\r\\n"' in err
    assert '<- "$-1\\r\\n"' in err
    assert "alice-secret" not in err


# -- --scan ------------------------------------------------------------------------------------

def test_scan(server, r):
    r.mset({"user:%d" % i: i for i in range(150)})
    r.mset({"other:%d" % i: i for i in range(20)})
    r.set('user:"quoted" key', 1)
    out = tkv(server.port, "--scan", "--pattern", "user:*", "--count", "7")
    keys = out.stdout.split(b"\n")[:-1]
    assert sorted(keys) == sorted([b"user:%d" % i for i in range(150)] + [b'user:"quoted" key'])
    out = tkv(server.port, "--scan")
    assert len(out.stdout.split(b"\n")[:-1]) == 171
    out = tkv(server.port, "--no-raw", "--scan", "--pattern", "user:\"*")
    assert out.stdout == b'"user:\\"quoted\\" key"\n'


@needs_redis_cli
def test_scan_as_redis_cli(server, r):
    r.mset({"sc:%d" % i: i for i in range(30)})
    for mode in ([], ["--no-raw"]):
        mine = tkv(server.port, *mode, "--scan", "--pattern", "sc:*")
        theirs = rcli(server.port, *mode, "--scan", "--pattern", "sc:*")
        assert sorted(mine.stdout.split(b"\n")) == sorted(theirs.stdout.split(b"\n"))


# -- --pipe -------------------------------------------------------------------------------------

def test_pipe_one_million_keys(server, r, tmp_path):
    n = 1_000_000
    path = tmp_path / "input.resp"
    with open(path, "wb") as f:
        for start in range(0, n, 100_000):
            f.write(b"".join(b"*3\r\n$3\r\nSET\r\n$11\r\nkey:%07d\r\n$1\r\nv\r\n" % i
                             for i in range(start, start + 100_000)))
    with open(path, "rb") as stdin:
        out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-p", str(server.port), "--pipe"],
                             stdin=stdin, capture_output=True, env=cli_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (b"All data transferred. Waiting for the last reply...\n"
                          b"Last reply received from server.\n"
                          b"errors: 0, replies: %d\n" % n)
    assert out.stderr == b""
    assert r.dbsize() == n
    assert r.get("key:0999999") == b"v"


def test_pipe_inline_and_errors_as_redis_cli(server, r):
    data = b"SET a 1\r\nNOSUCHCOMMAND\r\nGET a\r\nINCR a\r\nLPUSH a x\r\n"
    out = tkv(server.port, "--pipe", input=data)
    assert out.returncode == 1
    assert out.stdout == (b"All data transferred. Waiting for the last reply...\n"
                          b"Last reply received from server.\n"
                          b"errors: 2, replies: 5\n")
    lines = out.stderr.split(b"\n")
    assert lines[0].startswith(b"ERR unknown command 'NOSUCHCOMMAND'")
    assert lines[1].startswith(b"WRONGTYPE")
    if REDIS_CLI:
        r.flushall()
        theirs = rcli(server.port, "--pipe", input=data)
        assert (out.stdout, out.stderr, out.returncode) == (theirs.stdout, theirs.stderr, theirs.returncode)


def test_pipe_empty_input(server):
    out = tkv(server.port, "--pipe", input=b"")
    assert out.stdout.endswith(b"errors: 0, replies: 0\n")
    assert out.returncode == 0


# -- stdin lines, --stat, --latency --------------------------------------------------------------

def test_commands_from_stdin(server, r):
    script = b'SET greeting "hello\\nworld"\nGET greeting\n\n3 INCR c\nSET "unbalanced\nquit\nGET greeting\n'
    out = tkv(server.port, input=script)
    assert out.stdout == b"OK\nhello\nworld\n1\n2\n3\nInvalid argument(s)\n"


def test_stat(server):
    proc = subprocess.Popen([sys.executable, "-m", "tenantkv.cli.client", "-p", str(server.port),
                             "--stat", "-i", "0.1"], stdout=subprocess.PIPE, env=cli_env())
    try:
        lines = [proc.stdout.readline().decode() for _ in range(4)]
    finally:
        proc.terminate()
        proc.wait(10)
    assert lines[0] == "------- data ------ --------------------- load -------------------- - child -\n"
    assert lines[1] == "keys       mem      clients blocked requests            connections          \n"
    pattern = r"^\d+ +[\d.]+[BKMGTP] +\d+ +\d+ +\d+ \(\+\d+\) +\d+ +\n$"
    assert re.match(pattern, lines[2]) and re.match(pattern, lines[3]), lines
    assert "(+0)" in lines[2]
    # the second line counts the INFO of the first
    assert re.search(r"\(\+[1-9]\d*\)", lines[3]), lines[3]


def test_latency(server):
    start = time.monotonic()
    out = tkv(server.port, "--latency", "-i", "0.3")
    assert time.monotonic() - start < 20
    assert re.match(rb"^\d+ \d+ \d+\.\d\d \d+\n$", out.stdout), out.stdout
    out = tkv(server.port, "--latency", "-i", "0.3", "--json")
    assert set(json.loads(out.stdout)) == {"min", "max", "avg", "count"}


def test_latency_history(server):
    proc = subprocess.Popen([sys.executable, "-m", "tenantkv.cli.client", "-p", str(server.port),
                             "--latency-history", "-i", "0.2"], stdout=subprocess.PIPE, env=cli_env())
    try:
        lines = b""
        while lines.count(b"range") < 1:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            lines += chunk
    finally:
        proc.terminate()
        proc.wait(10)
    assert re.search(rb"\d+ \d+ \d+\.\d\d \d+\n -- 0\.\d\d seconds range\n", lines), lines


# -- output module --------------------------------------------------------------------------

def test_format_reply_types():
    from tenantkv.cli.output import format_reply, strip_color
    from tenantkv.cli.resp import BigNumber, Bool, Double, Error, Map, Push, Set, Status, Verbatim
    reply = [Status("OK"), Error("ERR x"), 1, b"a\x00\"", None, Double("3.14"), Bool(True),
             Verbatim(b"text\nmore", "txt"), BigNumber("12345678901234567890"),
             Map([(b"k", [b"v1", b"v2"])]), Set([]), Push([]), Map([]), []]
    text = format_reply(reply, "tty")
    assert text == (
        ' 1) OK\n 2) (error) ERR x\n 3) (integer) 1\n 4) "a\\x00\\""\n 5) (nil)\n'
        ' 6) (double) 3.14\n 7) (true)\n 8) text\nmore\n 9) (big number) 12345678901234567890\n'
        '10) 1# "k" => \n       1) "v1"\n       2) "v2"\n'
        '11) (empty set)\n12) (empty push)\n13) (empty hash)\n14) (empty array)\n')
    colored = format_reply(reply, "tty", color=True)
    assert "\x1b[" in colored and strip_color(colored) == text
    assert format_reply(reply, "raw") == (
        "OK\nERR x\n\n1\na\x00\"\n\n3.14\n(true)\ntext\nmore\n12345678901234567890\nk v1\nv2\n\n\n\n\n")
    assert json.loads(format_reply(Map([(b"k", [1, None, Bool(False), Double("1.5")])]), "json")) == \
        {"k": [1, None, False, 1.5]}


def test_reader_split_anywhere():
    from tenantkv.cli.resp import NOT_READY, Reader, ReplyCounter
    data = (b"*3\r\n%1\r\n+a\r\n*2\r\n:1\r\n$3\r\nb\r\n\r\n~1\r\n,inf\r\n|1\r\n+meta\r\n+x\r\n#f\r\n"
            b"$-1\r\n*-1\r\n_\r\n-ERR e\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    for step in (1, 2, 3, 7, len(data)):
        reader, counter, replies = Reader(), ReplyCounter(), []
        for i in range(0, len(data), step):
            reader.feed(data[i:i + step])
            counter.feed(data[i:i + step])
            while (reply := reader.gets()) is not NOT_READY:
                replies.append(reply)
        assert len(replies) == 6 == counter.replies
        assert counter.errors == 1
        first = replies[0]
        assert first[0] == [("a", [1, b"b\r\n"])] and first[1] == [float("inf")] and first[2] == 0
        assert replies[1:5] == [None, None, None, "ERR e"]


# -- the admin command shares the help tree ---------------------------------------------------

def test_admin_cli_subcommand(server):
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--help"],
                         capture_output=True, env=cli_env())
    assert b"cli" in out.stdout and b"user" in out.stdout
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "cli", "-p", str(server.port), "PING"],
                         capture_output=True, env=cli_env())
    assert out.stdout == b"PONG\n"
    out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "--help"],
                         capture_output=True, env=cli_env())
    assert out.returncode == 0 and b"tenantkv user" in out.stdout


def test_interactive_hand_over(server):
    """stdin and stdout a terminal, no command: the REPL (tenantkv.cli.repl)
    starts, or a clear message says it is missing from this build."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "tenantkv.cli.client", "-p", str(server.port)],
                          env=cli_env({"HOME": tempfile.mkdtemp(), "TERM": "dumb"}), timeout=20)
    try:
        index = child.expect([r"127\.0\.0\.1:%d" % server.port, "interactive client"])
        if index == 0:
            # "quit" rather than Ctrl-D: typed before prompt_toolkit switched
            # the terminal to raw mode, a Ctrl-D is eaten by the line discipline.
            child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)


# -- pub/sub, terminals -----------------------------------------------------------------------

def _subscribe_output(command, port, publish):
    proc = subprocess.Popen([*command, "-p", str(port), *("SUBSCRIBE", "ch1", "ch2")],
                            stdout=subprocess.PIPE, env=cli_env())
    try:
        lines = [proc.stdout.readline() for _ in range(6)]   # two confirmations
        publish()
        lines += [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(10)
    return lines


@pytest.mark.parametrize("protocol", ["-2", "-3"])
def test_subscribe_prints_messages(redis_server, protocol):
    """Against redis-server (tenantkv has no pub/sub yet): the confirmations and
    the messages, in RESP3 pushes, printed as redis-cli does."""
    import redis
    client = redis.Redis(port=redis_server.port)
    publish = lambda: client.publish("ch2", "hello")   # noqa: E731
    lines = _subscribe_output([sys.executable, "-m", "tenantkv.cli.client", protocol],
                              redis_server.port, publish)
    assert lines == [b"subscribe\n", b"ch1\n", b"1\n", b"subscribe\n", b"ch2\n", b"2\n",
                     b"message\n", b"ch2\n", b"hello\n"]
    if REDIS_CLI:
        assert lines == _subscribe_output([REDIS_CLI, protocol], redis_server.port, publish)
    client.close()


def _spawn(args, env=None):
    pexpect = pytest.importorskip("pexpect")
    return pexpect.spawn(sys.executable, ["-m", "tenantkv.cli.client", *args],
                         env=cli_env({"TERM": "xterm", **(env or {})}), timeout=30)


def test_terminal_output_has_colours_unless_told(server, r):
    pexpect = pytest.importorskip("pexpect")
    r.rpush("cl", "a")
    child = _spawn(["-p", str(server.port), "LRANGE", "cl", "0", "-1"])
    child.expect(pexpect.EOF)
    assert child.before == b'\x1b[2m1) \x1b[0m\x1b[32m"a"\x1b[0m\r\n'
    for args, env in ((["--no-color"], None), ([], {"NO_COLOR": "1"})):
        child = _spawn(["-p", str(server.port), *args, "LRANGE", "cl", "0", "-1"], env)
        child.expect(pexpect.EOF)
        assert child.before == b'1) "a"\r\n'


def test_askpass(locked):
    pexpect = pytest.importorskip("pexpect")
    child = _spawn(["-p", str(locked.port), "--no-color", "--user", "alice", "--askpass", "ACL", "WHOAMI"])
    child.expect("Please input password: ")
    child.sendline("alice-secret")
    child.expect(pexpect.EOF)
    assert b"alice-secret" not in child.before     # not echoed
    assert child.before.strip().endswith(b'"alice"')


def test_pipe_progress_on_a_terminal(server, r, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    path = tmp_path / "in.resp"
    path.write_bytes(b"".join(b"*3\r\n$3\r\nSET\r\n$8\r\nkey:%04d\r\n$1\r\nv\r\n" % i for i in range(5000)))
    child = pexpect.spawn("/bin/sh", ["-c", "exec %s -m tenantkv.cli.client -p %d --pipe < %s"
                                      % (sys.executable, server.port, path)],
                          env=cli_env(), timeout=60)
    child.expect(pexpect.EOF)
    text = child.before
    assert b"% of" in text and b"replies" in text      # the progress line, on stderr
    assert text.endswith(b"Last reply received from server.\r\nerrors: 0, replies: 5000\r\n")
    assert r.dbsize() == 5000
