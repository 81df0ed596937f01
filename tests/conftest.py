"""Test fixtures and helpers: a real tenantkv server process on a free port, real
clients. Test modules import the helpers with `from conftest import ...`."""

import os
import signal
import sqlite3
import socket
import subprocess
import sys
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from compat import harness


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited with %s" % process.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen on port %d" % port)


def terminate(process, timeout: float = 10) -> None:
    """SIGTERM a process and wait for it; SIGKILL it if it does not end in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServerProcess:
    """A tenantkv-server started as a subprocess; stopped with SIGTERM."""

    def __init__(self, data_dir, *extra: str, env: dict | None = None,
                 port: int | None = None, preexec_fn=None, passwords: dict | None = None) -> None:
        # port: a given one (a restart on the port of a server just killed);
        # preexec_fn: run in the child before exec (e.g. to lower a limit);
        # passwords: name -> password of the users the test made, for login().
        self.port = port or free_port()
        self.passwords = dict(passwords or {})
        self.data_dir = str(data_dir)
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.log = open(self.log_path, "wb")
        # Tests run the password-less development mode unless they ask for
        # more (TENANTKV_AUTH__DEFAULT_USER=off in their environment).
        env = {**os.environ, **(env or {})}
        env.setdefault("TENANTKV_AUTH__DEFAULT_USER", "nopass")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tenantkv", "--port", str(self.port), "--dir", self.data_dir,
             "--loglevel", "notice", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, preexec_fn=preexec_fn)
        wait_for_port(self.port, self.process)

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(port=self.port, **kwargs)

    def raw(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return sock

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        terminate(self.process)
        self.log.close()
        return self.process.returncode

    def kill(self) -> int:
        """SIGKILL: no shutdown and no save, as a crash or a power cut."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# For a client whose connection the server is about to close (SHUTDOWN): no
# reconnection attempts, which redis-py's default retry spaces by seconds.
NO_RETRY = Retry(NoBackoff(), 0)

WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def resp(*args) -> bytes:
    """A request in RESP (arguments: bytes, or anything str() turns into text)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def exchange(sock: socket.socket, data: bytes, expected: bytes) -> None:
    """Send `data`; the server must answer exactly `expected`."""
    sock.sendall(data)
    assert read_exactly(sock, len(expected), timeout=10) == expected


def add_user(data_dir, name: str, password: str, *flags: str) -> None:
    """Create a user offline, as an operator would (tenantkv user add)."""
    subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", str(data_dir),
                    "user", "add", name, "--password-stdin", *flags],
                   input=password.encode() + b"\n", check=True, capture_output=True)


def locked_server(data_dir, users: dict, root_password: str, **settings) -> ServerProcess:
    """A server that requires AUTH (default user off), with a root user and
    `users` (name -> password) made offline before its first start.
    `settings`: auth.* values, e.g. auth_timeout=2."""
    add_user(data_dir, "root", root_password, "--root")
    for name, password in users.items():
        add_user(data_dir, name, password)
    env = {"TENANTKV_AUTH__DEFAULT_USER": "off"}
    env.update(("TENANTKV_AUTH__" + name.upper(), str(value)) for name, value in settings.items())
    return ServerProcess(data_dir, env=env, passwords={"root": root_password, **users})


def locked_fixture(users: dict, root_password: str, **settings):
    """A module-scoped fixture: one locked_server(users, root_password,
    **settings) for the module's tests. In a test module:
    `locked = locked_fixture({"alice": "alice-pw"}, "root-pw", auth_timeout=2)`."""

    @pytest.fixture(scope="module")
    def fixture(request, tmp_path_factory):
        data_dir = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
        with locked_server(data_dir, users, root_password, **settings) as proc:
            yield proc

    return fixture


def login(server: ServerProcess, name: str, password: str | None = None, db: int = 0,
          **kwargs) -> redis.Redis:
    """A client logged in as `name` on one connection (AUTH and SELECT once),
    checked with a PING. The password: the one given, or the one the user was
    made with (locked_server's users, or ServerProcess's `passwords`)."""
    if password is None:
        password = server.passwords[name]
    client = server.client(username=name, password=password, db=db,
                           single_connection_client=True, **kwargs)
    assert client.ping() is True
    return client


@pytest.fixture
def ab(srv):
    """Clients of alice and bob on the module's `srv` (a locked_fixture with
    users alice and bob), their tenants empty before and after the test."""
    a, b = login(srv, "alice"), login(srv, "bob")
    a.flushall()
    b.flushall()
    yield a, b
    a.flushall()
    b.flushall()
    a.close()
    b.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with ServerProcess(tmp_path_factory.mktemp("tenantkv")) as proc:
        yield proc


@pytest.fixture
def make_server(tmp_path):
    """make_server(*flags, data_dir=tmp_path, env=, port=, preexec_fn=, passwords=):
    a started ServerProcess. Every server it started is stopped when the test
    ends: for tests that start several, or restart one in a loop."""
    started = []

    def start(*flags: str, data_dir=None, **kwargs) -> ServerProcess:
        proc = ServerProcess(tmp_path if data_dir is None else data_dir, *flags, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """A real redis-server (the reference), no persistence, for the module."""
    if harness.redis_server_path() is None:
        pytest.skip("redis-server is not installed (`make redis-tools`)")
    with harness.RedisServer(free_port(), str(tmp_path_factory.mktemp("redis-reference"))) as reference:
        yield reference


@pytest.fixture
def r(server):
    client = server.client(protocol=2)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def r3(server):
    client = server.client(protocol=3)
    client.flushall()
    yield client
    client.close()


def read_exactly(sock: socket.socket, size: int, timeout: float = 30.0) -> bytes:
    """Read `size` bytes (fewer only if the server closes first)."""
    sock.settimeout(timeout)
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_reply(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read whatever the server sends until it is quiet briefly (or closes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        chunk = sock.recv(65536)
        data += chunk
        sock.settimeout(0.2)
        while chunk:
            chunk = sock.recv(65536)
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the server has closed the connection."""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw_command(client: redis.Redis, *args):
    """Send a command and return its reply as sent, without redis-py's reply
    callbacks (which turn SMEMBERS into a set, CONFIG GET into a dict...)."""
    connection = client.connection_pool.get_connection()
    try:
        connection.send_command(*args)
        return connection.read_response()
    finally:
        client.connection_pool.release(connection)


class TenantDump(dict):
    """dump_tenant's result, with when it was taken (monotonic seconds): the
    TTLs a restart may lose are bounded by the time that passed, which a
    loaded machine can stretch past a second."""
    started = finished = 0.0


def value_of(client: redis.Redis, key, kind: str, streams: bool = False):
    """The value under `key` (of type `kind`, as TYPE says) in a comparable
    form: a set sorted, a stream (with `streams`) as its entries, groups and
    pending entries."""
    if kind == "string":
        return client.get(key)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "hash":
        return client.hgetall(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "stream" and streams:
        groups = client.xinfo_groups(key)
        return (client.xrange(key), groups,
                [[(entry["message_id"], entry["consumer"], entry["times_delivered"])
                  for entry in client.xpending_range(key, group["name"], "-", "+", 1000)]
                 for group in groups])
    raise AssertionError("unexpected type %s" % kind)


def dump_tenant(client: redis.Redis, dbs=range(16)) -> dict:
    """{(db, key): (type, value, pttl)} for every key of `dbs` of the client's
    tenant: what a restart (snapshot or append-only log) must give back."""
    out = TenantDump()
    out.started = time.monotonic()
    for db in dbs:
        client.execute_command("SELECT", db)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            out[(db, key)] = (kind, value_of(client, key, kind), client.pttl(key))
    client.execute_command("SELECT", 0)
    out.finished = time.monotonic()
    return out


def same_data(before: dict, after: dict, ttl_lost_ms: int = 1000, ttl_gained_ms: int = 1000) -> None:
    """Two dump_tenant() results hold the same keys, types and values; a key
    without a TTL still has none, and a remaining TTL went down by at most
    `ttl_lost_ms` (time passed: at least the time between the two dumps) and
    up by at most `ttl_gained_ms`."""
    if isinstance(before, TenantDump) and isinstance(after, TenantDump):
        ttl_lost_ms = max(ttl_lost_ms, (after.finished - before.started) * 1000 + 100)
    assert before.keys() == after.keys()
    for key, (kind, value, ttl) in before.items():
        kind2, value2, ttl2 = after[key]
        assert (kind2, value2) == (kind, value), key
        if ttl < 0:
            assert ttl2 == ttl, key
        else:
            assert ttl - ttl_lost_ms <= ttl2 <= ttl + ttl_gained_ms, (key, ttl, ttl2)


def schema2_users_db(path: str, rows) -> None:
    """A users.db as the code before users.db schema 3 made it (its SQL frozen
    here; tenants were "user:<id>"). `rows`: (id, username, password, root,
    namespace) each; the file is left mode 0600, as the server makes it."""
    from tenantkv.tenancy import hash_password
    con = sqlite3.connect(path)
    con.execute("""CREATE TABLE users (
               id INTEGER PRIMARY KEY AUTOINCREMENT,
               username TEXT UNIQUE NOT NULL,
               password TEXT NOT NULL,
               created_at INTEGER,
               updated_at INTEGER,
               root_user INTEGER NOT NULL DEFAULT 0,
               enabled INTEGER NOT NULL DEFAULT 1,
               namespace TEXT NULL
           )""")
    con.execute("ALTER TABLE users ADD COLUMN rules TEXT NULL")
    con.execute("ALTER TABLE users ADD COLUMN password_set INTEGER NOT NULL DEFAULT 1")
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (2)")
    for ident, name, password, is_root, namespace in rows:
        con.execute("INSERT INTO users (id, username, password, created_at, updated_at, root_user,"
                    " namespace) VALUES (?, ?, ?, 0, 0, ?, ?)",
                    (ident, name, hash_password(password.encode()), int(is_root), namespace))
    con.commit()
    con.close()
    os.chmod(path, 0o600)
