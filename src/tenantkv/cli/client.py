"""tenantkv-cli: a redis-cli compatible client for tenantkv (and Redis).

    tenantkv-cli [OPTIONS] [cmd [arg ...]]

Options are redis-cli's (see --help); their behaviour and output follow
redis-cli 7.0 byte for byte where both have them: replies are printed in
redis-cli's human format when stdout is a terminal (or --no-raw), raw
otherwise (or --raw), or as JSON/CSV; a command given as arguments runs once
(or -r N times, every -i seconds) and exits; with no command, commands are
read from stdin line by line when stdin is not a terminal, and the
interactive client (tenantkv.cli.repl) starts when it is.

Our additions: TENANTKV_PASSWORD (like REDISCLI_AUTH), -v / -vv (the RESP
exchanged, on stderr), colours when stdout is a terminal (--no-color,
NO_COLOR), a progress line for --pipe on a terminal, and the
administration commands through `tenantkv` (tenantkv user ..., tenantkv cli
... is this client).
"""

from __future__ import annotations

import getpass
import os
import random
import select
import ssl
import stat
import sys
import time
from urllib.parse import unquote_to_bytes

from tenantkv.protocol.strict import split_args as _split_inline
from tenantkv.cli.output import format_invalidate, format_reply, prints_raw, to_bytes, repr_bytes
from tenantkv.cli.resp import (
    ConnectError, Connection, Error, ReplyCounter, encode_command,
)

PROG = "tenantkv-cli"
VERSION = "0.1.0"
AUTH_WARNING = ("Warning: Using a password with '-a' or '-u' option on the command line "
                "interface may not be safe.\n")

USAGE = """\
tenantkv-cli %(version)s (redis-cli compatible)

Usage: tenantkv-cli [OPTIONS] [cmd [arg [arg ...]]]
  -h <hostname>      Server hostname (default: 127.0.0.1).
  -p <port>          Server port (default: 6379).
  -a <password>      Password to use when connecting to the server.
                     TENANTKV_PASSWORD or REDISCLI_AUTH in the environment
                     pass it more safely (-a takes precedence).
  --user <username>  Used to send ACL style 'AUTH username pass'. Needs -a.
  --pass <password>  Alias of -a.
  --askpass          Ask for the password on the terminal, without echo
                     (-a and the environment are then ignored).
  -u <uri>           Server URI: redis://[user[:pass]@]host[:port][/db],
                     rediss:// for TLS.
  -r <repeat>        Execute specified command N times (-1: forever).
  -i <interval>      When -r is used, waits <interval> seconds per command
                     (sub-second times like -i 0.1 work). Also the interval of
                     --scan, --stat and --latency.
  -n <db>            Database number.
  -2                 Start session in RESP2 protocol mode.
  -3                 Start session in RESP3 protocol mode.
  -t <seconds>       Connection timeout.
  -x                 Read last argument from STDIN.
  -d <delimiter>     Delimiter between response bulks for raw formatting (default: \\n).
  -D <delimiter>     Delimiter between responses for raw formatting (default: \\n).
  -e                 Return exit error code when command execution fails.
  --tls              Establish a secure TLS connection.
  --sni <host>       Server name indication for TLS.
  --cacert <file>    CA Certificate file to verify with.
  --cacertdir <dir>  Directory where trusted CA certificates are stored.
  --insecure         Allow insecure TLS connection by skipping cert validation.
  --cert <file>      Client certificate to authenticate with.
  --key <file>       Private key file to authenticate with.
  --raw              Use raw formatting for replies (default when STDOUT is
                     not a tty).
  --no-raw           Force formatted output even when STDOUT is not a tty.
  --csv              Output in CSV format.
  --json             Output in JSON format (default RESP3, use -2 for RESP2).
  --quoted-json      Same as --json, but produce ASCII-safe quoted strings.
  --no-color         No colours (also NO_COLOR=1); colours are used only for
                     the formatted output on a terminal.
  --show-pushes <yn> Whether to print RESP3 PUSH messages (default: when
                     STDOUT is a tty).
  --stat             Print rolling stats about server: mem, clients, ...
  --latency          Sample the latency of PING continuously (on a terminal)
                     or for one second (-i to change), then print the result.
  --latency-history  Like --latency but a line every 15 s (-i to change).
  --pipe             Transfer raw Redis protocol (or inline commands) from stdin
                     to the server.
  --pipe-timeout <n> In --pipe mode, abort with error if after sending all data
                     no reply is received within <n> seconds (default 30, 0: forever).
  --scan             List all keys using the SCAN command.
  --pattern <pat>    Keys pattern when using --scan (default: *).
  --count <count>    COUNT given to SCAN by --scan.
  -v, -vv            Show the RESP exchanged on stderr (-vv: in full).
  --no-auth-warning  Don't show warning message when using password on command
                     line interface.
  --help             Output this help and exit.
  --version          Output version and exit.

Examples:
  cat /etc/passwd | tenantkv-cli -x set mypasswd
  tenantkv-cli -r 100 lpush mylist x
  tenantkv-cli -r 100 -i 1 info | grep used_memory_human:
  tenantkv-cli --scan --pattern '*:12345*'
  tenantkv-cli --pipe < commands.resp

When no command is given, tenantkv-cli starts in interactive mode.
User administration (offline): tenantkv user --help; tenantkv --help.
"""


class UsageError(Exception):
    pass


class Options:
    """The parsed command line (attribute names are the REPL's too:
    raw, no_raw, json, quoted_json, csv, color, no_color)."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 6379
        self.host_given = False
        self.port_given = False
        self.password = None
        self.password_source = None     # "arg", "uri", "env", "askpass"
        self.user = None
        self.askpass = False
        self.no_auth_warning = False
        self.db = 0
        self.db_given = False
        self.protocol = None            # None: 2, or 3 for --json
        self.timeout = None
        self.stdin_lastarg = False
        self.repeat = 1
        self.interval = 0.0
        self.mb_delim = "\n"
        self.cmd_delim = "\n"
        self.set_errcode = False
        self.tls = False
        self.sni = None
        self.cacert = None
        self.cacertdir = None
        self.insecure = False
        self.cert = None
        self.key = None
        self.output = None              # None: tty when stdout is a terminal, else raw
        self.raw = False
        self.no_raw = False
        self.json = False
        self.quoted_json = False
        self.csv = False
        self.color = None
        self.no_color = False
        self.show_pushes = None
        self.stat = False
        self.latency = False
        self.latency_history = False
        self.pipe = False
        self.pipe_timeout = 30
        self.scan = False
        self.pattern = None
        self.count = None
        self.verbose = 0
        self.history_file = None
        self.rc_file = None
        self.command: list = []

    @property
    def mode(self) -> str:
        return self.output or "tty"


def _unescape_delim(text: str) -> str:
    # redis-cli's -d / -D take C escapes through sdscatrepr's inverse (unquoteCString)
    try:
        return text.encode("latin-1", "surrogateescape").decode("unicode_escape")
    except UnicodeDecodeError:
        return text


def parse_uri(uri: str, opts: Options) -> None:
    """redis-cli's parseRedisUri: redis://[[user]:pass@]host[:port][/db], rediss:// TLS."""
    lower = uri.lower()
    if lower.startswith("rediss://"):
        opts.tls = True
        rest = uri[len("rediss://"):]
    elif lower.startswith("redis://"):
        rest = uri[len("redis://"):]
    else:
        raise UsageError("Invalid URI scheme")
    if not rest:
        return
    at = rest.rfind("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        colon = userinfo.find(":")
        if colon >= 0:
            user = _pct(userinfo[:colon])
            opts.user = user or None
            userinfo = userinfo[colon + 1:]
        opts.password = _pct(userinfo)
        opts.password_source = "uri"
    if not rest:
        return
    slash = rest.find("/")
    hostport = rest if slash < 0 else rest[:slash]
    if hostport:
        if hostport.startswith("["):            # [::1]:6379
            close = hostport.find("]")
            host, tail = hostport[1:close], hostport[close + 1:]
            port = tail[1:] if tail.startswith(":") else None
        else:
            host, sep, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", None)
        if host:
            opts.host = host
            opts.host_given = True
        if port:
            opts.port = _int(port, "Invalid server port.")
            opts.port_given = True
    if slash >= 0 and rest[slash + 1:]:
        opts.db = _atoi(rest[slash + 1:])
        opts.db_given = True


def _pct(text: str) -> str:
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _atoi(text: str) -> int:
    """C atoi: leading digits, else 0."""
    text = text.strip()
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return sign * int(digits) if digits else 0


def _int(text: str, message: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(message)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# options taking a value, and what they set
def parse_args(argv: list) -> Options:
    opts = Options()
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        last = i == n - 1
        value = None if last else argv[i + 1]

        def take():
            nonlocal i
            i += 1
            return argv[i]

        if arg == "--help":
            raise SystemExit(_usage(0))
        elif arg == "--version":
            sys.stdout.write("%s %s\n" % (PROG, VERSION))
            raise SystemExit(0)
        elif arg == "-h" and not last:
            opts.host = take()
            opts.host_given = True
        elif arg == "-h":
            raise SystemExit(_usage(0))
        elif arg == "-p" and not last:
            opts.port = _atoi(take())
            opts.port_given = True
            if not 0 <= opts.port <= 65535:
                raise UsageError("Invalid server port.")
        elif arg in ("-a", "--pass") and not last:
            opts.password = take()
            opts.password_source = "arg"
        elif arg == "--user" and not last:
            opts.user = take()
        elif arg == "--askpass":
            opts.askpass = True
        elif arg == "--no-auth-warning":
            opts.no_auth_warning = True
        elif arg == "-u" and not last:
            parse_uri(take(), opts)
            if not 0 <= opts.port <= 65535:
                raise UsageError("Invalid server port.")
        elif arg == "-n" and not last:
            opts.db = _atoi(take())
            opts.db_given = True
        elif arg == "-2":
            opts.protocol = 2
        elif arg == "-3":
            opts.protocol = 3
        elif arg == "-t" and not last:
            seconds = _float(take())
            if seconds < 0:
                raise UsageError("Invalid connection timeout for -t.")
            opts.timeout = seconds or None
        elif arg == "-x":
            opts.stdin_lastarg = True
        elif arg == "-r" and not last:
            opts.repeat = _atoi(take())
        elif arg == "-i" and not last:
            opts.interval = _float(take())
        elif arg == "-d" and not last:
            opts.mb_delim = _unescape_delim(take())
        elif arg == "-D" and not last:
            opts.cmd_delim = _unescape_delim(take())
        elif arg == "-e":
            opts.set_errcode = True
        elif arg == "--tls":
            opts.tls = True
        elif arg == "--sni" and not last:
            opts.sni = take()
        elif arg == "--cacert" and not last:
            opts.cacert = take()
        elif arg == "--cacertdir" and not last:
            opts.cacertdir = take()
        elif arg == "--insecure":
            opts.insecure = True
        elif arg == "--cert" and not last:
            opts.cert = take()
        elif arg == "--key" and not last:
            opts.key = take()
        elif arg == "--raw":
            opts.output, opts.raw = "raw", True
        elif arg == "--no-raw":
            opts.output, opts.no_raw = "tty", True
        elif arg == "--csv":
            opts.output, opts.csv = "csv", True
        elif arg == "--json":
            opts.output, opts.json = "json", True
        elif arg == "--quoted-json":
            opts.output, opts.quoted_json = "quoted-json", True
        elif arg == "--no-color":
            opts.no_color = True
            opts.color = False
        elif arg == "--show-pushes" and not last:
            word = take().lower()
            if word not in ("y", "yes", "n", "no"):
                raise UsageError("Unknown --show-pushes value '%s' (valid: '[y]es', '[n]o')" % word)
            opts.show_pushes = word.startswith("y")
        elif arg == "--stat":
            opts.stat = True
        elif arg == "--latency":
            opts.latency = True
        elif arg == "--latency-history":
            opts.latency = opts.latency_history = True
        elif arg == "--pipe":
            opts.pipe = True
        elif arg == "--pipe-timeout" and not last:
            opts.pipe_timeout = _atoi(take())
        elif arg == "--scan":
            opts.scan = True
        elif arg == "--pattern" and not last:
            opts.pattern = take()
        elif arg == "--count" and not last:
            opts.count = _atoi(take())
        elif arg in ("-v", "--verbose"):
            opts.verbose += 1
        elif arg == "-vv":
            opts.verbose += 2
        elif arg == "--history-file" and not last:
            opts.history_file = take()
        elif arg == "--rc" and not last:
            opts.rc_file = take()
        elif arg.startswith("-") and arg != "-":
            raise UsageError("Unrecognized option or bad number of args for: '%s'" % arg)
        else:
            opts.command = argv[i:]
            break
        del value
        i += 1
    return opts


def _usage(status: int) -> int:
    sys.stdout.write(USAGE % {"version": VERSION})
    return status


# -- connection ---------------------------------------------------------------------

def tls_context(opts: Options) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=opts.cacert, capath=opts.cacertdir)
    if opts.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if opts.cert:
        context.load_cert_chain(opts.cert, opts.key)
    return context


class Tracer:
    """-v / -vv: the RESP exchanged, escaped, on stderr; passwords redacted."""

    def __init__(self, level: int, secrets=(), stream=None) -> None:
        self.level = level
        self.secrets = [to_bytes(s) for s in secrets if s]
        self.stream = stream or sys.stderr

    def __call__(self, direction: str, data: bytes) -> None:
        for secret in self.secrets:
            data = data.replace(secret, b"(redacted)")
        text = repr_bytes(data)
        if self.level < 2 and len(text) > 200:
            text = text[:200] + '..." (%d bytes)' % len(data)
        self.stream.write("%s %s\n" % (direction, text))
        self.stream.flush()


def make_connection(opts: Options) -> Connection:
    conn = Connection(opts.host, opts.port, username=opts.user, password=opts.password,
                      db=opts.db, protocol=opts.protocol or 2,
                      tls=tls_context(opts) if opts.tls else None, timeout=opts.timeout,
                      server_hostname=opts.sni)
    if opts.verbose:
        conn.trace = Tracer(opts.verbose, [opts.password])
    return conn


def connect(conn: Connection, err) -> bool:
    """Connect as redis-cli does: a refused AUTH or SELECT is reported and the
    session goes on. False when no connection could be made."""
    try:
        conn.connect(strict=False)
    except ConnectError as exc:
        err.write("%s\n" % exc)
        return False
    except ssl.SSLError as exc:
        err.write("Could not negotiate a TLS connection: %s\n" % exc)
        return False
    for problem in conn.connect_errors:
        err.write("%s\n" % problem)
    err.flush()
    return True


# -- quoted input (sdssplitargs) -------------------------------------------------

def split_args(line):
    """redis-cli's line splitting (sdssplitargs): words, "double quoted" with
    C escapes (\\n \\xHH ...), 'single quoted'. Returns a list of bytes, or
    None when quotes are unbalanced or a closing quote is not followed by a
    space. `line`: bytes or str. The server's inline reader splits the same
    way: one implementation (protocol/strict.py)."""
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    return _split_inline(line)


def _to_arg(text) -> bytes:
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogateescape")


# -- output -------------------------------------------------------------------------

class Printer:
    def __init__(self, opts: Options, out=None, err=None) -> None:
        self.opts = opts
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr
        self.color = bool(opts.color) and opts.mode == "tty"

    def reply(self, reply, args=()) -> None:
        opts = self.opts
        text = format_reply(reply, opts.mode, color=self.color, mb_delim=opts.mb_delim,
                            cmd_delim=opts.cmd_delim, raw_strings=prints_raw(args))
        self.out.write(to_bytes(text))
        self.out.flush()

    def push(self, push) -> None:
        if (self.opts.mode == "tty" and len(push) == 2 and isinstance(push[0], bytes)
                and push[0].startswith(b"invalidate") and isinstance(push[1], list)):
            self.out.write(to_bytes(format_invalidate(push)))
        else:
            self.reply(push)
        self.out.flush()


# -- running commands ---------------------------------------------------------------

def _name(args) -> str:
    first = args[0]
    return (first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)).lower()


PUBSUB = ("subscribe", "psubscribe", "ssubscribe")
UNSUBSCRIBE = ("unsubscribe", "punsubscribe", "sunsubscribe")


def run_command(conn: Connection, args: list, printer: Printer, opts: Options,
                repeat: int = 1, interactive: bool = False) -> int:
    """Send `args` `repeat` times (forever when negative), printing replies.
    Returns 0, or 1 for -e and an error reply (non-interactive)."""
    name = _name(args)
    count = 0
    saved_push = conn.on_push
    if name in PUBSUB or name in UNSUBSCRIBE:
        conn.on_push = None   # in RESP3 the confirmations and messages are pushes: print them
    try:
        while repeat < 0 or count < repeat:
            count += 1
            status = _run_once(conn, args, name, printer, opts, interactive)
            if status:
                return status
            if opts.interval and (repeat < 0 or count < repeat):
                time.sleep(opts.interval)
    finally:
        conn.on_push = saved_push
    return 0


def _run_once(conn, args, name, printer, opts, interactive) -> int:
    reply = conn.call(*args)
    if isinstance(reply, Error) and opts.set_errcode and not interactive:
        printer.err.write("%s\n" % reply)
        printer.err.flush()
        return 1
    printer.reply(reply, args)
    if isinstance(reply, Error):
        return 0
    if name == "monitor":
        while True:
            printer.reply(conn.read_reply(), args)
    if name in PUBSUB:
        while True:   # the other confirmations, then messages, until interrupted
            printer.reply(conn.read_reply(), args)
    return 0


def run_lines(conn: Connection, stream, printer: Printer, opts: Options) -> int:
    """Commands from a non-terminal stdin, one per line (redis-cli's repl without a tty)."""
    for raw_line in stream:
        args = split_args(raw_line.rstrip(b"\r\n"))
        if args is None:
            printer.out.write(b"Invalid argument(s)\n")
            printer.out.flush()
            continue
        if not args:
            continue
        word = args[0].decode("utf-8", "replace").lower()
        if word in ("quit", "exit"):
            break
        repeat = 1
        if len(args) > 1 and args[0].lstrip(b"-").isdigit():
            repeat = int(args[0])
            if repeat <= 0:
                printer.out.write(b"Invalid redis-cli repeat command option value.\n")
                printer.out.flush()
                continue
            args = args[1:]
        try:
            run_command(conn, args, printer, opts, repeat=repeat, interactive=True)
        except ConnectError as exc:
            printer.err.write("Error: %s\n" % exc)
            printer.err.flush()
            if not connect(conn, printer.err):
                return 1
    return 0


# -- --pipe ---------------------------------------------------------------------------

def pipe_mode(conn: Connection, stream, opts: Options, out, err) -> int:
    """Send stdin as is, then ECHO a random marker; count replies as they come
    (a streaming counter, no reply objects) until the marker's reply arrives."""
    sock = conn.sock
    sock.setblocking(False)
    marker = bytes(random.choice(b"0123456789abcdef") for _ in range(20))
    tail_expected = b"$20\r\n" + marker + b"\r\n"
    counter = ReplyCounter(keep_errors=1 << 30)
    show_progress = err.isatty() if hasattr(err, "isatty") else False
    fd_in = stream.fileno() if hasattr(stream, "fileno") else None
    input_size = None
    if fd_in is not None:
        try:
            st = os.fstat(fd_in)
            if stat.S_ISREG(st.st_mode):
                input_size = st.st_size - os.lseek(fd_in, 0, os.SEEK_CUR)
        except OSError:
            pass
    pending = b""
    eof = False
    sent_marker = False
    tail = b""
    done = False
    last_read = time.monotonic()
    last_progress = 0.0
    total_sent = 0
    printed_errors = 0
    chunk_size = 1 << 20
    while not done:
        rlist = [sock]
        if not pending and not eof and fd_in is not None:
            rlist.append(fd_in)
        wlist = [sock] if (pending or (eof and not sent_marker)) else []
        readable, writable, _ = select.select(rlist, wlist, [], 1.0)
        if fd_in is not None and fd_in in readable:
            data = os.read(fd_in, chunk_size)
            if data:
                pending = data
            else:
                eof = True
        if sock in writable:
            if pending:
                try:
                    sent = sock.send(pending)
                except BlockingIOError:
                    sent = 0
                total_sent += sent
                pending = pending[sent:]
            elif eof and not sent_marker:
                pending = encode_command("ECHO", marker)
                sent_marker = True
                last_read = time.monotonic()   # --pipe-timeout counts from here
                if show_progress:
                    err.write("\r\x1b[2K")
                    err.flush()
                out.write(b"All data transferred. Waiting for the last reply...\n")
                out.flush()
        if sock in readable:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            if data is not None:
                if not data:
                    err.write("Error reading from the server: Connection reset by peer\n")
                    return 1
                last_read = time.monotonic()
                counter.feed(data)
                while printed_errors < len(counter.error_lines):
                    err.write("%s\n" % counter.error_lines[printed_errors])
                    printed_errors += 1
                if printed_errors > 10000:   # do not keep them all
                    del counter.error_lines[:]
                    printed_errors = 0
                tail = (tail + data)[-len(tail_expected):]
                if sent_marker and not pending and tail == tail_expected:
                    done = True
        if not done and sent_marker and not pending and opts.pipe_timeout and \
                time.monotonic() - last_read > opts.pipe_timeout:
            err.write("No replies for %d seconds: exiting.\n" % opts.pipe_timeout)
            return 1
        if show_progress and time.monotonic() - last_progress > 0.2:
            last_progress = time.monotonic()
            err.write("\r\x1b[2K" + _progress(total_sent, input_size, counter))
            err.flush()
    if show_progress:
        err.write("\r\x1b[2K")
        err.flush()
    replies = counter.replies - 1   # the marker's
    out.write(b"Last reply received from server.\n")
    out.write(b"errors: %d, replies: %d\n" % (counter.errors, replies))
    out.flush()
    return 1 if counter.errors else 0


def _progress(sent: int, size, counter) -> str:
    """The --pipe progress line (stderr on a terminal): a bar when stdin is a file."""
    tail = "%s sent, %d replies, %d errors" % (_human(sent), counter.replies, counter.errors)
    if not size:
        return tail
    done = min(sent / size, 1.0)
    width = 30
    filled = int(done * width)
    return "[%s%s] %3d%% of %s, %s" % ("#" * filled, "." * (width - filled), done * 100,
                                       _human(size), tail)


def _human(n: float) -> str:
    """redis-cli's bytesToHuman."""
    sign = ""
    if n < 0:
        sign, n = "-", -n
    if n < 1024:
        return "%s%dB" % (sign, n)
    for unit, power in (("K", 1), ("M", 2), ("G", 3), ("T", 4), ("P", 5)):
        if n < 1024 ** (power + 1) or unit == "P":
            return "%s%.2f%s" % (sign, n / 1024 ** power, unit)
    return str(n)


# -- --scan, --stat, --latency -------------------------------------------------------------

def scan_mode(conn: Connection, opts: Options, out) -> int:
    cursor = b"0"
    while True:
        args = ["SCAN", cursor]
        if opts.pattern:
            args += ["MATCH", opts.pattern]
        if opts.count:
            args += ["COUNT", str(opts.count)]
        reply = conn.call(*args)
        if isinstance(reply, Error):
            sys.stderr.write("Error: %s\n" % reply)
            return 1
        cursor, keys = reply[0], reply[1]
        for key in keys:
            if opts.mode == "tty":
                out.write(to_bytes(repr_bytes(key)) + b"\n")
            else:
                out.write(key + b"\n")
        out.flush()
        if cursor in (b"0", 0):
            return 0
        if opts.interval:
            time.sleep(opts.interval)


def _info_fields(text: str) -> dict:
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    return fields


def _long(fields: dict, name: str):
    value = fields.get(name)
    if value is None:
        return None
    try:
        return int(value.split(",")[0])
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return None


def stat_line(fields: dict, previous_requests) -> tuple:
    """One line of --stat from INFO's fields, as redis-cli's statMode."""
    keys = 0
    for name, value in fields.items():
        if name.startswith("db") and name[2:].isdigit():
            for part in value.split(","):
                if part.startswith("keys="):
                    keys += int(part[5:])
    used = _long(fields, "used_memory")
    clients = _long(fields, "connected_clients")
    blocked = _long(fields, "blocked_clients")
    requests = _long(fields, "total_commands_processed")
    connections = _long(fields, "total_connections_received")
    line = "%-11s" % keys
    line += "%-8s" % (_human(used) if used is not None else "-")
    line += " %-8s" % ("-" if clients is None else clients)
    line += "%-8s" % ("-" if blocked is None else blocked)
    req = "-" if requests is None else "%d (+%d)" % (
        requests, 0 if not previous_requests or requests is None else requests - previous_requests)
    line += "%-19s" % req
    line += " %-12s" % ("-" if connections is None else connections)
    child = ((_long(fields, "bgsave_in_progress") or 0)
             | (_long(fields, "aof_rewrite_in_progress") or 0) << 1
             | (_long(fields, "loading") or 0) << 2)
    line += {1: "SAVE", 2: "AOF", 3: "SAVE+AOF", 4: "LOAD"}.get(child, "")
    return line, requests


STAT_HEADER = ("------- data ------ --------------------- load -------------------- - child -\n"
               "keys       mem      clients blocked requests            connections          \n")


def stat_mode(conn: Connection, opts: Options, out, count=None) -> int:
    requests = None
    i = 0
    interval = opts.interval or 1.0
    while count is None or i < count:
        reply = conn.call("INFO")
        if isinstance(reply, Error):
            sys.stderr.write("ERROR: %s\n" % reply)
            return 1
        if i % 20 == 0:
            out.write(STAT_HEADER.encode())
        i += 1
        line, requests = stat_line(_info_fields(bytes(reply).decode("utf-8", "replace")), requests)
        out.write(line.encode() + b"\n")
        out.flush()
        if count is None or i < count:
            time.sleep(interval)
    return 0


def latency_line(opts: Options, lo, hi, avg, count) -> str:
    mode = opts.mode
    if mode == "tty":
        return "min: %d, max: %d, avg: %.2f (%d samples)" % (lo, hi, avg, count)
    if mode == "csv":
        return "%d,%d,%.2f,%d\n" % (lo, hi, avg, count)
    if mode in ("json", "quoted-json"):
        return '{"min": %d, "max": %d, "avg": %.2f, "count": %d}\n' % (lo, hi, avg, count)
    return "%d %d %.2f %d\n" % (lo, hi, avg, count)


def latency_mode(conn: Connection, opts: Options, out) -> int:
    """PING every 10 ms; latencies in whole milliseconds as redis-cli (the
    difference of two millisecond clock readings)."""
    history_interval = opts.interval if opts.interval else 15.0
    interval = opts.interval if opts.interval else 1.0
    lo = hi = total = count = 0
    history_start = time.monotonic()
    while True:
        start = int(time.time() * 1000)   # redis-cli's mstime(): whole milliseconds
        conn.call("PING")
        latency = int(time.time() * 1000) - start
        count += 1
        if count == 1:
            lo = hi = total = latency
        else:
            lo, hi = min(lo, latency), max(hi, latency)
            total += latency
        avg = total / count
        if opts.mode == "tty":
            out.write(b"\x1b[0G\x1b[2K" + latency_line(opts, lo, hi, avg, count).encode())
            out.flush()
        elif opts.latency_history:
            out.write(latency_line(opts, lo, hi, avg, count).encode())
            out.flush()
        elif time.monotonic() - history_start > interval:
            out.write(latency_line(opts, lo, hi, avg, count).encode())
            out.flush()
            return 0
        if opts.latency_history and time.monotonic() - history_start > history_interval:
            out.write(b" -- %.2f seconds range\n" % (time.monotonic() - history_start))
            out.flush()
            history_start = time.monotonic()
            lo = hi = total = count = 0
        time.sleep(0.01)


# -- main -----------------------------------------------------------------------------------

def resolve_password(opts: Options, err) -> None:
    if opts.askpass:
        opts.password = getpass.getpass("Please input password: ")
        opts.password_source = "askpass"
    elif opts.password is None:
        for name in ("TENANTKV_PASSWORD", "REDISCLI_AUTH"):
            if os.environ.get(name):
                opts.password = os.environ[name]
                opts.password_source = "env"
                break
    if opts.password_source in ("arg", "uri") and not opts.no_auth_warning:
        err.write(AUTH_WARNING)
        err.flush()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    err = sys.stderr
    try:
        opts = parse_args(argv)
    except UsageError as exc:
        err.write("%s\n" % exc)
        return 1
    stdout_tty = sys.stdout.isatty()
    stdin_tty = sys.stdin.isatty() if sys.stdin else False
    if opts.output is None:
        opts.output = "tty" if stdout_tty else "raw"
    if opts.protocol is None and opts.output in ("json", "quoted-json"):
        opts.protocol = 3
    if opts.color is None:
        opts.color = stdout_tty and not os.environ.get("NO_COLOR") and \
            os.environ.get("TERM", "") != "dumb"
    if opts.show_pushes is None:
        opts.show_pushes = stdout_tty
    interactive = not opts.command and stdin_tty and not (
        opts.pipe or opts.scan or opts.stat or opts.latency)
    if interactive:
        _apply_rc(opts)
    resolve_password(opts, err)
    try:
        conn = make_connection(opts)
    except (ssl.SSLError, OSError) as exc:
        err.write("Could not set up TLS: %s\n" % exc)
        return 1
    out = sys.stdout.buffer
    printer = Printer(opts, out, err)
    try:
        if interactive:
            return _interactive(conn, opts, err)
        if not connect(conn, err):
            return 1
        conn.on_push = printer.push if opts.show_pushes else (lambda push: None)
        if opts.pipe:
            return pipe_mode(conn, sys.stdin.buffer, opts, out, err)
        if opts.scan:
            return scan_mode(conn, opts, out)
        if opts.stat:
            return stat_mode(conn, opts, out)
        if opts.latency:
            return latency_mode(conn, opts, out)
        if not opts.command:
            return run_lines(conn, sys.stdin.buffer, printer, opts)
        args = [_to_arg(a) for a in opts.command]
        if opts.stdin_lastarg:
            args.append(sys.stdin.buffer.read())
        return run_command(conn, args, printer, opts, repeat=opts.repeat)
    except ConnectError as exc:
        err.write("Error: %s\n" % exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0
    finally:
        conn.close()


def _apply_rc(opts: Options) -> None:
    """~/.tenantkvclirc's host/port/user/db, under the command line's."""
    try:
        from tenantkv.cli.repl import load_rc
    except ImportError:
        return
    try:
        rc = load_rc(opts.rc_file)
    except Exception:
        return
    if not opts.host_given and rc.get("host"):
        opts.host = str(rc["host"])
    if not opts.port_given and rc.get("port"):
        opts.port = int(rc["port"])
    if opts.user is None and rc.get("user"):
        opts.user = str(rc["user"])
    if not opts.db_given and rc.get("db"):
        opts.db = int(rc["db"])


def _interactive(conn: Connection, opts: Options, err) -> int:
    try:
        from tenantkv.cli.repl import run_repl
    except ImportError:
        err.write("tenantkv-cli: the interactive client (tenantkv.cli.repl) is not installed "
                  "in this build; give a command as arguments, or pipe commands on stdin.\n")
        return 1
    try:
        conn.connect(strict=False)
        for problem in conn.connect_errors:
            err.write("%s\n" % problem)
    except ConnectError as exc:
        err.write("%s\n" % exc)   # the REPL says "not connected" and retries
    return run_repl(conn, opts)


if __name__ == "__main__":
    sys.exit(main())
