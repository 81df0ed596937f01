"""MONITOR: every command, as it runs, to the clients that monitor (issue 16).

A line is Redis's: `+<unix time> [<db> <addr>] "cmd" "arg" ...`, each
argument escaped as Redis's sdscatrepr. It is fed after the command ran
(Redis's call()), so a command refused before it runs (unknown, wrong
arity, no permission, over a quota) is not shown, a command that failed is;
SELECT shows the database it selected; inside EXEC each queued command is
shown as it runs, then EXEC. Commands Redis does not show are not shown:
its "admin" and "skip_monitor" commands (for a container, per subcommand:
CLIENT LIST is not shown, CLIENT ID is). The secrets are redacted as
Redis 7.0 does (REDACT): AUTH, HELLO ... AUTH, ACL SETUSER, MIGRATE AUTH/AUTH2.
The log's replay is not shown (Redis: not while loading): its internal
client has no transport.

Tenancy: a tenant's monitor sees its own tenant's commands only; root's sees
every tenant's, the tenant named inside the brackets:
`[<db> <tenant> <addr>]`. redis-cli prints the line as it comes; redis-py's
Monitor (`\\[(\\d+) (.*?)\\] (.*)`, the address split at its last ':')
still reads the db, the command and the port, the tenant in front of the
address. Which monitors see a command is decided when it runs (a monitor
that logs in as another user sees that user's tenant from then on).

An argument past the first MAX_SHOWN bytes of a command's arguments is cut,
the line saying how many bytes (and arguments) it left out.

Cost: nothing while nobody monitors. From the first MONITOR on, every
command's handler is wrapped (dispatch/observers.py, set_layer) by one that
feeds the monitors; the plain handlers are back when the last one leaves.
Delivery is a reply queued for the end-of-turn flush (dispatch/pubsub.py's
deliver); a monitor that does not read is closed at its output limit (it
counts as a pub/sub client for that: server/connection.py).
"""

import time

from tenantkv.dispatch.pubsub import deliver

# Redis's sdscatrepr: printable ASCII as is, but for '\\' and '"'; the usual
# escapes; everything else \\xNN.
_REPR = []
for _byte in range(256):
    if _byte in (0x5C, 0x22):
        _REPR.append(b"\\" + bytes((_byte,)))
    elif _byte == 0x0A:
        _REPR.append(b"\\n")
    elif _byte == 0x0D:
        _REPR.append(b"\\r")
    elif _byte == 0x09:
        _REPR.append(b"\\t")
    elif _byte == 0x07:
        _REPR.append(b"\\a")
    elif _byte == 0x08:
        _REPR.append(b"\\b")
    elif 0x20 <= _byte < 0x7F:
        _REPR.append(bytes((_byte,)))
    else:
        _REPR.append(b"\\x%02x" % _byte)
_PLAIN = bytes(b for b in range(0x20, 0x7F) if b not in (0x5C, 0x22))
_NONE = bytes(range(256))


def quote(arg: bytes) -> bytes:
    """`arg` as Redis's sdscatrepr writes it: in double quotes, escaped."""
    if not arg.translate(_NONE, _PLAIN):   # nothing to escape (the common case)
        return b'"%s"' % arg
    return b'"%s"' % b"".join(_REPR[b] for b in arg)


REDACTED = b"(redacted)"


def _redact_auth(args: list) -> list:
    # Redis leaves `AUTH a b c` (a syntax error) as sent; every argument here.
    return args[:1] + [REDACTED] * (len(args) - 1)


def _redact_hello(args: list) -> list:
    args = list(args)
    i = 1   # Redis from 2 (after the version); `HELLO AUTH u p` is redacted too
    while i < len(args):
        if args[i].lower() == b"auth" and len(args) - 1 - i >= 2:
            args[i + 1] = args[i + 2] = REDACTED
            i += 3
        else:
            i += 1
    return args


def _redact_acl(args: list) -> list:
    if len(args) >= 3 and args[1].lower() == b"setuser":
        return args[:2] + [REDACTED] * (len(args) - 2)
    return args


def _redact_migrate(args: list) -> list:
    args = list(args)
    for i in range(6, len(args)):
        option = args[i].lower()
        if option == b"auth" and i + 1 < len(args):
            args[i + 1] = REDACTED
        elif option == b"auth2" and i + 2 < len(args):
            args[i + 1] = args[i + 2] = REDACTED
    return args


# Command name -> args -> the arguments shown (Redis 7.0's
# redactClientCommandArgument calls). ACL SETUSER is "admin" (not shown at
# all) but redacted all the same, should a declaration ever change that.
REDACT = {"auth": _redact_auth, "hello": _redact_hello, "acl": _redact_acl,
          "migrate": _redact_migrate}

# Not shown: Redis's flags (call(): CMD_SKIP_MONITOR | CMD_ADMIN).
_HIDDEN_FLAGS = ("admin", "skip_monitor")


def _hidden(cmd) -> bool:
    return any(flag in cmd.flags for flag in _HIDDEN_FLAGS)


def _tenant_label(name: str) -> bytes:
    """The tenant's key as shown to root: kept in one word that cannot close
    the brackets (a namespace follows the user name rules; this is in case)."""
    raw = name.encode("utf-8", "replace")
    if raw and not raw.translate(_NONE, _PLAIN.replace(b"]", b"").replace(b" ", b"")):
        return raw
    return quote(raw)


class Monitors:
    """The clients that monitor, in the order they began (Redis's list),
    indexed by what they see: root's see everything, a tenant's its own
    tenant. A command costs one look at root's monitors and one dict lookup
    for its tenant's: a tenant that opens many monitors costs the others
    nothing more."""

    def __init__(self, events) -> None:
        self.events = events
        self.conns: dict = {}     # monitoring connection -> its key (None: root, else its tenant)
        self.roots: list = []
        self.tenants: dict = {}   # tenant -> [its monitors]

    def add(self, conn) -> None:
        if conn in self.conns:
            return
        self._index(conn)
        if len(self.conns) == 1:
            self.events.set_layer("monitor", self)

    def remove(self, conn) -> None:
        if conn not in self.conns:
            return
        self._unindex(conn)
        if not self.conns:
            self.events.set_layer("monitor", None)

    def rekey(self, conn) -> None:
        """`conn`, a monitor, logged in (or out): it sees what its new user sees."""
        self._unindex(conn)
        self._index(conn)

    def _index(self, conn) -> None:
        if conn.root:
            self.conns[conn] = None
            self.roots.append(conn)
        else:
            self.conns[conn] = conn.tenant
            self.tenants.setdefault(conn.tenant, []).append(conn)

    def _unindex(self, conn) -> None:
        key = self.conns.pop(conn)
        if key is None:
            self.roots.remove(conn)
        else:
            watchers = self.tenants[key]
            watchers.remove(conn)
            if not watchers:
                del self.tenants[key]

    def wrap(self, cmd, handler):
        """The handler of `cmd` while anyone monitors: `handler`, then the
        monitors fed. None for a command never shown."""
        subcommands = cmd.subcommands
        if not subcommands and _hidden(cmd):
            return None
        hidden_subs = frozenset(name for name, sub in subcommands.items() if _hidden(sub)) \
            if subcommands else frozenset()
        redact = REDACT.get(cmd.name)
        feed = self.feed

        def monitored(conn, args):
            try:
                return handler(conn, args)
            finally:
                if (conn.transport is not None
                        and not (hidden_subs and len(args) > 1 and args[1].lower() in hidden_subs)):
                    feed(conn, redact(args) if redact is not None else args)

        monitored.__wrapped__ = handler
        return monitored

    def feed(self, conn, args: list) -> None:
        """Show `args`, run by `conn`, to the monitors allowed to see it."""
        tenant = conn.tenant
        if self.roots:
            line = None
            for monitor in self.roots:
                if not monitor.closing:
                    if line is None:
                        line = self._line(conn, args, b"%s %s" % (
                            _tenant_label(tenant.name), conn.addr.encode()))
                    deliver(monitor, line)
        watchers = self.tenants.get(tenant)
        if watchers:
            line = None
            for monitor in watchers:
                if not monitor.closing:
                    if line is None:
                        line = self._line(conn, args, conn.addr.encode())
                    deliver(monitor, line)

    @staticmethod
    def _line(conn, args: list, where: bytes) -> bytes:
        now = time.time()
        return b"+%.6f [%d %s] %s\r\n" % (now, conn.db.index, where, shown(args))


# The bytes of arguments one line shows. Redis shows every byte; escaped, a
# binary 512 MB value would make a 2 GB line, once per command, for a
# monitor that its output limit closes anyway: one tenant's MONITOR must not
# cost the server that. Past it, the line says how much it left out.
MAX_SHOWN = 1 << 20


def shown(args: list) -> bytes:
    """The arguments of a monitor line: quoted, within MAX_SHOWN bytes."""
    if sum(map(len, args)) <= MAX_SHOWN:
        return b" ".join(map(quote, args))
    parts = []
    budget = MAX_SHOWN
    for i, arg in enumerate(args):
        if len(arg) <= budget:
            parts.append(quote(arg))
            budget -= len(arg)
            continue
        parts.append(quote(arg[:budget]) + b"...(%d more bytes)" % (len(arg) - budget))
        if i + 1 < len(args):
            parts.append(b"...(%d more arguments)" % (len(args) - i - 1))
        break
    return b" ".join(parts)

