"""The login throttle under attack: a legitimate user's AUTH time, idle and
while guessers run beside it, and how many guesses the server checks.

    .venv/bin/python bench/auth_throttle.py [--seconds S] [--pause P]

Starts tenantkv (the working tree's code) on a free port in a temporary
directory with users made offline, then runs, each from its own 127.x.y.z
source addresses (all of 127/8 is loopback on Linux):

  idle     the user's correct logins (a new connection each), nothing else
  one      8 connections from 2 addresses guess that user's password
  spray    100 connections from 50 addresses guess the passwords of 43 names
           (3 real ones) while another user logs in

Guessers run in a child process (their CPU does not share the timing
thread's GIL); after a refusal each waits --pause seconds (0: hammering).
Prints medians and maxima in ms, and guesses checked per second. Standard
library only.
"""

import argparse
import multiprocessing
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
REFUSED = re.compile(rb"-ERR too many failed authentication attempts .*, retry in \d+ s\r\n")
USERS = {"victim": "victim-pw", "neighbour": "neighbour-pw", "owner": "owner-pw",
         "alice": "alice-pw", "bob": "bob-pw"}


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data_dir: str):
    for name, password in [("root", "root-pw")] + list(USERS.items()):
        subprocess.run([sys.executable, "-m", "tenantkv.cli.admin", "--data-dir", data_dir, "user",
                        "add", name, "--password-stdin"] + (["--root"] if name == "root" else []),
                       input=password.encode() + b"\n", check=True, capture_output=True)
    port = free_port()
    env = {**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "off"}
    process = subprocess.Popen([sys.executable, "-m", "tenantkv", "--port", str(port), "--dir",
                                data_dir, "--loglevel", "warning"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("tenantkv did not start")


def read_line(sock) -> bytes:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def logins(port: int, source: str, name: str, count: int, pause: float = 0.1) -> list:
    """Seconds of `count` AUTHs with the right password, a new connection each."""
    times = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))
        start = time.perf_counter()
        sock.sendall(resp("AUTH", name, USERS[name]))
        line = read_line(sock)
        times.append(time.perf_counter() - start)
        sock.close()
        if line != b"+OK\r\n":
            print("  %s from %s: %r" % (name, source, line))
        time.sleep(pause)
    return times


def guess(port, sources, names, pause, stop, ready, results) -> None:
    selector = selectors.DefaultSelector()
    state = {}

    def connect(source):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        state[sock] = [b"", 0.0, time.perf_counter(), source]   # buffer, sent at, send at

    for source in sources:
        connect(source)
    checked, refusals, closed, other, n = 0, [], 0, 0, 0
    ready.set()
    while not stop.is_set():
        now = time.perf_counter()
        for sock, st in list(state.items()):
            if st[2] and now >= st[2]:
                n += 1
                sock.sendall(resp("AUTH", names[n % len(names)], "guess-%d" % n))
                st[1], st[2] = now, 0.0
        for key, _ in selector.select(0.005):
            sock, st = key.fileobj, state[key.fileobj]
            try:
                data = sock.recv(65536)
            except ConnectionResetError:   # closed with input unread
                data = b""
            if not data:   # the auth timeout (10 s): a guesser reconnects
                selector.unregister(sock)
                sock.close()
                del state[sock]
                closed += 1
                connect(st[3])
                continue
            st[0] += data
            while b"\r\n" in st[0]:
                line, st[0] = st[0].split(b"\r\n", 1)
                line += b"\r\n"
                now = time.perf_counter()
                if line == WRONGPASS:
                    checked += 1
                    st[2] = now
                elif REFUSED.fullmatch(line):
                    refusals.append(now - st[1])
                    st[2] = now + pause
                else:
                    other += 1
    results.send((checked, refusals, closed, other))


def under_attack(port, sources, names, pause, legit) -> tuple:
    context = multiprocessing.get_context("fork")
    results, child_end = context.Pipe(duplex=False)
    stop, ready = context.Event(), context.Event()
    child = context.Process(target=guess, args=(port, sources, names, pause, stop, ready, child_end))
    child.start()
    ready.wait(30)
    start = time.monotonic()
    measured = legit()
    stop.set()
    if not results.poll(30):
        child.kill()
        sys.exit("the guessers' process died (its traceback is above)")
    checked, refusals, closed, other = results.recv()
    child.join(10)
    return measured, checked / (time.monotonic() - start), refusals, closed, other


def ms(values) -> str:
    return "median %.1f ms, max %.1f ms" % (statistics.median(values) * 1e3, max(values) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="legit logins per scenario, in s")
    parser.add_argument("--pause", type=float, default=0.0, help="a guesser's wait after a refusal")
    args = parser.parse_args()
    count = max(5, int(args.seconds / 0.13))
    with tempfile.TemporaryDirectory() as data_dir:
        process, port = start_server(data_dir)
        try:
            print("load average %.1f; %d logins per figure; guessers pause %.3f s after a refusal"
                  % (os.getloadavg()[0], count, args.pause))
            logins(port, "127.1.0.1", "owner", 3)   # an address that has logged in
            idle = logins(port, "127.1.0.1", "owner", count)
            print("idle:   owner %s" % ms(idle))

            def one():
                return (logins(port, "127.1.0.1", "victim", count // 2),
                        logins(port, "127.1.8.1", "neighbour", count // 2))
            (owned, nat), rate, refusals, closed, other = under_attack(
                port, ["127.1.8.1"] * 4 + ["127.1.8.2"] * 4, ["victim"], args.pause, one)
            print("one:    victim from a clean address %s; neighbour behind a guesser's address %s;"
                  "\n        %.1f guesses/s checked, %d refused (%s), %d closed at the auth "
                  "timeout, %d other replies"
                  % (ms(owned), ms(nat), rate, len(refusals), ms(refusals or [0]), closed, other))

            names = ["alice", "bob", "owner"] + ["sprayed-%d" % i for i in range(40)]
            busy, rate, refusals, closed, other = under_attack(
                port, ["127.1.12.%d" % (i // 2 + 1) for i in range(100)], names, args.pause,
                lambda: logins(port, "127.1.0.1", "owner", count))
            print("spray:  owner %s (%.2fx idle median);\n        %.1f guesses/s checked, "
                  "%d refused (%s), %d closed at the auth timeout, %d other replies"
                  % (ms(busy), statistics.median(busy) / statistics.median(idle), rate,
                     len(refusals), ms(refusals or [0]), closed, other))
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
