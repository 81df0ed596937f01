#!/usr/bin/env python3
"""Small sets of strings (listpack sets, keyspace/packedset.py): memory per
key and set-command CPU, tenantkv vs redis-server, optionally tenantkv from a
second source tree (--before SRC: e.g. /work/wt-before-14/src, where these
sets are Python sets) in the same run; intset.py with string members.

Memory: a fresh server each; VmRSS before and after loading KEYS sets of
M members each ("m<number>", not integers; SADD through redis-cli --pipe);
the growth per key.

CPU: each server gets 10,000 sets of 5 members (s:%012d, the names
redis-benchmark's __rand_int__ makes with -r 10000) and 10,000 of 100
(p:%012d); then, per round and per server in alternation,

    redis-benchmark -c 50 -P 16 -r 10000 -n N <command>

for SADD s:__rand_int__ a b c d e f (new members once, then none), SADD
s:__rand_int__ x, SISMEMBER s:__rand_int__ m3, SREM s:__rand_int__ nope,
SMEMBERS s:__rand_int__, SPOP p:__rand_int__; the server's CPU time
(utime + stime, /proc/PID/stat) per request, the median of rounds.

    python bench/listpack_set.py [--before /work/wt-before-14/src] [--keys 100000] [--rounds 3]

The harness (servers, loading, measuring, the tables) is bench/keybench.py.
"""

import sys

import keybench  # bench/ is the script directory

TESTS = {
    "SADD": ["SADD", "s:__rand_int__", "a", "b", "c", "d", "e", "f"],
    "SADD_1": ["SADD", "s:__rand_int__", "x"],
    "SISMEMBER": ["SISMEMBER", "s:__rand_int__", "m3"],
    "SREM": ["SREM", "s:__rand_int__", "nope"],
    "SMEMBERS": ["SMEMBERS", "s:__rand_int__"],
    "SPOP": ["SPOP", "p:__rand_int__"],
}


def sadd(key: bytes, i: int, members: int) -> list:
    return [b"SADD", key] + [b"m%d" % (j * 3 + i % 1000) for j in range(members)]


if __name__ == "__main__":
    sys.exit(keybench.collection_main(__doc__, "sets of M strings", TESTS, sadd))
