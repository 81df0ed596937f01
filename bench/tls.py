#!/usr/bin/env python3
"""GET and SET over TLS: tenantkv vs redis-server, both with TLS (issue 19).

What it does
------------
Makes a CA and a server certificate (trustme, the test extra), then starts
a redis-server and a tenantkv as bench/compare.py does (free ports,
temporary dirs, no persistence, no password), each with its plain port and
a TLS port (`--tls-port`, `--tls-auth-clients no`: redis-benchmark sends no
client certificate). For each test (SET, GET) and pipeline (1, 16) it runs
R rounds; each round runs, against each server, alternating which goes first:

    redis-benchmark --tls --cacert CA -p TLS_PORT -t TEST -c 50 -P P -r 100000 -n N -q

and reads the server's CPU time (utime + stime from /proc/PID/stat) around
it. Each connection of redis-benchmark does its TLS handshake once, at the
start: what is measured is the cost of encrypting and decrypting the
requests and replies, which is what a long-lived client pays.

One more line per test and pipeline runs the same load against tenantkv's
plain port, the reference for what TLS adds. The table shows medians over
the rounds: req/s, server CPU us/request, and the ratio tenantkv/redis of
CPU per request over TLS.

Options: --quick (N/4, one round), --rounds R, --requests N (pipeline 1;
pipeline 16 runs 5x as many), --tests set,get.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (CLIENTS, KEYSPACE, BenchError, Server, cpu_seconds, finish,  # noqa: E402
                     free_port, machine_facts, missing_tools, on_sigterm, pipe_load,
                     tenantkv_python)

PIPELINES = (1, 16)
DEFAULT_REQUESTS = 100_000
DEFAULT_ROUNDS = 3
RPS_LINE = re.compile(r"^([A-Z_]+).*?: ([0-9.]+) requests per second")


def make_certs(directory: Path) -> tuple[str, str]:
    """(CA file, server cert+key file) for 127.0.0.1."""
    try:
        import trustme
    except ImportError:
        raise BenchError("trustme is not installed (pip install -e '.[test]')") from None
    ca = trustme.CA()
    ca_file, server_file = directory / "ca.pem", directory / "server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(server_file))
    return str(ca_file), str(server_file)


def tls_flags(tls_port: int, ca: str, cert: str) -> list:
    return ["--tls-port", str(tls_port), "--tls-cert-file", cert, "--tls-key-file", cert,
            "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]


def start_servers(workdir: Path, ca: str, cert: str) -> dict:
    ports = {"redis": free_port(), "tenantkv": free_port()}
    redis = Server("redis", lambda port, d: [
        "redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(d), *tls_flags(ports["redis"], ca, cert)], workdir)
    tenantkv = Server("tenantkv", lambda port, d: [
        tenantkv_python(), "-m", "tenantkv", "--port", str(port), "--dir", str(d),
        "--loglevel", "warning", "--save", "", *tls_flags(ports["tenantkv"], ca, cert)],
        workdir, env=dict(os.environ, TENANTKV_AUTH__DEFAULT_USER="nopass"))
    redis.tls_port, tenantkv.tls_port = ports["redis"], ports["tenantkv"]
    return {"redis": redis, "tenantkv": tenantkv}


def run_benchmark(server: Server, tls_ca: str | None, test: str, pipeline: int,
                  n: int) -> tuple[float, float]:
    """One redis-benchmark run (over TLS if tls_ca) -> (requests/s, server CPU us/request)."""
    port = server.tls_port if tls_ca else server.port
    argv = ["redis-benchmark", "-p", str(port), "-t", test, "-c", str(CLIENTS),
            "-P", str(pipeline), "-r", str(KEYSPACE), "-n", str(n), "-q"]
    if tls_ca:
        argv[1:1] = ["--tls", "--cacert", tls_ca]
    before = cpu_seconds(server.pid)
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=120 + n / 500)
    except subprocess.TimeoutExpired:
        server.check_alive()
        raise BenchError(f"redis-benchmark timed out against {server.name}: {' '.join(argv)}")
    after = cpu_seconds(server.pid)
    server.check_alive()
    out = proc.stdout.decode(errors="replace")
    rps = None
    for line in (line.strip() for line in re.split(r"[\r\n]", out)):
        match = RPS_LINE.match(line)
        if match:
            rps = float(match.group(2))
    if proc.returncode != 0 or rps is None or re.search(r"\bERR|rror", out + proc.stderr.decode(
            errors="replace")):
        raise BenchError(f"redis-benchmark against {server.name} failed (status "
                         f"{proc.returncode})\n  command: {' '.join(argv)}\n  | "
                         + (proc.stderr.decode(errors="replace") or out)[-500:])
    return rps, (after - before) * 1e6 / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the requests, one round")
    p.add_argument("--rounds", type=int)
    p.add_argument("--requests", type=int, help=f"per run at pipeline 1 (default {DEFAULT_REQUESTS:,})")
    p.add_argument("--tests", default="set,get")
    args = p.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else DEFAULT_ROUNDS)
    base = args.requests or (DEFAULT_REQUESTS // 4 if args.quick else DEFAULT_REQUESTS)
    requests = {1: base, 16: 5 * base}
    tests = [t.strip().lower() for t in args.tests.split(",") if t.strip()]
    if not set(tests) <= {"set", "get"}:
        p.error("--tests: set and/or get")
    if missing_tools("redis-server", "redis-benchmark", "redis-cli"):
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    print(machine_facts(requests, rounds) + "\ntls:       redis-benchmark --tls, TLSv1.3, "
          "no client certificate; CPU per request of the server process", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tenantkv-bench-tls-"))
    servers = {}
    try:
        ca, cert = make_certs(workdir)
        servers = start_servers(workdir, ca, cert)
        for server in servers.values():
            pipe_load(server, (b"key:%012d" % i for i in range(KEYSPACE)), KEYSPACE, b"xxx")
        runs = [("redis", ca), ("tenantkv", ca), ("tenantkv plain", None)]
        results = {}
        for test in tests:
            for pipeline in PIPELINES:
                measured = {name: [] for name, _ in runs}
                for r in range(rounds):
                    for name, tls_ca in (runs if r % 2 == 0 else runs[::-1]):
                        server = servers[name.split()[0]]
                        rps, us = run_benchmark(server, tls_ca, test, pipeline, requests[pipeline])
                        measured[name].append((rps, us))
                        print(f"  {test:>3} P{pipeline:<2} round {r + 1}/{rounds} {name:<15}"
                              f" {rps:>10,.0f} req/s {us:>7.2f} us/req", flush=True)
                results[test, pipeline] = {
                    name: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
                    for name, v in measured.items()}
        print()
        head = (f"{'test':<4} {'P':>2} {'redis TLS req/s':>16} {'tenantkv TLS req/s':>19}"
                f" {'redis TLS us/req':>17} {'tenantkv TLS us/req':>20} {'ratio':>6}"
                f" {'tenantkv plain us/req':>22}")
        print(head)
        print("-" * len(head))
        for (test, pipeline), row in results.items():
            (r_rps, r_us), (t_rps, t_us), (_, plain_us) = (
                row["redis"], row["tenantkv"], row["tenantkv plain"])
            print(f"{test.upper():<4} {pipeline:>2} {r_rps:>16,.0f} {t_rps:>19,.0f} {r_us:>17.2f}"
                  f" {t_us:>20.2f} {t_us / r_us:>5.2f}x {plain_us:>22.2f}")
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for server in servers.values():
            finish(server, None)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
