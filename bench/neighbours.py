#!/usr/bin/env python3
"""Noisy neighbours: what one hostile tenant does to another's latency and to
the server's memory (issue 15).

    PYTHONPATH=src .venv/bin/python bench/neighbours.py              # ~5-10 min
    .venv/bin/python bench/neighbours.py --attacks lcs,keys,digest   # some attacks
    .venv/bin/python bench/neighbours.py --quick --json              # small sizes (the test)
    .venv/bin/python bench/neighbours.py --src /tmp/old/src          # another tree's server

What it does
------------
1. Makes three users offline (root, attacker, victim: `tenantkv user add`),
   starts tenantkv (the `--src` tree, default this checkout's src/) on a free
   loopback port in a temporary directory with `--maxmemory 200mb` and
   authentication required, and loads the attacker's tenant with 1,000,000
   keys (`key:0000000`.., values 0..9999, pipelined MSETs of 1,000 keys).
   RLIMIT_NOFILE is raised to its hard limit first (the server inherits it).

2. Starts the *monitor*, a separate process (its own GIL and CPU share) with
   two threads: the victim, logged in as its own tenant on one connection,
   sends PING and GET alternately, one at a time, every --interval ms (1),
   and records each request's send time, latency and error; a request that
   gets no reply in --timeout s (20) is recorded as an error and the victim
   logs in again on a new connection. The other thread reads the server's
   VmRSS from /proc/PID/status every 50 ms.

3. Runs the attacks one at a time from this process, as the attacker tenant.
   Each attack prepares its data (not measured), then opens a *window*: the
   attack itself (bounded: every socket has the --timeout, the holding
   attacks hold for --hold s), plus a 1 s tail for its aftermath. For each
   window the report gives the victim's requests that overlap it (count, p50,
   p99, max latency, errors), the attack's own outcome (the reply or error
   and its time), the server's highest RSS (the 50 ms samples and VmHWM, which
   is reset through /proc/PID/clear_refs at the window's start) and its RSS at
   the end (and at its start). Then the attack's data is removed, and every
   PING of a quiet 1.5 s must be answered within 50 ms (up to 120 s), so
   that work a closed client left queued stays out of the next window. A
   server that dies is reported, restarted and reloaded. --fresh restarts
   and reloads the server before every attack, so that none inherits the
   memory an earlier one left.

4. Prints a Markdown table with a verdict per attack against the issue's
   targets: victim max <= 250 ms, p99 <= 20 ms, no victim errors, RSS never
   beyond maxmemory + 20% (240 MB). --json prints the rows as JSON instead.

Attacks (--attacks names; default: all, in this order; flushall is last
because it removes the attacker's keys):

    lcs            LCS a b on two 8,000-byte strings
    srandmember    SRANDMEMBER s -16777216 (100 members)
    hrandfield     HRANDFIELD h -16777216
    zrandmember    ZRANDMEMBER z -16777216
    digest         DEBUG DIGEST over the 1M keys
    kdb_import     KDB IMPORT of a ~24 MB payload (1M new keys, crafted in the
                   .kdb format, into database 1)
    bitfield       BITFIELD bf SET i64 4294967232 1 (a 512 MB string)
    keys           KEYS key:*9 over the 1M keys
    setbit         SETBIT k 2000000000 1 (250 MB) under maxmemory
    setrange       SETRANGE k2 300000000 x (300 MB) under maxmemory
    zset_dups      KDB IMPORT of a zset listing 2M members (1,000 distinct)
    scan           64 x SCAN 0 over the 1M keys, cursors left open for --hold s
    unread         4 clients send SRANDMEMBER s -100000 (the most a non-root
                   user may ask for) 200 times each and never read
    multi          1M commands queued in MULTI (the replies read), then DISCARD
    preauth        5,000 unauthenticated connections, each holding a partial
                   request of ~170 KB (a bulk announced as 1 MB), for --hold s
    connect_flood  10,200 plain connections held for --hold s
    pipeline       1M INCRs pipelined on one connection
    exec           MULTI, 100,000 INCRs, EXEC (the most a non-root MULTI queues)
    sunionstore    SUNIONSTORE of two 500,000-member sets
    hgetall        HGETALL of a 500,000-field hash
    lrange         LRANGE 0 -1 of a 2M-element list
    zunionstore    ZUNIONSTORE of two 250,000-member sorted sets
    del_big        DEL of a 2M-element list (freed at once, or lazily)
    fill           400 SETs of 1 MB values, pipelined (fills memory)
    flushall       FLUSHALL of the attacker's 1M keys

During preauth and connect_flood another thread logs the victim in on a new
connection every 0.5 s (AUTH; the outcome column says how many of those
logins worked and the slowest; a failed one counts as a victim error), since
those attacks aim at logging in rather than at served requests. The victim
connects from 127.0.0.2, the attacker from 127.0.0.1: two hosts, as the
server caps the connections not yet logged in per address (a victim behind
the attacker's own address could not be told from it).

Reading it: latency is what the victim process sees over loopback, so it
includes its own scheduling: on a 2-CPU machine the server, the attacker
(this process) and the victim share two CPUs, and a few ms of p99 can be the
machine's. RSS counts the whole server process. A target missed does not
change the exit status; a server that cannot start, or an attacker setup
step that fails, exits 1. Everything runs on 127.0.0.1; the server is
stopped in every case (try/finally, atexit, SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
MAXMEMORY = 200 * MB
TARGET_MAX_MS = 250.0
TARGET_P99_MS = 20.0
TARGET_RSS = MAXMEMORY * 1.2          # maxmemory + 20 %
PASSWORDS = {"root": "neighbours-root-pw", "attacker": "attacker-pw", "victim": "victim-pw"}
# The victim is another host than the attacker (the server caps connections
# not yet logged in per address): another loopback address.
VICTIM_SOURCE = ("127.0.0.2", 0)
VICTIM_KEY = b"victim:key"
VICTIM_VALUE = b"victim-value"
TAIL = 1.0                            # s of window after the attack: its aftermath
RSS_PERIOD = 0.05                     # s between VmRSS samples
NEG = -16_777_216

# Sizes: (default, --quick).
SIZES = {
    "keys": (1_000_000, 20_000),        # the attacker's keys
    "lcs": (8_000, 1_000),              # bytes of each LCS string
    "rand": (NEG, -100_000),            # SRANDMEMBER/HRANDFIELD/ZRANDMEMBER count
    "import": (1_000_000, 20_000),      # keys of the KDB IMPORT payload
    "bitfield": (4_294_967_232, 80_000_000),
    "setbit": (2_000_000_000, 80_000_000),
    "setrange": (300_000_000, 10_000_000),
    "zset_dups": (2_000_000, 20_000),
    "scans": (64, 8),
    "multi": (1_000_000, 20_000),
    "preauth": (5_000, 100),
    "preauth_bytes": (170_000, 20_000),
    "connects": (10_200, 200),
    "pipeline": (1_000_000, 20_000),
    "exec": (100_000, 5_000),           # the most a non-root MULTI queues
    "union": (500_000, 10_000),
    "zunion": (250_000, 5_000),
    "hash": (500_000, 10_000),
    "list": (2_000_000, 20_000),
    "fill": (400, 10),                  # 1 MB values
    "unread": (200, 20),                # requests of each never-reading client
}
RAND_CAP = 100_000   # the most random elements a non-root call may ask for


class BenchError(Exception):
    """The run cannot go on (exit status 1)."""


# --------------------------------------------------------------------------
# RESP over a plain socket. redis-py would build a Python list of 16M
# members for SRANDMEMBER's reply; skip() counts its lines instead.


class Err(str):
    """An error reply (its text, without the '-')."""


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Client:
    """One connection: send requests, read replies (parsed, or skipped)."""

    def __init__(self, port: int, timeout: float, user: str | None = None, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=source)
        self.buf = bytearray()
        self.pos = 0
        if user is not None:
            reply = self.call("AUTH", user, PASSWORDS[user])
            if reply != "OK":
                self.close()
                raise ConnectionError("AUTH %s: %s" % (user, reply))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args):
        self.sock.sendall(resp(*args))
        return self.reply()

    def _fill(self) -> None:
        if self.pos and self.pos * 2 >= len(self.buf):
            del self.buf[:self.pos]
            self.pos = 0
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self._fill()

    def _skip_bytes(self, count: int) -> None:
        while len(self.buf) - self.pos < count:
            count -= len(self.buf) - self.pos
            self.pos = len(self.buf)
            self._fill()
        self.pos += count

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return Err(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buf) - self.pos < size + 2:
                self._fill()
            data = bytes(self.buf[self.pos:self.pos + size])
            self.pos += size + 2
            return data
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self.reply() for _ in range(size)]
        raise ConnectionError("unexpected reply %r" % line[:80])

    def skip(self):
        """Read one reply without keeping it: a flat array of bulk strings
        that hold no newline (our members and keys) is skipped by counting
        newlines in C; returns a short description, or Err."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            size = int(rest)
            need = 2 * size if size > 0 else 0   # "$len\n" and "data\n" per member
            while need:
                count = self.buf.count(b"\n", self.pos)
                if count >= need:
                    end = len(self.buf)
                    for _ in range(count - need + 1):
                        end = self.buf.rfind(b"\n", self.pos, end)
                    self.pos = end + 1
                    need = 0
                else:
                    need -= count
                    self.pos = len(self.buf)
                    self._fill()
            return "array of %s" % f"{size:,}"
        if kind == b"$":
            size = int(rest)
            if size >= 0:
                self._skip_bytes(size + 2)
            return "bulk of %s B" % f"{size:,}"
        self.pos -= len(line) + 2   # not an aggregate: parse it
        return self.reply()


def describe(reply) -> str:
    if isinstance(reply, Err):
        return "-" + reply
    if isinstance(reply, bytes):
        return "bulk of %s B" % f"{len(reply):,}"
    if isinstance(reply, list):
        return "array of %s" % f"{len(reply):,}"
    if isinstance(reply, int):
        return f"{reply:,}"
    return str(reply)


def seconds(value: float) -> str:
    return "%.0f ms" % (value * 1000) if value < 1 else "%.2f s" % value


def describe_exc(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timeout"
    return "%s: %s" % (type(exc).__name__, exc)


# --------------------------------------------------------------------------
# The server


def status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class Server:
    """tenantkv from `src` on a free port, in `workdir`, users made offline."""

    def __init__(self, src: Path, workdir: Path):
        self.src = src
        self.dir = Path(tempfile.mkdtemp(prefix="neighbours-", dir=workdir))
        path = os.environ.get("PYTHONPATH")
        self.env = dict(os.environ, PYTHONPATH=str(src) + (os.pathsep + path if path else ""),
                        TENANTKV_AUTH__DEFAULT_USER="off")
        self.proc = None
        self.pids: list[int] = []
        for name, password in PASSWORDS.items():
            done = subprocess.run(
                [python(), "-m", "tenantkv.cli.admin", "--data-dir", str(self.dir), "user", "add",
                 name, "--password-stdin"] + (["--root"] if name == "root" else []),
                input=password.encode() + b"\n", capture_output=True, env=self.env)
            if done.returncode != 0:
                raise BenchError("tenantkv user add %s failed: %s"
                                 % (name, done.stderr.decode(errors="replace")[-500:]))
        self.start()

    def start(self) -> None:
        self.port = free_port()
        self.log = self.dir / "server.log"
        argv = [python(), "-m", "tenantkv", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--loglevel", "warning", "--maxmemory", str(MAXMEMORY),
                "--save", ""]
        with open(self.log, "ab") as log:
            # Own session: the whole group is ours to stop (forked savers too).
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         cwd=self.dir, start_new_session=True)
        self.pid = self.proc.pid
        self.pids.append(self.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("tenantkv exited with status %s at start-up\n%s"
                                 % (self.proc.returncode, self.log_tail()))
            try:
                client = Client(self.port, 2, "root")
                client.close()
                return
            except (OSError, ConnectionError):
                time.sleep(0.1)
        raise BenchError("tenantkv did not accept a login within 60 s\n" + self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "  (no log)"
        return "\n".join("  | " + line for line in text)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:   # a frozen server (the point of some attacks) gets SIGKILL
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # whatever is left of the group
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The monitor process: the victim and the RSS sampler


def monitor_main(port: int, pid: int, pipe, interval: float, timeout: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent stops us
    lock = threading.Lock()
    samples: list = []   # (sent at, latency s, error or None)
    rss: list = []       # (at, VmRSS kB)
    done = [0.0]         # when the last request completed
    stop = threading.Event()

    def victim() -> None:
        ready = False
        client = None
        ops = (resp("PING"), resp("GET", VICTIM_KEY))
        expected = ("PONG", VICTIM_VALUE)
        tick = time.monotonic()
        i = 0
        while not stop.is_set():
            if client is None:
                start = time.monotonic()
                try:
                    client = Client(port, timeout, "victim", VICTIM_SOURCE)
                except (OSError, ConnectionError) as exc:
                    client = None
                    now = time.monotonic()
                    with lock:
                        samples.append((start, now - start, "login: " + describe_exc(exc)))
                        done[0] = now
                    time.sleep(0.01)
                    continue
            op = i % 2
            i += 1
            start = time.monotonic()
            error = None
            try:
                client.send(ops[op])
                reply = client.reply()
                if reply != expected[op]:
                    error = describe(reply)
            except (OSError, ValueError) as exc:   # ValueError: a garbled reply
                error = describe_exc(exc)
                client.close()
                client = None
            now = time.monotonic()
            with lock:
                samples.append((start, now - start, error))
                done[0] = now
            if not ready and error is None:
                ready = True   # logged in and served: the parent may start
                pipe.send(("ready",))
            tick += interval
            if tick > now:
                time.sleep(tick - now)
            else:
                tick = now   # late: carry on at the rate, no burst to catch up

    def sampler() -> None:
        while not stop.is_set():
            kb = status_kb(pid, "VmRSS")
            if kb is not None:
                with lock:
                    rss.append((time.monotonic(), kb))
            time.sleep(RSS_PERIOD)

    threads = [threading.Thread(target=victim, daemon=True),
               threading.Thread(target=sampler, daemon=True)]
    for t in threads:
        t.start()
    while True:
        message = pipe.recv()
        if message[0] == "take":
            # Until the victim has completed a request after the window's end
            # (so that the requests overlapping it are all in), bounded.
            deadline = time.monotonic() + timeout + 2
            while done[0] < message[1] and time.monotonic() < deadline:
                time.sleep(0.01)
            with lock:
                out = (samples[:], rss[:])
                samples.clear()
                rss.clear()
            pipe.send(out)
        else:
            stop.set()
            for t in threads:
                t.join(timeout + 2)
            pipe.send(None)
            return


class Monitor:
    def __init__(self, server: Server, interval: float, timeout: float):
        ctx = multiprocessing.get_context("fork")
        self.pipe, child = ctx.Pipe()
        self.timeout = timeout
        self.proc = ctx.Process(target=monitor_main, daemon=True,
                                args=(server.port, server.pid, child, interval, timeout))
        self.proc.start()
        # The victim's first login must not fall into the first window (its
        # latency is not a request's, so a freeze there would go unseen).
        if not self.pipe.poll(timeout + 30):
            self.stop()
            raise BenchError("the victim did not log in")
        self.pipe.recv()

    def take(self, until: float):
        self.pipe.send(("take", until))
        if not self.pipe.poll(self.timeout + 30):
            raise BenchError("the monitor process does not answer")
        return self.pipe.recv()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:   # the victim ends its request first: at once if the server is gone
                self.pipe.send(("stop",))
                if self.pipe.poll(5):
                    self.pipe.recv()
            except (OSError, EOFError):
                pass
            self.proc.join(1)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(5)


# --------------------------------------------------------------------------
# Crafted .kdb payloads (docs/kdb-format.md): KDB IMPORT's input, including
# values no writer makes (a zset that lists members twice).

KDB_HEADER = struct.Struct("<8sHHIQI")
KDB_BLOCK = struct.Struct("<B3xIIQ")
KDB_CHUNK = 65536


def strs(items: list) -> bytes:
    return b"\x04" + array("I", map(len, items)).tobytes() + b"".join(items)


def kdb_payload(blocks: list) -> bytes:
    """A one-tenant .kdb file from (kind, db, key count, payload) blocks."""
    head = KDB_HEADER.pack(b"\x89KDB\r\n\x1a\n", 1, 0, 16, int(time.time() * 1000), 1)
    name = b"neighbours"
    section = [b"TSEC" + struct.pack("<I", len(name)) + name]
    keys = 0
    for kind, db, count, payload in blocks:
        section.append(KDB_BLOCK.pack(kind, db, count, len(payload)) + payload)
        keys += count
    section.append(KDB_BLOCK.pack(0xFF, 0, 0, 0))
    section = b"".join(section)
    body = b"".join([head, struct.pack("<I", zlib.crc32(head)), section,
                     struct.pack("<I", zlib.crc32(section)), b"KEND", struct.pack("<Q", keys)])
    return body + struct.pack("<I", zlib.crc32(body))


def strings_payload(count: int, db: int) -> bytes:
    blocks = []
    for first in range(0, count, KDB_CHUNK):
        n = min(KDB_CHUNK, count - first)
        keys = [b"imp:%07d" % i for i in range(first, first + n)]
        values = [b"v%04d" % (i % 10000) for i in range(first, first + n)]
        blocks.append((0, db, n, strs(keys) + strs(values)))
    return kdb_payload(blocks)


def zset_dups_payload(count: int, db: int) -> bytes:
    members = [b"dup%d" % (i % 1000) for i in range(count)]
    scores = array("d", (float(i % 1000) for i in range(count)))
    payload = strs([b"zdup"]) + struct.pack("<I", count) + strs(members) + scores.tobytes()
    return kdb_payload([(3, db, 1, payload)])


# --------------------------------------------------------------------------
# The run


def percentile(values: list, q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


class Window:
    def __init__(self):
        self.outcome = ""
        self.attack_s = None
        self.login_errors: list = []   # the LoginProbe's failed logins
        self.start = self.end = 0.0


class LoginProbe:
    """The victim logs in on a new connection every `period` s (a thread)."""

    def __init__(self, port: int, timeout: float, period: float = 0.5):
        self.port, self.timeout, self.period = port, timeout, period
        self.results: list = []   # (seconds, error or None)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop_event.is_set():
            start = time.monotonic()
            try:
                Client(self.port, self.timeout, "victim", VICTIM_SOURCE).close()
                error = None
            except (OSError, ConnectionError) as exc:
                error = describe_exc(exc)
            self.results.append((time.monotonic() - start, error))
            self.stop_event.wait(self.period)

    def finish(self, w: Window) -> str:
        """Stops; the failed logins count as the victim's errors in `w`."""
        self.stop_event.set()
        self.thread.join(self.timeout + 2)
        ok = [s for s, e in self.results if e is None]
        errors = [e for _, e in self.results if e is not None]
        w.login_errors += ["login: " + e for e in errors]
        text = "victim logins %d/%d ok" % (len(ok), len(self.results))
        if ok:
            text += ", slowest %.0f ms" % (max(ok) * 1000)
        if errors:
            text += " (%s)" % errors[0][:70]
        return text


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.timeout = args.timeout
        self.hold = args.hold
        self.tail = TAIL / 4 if args.quick else TAIL
        self.workdir = Path(tempfile.mkdtemp(prefix="neighbours-"))
        self.server = None
        self.monitor = None
        self.rows: list = []
        self.clients: list = []

    def size(self, name: str) -> int:
        return SIZES[name][1 if self.quick else 0]

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    # -- life cycle
    def start(self) -> None:
        self.server = Server(self.args.src, self.workdir)
        self.prepare()

    def prepare(self) -> None:
        """The tenants' data and the monitor, on a (re)started server."""
        victim = Client(self.server.port, self.timeout, "victim")
        victim.call("SET", VICTIM_KEY, VICTIM_VALUE)
        victim.close()
        self.load_keys()
        time.sleep(0.5)
        self.log("server RSS %.0f MB" % ((status_kb(self.server.pid, "VmRSS") or 0) / 1024))
        self.monitor = Monitor(self.server, self.args.interval / 1000, self.timeout)

    def close(self) -> None:
        # The server first: a frozen one would hold the victim (and so the
        # monitor's stop) until its timeout.
        if self.server is not None:
            self.server.remove()
        for client in self.clients:
            client.close()
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def attacker(self, timeout: float | None = None) -> Client:
        client = Client(self.server.port, self.timeout if timeout is None else timeout, "attacker")
        self.clients.append(client)
        return client

    def pipelined(self, client: Client, commands, batch: int = 100) -> list:
        """Send `commands` (RESP bytes each) `batch` at a time; the errors."""
        errors = []
        chunk = []
        for cmd in commands:
            chunk.append(cmd)
            if len(chunk) == batch:
                client.send(b"".join(chunk))
                errors += [r for r in (client.reply() for _ in chunk) if isinstance(r, Err)]
                chunk = []
        if chunk:
            client.send(b"".join(chunk))
            errors += [r for r in (client.reply() for _ in chunk) if isinstance(r, Err)]
        return errors

    def load_keys(self) -> None:
        count = self.size("keys")
        started = time.monotonic()
        a = self.attacker(timeout=120)

        def msets():
            for first in range(0, count, 1000):
                args = [b"MSET"]
                for i in range(first, min(count, first + 1000)):
                    args += [b"key:%07d" % i, b"%d" % (i % 10000)]
                yield resp(*args)
        errors = self.pipelined(a, msets(), batch=20)
        size = a.call("DBSIZE")
        a.close()
        self.log("loaded %s keys for the attacker in %.1f s (DBSIZE %s%s)"
                 % (f"{count:,}", time.monotonic() - started, size,
                    ", first error: " + errors[0] if errors else ""))

    def fill(self, client: Client, db: int, commands) -> None:
        """Setup data in database `db` (removed after with FLUSHDB)."""
        client.call("SELECT", db)
        errors = self.pipelined(client, commands, batch=20)
        client.call("SELECT", 0)
        if errors:
            self.log("  setup: %d errors, first: %s" % (len(errors), errors[0]))
        self.setup_errors = errors

    def flushdb(self, db: int) -> None:
        a = self.attacker(timeout=120)
        a.call("SELECT", db)
        a.call("FLUSHDB")
        a.close()

    # -- one attack
    def restart(self) -> None:
        self.monitor.stop()
        self.monitor = None
        self.server.stop()
        self.server.start()
        self.prepare()

    def run_attack(self, name: str, fresh: bool = False) -> None:
        label, function = ATTACKS[name]
        self.log("%s: %s" % (name, label))
        if fresh:
            self.restart()
        self.window = None
        self.setup_errors = []   # fill()'s error replies: a refused setup measures nothing
        started = time.monotonic()
        try:
            function(self)
        except OSError as exc:   # ConnectionError and socket timeouts too
            if self.window is None:
                raise BenchError("%s: setup failed: %s" % (name, describe_exc(exc)))
            if not self.window.end:   # failed inside its window
                self.window.outcome += " (%s)" % describe_exc(exc)
                self.close_window(self.window)
            else:
                self.log("  cleanup failed: %s" % describe_exc(exc))
        finally:
            for client in self.clients:
                client.close()
            self.clients = []
        w = self.window
        died = not self.server.alive()
        samples, rss = self.monitor.take(w.end)
        if died:
            w.outcome += " SERVER DIED (status %s)" % self.server.proc.returncode
        self.rows.append(self.row(name, label, w, samples, rss, died))
        row = self.rows[-1]
        self.log("  %s | victim p50 %.2f p99 %.2f max %.1f ms, %d errors | RSS %.0f / %.0f / %.0f"
                 " MB | %s" % (row["outcome"], row["p50_ms"], row["p99_ms"], row["max_ms"],
                               row["errors"], row["rss_start_mb"], row["rss_max_mb"],
                               row["rss_end_mb"],
                               "PASS" if row["pass"] else "FAIL: " + ", ".join(row["failed"])))
        if died:
            self.log(self.server.log_tail())
            self.restart()
        else:
            self.settle()
        self.log("  (%.1f s in all)" % (time.monotonic() - started))

    def settle(self) -> None:
        """Until every PING of a quiet period answers within 50 ms (120 s at
        most): work an attack left queued (requests of closed clients, a
        lazy free) must not fall into the next attack's window."""
        quiet = 0.3 if self.quick else 1.5
        deadline = time.monotonic() + 120
        client = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            try:
                if client is None:
                    client = Client(self.server.port, 120, "root")
                    since = time.monotonic()
                start = time.monotonic()
                client.call("PING")
                now = time.monotonic()
                if now - start > 0.05:
                    since = now
                elif now - since >= quiet:
                    break
            except (OSError, ConnectionError):
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.2)
            time.sleep(0.05)
        else:
            self.log("  the server did not settle within 120 s")
        if client is not None:
            client.close()

    def open_window(self) -> Window:
        w = self.window = Window()
        try:   # VmHWM := current RSS, so VmHWM after is this window's peak
            with open(f"/proc/{self.server.pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        w.rss_start = status_kb(self.server.pid, "VmRSS")
        w.start = time.monotonic()
        return w

    def close_window(self, w: Window) -> None:
        time.sleep(self.tail)
        w.end = time.monotonic()
        w.hwm = status_kb(self.server.pid, "VmHWM") if self.hwm_reset else None
        w.rss_end = status_kb(self.server.pid, "VmRSS")

    def timed(self, w: Window, client: Client, *args, skip: bool = False) -> None:
        """Run one command in window `w`; its outcome and time."""
        w.outcome = ""
        start = time.monotonic()
        try:
            client.send(resp(*args))
            reply = client.skip() if skip else client.reply()
            w.outcome = describe(reply)[:110]
        except (OSError, ConnectionError) as exc:
            w.outcome = describe_exc(exc)
        w.attack_s = time.monotonic() - start
        w.outcome += " in " + seconds(w.attack_s)

    def row(self, name, label, w: Window, samples, rss, died) -> dict:
        inside = [s for s in samples if s[0] <= w.end and s[0] + s[1] >= w.start]
        latencies = sorted(s[1] * 1000 for s in inside)
        errors = [s[2] for s in inside if s[2] is not None] + w.login_errors
        peak = max([kb for t, kb in rss if w.start <= t <= w.end]
                   + [w.hwm or 0, w.rss_start or 0, w.rss_end or 0])
        row = {
            "attack": name, "label": label, "outcome": w.outcome.strip(), "attack_s": w.attack_s,
            "window_s": w.end - w.start, "requests": len(inside),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "max_ms": latencies[-1] if latencies else float("nan"),
            "errors": len(errors), "error_texts": sorted(set(errors))[:3],
            "rss_start_mb": (w.rss_start or 0) / 1024, "rss_max_mb": peak / 1024,
            "rss_end_mb": (w.rss_end or 0) / 1024,
            "server_died": died,
        }
        failed = []
        if not latencies or row["max_ms"] > TARGET_MAX_MS:
            failed.append("max")
        if not latencies or row["p99_ms"] > TARGET_P99_MS:
            failed.append("p99")
        if errors:
            failed.append("errors")
        if peak * 1024 > TARGET_RSS:
            failed.append("RSS")
        if died:
            failed.append("died")
        row["failed"] = failed
        row["pass"] = not failed
        return row


# --------------------------------------------------------------------------
# The attacks: each prepares, runs inside one window, cleans up.


def random_text(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice(b"ACGT") for _ in range(size))


def one_command(setup, command, cleanup=None, skip=False, room=False):
    """An attack that is one command (after `setup`, before `cleanup`).
    room: the attacker's 1M keys make way for the setup's big values (they
    would not fit maxmemory together: the setup would answer OOM and the
    row measure nothing), and come back after."""
    def attack(b: Bench) -> None:
        if room:
            b.flushdb(0)
        a = b.attacker()
        setup(b, a)
        if b.setup_errors:
            a.close()
            raise BenchError("setup refused: %s" % b.setup_errors[0])
        w = b.open_window()
        b.timed(w, a, *command(b), skip=skip)
        b.close_window(w)
        a.close()
        if cleanup:
            cleanup(b, b.attacker(timeout=120))
        if room:
            b.load_keys()
    return attack


def no_setup(b, a) -> None:
    pass


def setup_lcs(b, a) -> None:
    size = b.size("lcs")
    a.call("SET", "lcs:a", random_text(size, 1))
    a.call("SET", "lcs:b", random_text(size, 2))


def setup_collections(b, a) -> None:
    members = [b"m%d" % i for i in range(100)]
    a.call("DEL", "s", "h", "z")
    a.call("SADD", "s", *members)
    a.call("HSET", "h", *[x for m in members for x in (m, b"v")])
    a.call("ZADD", "z", *[x for i, m in enumerate(members) for x in (b"%d" % i, m)])


def delete(*keys):
    return lambda b, a: a.call("DEL", *keys)


def attack_kdb_import(b: Bench) -> None:
    payload = strings_payload(b.size("import"), db=1)
    a = b.attacker()
    w = b.open_window()
    b.timed(w, a, "KDB", "IMPORT", payload)
    w.outcome = "%.1f MB payload: %s" % (len(payload) / MB, w.outcome)
    b.close_window(w)
    b.flushdb(1)


def attack_zset_dups(b: Bench) -> None:
    payload = zset_dups_payload(b.size("zset_dups"), db=1)
    a = b.attacker()
    w = b.open_window()
    b.timed(w, a, "KDB", "IMPORT", payload)
    w.outcome = "%.1f MB payload: %s" % (len(payload) / MB, w.outcome[:120])
    b.close_window(w)
    b.flushdb(1)


def attack_scan(b: Bench) -> None:
    count = b.size("scans")
    a = b.attacker()
    w = b.open_window()
    start = time.monotonic()
    try:
        a.send(resp("SCAN", 0) * count)
        replies = [a.reply() for _ in range(count)]
        bad = [r for r in replies if not isinstance(r, list)]
        w.outcome = "%d x SCAN 0: %s" % (count, describe(bad[0]) if bad else "cursor "
                                         + replies[0][0].decode())
    except (OSError, ConnectionError) as exc:
        w.outcome = "%d x SCAN 0: %s" % (count, describe_exc(exc))
    w.attack_s = time.monotonic() - start
    w.outcome += " in %s, held %g s" % (seconds(w.attack_s), b.hold)
    time.sleep(b.hold)   # the cursors stay open (never continued)
    b.close_window(w)


def attack_unread(b: Bench) -> None:
    """The issue's SRANDMEMBER s -16777216 is refused for a non-root user
    now (at most RAND_CAP elements a call), so each client asks for the most
    it may, many times over, and reads nothing: the output the server holds
    for them is what is measured."""
    setup_collections(b, b.attacker())
    count = -min(abs(b.size("rand")), RAND_CAP)
    repeat = b.size("unread")
    clients = [b.attacker() for _ in range(4)]
    w = b.open_window()
    request = resp("SRANDMEMBER", "s", count) * repeat
    sent = 0
    for c in clients:
        c.sock.setblocking(False)
        try:
            c.sock.send(request)
            sent += 1
        except OSError:
            pass
    time.sleep(b.hold)
    closed = sum(peer_closed(c.sock) for c in clients)   # cut off at an output limit?
    w.outcome = "4 clients, %d sent %d requests, held %g s, %d closed by the server" % (
        sent, repeat, b.hold, closed)
    b.close_window(w)   # they are closed (and freed) after the window


def stream_replies(b: Bench, client: Client, commands: list, expect: int, w: Window) -> str:
    """Send `commands` (RESP bytes) while a thread reads the `expect` reply
    lines (+QUEUED, :n, +OK); returns what happened."""
    info = {"lines": 0, "first_error": None, "closed": None}
    sock = client.sock

    def reader() -> None:
        pending = b""
        try:
            while info["lines"] < expect:
                data = sock.recv(1 << 20)
                if not data:
                    info["closed"] = "connection closed by the server"
                    return
                info["lines"] += data.count(b"\n")
                if info["first_error"] is None and b"-" in data:
                    text = pending + data
                    at = text.find(b"\r\n-")
                    if at >= 0:
                        info["first_error"] = text[at + 2:text.find(b"\r\n", at + 2)].decode(
                            errors="replace")
                pending = data[-200:]
        except OSError as exc:
            info["closed"] = describe_exc(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        for i in range(0, len(commands), 1000):
            if time.monotonic() - start > b.timeout:
                info["closed"] = "sending stopped after %g s (%s sent)" % (b.timeout, f"{i:,}")
                break
            sock.sendall(b"".join(commands[i:i + 1000]))
    except OSError as exc:
        info["closed"] = info["closed"] or describe_exc(exc)
    thread.join(max(1.0, start + b.timeout - time.monotonic()))
    w.attack_s = time.monotonic() - start
    text = "%s replies" % f"{info['lines']:,}"
    if thread.is_alive():
        text += " (timeout)"
    if info["first_error"]:
        text += ", first error -%s" % info["first_error"][:80]
    if info["closed"]:
        text += ", " + info["closed"]
    return text + " in " + seconds(w.attack_s)


def attack_multi(b: Bench) -> None:
    count = b.size("multi")
    a = b.attacker()
    commands = [resp("MULTI")] + [resp("INCR", "multi:n")] * count + [resp("DISCARD")]
    w = b.open_window()
    w.outcome = "MULTI + %s INCR + DISCARD: " % f"{count:,}" + stream_replies(
        b, a, commands, count + 2, w)
    b.close_window(w)


def attack_exec(b: Bench) -> None:
    count = b.size("exec")
    a = b.attacker()
    commands = [resp("MULTI")] + [resp("INCR", "exec:n")] * count + [resp("EXEC")]
    w = b.open_window()
    # MULTI's +OK, the +QUEUED, EXEC's *N header and N integers.
    w.outcome = "MULTI + %s INCR + EXEC: " % f"{count:,}" + stream_replies(
        b, a, commands, 2 * count + 2, w)
    b.close_window(w)
    b.attacker().call("DEL", "exec:n")


def attack_pipeline(b: Bench) -> None:
    count = b.size("pipeline")
    a = b.attacker()
    commands = [resp("INCR", "pipe:n")] * count
    w = b.open_window()
    w.outcome = "%s INCR pipelined: " % f"{count:,}" + stream_replies(b, a, commands, count, w)
    b.close_window(w)
    b.attacker().call("DEL", "pipe:n")


def attack_fill(b: Bench) -> None:
    count = b.size("fill")
    a = b.attacker()
    value = b"x" * MB
    commands = [resp("SET", "fill:%d" % i, value) for i in range(count)]
    w = b.open_window()
    w.outcome = "%d x SET of 1 MB: " % count + stream_replies(b, a, commands, count, w)
    b.close_window(w)
    b.attacker(timeout=120).call("DEL", *["fill:%d" % i for i in range(count)])


def hold_connections(b: Bench, count: int, partial: bytes | None) -> tuple:
    """Open `count` connections (sending `partial`, non-blocking, if any);
    returns (sockets, failed connects, the first error)."""
    socks, failed, first, sent = [], 0, None, 0
    deadline = time.monotonic() + b.timeout   # a server that stops accepting
    for i in range(count):
        if time.monotonic() > deadline:
            failed += count - i
            first = first or "not opened: %g s passed" % b.timeout
            break
        try:
            s = socket.create_connection(("127.0.0.1", b.server.port), timeout=1)
            s.setblocking(False)
            socks.append(s)
            if partial:
                try:
                    sent += s.send(partial)
                except OSError:
                    pass
        except OSError as exc:
            failed += 1
            first = first or describe_exc(exc)
    return socks, failed, first, sent


def peer_closed(sock: socket.socket) -> bool:
    """Whether the server closed (FIN or RST) the connection, whatever is
    still unread in it: the TCP state, not a read to the end."""
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return True
    return state != 1   # TCP_ESTABLISHED


def closed_by_server(socks: list) -> tuple:
    """How many of `socks` the server closed, and the error lines it sent."""
    closed, texts = 0, set()
    for s in socks:
        try:
            got = s.recv(4096)
        except OSError:
            got = b""
        if got.startswith(b"-"):
            texts.add(got.split(b"\r\n")[0].decode(errors="replace")[:60])
        closed += peer_closed(s)
    return closed, texts


def attack_preauth(b: Bench) -> None:
    count = b.size("preauth")
    size = b.size("preauth_bytes")
    partial = b"*2\r\n$4\r\nAUTH\r\n$1048576\r\n" + b"x" * size
    w = b.open_window()
    probe = LoginProbe(b.server.port, b.timeout)
    start = time.monotonic()
    socks, failed, first, sent = hold_connections(b, count, partial)
    w.attack_s = time.monotonic() - start
    time.sleep(b.hold)
    closed, texts = closed_by_server(socks)
    w.outcome = ("%s connections (%s failed%s) sent %d KB partial requests (%.0f MB taken),"
                 " opened in %s, held %g s, %d closed by the server%s; %s"
                 % (f"{count:,}", failed, ": " + first if first else "", size // 1000, sent / MB,
                    seconds(w.attack_s), b.hold, closed,
                    " (" + "; ".join(sorted(texts)) + ")" if texts else "", probe.finish(w)))
    for s in socks:
        s.close()
    b.close_window(w)


def attack_connect_flood(b: Bench) -> None:
    count = b.size("connects")
    w = b.open_window()
    probe = LoginProbe(b.server.port, b.timeout)
    start = time.monotonic()
    socks, failed, first, _ = hold_connections(b, count, None)
    w.attack_s = time.monotonic() - start
    time.sleep(b.hold)
    closed, texts = closed_by_server(socks)
    w.outcome = ("%s connects (%s failed%s) in %s, held %g s, %d closed by the server%s; %s"
                 % (f"{count:,}", failed, ": " + first if first else "", seconds(w.attack_s),
                    b.hold, closed, " (" + "; ".join(sorted(texts)) + ")" if texts else "",
                    probe.finish(w)))
    for s in socks:
        s.close()
    b.close_window(w)


def setup_union(b, a) -> None:
    n = b.size("union")

    def sadds(key, first):
        for i in range(first, first + n, 1000):
            yield resp("SADD", key, *[b"m%d" % j for j in range(i, min(first + n, i + 1000))])
    b.fill(a, 2, sadds("u1", 0))
    b.fill(a, 2, sadds("u2", n // 2))
    a.call("SELECT", 2)


def setup_hash(b, a) -> None:
    n = b.size("hash")

    def hsets():
        for i in range(0, n, 1000):
            yield resp("HSET", "bighash", *[x for j in range(i, min(n, i + 1000))
                                            for x in (b"f%d" % j, b"v%d" % j)])
    b.fill(a, 2, hsets())
    a.call("SELECT", 2)


def setup_list(b, a) -> None:
    n = b.size("list")

    def rpushes():
        for i in range(0, n, 1000):
            yield resp("RPUSH", "biglist", *[b"e%d" % j for j in range(i, min(n, i + 1000))])
    b.fill(a, 2, rpushes())
    a.call("SELECT", 2)


def setup_zsets(b, a) -> None:
    n = b.size("zunion")

    def zadds(key, first):
        for i in range(first, first + n, 1000):
            yield resp("ZADD", key, *[x for j in range(i, min(first + n, i + 1000))
                                      for x in (b"%d" % j, b"m%d" % j)])
    b.fill(a, 2, zadds("z1", 0))
    b.fill(a, 2, zadds("z2", n // 2))
    a.call("SELECT", 2)


def flush2(b, a) -> None:
    a.call("SELECT", 2)
    a.call("FLUSHDB")


ATTACKS = {   # name -> (what the tenant sends, the attack)
    "lcs": ("LCS a b, two 8,000-byte strings",
            one_command(setup_lcs, lambda b: ("LCS", "lcs:a", "lcs:b"),
                        delete("lcs:a", "lcs:b"))),
    "srandmember": ("SRANDMEMBER s -16777216",
                    one_command(setup_collections, lambda b: ("SRANDMEMBER", "s", b.size("rand")),
                                skip=True)),
    "hrandfield": ("HRANDFIELD h -16777216",
                   one_command(setup_collections, lambda b: ("HRANDFIELD", "h", b.size("rand")),
                               skip=True)),
    "zrandmember": ("ZRANDMEMBER z -16777216",
                    one_command(setup_collections, lambda b: ("ZRANDMEMBER", "z", b.size("rand")),
                                skip=True, cleanup=delete("s", "h", "z"))),
    "digest": ("DEBUG DIGEST, 1M keys", one_command(no_setup, lambda b: ("DEBUG", "DIGEST"))),
    "kdb_import": ("KDB IMPORT of a 24 MB payload", attack_kdb_import),
    "bitfield": ("BITFIELD bf SET i64 4294967232 1",
                 one_command(no_setup, lambda b: ("BITFIELD", "bf", "SET", "i64",
                                                  b.size("bitfield"), 1), delete("bf"))),
    "keys": ("KEYS key:*9, 1M keys", one_command(no_setup, lambda b: ("KEYS", "key:*9"),
                                                 skip=True)),
    "setbit": ("SETBIT k 2000000000 1",
               one_command(no_setup, lambda b: ("SETBIT", "k", b.size("setbit"), 1),
                           delete("k"))),
    "setrange": ("SETRANGE k2 300000000 x",
                 one_command(no_setup, lambda b: ("SETRANGE", "k2", b.size("setrange"), "x"),
                             delete("k2"))),
    "zset_dups": ("a zset holding 2M duplicate members (KDB IMPORT)", attack_zset_dups),
    "scan": ("64 x SCAN 0, 1M keys, cursors kept", attack_scan),
    "unread": ("4 clients: 200 x SRANDMEMBER s -100000 each, never read", attack_unread),
    "multi": ("1M commands queued in MULTI", attack_multi),
    "preauth": ("5,000 unauthenticated connections, partial requests", attack_preauth),
    "connect_flood": ("10,200 plain connects", attack_connect_flood),
    "pipeline": ("1M INCR pipelined", attack_pipeline),
    "exec": ("MULTI, 100,000 INCR, EXEC", attack_exec),
    "sunionstore": ("SUNIONSTORE of two 500,000-member sets",
                    one_command(setup_union, lambda b: ("SUNIONSTORE", "u3", "u1", "u2"),
                                flush2, room=True)),
    "hgetall": ("HGETALL of a 500,000-field hash",
                one_command(setup_hash, lambda b: ("HGETALL", "bighash"), flush2, skip=True, room=True)),
    "lrange": ("LRANGE 0 -1 of a 2M list",
               one_command(setup_list, lambda b: ("LRANGE", "biglist", 0, -1), flush2, skip=True, room=True)),
    "zunionstore": ("ZUNIONSTORE of two 250,000-member zsets",
                    one_command(setup_zsets, lambda b: ("ZUNIONSTORE", "z3", 2, "z1", "z2"),
                                flush2, room=True)),
    "del_big": ("DEL of a 2M list", one_command(setup_list, lambda b: ("DEL", "biglist"), flush2, room=True)),
    "fill": ("400 x SET of 1 MB, pipelined", attack_fill),
    "flushall": ("FLUSHALL, 1M keys", one_command(no_setup, lambda b: ("FLUSHALL",))),
}


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def table(rows: list) -> str:
    lines = ["| attack | outcome | victim req | p50 ms | p99 ms | max ms | errors |"
             " RSS MB start / max / end | result |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        outcome = r["outcome"].replace("|", "\\|")
        if r["error_texts"]:
            outcome += " (victim: %s)" % "; ".join(t[:50] for t in r["error_texts"]).replace(
                "|", "\\|")
        lines.append("| %s | %s | %s | %s | %s | %s | %d | %s / %s / %s | %s |" % (
            r["label"], outcome, f"{r['requests']:,}", fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2),
            fmt(r["max_ms"], 0), r["errors"], fmt(r["rss_start_mb"], 0), fmt(r["rss_max_mb"], 0),
            fmt(r["rss_end_mb"], 0),
            "PASS" if r["pass"] else "FAIL (" + ", ".join(r["failed"]) + ")"))
    return "\n".join(lines)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help="comma-separated attacks (default: all): " + ", ".join(ATTACKS))
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, for the test)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--fresh", action="store_true",
                        help="a fresh server (reloaded) for each attack, so that none inherits"
                             " the memory another left")
    parser.add_argument("--src", type=Path, default=ROOT / "src",
                        help="the src/ tree whose tenantkv runs (default: this checkout's)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="socket timeout of every request, s (default 20; --quick 5)")
    parser.add_argument("--hold", type=float, default=None,
                        help="s the holding attacks hold (default 5; --quick 0.5)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="ms between the victim's requests (default 1)")
    args = parser.parse_args(argv)
    args.timeout = args.timeout or (5.0 if args.quick else 20.0)
    args.hold = args.hold if args.hold is not None else (0.5 if args.quick else 5.0)
    names = [n.strip() for n in args.attacks.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error("unknown attack(s) %s; known: %s" % (", ".join(unknown), ", ".join(ATTACKS)))
    if not (args.src / "tenantkv").is_dir():
        parser.error("%s holds no tenantkv package" % args.src)
    nofile = raise_nofile()

    bench = Bench(args)
    atexit.register(bench.close)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load = os.getloadavg()[0]
    try:
        bench.start()
        bench.log("tenantkv pid %d on port %d, maxmemory %d MB, RLIMIT_NOFILE %d, load %s"
                  % (bench.server.pid, bench.server.port, MAXMEMORY // MB, nofile,
                     " ".join("%.2f" % x for x in os.getloadavg())))
        for i, name in enumerate(names):
            bench.run_attack(name, fresh=args.fresh and i > 0)
    except BenchError as exc:
        print("neighbours.py: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        pids = bench.server.pids if bench.server else []
        bench.close()
    elapsed = time.monotonic() - started
    if args.json:
        rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                for row in bench.rows]   # NaN (no victim request) is not JSON
        print(json.dumps({"rows": rows, "server_pids": pids, "seconds": elapsed,
                          "targets": {"max_ms": TARGET_MAX_MS, "p99_ms": TARGET_P99_MS,
                                      "rss_mb": TARGET_RSS / MB}}, indent=1))
    else:
        print("\nVictim latency and server RSS per attack (maxmemory %d MB; targets: max <= %g ms,"
              " p99 <= %g ms, no victim errors, RSS <= %g MB)%s%s; %.0f s in all, load average %.2f"
              " at the start, %.2f at the end\n"
              % (MAXMEMORY // MB, TARGET_MAX_MS, TARGET_P99_MS, TARGET_RSS / MB,
                 " with --quick sizes (the outcome says which)" if args.quick else "",
                 ", a fresh server per attack" if args.fresh else "", elapsed, load,
                 os.getloadavg()[0]))
        print(table(bench.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
