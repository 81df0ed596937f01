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


class TLSAcceptor(asyncio.Protocol):
    """A connection to the TLS port before its handshake. The handshake
    runs with the server's context *now* (`server.tls_context`), so a
    reloaded certificate serves the next connection with no new listener;
    once done, a Connection takes the TLS transport. A client that does not
    complete it (a plain client, a wrong certificate) is closed; one that
    stalls, after tls handshake timeout (auth.auth_timeout). Pending
    handshakes count against maxclients: they hold a socket and a task."""

    __slots__ = ("server",)

    def __init__(self, server) -> None:
        self.server = server

    def connection_made(self, transport) -> None:
        server = self.server
        if len(server.clients) + server.tls_handshakes >= server.config["network.maxclients"]:
            server.stats.rejected_connections += 1
            transport.close()   # no TLS yet: Redis's error text could not be read
            return
        transport.pause_reading()   # the ClientHello is for start_tls, not for us
        server.tls_handshakes += 1
        server.loop.create_task(self._handshake(transport, server.tls_context))

    async def _handshake(self, transport, context) -> None:
        server = self.server
        early = _Early()
        try:
            tls = await server.loop.start_tls(
                transport, early, context, server_side=True,
                ssl_handshake_timeout=server.config["auth.auth_timeout"])
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as exc:
            log.info("TLS handshake with %s failed: %s", _peer(transport), exc)
            transport.close()
            return
        finally:
            server.tls_handshakes -= 1
        from tenantkv.server.connection import Connection
        conn = Connection(server)
        tls.set_protocol(conn)
        conn.connection_made(tls)
        if (not conn.closing and server.config["tls.client_cert_user"]
                and (name := certificate_user(tls)) is not None):
            _certificate_login(conn, name)
        # What came with the end of the handshake (start_tls reads on before
        # this task resumes) runs now, after the login.
        if early.data and not conn.closing:
            conn.data_received(b"".join(early.data))
        if early.lost is not None:
            conn.connection_lost(early.lost[0])

    def data_received(self, data: bytes) -> None:   # reading is paused: never
        pass

    def connection_lost(self, exc) -> None:
        pass


class _Early(asyncio.Protocol):
    """The TLS transport's protocol until the Connection takes it over."""

    def __init__(self) -> None:
        self.data: list = []
        self.lost = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.lost = (exc,)


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername")
    return "%s:%s" % peer[:2] if peer else "?"


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
