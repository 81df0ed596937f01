"""Connection commands: PING, ECHO, QUIT, HELLO, SELECT, CLIENT, RESET."""

import time

from tenantkv import REDIS_COMPAT_VERSION, errors
from tenantkv.config import OBUF_NORMAL, OBUF_PUBSUB
from tenantkv.dispatch.table import command, container, subcommand
from tenantkv.errors import CommandError
from tenantkv.commands.transactions import end_transaction
from tenantkv.dispatch.blocking import Blocked
from tenantkv.dispatch.call import Quiet
from tenantkv.dispatch.pause import ALL, WRITE
from tenantkv.dispatch.pubsub import leave_all, refresh_mode
from tenantkv.dispatch.replies import NO_REPLY, RETRY
from tenantkv.dispatch.tracking import tracker_of
from tenantkv.protocol.encoder import OK, PONG, SetReply, Status, Verbatim
from tenantkv.util.numbers import int_arg, parse_int
from tenantkv.util.options import REST, Options, Value, choice, option_name


@command("ping")
def ping(conn, args):
    if len(args) > 2:
        raise CommandError(errors.wrong_arity("ping"))
    if conn.subs is not None and not conn.resp3:
        # RESP2 pub/sub mode: Redis answers as a message, which a
        # subscriber's reader expects.
        return [b"pong", args[1] if len(args) == 2 else b""]
    return PONG if len(args) == 1 else args[1]


@command("echo")
def echo(conn, args):
    return args[1]


@command("quit")
def quit_(conn, args):
    conn.close_after_reply = True
    return OK


@command("select")
def select(conn, args):
    index = parse_int(args[1])
    if index is None:
        raise CommandError(errors.NOT_INTEGER)
    if not -2**31 <= index < 2**31:   # Redis reads the index as a C int
        raise CommandError(errors.INT_RANGE)
    if not 0 <= index < len(conn.tenant.dbs):
        raise CommandError(errors.DB_INDEX)
    conn.select(index)
    return OK


@command("auth", waits=True)   # the password check runs in the auth pool
def auth(conn, args):
    if len(args) > 3:
        raise CommandError(errors.SYNTAX)
    server = conn.server
    if len(args) == 2:   # AUTH password: the default user
        if server.default_user_open:
            raise CommandError(errors.AUTH_WITHOUT_PASSWORD)
        return server.auth.start(conn, b"default", args[1], lambda: OK)
    if args[1] == b"default" and server.default_user_open:
        conn.login_default()   # the password-less default user takes any password
        return OK
    return server.auth.start(conn, args[1], args[2], lambda: OK)


def _hello_authenticates(args: list) -> bool:
    """Whether HELLO `args` holds AUTH (it then waits for the password
    check; see `waits` in dispatch/table.py). Follows hello()'s reading of
    the options: a bad one makes hello() fail before any AUTH runs."""
    i = 2
    while i < len(args):
        option = args[i].lower()
        remaining = len(args) - i - 1
        if option == b"auth" and remaining >= 2:
            return True
        if option == b"setname" and remaining >= 1:
            i += 2
        else:
            return False
    return False


@command("hello", waits=_hello_authenticates)
def hello(conn, args):
    protocol = 3 if conn.resp3 else 2
    i = 1
    if len(args) > 1:
        version = parse_int(args[1])
        if version is None:
            raise CommandError(errors.HELLO_PROTOCOL_NOT_INTEGER)
        if version not in (2, 3):
            raise CommandError(errors.NOPROTO)
        protocol = version
        i = 2
    name = None
    credentials = None
    while i < len(args):
        option = args[i].lower()
        remaining = len(args) - i - 1
        if option == b"auth" and remaining >= 2:
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == b"setname" and remaining >= 1:
            name = args[i + 1]
            _check_name(name)
            i += 2
        else:
            raise CommandError(errors.hello_option(args[i]))

    def reply():
        if name is not None:
            conn.name = name
        conn.resp3 = protocol == 3
        if conn.subs is not None:   # still subscribed: RESP2's pub/sub mode or not
            refresh_mode(conn)
        return {
            b"server": b"redis",
            b"version": REDIS_COMPAT_VERSION.encode(),
            b"proto": protocol,
            b"id": conn.id,
            b"mode": b"standalone",
            b"role": b"replica" if conn.server.replication.link is not None else b"master",
            b"modules": [],
        }

    if credentials is not None:
        username, password = credentials
        if username == b"default" and conn.server.default_user_open:
            conn.login_default()
            return reply()
        return conn.server.auth.start(conn, username, password, reply)
    if not conn.authenticated:
        raise CommandError(errors.NOAUTH_HELLO)
    return reply()


@command("reset")
def reset(conn, args):
    end_transaction(conn)   # out of MULTI, nothing watched
    leave_all(conn)         # out of pub/sub mode, subscribed to nothing
    if conn.tracking is not None:
        conn.server.events.tracker.disable(conn)
    end_monitor(conn)
    _replies_on(conn)
    conn.resp3 = False
    conn.name = b""
    conn.no_evict = conn.no_touch = False
    conn.select(0)
    conn.logout()   # as Redis: back to the default user, authenticated only if it is open
    return Status("RESET")


# Redis's MONITOR is "admin"; here a tenant's monitor sees only its own
# tenant's commands (dispatch/monitor.py), so any user its rules allow may.
@command("monitor", root_only=False)
def monitor(conn, args):
    if conn.server.events.in_exec:   # queued in MULTI: refused when EXEC runs it, as Redis
        raise CommandError(errors.MONITOR_DENY_BLOCKING)
    if conn in conn.server.monitors.conns:
        return NO_REPLY   # Redis answers nothing to a second MONITOR
    # Its output is pushed, not asked for: bounded as a subscriber's is
    # (client-output-buffer-limit pubsub), root's included: normal clients
    # have no limit by default, and root's monitor sees every tenant.
    conn.obuf_class = OBUF_PUBSUB
    conn.server.monitors.add(conn)
    return OK


def end_monitor(conn) -> None:
    """RESET: no longer a monitor."""
    monitors = conn.server.monitors
    if conn in monitors.conns:
        monitors.remove(conn)
        if conn.subs is None:
            conn.obuf_class = OBUF_NORMAL


# HTTP request guards: not commands anyone calls, so hidden from COMMAND, HELP
# and the ACL rules (registry.HIDDEN); they only need to run before AUTH.
_GUARD = dict(arity=-1, flags="no_auth", acl_categories="@connection @slow", group="connection",
              since="0.1.0", complexity="O(1)", summary="HTTP request guard: closes the connection.")


@command("post", **_GUARD)
def http_post(conn, args):
    return _http_guard(conn)


@command("host:", **_GUARD)
def http_host(conn, args):
    return _http_guard(conn)


def _http_guard(conn):
    # A browser or an HTTP client talking to us: a cross-protocol attack
    # (Redis's "Possible SECURITY ATTACK detected"). Close without a reply.
    import logging
    logging.getLogger("tenantkv.security").warning(
        "Possible SECURITY ATTACK detected from %s: HTTP request to the Redis port. "
        "Connection aborted.", conn.addr)
    conn.close()
    return NO_REPLY


# -- CLIENT ------------------------------------------------------------------

def _check_name(name: bytes) -> None:
    for byte in name:
        if byte < 33 or byte > 126:
            raise CommandError(errors.CLIENT_NAME_CHARS)


# Memory an idle connection costs, measured (RSS of 2,000 idle clients): its
# Connection, transport and request readers. CLIENT LIST's tot-mem adds what
# the client holds beyond that (input, queued commands, unsent output).
CONNECTION_OVERHEAD = 2560


def client_info_line(conn, current=None) -> str:
    """One CLIENT LIST / CLIENT INFO line, with Redis 7.0's fields in Redis's
    order (then 7.2's lib-name and lib-ver, as CLIENT SETINFO exists).
    `current` is the request the client is running now (the caller of CLIENT
    LIST or INFO): as in Redis, its bytes count in qbuf and argv-mem and its
    full name is cmd. Everything here is computed when asked: nothing is
    counted per command for it."""
    now = time.monotonic()
    flags = ""
    kind = _type_of(conn)
    if kind == b"slave":
        flags += "S"
    if conn in conn.server.monitors.conns:
        flags += "O"
    subs = conn.subs
    if subs is not None and not subs.empty():
        flags += "P"
        sub, psub, ssub = len(subs.channels), len(subs.patterns), len(subs.shard)
    else:
        sub = psub = ssub = 0
    if conn.multi is not None:
        flags += "x"
    waiting = conn.waiting
    if type(waiting) is Blocked or (waiting is not None and waiting.finish is RETRY):
        flags += "b"   # blocked on keys, or held by CLIENT PAUSE (Redis: postponed)
    tracking = conn.tracking
    if tracking is not None:
        flags += "t"
        if tracking.broken:
            flags += "R"
        if tracking.bcast:
            flags += "B"
    if conn.watch_dirty:
        flags += "d"
    if conn.close_after_reply:
        flags += "c"
    if conn.no_evict:
        flags += "e"
    if conn.no_touch:
        flags += "T"
    flags = flags or "N"
    # Input: the bytes read but not yet parsed (qbuf) and the arguments already
    # cut from an unfinished request (argv-mem), as in Redis.
    strict = conn.reader.strict
    qbuf = strict.pending_len + len(strict.buf)
    argv_mem = strict.args_bytes
    cmd = conn.last_command
    if current is not None:
        cmd, args = current
        qbuf += _request_size(args)
        argv_mem += sum(map(len, args))
    multi_mem = 0
    if conn.multi is not None:   # the queued commands' arguments and pointers, as Redis
        multi_mem = sum(sum(map(len, queued)) + 8 * len(queued) for _, queued in conn.multi)
    # Output: replies queued for this turn's flush (oll chunks), plus what the
    # transport still holds; tenantkv has no fixed per-client reply buffer
    # (Redis's 16 KB "buf": rbs, rbp, obl).
    transport = conn.transport
    held = transport.get_write_buffer_size() if transport is not None and not conn.closing else 0
    omem = sum(map(len, conn.unsent)) + held
    events = ""
    if transport is not None and not conn.closing:
        if transport.is_reading():
            events += "r"
        if held:
            events += "w"
    return (
        "id=%d addr=%s laddr=%s fd=%d name=%s age=%d idle=%d flags=%s db=%d sub=%d psub=%d "
        "ssub=%d multi=%d qbuf=%d qbuf-free=0 argv-mem=%d multi-mem=%d rbs=0 rbp=0 obl=0 "
        "oll=%d omem=%d tot-mem=%d events=%s cmd=%s user=%s redir=%d resp=%d lib-name=%s lib-ver=%s"
        % (conn.id, conn.addr, conn.laddr, _fd(conn), conn.name.decode("latin-1"),
           int(now - conn.created), int(now - conn.last_interaction), flags, conn.db.index,
           sub, psub, ssub,
           -1 if conn.multi is None else len(conn.multi), qbuf, argv_mem, multi_mem,
           len(conn.unsent), omem, CONNECTION_OVERHEAD + qbuf + argv_mem + multi_mem + omem,
           events, cmd, conn.user, -1 if tracking is None else tracking.redirect,
           3 if conn.resp3 else 2,
           conn.lib_name.decode("latin-1"), conn.lib_ver.decode("latin-1")))


def _request_size(args: list) -> int:
    """The size of `args` as a RESP request: *N, then $len and the bytes of each."""
    return (3 + len(str(len(args)))
            + sum(len(arg) + len(str(len(arg))) + 5 for arg in args))


def _fd(conn) -> int:
    sock = conn.transport.get_extra_info("socket") if conn.transport else None
    try:
        return sock.fileno() if sock is not None else -1
    except Exception:
        return -1


def _visible_clients(conn):
    """CLIENT LIST / INFO / KILL see the clients of the caller's own tenant;
    root sees (and may kill) every client."""
    clients = conn.server.clients.values() if conn.root else conn.tenant.clients
    return sorted(clients, key=lambda c: c.id)


# CLIENT SETINFO and NO-TOUCH are Redis 7.2's (clients such as redis-py send
# SETINFO on connect); the record is 7.0's, so they are declared as 7.2 does.
_CLIENT_72 = dict(flags="noscript loading stale", acl_categories="@slow @connection",
                  group="connection", since="7.2.0", complexity="O(1)")


CLIENT_HELP = [
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
    "ID", "    Return the ID of the current connection.",
    "GETNAME", "    Return the name of the current connection.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>", "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.", "    * LIB-VER: the client lib version.",
    "INFO", "    Return information about the current client connection.",
    "LIST [options ...]", "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]", "      Return clients of specified IDs only.",
    "KILL <ip:port>", "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
    "    * USER <username>", "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
    "    * ID <client-id>", "      Kill connections by client id.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO", "    Report tracking status for the current connection.",
    "UNPAUSE", "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
    "NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)", "    Will not touch LRU/LFU stats when this mode is on.",
]

# Redis flags CLIENT LIST, KILL, UNBLOCK and NO-EVICT "admin"; here they act
# on the caller's own tenant's clients (root's: every client), so they are
# not root-only (tenancy/permissions.py). A user runs them when its rules allow.
container("client", help=CLIENT_HELP)

_CLIENT_TYPES = frozenset({b"normal", b"master", b"replica", b"slave", b"pubsub"})


def _client_type(raw: bytes) -> bytes:
    """getClientTypeByName: "replica" and "slave" name one type."""
    kind = option_name(raw)
    if kind not in _CLIENT_TYPES:
        raise CommandError(errors.unknown_client_type(raw))
    return b"slave" if kind == b"replica" else kind


def _type_of(conn) -> bytes:
    """getClientType: "slave" for a replica's link on its primary (it has
    `conn.replica`), then "pubsub" while subscribed to anything, else
    "normal" (a monitor is normal, as in Redis). Sentinel's failover ends
    with CLIENT KILL TYPE normal and pubsub: those must not cut the
    replication links. No client is "master": a replica's link to its
    primary (replication/link.py) is not one of the server's clients."""
    if conn.replica is not None:
        return b"slave"
    subs = conn.subs
    return b"pubsub" if subs is not None and not subs.empty() else b"normal"


def _listed_id(raw: bytes) -> int:
    value = parse_int(raw)
    if value is None:
        raise CommandError(errors.INVALID_CLIENT_ID)
    return value


# Redis's CLIENT LIST takes one option: TYPE t, or ID followed by every
# argument left. Its type is checked only once the arguments are known to be
# that form (`CLIENT LIST TYPE bogus ID` is a syntax error).
CLIENT_LIST_OPTIONS = Options(Value("TYPE", once=True),
                              Value("ID", REST, parse=_listed_id, once=True),
                              exclusive=[("TYPE", "ID")])



@subcommand("client", "id")
def _client_id(conn, args):
    return conn.id


@subcommand("client", "getname")
def _client_getname(conn, args):
    return conn.name or None


@subcommand("client", "setname")
def _client_setname(conn, args):
    _check_name(args[2])
    conn.name = args[2]
    return OK


@subcommand("client", "setinfo", **_CLIENT_72, arity=4,
            tips=["request_policy:all_nodes", "response_policy:all_succeeded"],
            summary="Sets information specific to the client or connection.",
            arguments=[{"name": "attr", "type": "oneof", "arguments": [
                {"name": "libname", "type": "string", "token": "lib-name"},
                {"name": "libver", "type": "string", "token": "lib-ver"}]}])
def _client_setinfo(conn, args):
    attr = args[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        raise CommandError(errors.client_setinfo_option(args[2]))
    for byte in args[3]:
        if byte < 33 or byte > 126:
            raise CommandError(errors.client_setinfo_chars(attr.decode()))
    if attr == b"lib-name":
        conn.lib_name = args[3]
    else:
        conn.lib_ver = args[3]
    return OK


@subcommand("client", "info")
def _client_info(conn, args):
    line = client_info_line(conn, ("client|info", args))
    return Verbatim((line + "\n").encode())   # = in RESP3, as Redis


@subcommand("client", "no-evict", root_only=False)
def _client_no_evict(conn, args):
    return _client_mode(conn, args, "no_evict")


@subcommand("client", "no-touch", **_CLIENT_72, arity=3,
            summary="Controls whether commands sent by the client affect the LRU/LFU "
                    "of accessed keys.",
            arguments=[{"name": "enabled", "type": "oneof", "arguments": [
                {"name": "on", "type": "pure-token", "token": "ON"},
                {"name": "off", "type": "pure-token", "token": "OFF"}]}])
def _client_no_touch(conn, args):
    return _client_mode(conn, args, "no_touch")


def _client_mode(conn, args, attr: str):
    mode = args[2].lower()
    if mode not in (b"on", b"off"):
        raise CommandError(errors.SYNTAX)
    setattr(conn, attr, mode == b"on")
    return OK


@subcommand("client", "list", root_only=False)
def _client_list(conn, args):
    clients = _visible_clients(conn)
    options = CLIENT_LIST_OPTIONS.parse(args, 2)
    if "type" in options:
        kind = _client_type(options["type"])
        clients = [c for c in clients if _type_of(c) == kind]
    if "id" in options:
        # As Redis: a line per ID asked, in that order (repeated if asked twice).
        by_id = {c.id: c for c in clients}
        clients = [by_id[ident] for ident in options["id"] if ident in by_id]
    current = ("client|list", args)
    return Verbatim("".join(client_info_line(c, current if c is conn else None) + "\n"
                            for c in clients).encode())


@subcommand("client", "kill", root_only=False)
def _client_kill(conn, args):
    clients = _visible_clients(conn)
    if len(args) == 3:   # old form: CLIENT KILL addr:port
        for other in clients:
            if other.addr == args[2].decode("latin-1"):
                _kill(conn, other)
                return OK
        raise CommandError(errors.NO_SUCH_CLIENT)
    options = CLIENT_KILL_OPTIONS.parse(args, 2, context=conn)
    skip_me = options.get("skipme", "yes") == "yes"
    filters = []
    if "id" in options:
        filters.append(lambda c, ident=options["id"]: c.id == ident)
    if "addr" in options:
        filters.append(lambda c, text=options["addr"].decode("latin-1"): c.addr == text)
    if "laddr" in options:
        filters.append(lambda c, text=options["laddr"].decode("latin-1"): c.laddr == text)
    if "user" in options:
        filters.append(lambda c, text=options["user"]: c.user == text)
    if "type" in options:
        filters.append(lambda c, kind=options["type"]: _type_of(c) == kind)
    if "maxage" in options:
        filters.append(lambda c, age=options["maxage"]: time.monotonic() - c.created >= age)
    killed = 0
    for other in clients:
        if skip_me and other is conn:
            continue
        if all(f(other) for f in filters):
            _kill(conn, other)
            killed += 1
    return killed


def _kill_id(raw: bytes) -> int:
    ident = parse_int(raw)
    if ident is None or ident <= 0:
        raise CommandError(errors.CLIENT_ID_POSITIVE)
    return ident


def _kill_user(raw: bytes, conn) -> str:
    name = raw.decode("latin-1")
    if not _user_exists(conn, name):
        raise CommandError(errors.no_such_user(raw))
    return name


# CLIENT KILL's filters (its new form): each option with one value, checked as
# it is read; given twice, the last one counts. MAXAGE is Redis 7.4's.
CLIENT_KILL_OPTIONS = Options(
    Value("ID", parse=_kill_id), Value("TYPE", parse=_client_type), Value("ADDR"),
    Value("LADDR"), Value("USER", parse=_kill_user, context=True),
    Value("SKIPME", parse=choice("YES", "NO")), Value("MAXAGE", parse=int_arg))


@subcommand("client", "unblock", root_only=False)
def _client_unblock(conn, args):
    """CLIENT UNBLOCK id [TIMEOUT|ERROR]: end another client's blocking pop,
    as if its timeout had passed or with an UNBLOCKED error. Only the
    clients the caller can see (its tenant's; root: all) can be unblocked."""
    if len(args) > 4:   # Redis's arity -3 lets it through to this text
        raise CommandError(errors.subcommand_syntax(args[1], "CLIENT"))
    ident = parse_int(args[2])
    if ident is None:
        raise CommandError(errors.NOT_INTEGER)
    error = None
    if len(args) == 4:
        mode = args[3].lower()
        if mode == b"error":
            error = errors.UNBLOCKED
        elif mode != b"timeout":
            raise CommandError(errors.UNBLOCK_REASON)
    for other in _visible_clients(conn):
        if other.id == ident and type(other.waiting) is Blocked:
            other.waiting.unblock(error)
            return 1
    return 0


@subcommand("client", "reply")
def _client_reply(conn, args):
    """CLIENT REPLY ON|OFF|SKIP. OFF and SKIP answer nothing; the requests
    they silence take the general path (dispatch/call.py, Quiet). Queued in
    MULTI, it answers OK in EXEC's reply (Redis sends a broken array there)
    and applies after it."""
    mode = args[2].lower()
    if mode == b"on":
        _replies_on(conn)
        return OK
    if mode not in (b"off", b"skip"):
        raise CommandError(errors.SYNTAX)
    if mode == b"off":
        conn.reply_mode = "off"
    elif conn.reply_mode != "off":   # SKIP while OFF changes nothing
        conn.reply_mode = "skip"
    if type(conn.lookup) is not Quiet:
        conn.lookup = Quiet(conn.lookup)
    return OK if conn.server.events.in_exec else NO_REPLY


def _replies_on(conn) -> None:
    conn.reply_mode = "on"   # seen by call.py's _run_quiet, which clears it
    if type(conn.lookup) is Quiet:
        conn.lookup = conn.lookup.allowed


# Redis flags PAUSE and UNPAUSE "admin"; here a tenant's pause holds only its
# own clients (root's: every client), dispatch/pause.py.
@subcommand("client", "pause", root_only=False)
def _client_pause(conn, args):
    if len(args) > 4:   # Redis's arity -3 lets it through to this text
        raise CommandError(errors.subcommand_syntax(args[1], "CLIENT"))
    kind = ALL
    if len(args) == 4:
        mode = args[3].lower()
        if mode == b"write":
            kind = WRITE
        elif mode != b"all":
            raise CommandError(errors.CLIENT_PAUSE_MODE)
    ms = parse_int(args[2])
    if ms is None or not -2**63 <= ms < 2**63:
        raise CommandError(errors.TIMEOUT_NOT_INTEGER)
    if ms < 0:
        raise CommandError(errors.NEGATIVE_TIMEOUT)
    conn.server.pauses.pause(conn, ms / 1000, kind)
    return OK


@subcommand("client", "unpause", root_only=False)
def _client_unpause(conn, args):
    conn.server.pauses.unpause(conn)
    return OK


def _user_exists(conn, name: str) -> bool:
    # Known without asking the user store (no SQLite on the event loop): the
    # open default user, and the users of the clients this caller can see.
    if name == "default" and conn.server.default_user_open:
        return True
    return any(c.user == name for c in _visible_clients(conn))


def _kill(conn, other) -> None:
    if other is conn:
        conn.close_after_reply = True   # the reply goes out first, as in Redis
    else:
        other.close()


# -- client-side caching (dispatch/tracking.py) ----------------------------------

_TRACKING_FLAGS = {b"bcast": "bcast", b"optin": "optin", b"optout": "optout", b"noloop": "noloop"}


@subcommand("client", "tracking")
def _client_tracking(conn, args):
    """CLIENT TRACKING on|off [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN]
    [OPTOUT] [NOLOOP]: Redis's parsing, checks and texts, in its order. A
    REDIRECT names a client of the caller's own tenant: any other id is one
    that "does not exist"."""
    redirect = 0
    options = set()
    prefixes = []
    i = 3
    while i < len(args):
        word = args[i].lower()
        more = i + 1 < len(args)
        if word == b"redirect" and more:
            i += 1
            if redirect != 0:
                raise CommandError(errors.TRACKING_REDIRECT_TWICE)
            redirect = parse_int(args[i])
            if redirect is None:
                raise CommandError(errors.NOT_INTEGER)
            target = conn.server.clients.get(redirect)
            if target is None or target.tenant is not conn.tenant or target.closing:
                raise CommandError(errors.TRACKING_NO_REDIRECT_CLIENT)
        elif word in _TRACKING_FLAGS:
            options.add(_TRACKING_FLAGS[word])
        elif word == b"prefix" and more:
            i += 1
            prefixes.append(args[i])
        else:
            raise CommandError(errors.SYNTAX)
        i += 1
    mode = args[2].lower()
    if mode == b"on":
        state = conn.tracking
        bcast = "bcast" in options
        if not bcast and prefixes:
            raise CommandError(errors.TRACKING_PREFIX_WITHOUT_BCAST)
        if state is not None and state.bcast != bcast:
            raise CommandError(errors.TRACKING_BCAST_SWITCH)
        if bcast and options & {"optin", "optout"}:
            raise CommandError(errors.TRACKING_OPT_WITH_BCAST)
        if {"optin", "optout"} <= options:
            raise CommandError(errors.TRACKING_OPTIN_AND_OPTOUT)
        if state is not None and (("optin" in options and state.optout)
                                  or ("optout" in options and state.optin)):
            raise CommandError(errors.TRACKING_OPT_SWITCH)
        tracker = tracker_of(conn.server)
        if bcast:
            tracker.check_prefixes(conn, prefixes)
        tracker.enable(conn, redirect, options, prefixes)
    elif mode == b"off":
        if conn.tracking is not None:
            conn.server.events.tracker.disable(conn)
    else:
        raise CommandError(errors.SYNTAX)
    return OK


@subcommand("client", "caching")
def _client_caching(conn, args):
    state = conn.tracking
    if state is None:
        raise CommandError(errors.CACHING_WITHOUT_TRACKING)
    answer = args[2].lower()
    if answer == b"yes":
        if not state.optin:
            raise CommandError(errors.CACHING_YES_WITHOUT_OPTIN)
    elif answer == b"no":
        if not state.optout:
            raise CommandError(errors.CACHING_NO_WITHOUT_OPTOUT)
    else:
        raise CommandError(errors.SYNTAX)
    state.caching = True
    return OK


@subcommand("client", "getredir")
def _client_getredir(conn, args):
    return -1 if conn.tracking is None else conn.tracking.redirect


@subcommand("client", "trackinginfo")
def _client_trackinginfo(conn, args):
    state = conn.tracking
    if state is None:
        return {b"flags": SetReply([b"off"]), b"redirect": -1, b"prefixes": []}
    return {b"flags": SetReply([b"on"] + state.flags()), b"redirect": state.redirect,
            b"prefixes": sorted(state.prefixes)}   # Redis's (radix tree) order
