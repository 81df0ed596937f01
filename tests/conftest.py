"""Test fixtures: a real tenantkv server process on a free port, real clients."""

import os
import socket
import subprocess
import sys
import time

import pytest
import redis


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


class ServerProcess:
    """A tenantkv-server started as a subprocess; stopped with SIGTERM."""

    def __init__(self, data_dir, *extra: str, env: dict | None = None,
                 port: int | None = None, preexec_fn=None) -> None:
        # port: a given one (a restart on the port of a server just killed);
        # preexec_fn: run in the child before exec (e.g. to lower a limit).
        self.port = port or free_port()
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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
    return ServerProcess(data_dir, env=env)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("tenantkv"))
    yield proc
    proc.stop()


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


def dump_tenant(client: redis.Redis, dbs=range(16)) -> dict:
    """{(db, key): (type, value, pttl)} for every key of `dbs` of the client's
    tenant: what a restart (snapshot or append-only log) must give back."""
    out = {}
    for db in dbs:
        client.execute_command("SELECT", db)
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                value = client.get(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(client.smembers(key))
            elif kind == "hash":
                value = client.hgetall(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            else:
                raise AssertionError("unexpected type %s" % kind)
            out[(db, key)] = (kind, value, client.pttl(key))
    client.execute_command("SELECT", 0)
    return out
