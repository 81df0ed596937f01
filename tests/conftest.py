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

    def __init__(self, data_dir, *extra: str) -> None:
        self.port = free_port()
        self.data_dir = str(data_dir)
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.log = open(self.log_path, "wb")
        # Tests run the password-less development mode unless they ask for
        # more (TENANTKV_AUTH__DEFAULT_USER=off in their environment).
        env = dict(os.environ)
        env.setdefault("TENANTKV_AUTH__DEFAULT_USER", "nopass")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tenantkv", "--port", str(self.port), "--dir", self.data_dir,
             "--loglevel", "notice", *extra],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
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
