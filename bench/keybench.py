"""The harness of the per-type benchmarks (intset.py, listpack_set.py,
zset_small.py, hashes.py): redis-server, this tree's tenantkv and optionally
tenantkv from another src/ tree (--before), loaded through redis-cli --pipe;
RSS growth per key, and server CPU per request under redis-benchmark with the
servers in alternation, the median of the rounds. Not a script of its own.

A script gives its TESTS (redis-benchmark command lines: {name: argv} for
collection_main, which addresses 10,000 keys of each kind; {name: (keyspace,
argv)} for cpu) and a `make(key, i, n)` that returns the command (a list of
bytes) creating key number i with n elements; the keys are
"<prefix>:%012d", the names redis-benchmark's __rand_int__ makes with -r.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from compare import (ROOT, BenchError, Server, cpu_seconds, dbsize, pipe_commands,
                     start_redis, status_kb, tenantkv_python)

CLIENTS = 50
SPACE = 10_000  # keys of each kind the CPU tests address (redis-benchmark -r)


def start_tenantkv(workdir: Path, src: Path, name: str, *flags: str) -> Server:
    """tenantkv from the `src` tree, without a password or snapshots (like the
    redis-server beside it: redis-benchmark connects as the default user)."""
    return Server(
        name,
        lambda port, d: [tenantkv_python(), "-m", "tenantkv", "--port", str(port),
                         "--dir", str(d), "--loglevel", "warning", "--save", "", *flags],
        workdir,
        env=dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass", PYTHONPATH=str(src)),
    )


def starters(workdir: Path, before: Path | None) -> dict:
    """{name: () -> Server}: redis, tenantkv (this tree) and before (--before)."""
    found = {"redis": lambda: start_redis(workdir),
             "tenantkv": lambda: start_tenantkv(workdir, ROOT / "src", "tenantkv")}
    if before:
        found["before"] = lambda: start_tenantkv(workdir, before, "before")
    return {name: retry_port(start) for name, start in found.items()}


def retry_port(start):
    """start, tried once more when the server lost its port: compare.free_port
    frees the port it found before the server binds it, and on a busy machine
    another socket sometimes takes it in between."""
    def again() -> Server:
        try:
            return start()
        except BenchError as e:
            if "address already in use" not in str(e).lower():
                raise
            return start()
    return again


def load(server: Server, make, prefix: str, keys: int, n: int) -> None:
    """Keys prefix:000000000000.. each made by make(key, i, n), through redis-cli --pipe."""
    def commands():
        for i in range(keys):
            args = make(b"%s:%012d" % (prefix.encode(), i), i, n)
            yield (b"*%d\r\n" % len(args)
                   + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    pipe_commands(server, commands(), keys, batch=1000)


def memory(starters: dict, make, keys: int, n: int) -> dict:
    """{name: RSS growth per key} for `keys` keys of n elements, a fresh server each."""
    per_key = {}
    for name, start in starters.items():
        server = start()
        try:
            before = status_kb(server.pid, "VmRSS")
            load(server, make, "m", keys, n)
            if dbsize(server) != keys:
                raise BenchError("%s holds %d keys" % (name, dbsize(server)))
            after = status_kb(server.pid, "VmRSS")
            per_key[name] = (after - before) * 1024 / keys
        finally:
            server.stop()
    return per_key


def cpu(starters: dict, prepare, tests: dict, requests: int, rounds: int,
        pipeline: int = 16) -> dict:
    """{test: {name: median server CPU us/request}}; prepare(server) loads the
    keys the tests address, tests is {name: (keyspace, argv)}."""
    servers = {}
    try:
        for name, start in starters.items():
            servers[name] = start()
        results = {test: {name: [] for name in servers} for test in tests}
        for server in servers.values():
            prepare(server)
        for r in range(rounds):
            # Alternate who goes first, so that drifts of the machine hit all alike.
            order = list(servers.items())
            if r % 2:
                order.reverse()
            for test, (space, argv) in tests.items():
                for name, server in order:
                    before = cpu_seconds(server.pid)
                    run = subprocess.run(
                        ["redis-benchmark", "-p", str(server.port), "-c", str(CLIENTS),
                         "-P", str(pipeline), "-r", str(space), "-n", str(requests), "-q",
                         *argv], capture_output=True, text=True)
                    if run.returncode != 0:
                        raise BenchError("redis-benchmark %s on %s: status %d\n%s"
                                         % (test, name, run.returncode, run.stderr[-500:]))
                    results[test][name].append((cpu_seconds(server.pid) - before) * 1e6
                                               / requests)
                    server.check_alive()
    finally:
        for server in servers.values():
            server.stop()
    return {test: {name: statistics.median(v) for name, v in by.items()}
            for test, by in results.items()}


def src_tree(text: str) -> Path:
    """--before's argument: a src/ tree holding the tenantkv package. Checked,
    because a wrong path would silently measure the venv's installed tenantkv."""
    path = Path(text).resolve()
    if not (path / "tenantkv" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError("%s holds no tenantkv/ package" % text)
    return path


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every per-type script has."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--before", type=src_tree, help="src/ of an older tenantkv to compare")
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    return p


def run(body) -> int:
    """body(workdir) in a temporary directory; a BenchError exits 1 with its message."""
    try:
        with tempfile.TemporaryDirectory(prefix="keybench-") as workdir:
            return body(Path(workdir))
    except BenchError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1


def collection_main(doc: str, what: str, tests: dict, make) -> int:
    """main() of intset.py, listpack_set.py and zset_small.py: RSS growth per key
    for --keys collections of 5 and of 100 elements, then the CPU of each test
    on 10,000 collections of 5 (s:) and 10,000 of 100 (p:), pipeline 16.
    `what` names the collections in the memory header ("sets of M integers")."""
    p = parser(doc)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-cpu", action="store_true")
    args = p.parse_args()

    def prepare(server: Server) -> None:
        load(server, make, "s", SPACE, 5)
        load(server, make, "p", SPACE, 100)

    def body(workdir: Path) -> int:
        start = starters(workdir, args.before)
        names = list(start)
        if not args.no_memory:
            print("RSS growth per key, %d %s" % (args.keys, what))
            print("  %-10s" % "M" + "".join("%12s" % n for n in names))
            for n in (5, 100):
                per_key = memory(start, make, args.keys, n)
                print("  %-10d" % n + "".join("%10.0f B" % per_key[name] for name in names),
                      flush=True)
        if not args.no_cpu:
            print("server CPU us/request, pipeline 16, %d requests, median of %d rounds"
                  % (args.requests, args.rounds))
            print("  %-10s" % "command" + "".join("%12s" % n for n in names), flush=True)
            spaced = {test: (SPACE, argv) for test, argv in tests.items()}
            for test, by in cpu(start, prepare, spaced, args.requests, args.rounds).items():
                print("  %-10s" % test + "".join("%12.2f" % by[n] for n in names))
        return 0

    return run(body)
