"""TLS: the tls-port listener (alone or beside the plain port), mutual TLS,
the login by client certificate (tls-client-cert-user), reloading the
certificate with CONFIG SET, and redis-cli / tenantkv-cli over TLS.
Certificates are made here with trustme."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import ServerProcess, add_user, exchange, free_port, login, resp

trustme = pytest.importorskip("trustme")

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost, client certificates
    by CN, and a second CA nobody trusts."""

    def __init__(self, directory) -> None:
        self.dir = str(directory)
        self.ca = trustme.CA()
        self.ca_file = self.write("ca.pem", self.ca.cert_pem)
        self.server = self.write("server.pem", self.ca.issue_cert(
            "127.0.0.1", "localhost").private_key_and_cert_chain_pem)
        self.other_ca = trustme.CA()
        self.other_ca_file = self.write("other-ca.pem", self.other_ca.cert_pem)

    def write(self, name: str, blob) -> str:
        path = os.path.join(self.dir, name)
        blob.write_to_path(path)
        return path

    def client(self, cn: str, ca=None) -> str:
        """A PEM file with key and certificate for `cn` (signed by `ca`, else ours)."""
        ca = ca or self.ca
        name = "client-%s-%d.pem" % (cn, id(ca))
        return self.write(name, ca.issue_cert(cn + ".example", common_name=cn)
                          .private_key_and_cert_chain_pem)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


def tls_flags(certs, port, *more) -> tuple:
    return ("--tls-port", str(port), "--tls-cert-file", certs.server,
            "--tls-key-file", certs.server, "--tls-ca-cert-file", certs.ca_file, *more)


def tls_client(port: int, ca_file: str, cert: str | None = None, **kwargs) -> redis.Redis:
    return redis.Redis(port=port, ssl=True, ssl_ca_certs=ca_file, ssl_certfile=cert,
                       ssl_keyfile=cert, single_connection_client=True,
                       socket_timeout=10, **kwargs)


NOAUTH = b"-NOAUTH Authentication required.\r\n"


def tls_socket(port: int, ca_file: str, cert: str | None = None) -> ssl.SSLSocket:
    """A raw TLS socket to the server (with the client certificate `cert`)."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert:
        context.load_cert_chain(cert)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def tls_server(data_dir, certs, *more, env=None) -> ServerProcess:
    """A server with its plain port and a TLS port (`.tls_port`)."""
    port = free_port()
    proc = ServerProcess(data_dir, *tls_flags(certs, port, *more), "--loglevel", "verbose", env=env)
    proc.tls_port = port
    return proc


def handshake_refused(port: int, ca_file: str, cert: str | None = None) -> bool:
    """True if a TLS client (with `cert`, if given) cannot run a command."""
    try:
        # (single_connection_client: the constructor connects already)
        client = tls_client(port, ca_file, cert, retry=Retry(NoBackoff(), 0))
        client.ping()
    except (redis.ConnectionError, ssl.SSLError, OSError):
        return True
    client.close()
    return False


def test_tls_alone_with_port_0(tmp_path, certs):
    tls_port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC, "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantkv", "--port", "0", "--dir", str(tmp_path),
         *tls_flags(certs, tls_port, "--tls-auth-clients", "no")],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        client = tls_client(tls_port, certs.ca_file)
        assert client.set("k", "v") is True
        assert client.get("k") == b"v"
        # Only the TLS port: the log names one listener, the TLS one.
        ready = [line for line in (tmp_path / "server.log").read_text().splitlines()
                 if "Ready to accept" in line]
        assert ready and ready[0].rstrip(")").split(" on ")[1].split(" (")[0] == \
            "127.0.0.1:%d" % tls_port
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_plain_client_dropped_on_tls_port(tmp_path, certs):
    with tls_server(tmp_path, certs, "--tls-auth-clients", "no") as proc:
        sock = socket.create_connection(("127.0.0.1", proc.tls_port), timeout=10)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        # No reply: the bytes are no ClientHello; the handshake fails, the
        # connection is closed (at most a TLS alert comes back, never +PONG).
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        sock.close()
        assert b"PONG" not in data
        # The server is still up and serves TLS and plain clients.
        assert tls_client(proc.tls_port, certs.ca_file).ping() is True
        assert proc.client().ping() is True


def test_tls_with_redis_py_and_plain_port_beside(tmp_path, certs):
    with tls_server(tmp_path, certs, "--tls-auth-clients", "no") as proc:
        secure = tls_client(proc.tls_port, certs.ca_file)
        assert secure.set("shared", "1") is True
        # Both listeners serve the same server (nopass: the default tenant).
        assert proc.client().get("shared") == b"1"
        assert secure.config_get("tls-port") == {"tls-port": str(proc.tls_port)}
        assert secure.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}
        with pytest.raises(redis.ResponseError, match="can't set immutable config"):
            secure.config_set("tls-port", proc.tls_port + 1)


def test_mutual_tls(tmp_path, certs):
    alice = certs.client("alice")
    stranger = certs.client("alice", ca=certs.other_ca)
    with tls_server(tmp_path, certs) as proc:   # tls-auth-clients yes: Redis's default
        assert tls_client(proc.tls_port, certs.ca_file, alice).ping() is True
        assert handshake_refused(proc.tls_port, certs.ca_file)            # no certificate
        assert handshake_refused(proc.tls_port, certs.ca_file, stranger)  # another CA's
        assert proc.client().ping() is True
        # optional: no certificate is fine, a bad one still is not.
        proc.client().config_set("tls-auth-clients", "optional")
        assert tls_client(proc.tls_port, certs.ca_file).ping() is True
        assert handshake_refused(proc.tls_port, certs.ca_file, stranger)
        assert tls_client(proc.tls_port, certs.ca_file, alice).ping() is True


def test_client_certificate_logs_in_as_its_user(tmp_path, certs):
    add_user(tmp_path, "root", "root-pw", "--root")
    add_user(tmp_path, "alice", "alice-pw")
    add_user(tmp_path, "bob", "bob-pw")
    env = {"TENANTKV_AUTH__DEFAULT_USER": "off"}
    with tls_server(tmp_path, certs, "--tls-client-cert-user", "yes",
                    "--tls-auth-clients", "optional", env=env) as proc:
        proc.passwords.update(root="root-pw", alice="alice-pw", bob="bob-pw")
        root = login(proc, "root")
        root.execute_command("ACL", "SETUSER", "bob", "off")

        alice = tls_client(proc.tls_port, certs.ca_file, certs.client("alice"))
        assert alice.acl_whoami() == "alice"
        assert alice.set("mine", "1") is True
        # alice's tenant, as with her password; not root's.
        assert login(proc, "alice").get("mine") == b"1"
        assert root.get("mine") is None
        with pytest.raises(redis.ResponseError, match="no permissions"):
            alice.config_set("tls-client-cert-user", "no")

        for cn in ("mallory", "bob"):   # unknown, disabled: not logged in
            sock = tls_socket(proc.tls_port, certs.ca_file, certs.client(cn))
            exchange(sock, resp("GET", "mine"), NOAUTH)
            # ... but may still AUTH with a password.
            exchange(sock, resp("AUTH", "alice", "alice-pw"), b"+OK\r\n")
            exchange(sock, resp("GET", "mine"), b"$1\r\n1\r\n")
            sock.close()
        entries = root.acl_log()
        assert any(e["object"] == "TLS" and e["username"] == "mallory" for e in entries)

        # No certificate (optional): unauthenticated.
        sock = tls_socket(proc.tls_port, certs.ca_file)
        exchange(sock, resp("GET", "mine"), NOAUTH)
        sock.close()

        # Off: the certificate is checked, but names nobody.
        assert root.config_set("tls-client-cert-user", "no") is True
        sock = tls_socket(proc.tls_port, certs.ca_file, certs.client("alice"))
        exchange(sock, resp("GET", "mine"), NOAUTH)
        sock.close()
        # A live session stays logged in.
        assert alice.get("mine") == b"1"


def test_certificate_reload_keeps_live_connections(tmp_path, certs):
    new_ca = trustme.CA()
    new_ca_file = certs.write("new-ca.pem", new_ca.cert_pem)
    new_server = certs.write("new-server.pem", new_ca.issue_cert(
        "127.0.0.1", "localhost").private_key_and_cert_chain_pem)
    with tls_server(tmp_path, certs, "--tls-auth-clients", "no") as proc:
        live = tls_client(proc.tls_port, certs.ca_file)
        assert live.set("k", "before") is True
        admin = proc.client()
        # A certificate that does not load is refused; the old one serves on.
        with pytest.raises(redis.ResponseError, match="tls-cert-file.*Unable to update TLS"):
            admin.config_set("tls-cert-file", os.path.join(certs.dir, "missing.pem"))
        assert admin.config_get("tls-cert-file")["tls-cert-file"] == certs.server
        assert tls_client(proc.tls_port, certs.ca_file).ping() is True
        # Certificate and key in one call (the new file holds both).
        assert admin.execute_command("CONFIG", "SET", "tls-cert-file", new_server,
                                     "tls-key-file", new_server) == b"OK"
        # New connections get the new certificate...
        assert tls_client(proc.tls_port, new_ca_file).ping() is True
        assert handshake_refused(proc.tls_port, certs.ca_file)
        # ... and the live one, made with the old, goes on.
        assert live.get("k") == b"before"
        assert live.set("k", "after") is True
        assert proc.client().get("k") == b"after"


def test_bad_tls_settings(tmp_path, certs):
    with tls_server(tmp_path, certs, "--tls-auth-clients", "no") as proc:
        admin = proc.client()
        for name, value in (("tls-protocols", "SSLv3"), ("tls-protocols", "TLSv1 TLSv1.3"),
                            ("tls-ciphers", "NO-SUCH-CIPHER"),
                            ("tls-ciphersuites", "NO_SUCH_SUITE"),
                            ("tls-auth-clients", "maybe")):
            with pytest.raises(redis.ResponseError, match=name):
                admin.config_set(name, value)
        # Good values take: TLSv1.3 only, with one suite.
        assert admin.execute_command("CONFIG", "SET", "tls-protocols", "TLSv1.3",
                                     "tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256") == b"OK"
        client = tls_client(proc.tls_port, certs.ca_file)
        assert client.ping() is True
        sslsock = client.connection._sock
        assert sslsock.version() == "TLSv1.3"
        assert sslsock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    # At start-up a context that cannot be built stops the server with the reason.
    result = subprocess.run(
        [sys.executable, "-m", "tenantkv", "--dir", str(tmp_path), "--port", str(free_port()),
         "--tls-port", str(free_port()), "--tls-cert-file", certs.server],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, timeout=30)
    assert result.returncode != 0
    assert b"tls-cert-file and tls-key-file must be set" in result.stdout + result.stderr


def test_redis_cli_and_tenantkv_cli_over_tls(tmp_path, certs):
    alice = certs.client("alice")
    with tls_server(tmp_path, certs) as proc:
        common = ["-p", str(proc.tls_port), "--tls", "--cacert", certs.ca_file,
                  "--cert", alice, "--key", alice]
        if shutil.which("redis-cli"):
            out = subprocess.run(["redis-cli", *common, "SET", "cli", "redis"],
                                 capture_output=True, timeout=30)
            assert out.stdout.strip() == b"OK", out
        else:
            proc.client().set("cli", "redis")
        out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", *common, "GET", "cli"],
                             env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, timeout=30)
        assert out.stdout.strip() == b"redis", out
        # --insecure: no CA given, the server's certificate is not checked.
        out = subprocess.run([sys.executable, "-m", "tenantkv.cli.client", "-p", str(proc.tls_port),
                              "--tls", "--insecure", "--cert", alice, "--key", alice, "PING"],
                             env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, timeout=30)
        assert out.stdout.strip() == b"PONG", out


def test_handshakes_under_way_count_against_maxclients(tmp_path, certs):
    with tls_server(tmp_path, certs, "--tls-auth-clients", "no", "--maxclients", "4") as proc:
        admin = proc.client(single_connection_client=True)
        assert admin.ping() is True   # client 1 of 4
        # Three connections that never send a ClientHello: pending handshakes.
        stalled = [socket.create_connection(("127.0.0.1", proc.tls_port), timeout=10)
                   for _ in range(3)]
        deadline = time.monotonic() + 10
        while handshake_refused(proc.tls_port, certs.ca_file) is False:
            assert time.monotonic() < deadline, "a 5th connection was served"
            time.sleep(0.1)
        # Gone before their handshake: their places are free again.
        for sock in stalled:
            sock.close()
        deadline = time.monotonic() + 10
        while handshake_refused(proc.tls_port, certs.ca_file):
            assert time.monotonic() < deadline, "the stalled connections kept their places"
            time.sleep(0.1)
        assert admin.info("stats")["rejected_connections"] >= 1


def test_encrypted_key_with_passphrase(tmp_path, certs):
    from cryptography.hazmat.primitives import serialization
    issued = certs.ca.issue_cert("127.0.0.1", "localhost")
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    key_file = tmp_path / "encrypted.key"
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret")))
    cert_file = tmp_path / "cert.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    port = free_port()
    flags = ["--tls-port", str(port), "--tls-cert-file", str(cert_file),
             "--tls-key-file", str(key_file), "--tls-auth-clients", "no"]
    # A wrong passphrase stops the start, naming the files (never the passphrase).
    result = subprocess.run(
        [sys.executable, "-m", "tenantkv", "--dir", str(tmp_path), "--port", str(free_port()),
         *flags, "--tls-key-file-pass", "wrong"],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and b"Failed to load certificate" in output
    assert b"wrong" not in output
    data = tmp_path / "data"
    data.mkdir()
    with ServerProcess(data, *flags, "--tls-key-file-pass", "s3cret"):
        client = tls_client(port, certs.ca_file)
        assert client.ping() is True
