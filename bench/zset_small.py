#!/usr/bin/env python3
"""Small sorted sets (keyspace/zset.py's PackedZSet, Redis's listpack):
memory per key and zset-command CPU, tenantkv vs redis-server, optionally
tenantkv from a second source tree (--before SRC: e.g. /work/wt-before-14/src,
the dict + SortedList form) in the same run.

Memory: a fresh server each; VmRSS before and after loading KEYS zsets of
M members each (ZADD k 1 member0 2 member1 ... through redis-cli --pipe);
the growth per key.

CPU: each server gets 10,000 zsets of 5 members (s:%012d, the names
redis-benchmark's __rand_int__ makes with -r 10000) and 10,000 of 100
(p:%012d); then, per round and per server in alternation,

    redis-benchmark -c 50 -P 16 -r 10000 -n N <command>

for ZADD s:__rand_int__ of one pair (a new member, then a moved one),
ZADD of 3 pairs, ZSCORE, ZRANK, ZRANGE 0 -1 WITHSCORES, ZRANGEBYSCORE
on the 5-member sets, ZSCORE and ZADD on the 100-member ones, ZPOPMIN
p:__rand_int__; the server's CPU time (utime + stime, /proc/PID/stat)
per request, the median of rounds.

    python bench/zset_small.py [--before /work/wt-before-14/src] [--keys 100000] [--rounds 3]

The harness (servers, loading, measuring, the tables) is bench/keybench.py.
"""

import sys

import keybench  # bench/ is the script directory

TESTS = {
    "ZADD_1": ["ZADD", "s:__rand_int__", "7", "member9"],
    "ZADD_3": ["ZADD", "s:__rand_int__", "2", "member1", "8", "x", "0.5", "y"],
    "ZSCORE": ["ZSCORE", "s:__rand_int__", "member3"],
    "ZRANK": ["ZRANK", "s:__rand_int__", "member3"],
    "ZRANGE": ["ZRANGE", "s:__rand_int__", "0", "-1", "WITHSCORES"],
    "ZRANGEBYSC": ["ZRANGEBYSCORE", "s:__rand_int__", "2", "(4"],
    "ZSCORE_100": ["ZSCORE", "p:__rand_int__", "member50"],
    "ZADD_100": ["ZADD", "p:__rand_int__", "__rand_int__", "member70"],
    "ZPOPMIN": ["ZPOPMIN", "p:__rand_int__"],
}


def zadd(key: bytes, i: int, members: int) -> list:
    return [b"ZADD", key] + [x for j in range(members)
                             for x in (b"%d" % (j + 1), b"member%d" % j)]


if __name__ == "__main__":
    sys.exit(keybench.collection_main(__doc__, "zsets of M members", TESTS, zadd))
