#!/usr/bin/env python3
"""Small all-integer sets (intsets): memory per key and set-command CPU,
tenantkv vs redis-server, optionally tenantkv from a second source tree
(--before SRC: e.g. an exported older commit) in the same run.

Memory: a fresh server each; VmRSS before and after loading KEYS sets of
M integer members each (SADD through redis-cli --pipe); the growth per key.

CPU: each server gets 10,000 sets of 5 integers (s:%012d, the names
redis-benchmark's __rand_int__ makes with -r 10000) and 10,000 of 100
(p:%012d); then, per round and per server in alternation,

    redis-benchmark -c 50 -P 16 -r 10000 -n N <command>

for SADD s:__rand_int__ 1 2 3 4 5 6 (new members once, then none), SADD
s:__rand_int__ 7, SISMEMBER
s:__rand_int__ 3, SMEMBERS s:__rand_int__, SPOP p:__rand_int__; the server's
CPU time (utime + stime, /proc/PID/stat) per request, the median of rounds.

    python bench/intset.py [--before /tmp/base/src] [--keys 100000] [--rounds 3]

The harness (servers, loading, measuring, the tables) is bench/keybench.py.
"""

import sys

import keybench  # bench/ is the script directory

TESTS = {
    "SADD": ["SADD", "s:__rand_int__", "1", "2", "3", "4", "5", "6"],
    "SADD_1": ["SADD", "s:__rand_int__", "7"],
    "SISMEMBER": ["SISMEMBER", "s:__rand_int__", "3"],
    "SMEMBERS": ["SMEMBERS", "s:__rand_int__"],
    "SPOP": ["SPOP", "p:__rand_int__"],
}


def sadd(key: bytes, i: int, members: int) -> list:
    return [b"SADD", key] + [b"%d" % (j * 3 + i % 1000) for j in range(members)]


if __name__ == "__main__":
    sys.exit(keybench.collection_main(__doc__, "sets of M integers", TESTS, sadd))
