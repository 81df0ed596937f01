#!/usr/bin/env python3
"""RSS per key of small strings: tenantkv vs redis-server in the same run.

For each value size asked for, a fresh redis-server and a fresh tenantkv get
N keys (`key:%07d`, SET through `redis-cli --pipe`); the RSS growth divided by
N is the cost of one key. Values are `v` * size, or with --int the numbers
0..9999 in turn (Redis's shared integers: no value object per key).

  PYTHONPATH=$PWD/src python bench/strings_memory.py                 # 100k x 20 B
  PYTHONPATH=$PWD/src python bench/strings_memory.py --keys 1000000 --size 100
  PYTHONPATH=$PWD/src python bench/strings_memory.py --int

Servers and helpers are bench/compare.py's (the same start-up flags).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402


def measure(start, workdir: Path, keys: int, size: int, ints: bool) -> dict:
    server = start(workdir)
    try:
        time.sleep(0.5)
        before = compare.status_kb(server.pid, "VmRSS") * 1024
        if ints:
            pairs = ((b"key:%07d" % i, b"%d" % (i % 10_000)) for i in range(keys))
            compare.pipe_commands(server, (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                                           % (len(k), k, len(v), v) for k, v in pairs), keys)
        else:
            compare.pipe_load(server, (b"key:%07d" % i for i in range(keys)), keys, b"v" * size)
        if compare.dbsize(server) != keys:
            raise compare.BenchError(f"{server.name}: DBSIZE is not {keys:,}")
        time.sleep(0.5)
        after = compare.status_kb(server.pid, "VmRSS") * 1024
        return {"before": before, "after": after, "per_key": (after - before) / keys}
    finally:
        compare.finish(server, None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--size", type=int, default=20, help="value size in bytes")
    p.add_argument("--int", action="store_true", help="values 0..9999 (--size is ignored)")
    p.add_argument("--rounds", type=int, default=1, help="alternate the servers this many times")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="strmem-") as tmp:
        rows = {"redis": [], "tenantkv": []}
        for _ in range(args.rounds):
            for name, start in (("redis", compare.start_redis), ("tenantkv", compare.start_tenantkv)):
                rows[name].append(measure(start, Path(tmp), args.keys, args.size, args.int))
    kind = "values 0..9999" if args.int else f"string values of {args.size} bytes"
    print(f"{args.keys:,} keys, {kind}")
    best = {}
    for name, results in rows.items():
        best[name] = min(r["per_key"] for r in results)
        print(f"{name:<9} RSS growth per key: "
              + ", ".join(f"{r['per_key']:.1f} B" for r in results)
              + f"  (after: {results[-1]['after'] / 2**20:.1f} MB)")
    print(f"ratio tenantkv/redis (best of {args.rounds}): {best['tenantkv'] / best['redis']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
