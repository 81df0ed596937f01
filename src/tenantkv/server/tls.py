"""TLS: the server's SSLContext from the tls-* settings, and the login of a
connection by its client certificate (tls-client-cert-user).

The TLS listener is the plain one with `ssl=` (server/app.py): the same
Connection, so nothing on the command path knows about TLS, and the plain
port pays nothing for it. A new context (CONFIG SET tls-cert-file, ...)
serves the connections accepted from then on; live ones keep the context
their handshake used.
"""

import asyncio
import ctypes
import logging
import ssl

from tenantkv.server.connection import Connection

log = logging.getLogger("tenantkv.tls")

_VERSIONS = {"tlsv1": ssl.TLSVersion.TLSv1, "tlsv1.1": ssl.TLSVersion.TLSv1_1,
             "tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}


class TLSConfigError(ValueError):
    pass


def build_context(config) -> ssl.SSLContext:
    """An SSLContext for the TLS listener, as Redis's tlsConfigure builds
    its SSL_CTX from the same settings. TLSConfigError says what is wrong."""
    cert, key = config["tls.cert_file"], config["tls.key_file"]
    if not cert or not key:
        raise TLSConfigError("tls-cert-file and tls-key-file must be set for tls-port")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version, ctx.maximum_version = _protocols(config["tls.protocols"])
    try:
        ctx.load_cert_chain(cert, key, password=config["tls.key_file_pass"] or None)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError("Failed to load certificate %s / private key %s: %s"
                             % (cert, key, _why(exc))) from None
    verify = _VERIFY[config["tls.auth_clients"]]
    cafile, capath = config["tls.ca_cert_file"] or None, config["tls.ca_cert_dir"] or None
    if cafile or capath:
        try:
            ctx.load_verify_locations(cafile=cafile, capath=capath)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError("Failed to configure CA certificate(s) file/directory: %s"
                                 % _why(exc)) from None
    elif verify != ssl.CERT_NONE:
        # Redis's own refusal: client certificates cannot be checked against nothing.
        raise TLSConfigError("Either tls-ca-cert-file or tls-ca-cert-dir must be specified "
                             "when tls-auth-clients is enabled!")
    ctx.verify_mode = verify
    if config["tls.ciphers"]:
        try:
            ctx.set_ciphers(config["tls.ciphers"])
        except ssl.SSLError:
            raise TLSConfigError("Failed to configure ciphers: %s" % config["tls.ciphers"]) from None
    if config["tls.ciphersuites"]:
        _set_ciphersuites(ctx, config["tls.ciphersuites"])
    if config["tls.prefer_server_ciphers"]:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # As Redis: no renegotiation (a client-driven CPU cost) and no compression (CRIME).
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    return ctx


def _why(exc) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def _protocols(text: str) -> tuple:
    """tls-protocols ("TLSv1.2 TLSv1.3", any case; empty: those two) -> (min, max).
    OpenSSL takes a range: a gap ("TLSv1 TLSv1.3") is refused rather than
    silently widened."""
    words = text.lower().split() or ["tlsv1.2", "tlsv1.3"]
    versions = []
    for word in words:
        if word not in _VERSIONS:
            raise TLSConfigError("Invalid tls-protocols specified. Use a combination of "
                                 "'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.")
        versions.append(_VERSIONS[word])
    order = list(_VERSIONS.values())
    picked = sorted(set(versions), key=order.index)
    first, last = order.index(picked[0]), order.index(picked[-1])
    if last - first + 1 != len(picked):
        raise TLSConfigError("tls-protocols must be a contiguous range of versions")
    return picked[0], picked[-1]


def _set_ciphersuites(ctx: ssl.SSLContext, suites: str) -> None:
    """TLSv1.3 cipher suites: Python's ssl has no setter (set_ciphers is
    TLSv1.2's list), so OpenSSL's SSL_CTX_set_ciphersuites is called on the
    context's SSL_CTX, found where CPython keeps it (first field after the
    object header) and checked against the options ssl reports before use."""
    try:
        libssl = ctypes.CDLL("libssl.so.3")
        get_options = libssl.SSL_CTX_get_options
        get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
        setter = libssl.SSL_CTX_set_ciphersuites
        setter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]
    except (OSError, AttributeError):
        raise TLSConfigError("tls-ciphersuites is not supported with this OpenSSL") from None
    pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not pointer or get_options(pointer) != int(ctx.options):
        raise TLSConfigError("tls-ciphersuites is not supported with this Python")
    if setter(pointer, suites.encode()) != 1:
        raise TLSConfigError("Failed to configure ciphersuites: %s" % suites)


def certificate_user(transport) -> str | None:
    """The user name a TLS connection's verified client certificate gives:
    its subject's commonName, or None (no certificate, not verified, no CN,
    or several CNs: ambiguous, so none). Only the CN, never a SAN: a CA
    that also issues server certificates puts host names in SANs, and a
    host name must not log anyone in."""
    cert = transport.get_extra_info("peercert")
    if not cert:   # None, or {} when the context did not verify it
        return None
    names = [value for rdn in cert.get("subject", ()) for field, value in rdn
             if field == "commonName"]
    return names[0] if len(names) == 1 else None


def tls_protocol_factory(server):
    """The TLS listener's protocol factory: what `create_server(ssl=...)`
    builds for each connection (the loop's SSLProtocol around a
    Connection), but with the server's context as it is *now*
    (`server.tls_context`), so a reloaded certificate serves the next
    connection with no new listener and live connections keep theirs.
    The handshake has auth.auth_timeout to complete (a stalled one holds a
    socket no longer); a failed one (a plain client, an untrusted
    certificate) closes the connection before any Connection sees it."""
    loop = server.loop
    try:
        import uvloop
        ssl_protocol = uvloop.loop.SSLProtocol if isinstance(loop, uvloop.Loop) else None
    except ImportError:
        ssl_protocol = None
    if ssl_protocol is None:
        from asyncio.sslproto import SSLProtocol as ssl_protocol

    pending = server.tls_pending

    def factory():
        # A handshake holds a socket and its buffers before any Connection
        # counts: handshakes under way count against maxclients (as in
        # Redis, where a TLS client is a client from its accept). The
        # waiter is resolved when the handshake ends, well or not, or the
        # connection is lost: the connection is no longer pending then.
        if len(server.clients) + len(pending) >= server.config["network.maxclients"]:
            server.stats.rejected_connections += 1
            return _Refused()
        conn = TLSConnection(server)
        pending.add(conn)
        waiter = loop.create_future()
        waiter.add_done_callback(lambda done: _handshake_over(pending, conn, done))
        return ssl_protocol(loop, conn, server.tls_context, waiter, server_side=True,
                            ssl_handshake_timeout=server.config["auth.auth_timeout"])
    return factory


def _handshake_over(pending: set, conn, waiter) -> None:
    pending.discard(conn)
    if not waiter.cancelled() and waiter.exception() is not None:   # (retrieved: no warning)
        log.debug("TLS handshake failed: %s", waiter.exception())


class _Refused(asyncio.Protocol):
    """A TLS connection over maxclients: closed at once (no TLS yet, so no
    error text a client could read)."""

    def connection_made(self, transport) -> None:
        transport.abort()


class TLSConnection(Connection):
    """A Connection on the TLS port: its connection_made (after the
    handshake) may log it in by its certificate. Only here, so the plain
    port runs not one more instruction."""

    __slots__ = ()

    def connection_made(self, transport) -> None:
        self.server.tls_pending.discard(self)   # handshake done: a client now
        super().connection_made(transport)
        if (not self.closing and self.server.config["tls.client_cert_user"]
                and (name := certificate_user(transport)) is not None):
            _certificate_login(self, name)


def _certificate_login(conn, name: str) -> None:
    """Log `conn` in as the user its certificate names, if that user exists
    and is enabled; else it stays as it was (unauthenticated, or the
    password-less default user) and may AUTH. The row is read on the loop:
    one indexed SQLite read, once per verified certificate (only holders
    of a certificate from the configured CA get here), and reading it on the
    loop leaves no gap in which an ACL change could be missed (server/auth.py
    explains the gap an off-loop read has to close)."""
    server = conn.server
    auth = server.auth
    try:
        user = auth.store.get(name)
    except (ValueError, UnicodeError):
        user = None
    if user is None or not user.enabled:
        server.stats.auth_failures += 1
        auth.log_event(conn, "auth", "TLS", name)
        log.info("Client id=%d addr=%s: certificate CN %r is no enabled user; not logged in",
                 conn.id, conn.addr, name)
        return
    full = server.quotas.admit_login(conn, user)
    if full is not None:
        log.info("Client id=%d addr=%s: certificate user %r over its tenant's connections "
                 "quota; not logged in", conn.id, conn.addr, name)
        return
    conn.login(user)
