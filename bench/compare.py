#!/usr/bin/env python3
"""Compare tenantkv with redis-server under the same redis-benchmark load.

What it does
------------
1. Starts a tenantkv server (``python -m tenantkv``, temporary ``--dir``) and a
   redis-server (``--save '' --appendonly no``, temporary ``--dir``), each on a
   free port, and waits until both answer PING. Both are stopped when the
   script ends, also on an error or Ctrl-C (``--keep`` leaves them running).

2. Throughput and CPU. Both servers first get the keyspace redis-benchmark
   uses with ``-r 100000`` (keys ``key:000000000000`` .. ``key:000000099999``),
   so that GET finds its keys. Then, for each test (SET, GET, INCR, MSET) and
   each pipeline depth (1 and 16), it runs R rounds; each round runs

       redis-benchmark -p PORT -t TEST -c 50 -P PIPE -r 100000 -n N -q

   once against each server, alternating which server goes first from round
   to round, so that slow drifts of the machine (other load, frequency,
   caches) hit both servers alike. Around every run it reads the server
   process's CPU time, utime + stime from /proc/PID/stat (all threads of the
   process, in clock ticks, converted with SC_CLK_TCK), and computes

       requests/s      the final figure redis-benchmark prints
       CPU us/request  (CPU seconds after - before) * 1e6 / N

   The table shows the median over the rounds of each figure, the ratio
   tenantkv/redis of CPU per request, and the target of the issue: at most
   1.3x at pipeline 1 and at most 2x at pipeline 16. CPU per request is the
   main figure because it does not depend on how much CPU the client (which
   shares the machine) leaves to the server; requests/s does.

   redis-benchmark's MSET sends 10 keys in one request; it is counted as one
   request like the others.

3. Memory (skipped with ``--no-memory``). A fresh instance of each server;
   VmRSS from /proc/PID/status before; one million SET commands
   (``key:%07d``, 100-byte values) fed through ``redis-cli --pipe``; a DBSIZE
   check; VmRSS after. The memory the keys take is the RSS growth, and the
   target is tenantkv <= 1.5x redis-server. INFO memory's used_memory of both
   is printed for reference.

Options: --quick (N/4, one round), --no-memory, --rounds R, --requests N,
--tests set,get,..., --keep. Missing a target does not change the exit code;
a server that fails to start or dies, or an error reported by redis-benchmark
or redis-cli, makes the script exit with status 1 and a message saying what
failed.

Standard library only. See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ("set", "get", "incr", "mset")
# The data-structure commands of issue 4, on request (--tests, or
# `make bench-structures`). Pops and LRANGE read what the pushes before them
# in the same --tests list left (redis-benchmark's keys mylist, myset, ...).
STRUCTURE_TESTS = ("lpush", "rpush", "lpop", "rpop", "sadd", "hset", "spop", "zadd",
                   "zpopmin", "lrange_100")
PIPELINES = (1, 16)
TARGETS = {1: 1.3, 16: 2.0}  # max CPU-per-request ratio tenantkv/redis
MEMORY_TARGET = 1.5  # max memory ratio tenantkv/redis
CLIENTS = 50
KEYSPACE = 100_000  # redis-benchmark -r
DEFAULT_REQUESTS = 200_000  # pipeline 1; pipeline 16 runs 5x as many
DEFAULT_ROUNDS = 3
MEMORY_KEYS = 1_000_000
MEMORY_VALUE_SIZE = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A failure that makes the comparison meaningless (exit status 1)."""


# --------------------------------------------------------------------------
# /proc readers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode()
    # Field 2 is "(comm)" and may contain spaces or ')': split after the last
    # ')'. The rest starts at field 3 (state), so utime (field 14) and stime
    # (field 15) are at indexes 11 and 12.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A "kB" line of /proc/PID/status, e.g. VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


# --------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process, timeout: float = 15) -> None:
    """Until something listens on `port`; RuntimeError if `process` exits first
    or `timeout` passes. Polled every 5 ms (bench/persistence.py times starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited with %s" % process.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.005)
    raise RuntimeError("no server on port %d" % port)


def command(port: int, *args: str, timeout: float = 10.0) -> bytes:
    """Send one command, return the raw reply (good enough for PING, DBSIZE
    and INFO: reads until the reply is complete)."""
    payload = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data[:1] == b"$":  # bulk string: header + length + CRLF
                head, _, rest = data.partition(b"\r\n")
                if _ and len(rest) >= int(head[1:]) + 2:
                    break
            elif data.endswith(b"\r\n"):
                break
        return data


def info_field(port: int, section: str, field: str) -> str:
    reply = command(port, "INFO", section).decode(errors="replace")
    for line in reply.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return "?"


class Server:
    """A server process on a free port, with its own temporary directory."""

    def __init__(self, name: str, argv_for_port, workdir: Path, env: dict | None = None):
        self.name = name
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self.log = self.dir / "server.log"
        argv = argv_for_port(self.port, self.dir)
        with open(self.log, "wb") as log:
            # Own session: Ctrl-C in the terminal reaches only this script,
            # which then stops the servers itself (or keeps them, --keep).
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, start_new_session=True, env=env,
            )
        self.pid = self.proc.pid
        self._wait_ready(argv)

    def _wait_ready(self, argv, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with status {self.proc.returncode} at start-up"
                    f"\n  command: {' '.join(argv)}\n{self.log_tail()}"
                )
            try:
                if command(self.port, "PING", timeout=1.0).startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(
            f"{self.name} did not answer PING within {timeout:.0f}s on port {self.port}"
            f"\n  command: {' '.join(argv)}\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "  (no log)"
        return "\n".join("  | " + line for line in text) or "  (log is empty)"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} (pid {self.pid}) died with status {self.proc.returncode}"
                f"\n{self.log_tail()}"
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def tenantkv_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def start_tenantkv(workdir: Path) -> Server:
    return Server(
        "tenantkv",
        lambda port, d: [tenantkv_python(), "-m", "tenantkv", "--port", str(port),
                         "--dir", str(d), "--loglevel", "warning"],
        workdir,
        # Like the redis-server beside it: no password (redis-benchmark and
        # redis-cli --pipe connect as the default user).
        env=dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass"),
    )


def start_redis(workdir: Path) -> Server:
    return Server(
        "redis",
        lambda port, d: ["redis-server", "--port", str(port), "--save", "",
                         "--appendonly", "no", "--dir", str(d)],
        workdir,
    )


# --------------------------------------------------------------------------
# Loading keys


def set_commands(keys, value: bytes):
    """RESP SET commands for the given keys, one bytes object each."""
    tail = b"$%d\r\n%s\r\n" % (len(value), value)
    return (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n%s" % (len(key), key, tail) for key in keys)


def pipe_commands(server: Server, commands, count: int, batch: int = 10_000) -> None:
    """Feed RESP `commands` (bytes each) through `redis-cli --pipe`, `batch` to a
    write; BenchError unless all `count` replies came back without an error."""
    proc = subprocess.Popen(
        ["redis-cli", "-p", str(server.port), "--pipe"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        chunk = []
        for cmd in commands:
            chunk.append(cmd)
            if len(chunk) == batch:
                proc.stdin.write(b"".join(chunk))
                chunk = []
        proc.stdin.write(b"".join(chunk))
        proc.stdin.close()
        out = proc.stdout.read().decode(errors="replace")
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"errors: (\d+), replies: (\d+)", out)
    if proc.returncode != 0 or not m or m.group(1) != "0" or int(m.group(2)) != count:
        raise BenchError(
            f"redis-cli --pipe into {server.name} failed (status {proc.returncode}):\n"
            + "\n".join("  | " + line for line in out.splitlines()[-10:])
        )
    server.check_alive()


def pipe_load(server: Server, keys, count: int, value: bytes) -> None:
    """Feed SET commands through `redis-cli --pipe`; check it saw no errors."""
    pipe_commands(server, set_commands(keys, value), count)


def dbsize(server: Server) -> int:
    reply = command(server.port, "DBSIZE")
    if not reply.startswith(b":"):
        raise BenchError(f"DBSIZE on {server.name} answered {reply[:100]!r}")
    return int(reply[1:].strip())


# --------------------------------------------------------------------------
# Throughput and CPU

RPS_LINE = re.compile(r"^(.+?): ([\d.]+) requests per second")


def run_benchmark(server: Server, test: str, pipeline: int, n: int) -> tuple[float, float]:
    """One redis-benchmark run; returns (requests/s, server CPU us/request)."""
    argv = ["redis-benchmark", "-p", str(server.port), "-t", test, "-c", str(CLIENTS),
            "-P", str(pipeline), "-r", str(KEYSPACE), "-n", str(n), "-q"]
    cpu_before = cpu_seconds(server.pid)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60 + n / 1000)
    except subprocess.TimeoutExpired:
        server.check_alive()
        raise BenchError(f"redis-benchmark timed out against {server.name}: {' '.join(argv)}")
    cpu_after = cpu_seconds(server.pid)
    server.check_alive()

    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    # -q prints progress lines ending in \r, then the final "TEST: N requests
    # per second, p50=..." line; take the last one that matches.
    lines = [line.strip() for line in re.split(r"[\r\n]", out) if line.strip()]
    rps = None
    for line in lines:
        m = RPS_LINE.match(line)
        if m:
            rps = float(m.group(2))
    errors = [line for line in lines + err.splitlines()
              if re.search(r"\bERR|error|Error", line)]
    if proc.returncode != 0 or errors or rps is None:
        detail = "\n".join("  | " + line for line in (errors or (err.splitlines() + lines[-3:]))[:10])
        raise BenchError(
            f"redis-benchmark against {server.name} failed (status {proc.returncode})"
            f"\n  command: {' '.join(argv)}\n{detail}"
        )
    return rps, (cpu_after - cpu_before) * 1e6 / n


# The per-command scripts (scripting.py, sort.py, hll.py, geo.py, streams.py,
# dump.py) share the three pieces below: one redis-benchmark run with the
# server's CPU around it, the rounds alternating the servers, and the
# markdown table of medians.

BENCH_CLIENTS = 10  # their redis-benchmark -c
# Words of redis-benchmark's output that mean a request failed (an error
# reply is printed whole: "ERR ...", "WRONGTYPE ... Error", "NOSCRIPT ...").
BENCH_ERRORS = ("ERR", "rror", "NOSCRIPT")


def benchmark_command(server: Server, args: list, n: int, pipeline: int,
                      keyspace: int | None = None, clients: int = BENCH_CLIENTS,
                      timeout: float = 600) -> tuple[float, float]:
    """One `redis-benchmark ... -q <args>` run (`args`: the command, or other
    redis-benchmark options before it); returns (requests/s by this script's
    wall clock, server CPU us/request). BenchError if the run reports an error
    or the server died."""
    argv = ["redis-benchmark", "-p", str(server.port), "-c", str(clients), "-P", str(pipeline),
            "-n", str(n)]
    if keyspace is not None:
        argv += ["-r", str(keyspace)]
    argv += ["-q", *args]
    before = cpu_seconds(server.pid)
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=timeout)
    wall = time.monotonic() - start
    after = cpu_seconds(server.pid)
    server.check_alive()
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    if proc.returncode != 0 or any(word in out for word in BENCH_ERRORS):
        raise BenchError(f"redis-benchmark against {server.name} failed:\n  | {out.strip()[-500:]}")
    return n / wall, (after - before) * 1e6 / n


def alternate(names, rounds: int, run) -> dict:
    """`run(name)` -> (per second, us) for every server name, `rounds` times,
    the first server of a round alternating so that slow drifts of the machine
    hit both alike; returns {name: (median per second, median us)}."""
    names = list(names)
    runs = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            runs[name].append(run(name))
    return {name: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
            for name, v in runs.items()}


def print_markdown_header(first: list[str], rate: str, unit: str) -> None:
    """The header of a table of `first` columns, then redis and tenantkv
    `rate` ("calls/s") and us/`unit` ("call"), then the CPU ratio."""
    columns = first + [f"redis {rate}", f"tenantkv {rate}", f"redis us/{unit}",
                       f"tenantkv us/{unit}", "CPU ratio"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def print_markdown_row(first: list, med: dict) -> None:
    """A row of print_markdown_header's table; `med` as alternate() returns."""
    redis, tkv = med["redis"], med["tenantkv"]
    # CPU time ticks every 10 ms: a short run may show none on redis.
    ratio = "%.2fx" % (tkv[1] / redis[1]) if redis[1] else "n/a (too few requests to measure)"
    cells = [str(c) for c in first] + [f"{redis[0]:,.0f}", f"{tkv[0]:,.0f}", "%.2f" % redis[1],
                                       "%.2f" % tkv[1], ratio]
    print("| " + " | ".join(cells) + " |", flush=True)


@contextlib.contextmanager
def server_pair(prefix: str):
    """{"redis": ..., "tenantkv": ...} on free ports in a temporary directory,
    both stopped and the directory removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    servers = {}
    try:
        servers["redis"] = start_redis(workdir)
        servers["tenantkv"] = start_tenantkv(workdir)
        yield servers
    finally:
        for server in servers.values():
            finish(server, None)
        shutil.rmtree(workdir, ignore_errors=True)


def bench_parser(doc: str, count: str | None = None, default: int = 0):
    """The options of the per-command scripts: --quick, --rounds R and, given
    `count` ("calls"), --calls N (`default`). The first line of `doc` (the
    script's docstring) describes the script."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="N/4, one round")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    if count:
        p.add_argument("--" + count, type=int, default=default)
    return p


def quick_or_full(opts, n: int) -> tuple[int, int]:
    """(requests, rounds): with --quick a quarter of `n` and one round."""
    return (n // 4, 1) if opts.quick else (n, opts.rounds)


def run_on_pair(prefix: str, body) -> int:
    """body(servers) on a server_pair(prefix); the exit status: 1 with a
    message if redis-benchmark is missing or a BenchError is raised, else 0."""
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark is not installed (make redis-tools)", file=sys.stderr)
        return 1
    try:
        with server_pair(prefix) as servers:
            body(servers)
    except BenchError as exc:
        print("bench failed: %s" % exc, file=sys.stderr)
        return 1
    return 0


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def throughput(servers: dict[str, Server], tests, requests: dict[int, int], rounds: int):
    """Run every test/pipeline/round; returns {(test, P): {name: (rps, us)}} of medians."""
    # The keys GET reads: the ones redis-benchmark -r generates (12 digits),
    # with SET's default 3-byte value.
    for server in servers.values():
        keys = (b"key:%012d" % i for i in range(KEYSPACE))
        pipe_load(server, keys, KEYSPACE, b"xxx")

    results = {}
    names = list(servers)  # ["redis", "tenantkv"]
    for test in tests:
        for pipeline in PIPELINES:
            n = requests[pipeline]
            done = {name: 0 for name in names}

            def run(name):
                rps, us = run_benchmark(servers[name], test, pipeline, n)
                done[name] += 1
                print(f"  {test:>4} P{pipeline:<2} round {done[name]}/{rounds} {name:<8}"
                      f" {rps:>11,.0f} req/s {us:>7.2f} us/req", flush=True)
                return rps, us

            results[test, pipeline] = alternate(names, rounds, run)
    return results


def print_table(results, tests) -> None:
    head = (f"{'test':<5} {'P':>2} {'redis req/s':>12} {'tenantkv req/s':>15}"
            f" {'redis us/req':>13} {'tenantkv us/req':>16} {'CPU ratio':>10} {'target':>7}  result")
    print(head)
    print("-" * len(head))
    ratios = {p: [] for p in PIPELINES}
    for test in tests:
        for pipeline in PIPELINES:
            redis_rps, redis_us = results[test, pipeline]["redis"]
            tkv_rps, tkv_us = results[test, pipeline]["tenantkv"]
            ratio = tkv_us / redis_us if redis_us > 0 else float("inf")
            ratios[pipeline].append(ratio)
            target = TARGETS[pipeline]
            print(f"{test.upper():<5} {pipeline:>2} {redis_rps:>12,.0f} {tkv_rps:>15,.0f}"
                  f" {redis_us:>13.2f} {tkv_us:>16.2f} {ratio:>9.2f}x {target:>6.1f}x"
                  f"  {'PASS' if ratio <= target else 'MISS'}")
    print()
    for pipeline in PIPELINES:
        g = geomean(r for r in ratios[pipeline] if math.isfinite(r))
        print(f"geometric mean CPU ratio, pipeline {pipeline:>2}: {g:.2f}x"
              f" (target {TARGETS[pipeline]:.1f}x: {'PASS' if g <= TARGETS[pipeline] else 'MISS'})")
    print("(us/req: server CPU microseconds per request; an MSET request carries 10 keys)")


# --------------------------------------------------------------------------
# Memory


def memory(workdir: Path, kept: list[Server]) -> None:
    value = b"v" * MEMORY_VALUE_SIZE
    rows = {}
    for start in (start_redis, start_tenantkv):
        server = start(workdir)
        try:
            time.sleep(0.5)
            rss_before = status_kb(server.pid, "VmRSS")
            t0 = time.monotonic()
            keys = (b"key:%07d" % i for i in range(MEMORY_KEYS))
            pipe_load(server, keys, MEMORY_KEYS, value)
            load_s = time.monotonic() - t0
            size = dbsize(server)
            if size != MEMORY_KEYS:
                raise BenchError(f"{server.name}: DBSIZE is {size:,} after loading {MEMORY_KEYS:,} keys")
            time.sleep(0.5)
            rss_after = status_kb(server.pid, "VmRSS")
            rows[server.name] = dict(
                before=rss_before * 1024, after=rss_after * 1024,
                peak=status_kb(server.pid, "VmHWM") * 1024, load_s=load_s,
                used_memory=info_field(server.port, "memory", "used_memory"),
            )
        finally:
            finish(server, kept)

    mb = 1024 * 1024
    print(f"{'server':<9} {'RSS before':>11} {'RSS after':>10} {'keys take':>10} {'bytes/key':>10}"
          f" {'peak RSS':>9} {'load time':>10}  INFO used_memory")
    for name, r in rows.items():
        used = r["after"] - r["before"]
        um = r["used_memory"]
        um = f"{int(um) / mb:,.1f} MB" if um.isdigit() else um
        print(f"{name:<9} {r['before'] / mb:>8.1f} MB {r['after'] / mb:>7.1f} MB {used / mb:>7.1f} MB"
              f" {used / MEMORY_KEYS:>10.1f} {r['peak'] / mb:>6.1f} MB {r['load_s']:>9.1f}s  {um}")
    redis_used = rows["redis"]["after"] - rows["redis"]["before"]
    tkv_used = rows["tenantkv"]["after"] - rows["tenantkv"]["before"]
    ratio = tkv_used / redis_used
    total_ratio = rows["tenantkv"]["after"] / rows["redis"]["after"]
    print(f"\nmemory ratio tenantkv/redis (RSS growth): {ratio:.2f}x"
          f" (target {MEMORY_TARGET:.1f}x: {'PASS' if ratio <= MEMORY_TARGET else 'MISS'});"
          f" whole-process RSS ratio {total_ratio:.2f}x")


# --------------------------------------------------------------------------
# Main


def finish(server: Server, kept: list[Server] | None) -> None:
    """Stop a server, or with --keep (kept is a list) leave it running."""
    if kept is None:
        server.stop()
    else:
        kept.append(server)
        print(f"--keep: {server.name} left running: port {server.port}, pid {server.pid},"
              f" dir {server.dir}", file=sys.stderr)


def on_sigterm(signum, frame):
    raise KeyboardInterrupt  # the same way out as Ctrl-C: servers are stopped


def machine_facts(requests: dict[int, int], rounds: int) -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                   text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "?"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join([
        f"machine:   {cpu}, {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable),"
        f" {platform.system()} {platform.release()}, load average {load}",
        f"redis:     {redis_version}",
        f"tenantkv:  git {commit}, Python {platform.python_version()} ({tenantkv_python()})",
        f"load:      redis-benchmark -c {CLIENTS} -r {KEYSPACE}, -n {requests[1]:,} at P1 and"
        f" {requests[16]:,} at P16, {rounds} round(s), medians; CPU from /proc/PID/stat"
        f" (CLK_TCK {CLK_TCK})",
    ])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a quarter of the requests and one round (unless --rounds)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--rounds", type=int, help=f"rounds per test and pipeline (default {DEFAULT_ROUNDS})")
    p.add_argument("--requests", type=int,
                   help=f"requests per run at pipeline 1 (default {DEFAULT_REQUESTS:,});"
                        " pipeline 16 runs 5x as many")
    p.add_argument("--tests", default=",".join(TESTS),
                   help=f"comma-separated subset of {','.join(TESTS + STRUCTURE_TESTS)}")
    p.add_argument("--keep", action="store_true",
                   help="leave the servers running at the end (prints their ports and pids)")
    args = p.parse_args(argv)
    args.tests = [t.strip().lower() for t in args.tests.split(",") if t.strip()]
    unknown = [t for t in args.tests if t not in TESTS + STRUCTURE_TESTS]
    if unknown or not args.tests:
        p.error(f"--tests: unknown {','.join(unknown) or '(none given)'}; "
                f"choose from {','.join(TESTS + STRUCTURE_TESTS)}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else DEFAULT_ROUNDS
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    base = args.requests or DEFAULT_REQUESTS
    if args.quick and not args.requests:
        base //= 4
    args.n = {1: base, 16: 5 * base}
    return args


def missing_tools(*tools: str) -> bool:
    """Whether a tool the bench needs is not installed (it says which)."""
    for tool in tools:
        if not shutil.which(tool):
            print(f"error: {tool} not found (make redis-tools installs it)", file=sys.stderr)
            return True
    return False


def main(argv=None) -> int:
    args = parse_args(argv)
    if missing_tools("redis-server", "redis-benchmark", "redis-cli"):
        return 1

    signal.signal(signal.SIGTERM, on_sigterm)

    print(machine_facts(args.n, args.rounds), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-bench-"))
    kept: list[Server] | None = [] if args.keep else None
    servers: list[Server] = []
    try:
        print("\n== Throughput and server CPU per request ==", flush=True)
        servers.append(start_redis(workdir))
        servers.append(start_tenantkv(workdir))
        results = throughput({s.name: s for s in servers}, args.tests, args.n, args.rounds)
        print()
        print_table(results, args.tests)
        while servers:
            finish(servers.pop(), kept)

        if not args.no_memory:
            print(f"\n== Memory: {MEMORY_KEYS:,} keys key:%07d with {MEMORY_VALUE_SIZE}-byte values ==",
                  flush=True)
            memory(workdir, kept)
        return 0
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        while servers:
            finish(servers.pop(), kept)
        if not kept:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
