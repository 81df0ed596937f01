"""Decoding speed of a .kdb snapshot, in process: what a start-up, KDB LOAD or
KDB IMPORT spends in persistence/kdb/format.py (reading the file aside).

    PYTHONPATH=src .venv/bin/python bench/kdb_load.py [--keys N] [--rounds R]

Builds the datasets of bench/persistence.py (all strings; a mix of 60% strings
and 10% each of hashes, lists, sets and sorted sets of 5 elements, a tenth of
the keys with a TTL), dumps each to bytes once, then times `parse_file` R times
and prints the best and the median, of wall-clock and of CPU time. Run it before and after a change to the
decoder: the server's own figure (bench/persistence.py) also holds the disk
and the process start. Not a test.
"""

import argparse
import statistics
import time
from collections import deque

from tenantkv.keyspace.zset import ZSet
from tenantkv.persistence.kdb import format as kdb


def dataset(keys: int, kind: str):
    data, expires = {}, {}
    far = int(time.time() * 1000) + 10 ** 9
    for i in range(keys):
        key = b"key:%d" % i
        slot = i % 10 if kind == "mixed" else 0
        if slot < 6:
            data[key] = b"value:%d" % i
        elif slot == 6:
            data[key] = {b"f%d" % j: b"v%d" % (i + j) for j in range(5)}
        elif slot == 7:
            data[key] = deque(b"e%d" % (i + j) for j in range(5))
        elif slot == 8:
            data[key] = {b"m%d" % (i + j) for j in range(5)}
        else:
            z = ZSet()
            for j in range(5):
                z.add(b"z%d" % j, (i + j) / 3)
            data[key] = z
        if kind == "mixed" and i % 10 == 3:
            expires[key] = far + i
    return {"user:1": [(data, expires)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for kind in ("strings", "mixed"):
        blob = kdb.dumps(dataset(args.keys, kind))
        times, cpu = [], []
        for _ in range(args.rounds):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = kdb.parse_file(blob, int(time.time() * 1000), 16)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            assert result.keys == args.keys, result.keys
            del result
        # CPU time too: on a shared machine the wall clock holds other processes' turns
        print("%-8s %9d keys %6.1f MB  parse_file wall best %.3f s median %.3f s, "
              "CPU best %.3f s median %.3f s"
              % (kind, args.keys, len(blob) / 1e6, min(times), statistics.median(times),
                 min(cpu), statistics.median(cpu)))


if __name__ == "__main__":
    main()
