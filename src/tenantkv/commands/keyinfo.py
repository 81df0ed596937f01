"""Redis 7.0's key specifications, command tips and key procedures, by command.

The registry attaches these to a command when it is declared (a decorator may
pass its own instead), so COMMAND INFO, COMMAND GETKEYS / GETKEYSANDFLAGS and
Command.keys_of give Redis's answers without every family repeating Redis's
tables. Entries for commands tenantkv does not have (yet) wait unused: the
blocking and bitmap families find theirs here when they land.

Copied from redis-server 7.0.15's COMMAND INFO (key specs, in the compact form
of tenantkv.util.keyspecs.parse_spec, and tips) and from its db.c (the
procedures). Check a change against the real server: tests/compat/sessions/
getkeys.txt replays COMMAND INFO and GETKEYS[ANDFLAGS] for every command that
takes keys.
"""

from tenantkv.util.keyspecs import (
    bitfield_procedure, get_option_procedure, numkeys_procedure,
)

# name -> key specs, in order
KEY_SPECS = {
    "append": ("RW insert | index 1 | range 0 1 0",),
    "bitcount": ("RO access | index 1 | range 0 1 0",),
    "bitfield": (
        "RW access update variable_flags | index 1 | range 0 1 0 | notes: This command allows both access and modification of the key",),
    "bitfield_ro": ("RO access | index 1 | range 0 1 0",),
    "bitop": (
        "OW update | index 2 | range 0 1 0",
        "RO access | index 3 | range -1 1 0",
    ),
    "bitpos": ("RO access | index 1 | range 0 1 0",),
    "blmove": (
        "RW access delete | index 1 | range 0 1 0",
        "RW insert | index 2 | range 0 1 0",
    ),
    "blmpop": ("RW access delete | index 2 | keynum 0 1 1",),
    "blpop": ("RW access delete | index 1 | range -2 1 0",),
    "brpop": ("RW access delete | index 1 | range -2 1 0",),
    "brpoplpush": (
        "RW access delete | index 1 | range 0 1 0",
        "RW insert | index 2 | range 0 1 0",
    ),
    "bzmpop": ("RW access delete | index 2 | keynum 0 1 1",),
    "bzpopmax": ("RW access delete | index 1 | range -2 1 0",),
    "bzpopmin": ("RW access delete | index 1 | range -2 1 0",),
    "copy": (
        "RO access | index 1 | range 0 1 0",
        "OW update | index 2 | range 0 1 0",
    ),
    "decr": ("RW access update | index 1 | range 0 1 0",),
    "decrby": ("RW access update | index 1 | range 0 1 0",),
    "del": ("RM delete | index 1 | range -1 1 0",),
    "exists": ("RO | index 1 | range -1 1 0",),
    "expire": ("RW update | index 1 | range 0 1 0",),
    "expireat": ("RW update | index 1 | range 0 1 0",),
    "expiretime": ("RO access | index 1 | range 0 1 0",),
    "get": ("RO access | index 1 | range 0 1 0",),
    "getbit": ("RO access | index 1 | range 0 1 0",),
    "getdel": ("RW access delete | index 1 | range 0 1 0",),
    "getex": (
        "RW access update | index 1 | range 0 1 0 | notes: RW and UPDATE because it changes the TTL",),
    "getrange": ("RO access | index 1 | range 0 1 0",),
    "getset": ("RW access update | index 1 | range 0 1 0",),
    "hdel": ("RW delete | index 1 | range 0 1 0",),
    "hexists": ("RO | index 1 | range 0 1 0",),
    "hget": ("RO access | index 1 | range 0 1 0",),
    "hgetall": ("RO access | index 1 | range 0 1 0",),
    "hincrby": ("RW access update | index 1 | range 0 1 0",),
    "hincrbyfloat": ("RW access update | index 1 | range 0 1 0",),
    "hkeys": ("RO access | index 1 | range 0 1 0",),
    "hlen": ("RO | index 1 | range 0 1 0",),
    "hmget": ("RO access | index 1 | range 0 1 0",),
    "hmset": ("RW update | index 1 | range 0 1 0",),
    "hrandfield": ("RO access | index 1 | range 0 1 0",),
    "hscan": ("RO access | index 1 | range 0 1 0",),
    "hset": ("RW update | index 1 | range 0 1 0",),
    "hsetnx": ("RW insert | index 1 | range 0 1 0",),
    "hstrlen": ("RO | index 1 | range 0 1 0",),
    "hvals": ("RO access | index 1 | range 0 1 0",),
    "incr": ("RW access update | index 1 | range 0 1 0",),
    "incrby": ("RW access update | index 1 | range 0 1 0",),
    "incrbyfloat": ("RW access update | index 1 | range 0 1 0",),
    "lcs": ("RO access | index 1 | range 1 1 0",),
    "lindex": ("RO access | index 1 | range 0 1 0",),
    "linsert": ("RW insert | index 1 | range 0 1 0",),
    "llen": ("RO | index 1 | range 0 1 0",),
    "lmove": (
        "RW access delete | index 1 | range 0 1 0",
        "RW insert | index 2 | range 0 1 0",
    ),
    "lmpop": ("RW access delete | index 1 | keynum 0 1 1",),
    "lpop": ("RW access delete | index 1 | range 0 1 0",),
    "lpos": ("RO access | index 1 | range 0 1 0",),
    "lpush": ("RW insert | index 1 | range 0 1 0",),
    "lpushx": ("RW insert | index 1 | range 0 1 0",),
    "lrange": ("RO access | index 1 | range 0 1 0",),
    "lrem": ("RW delete | index 1 | range 0 1 0",),
    "lset": ("RW update | index 1 | range 0 1 0",),
    "ltrim": ("RW delete | index 1 | range 0 1 0",),
    "mget": ("RO access | index 1 | range -1 1 0",),
    "move": ("RW access update | index 1 | range 0 1 0",),
    "mset": ("OW update | index 1 | range -1 2 0",),
    "msetnx": ("OW insert | index 1 | range -1 2 0",),
    "persist": ("RW update | index 1 | range 0 1 0",),
    "pexpire": ("RW update | index 1 | range 0 1 0",),
    "pexpireat": ("RW update | index 1 | range 0 1 0",),
    "pexpiretime": ("RO access | index 1 | range 0 1 0",),
    "psetex": ("OW update | index 1 | range 0 1 0",),
    "pttl": ("RO access | index 1 | range 0 1 0",),
    "rename": (
        "RW access delete | index 1 | range 0 1 0",
        "OW update | index 2 | range 0 1 0",
    ),
    "renamenx": (
        "RW access delete | index 1 | range 0 1 0",
        "OW insert | index 2 | range 0 1 0",
    ),
    "rpop": ("RW access delete | index 1 | range 0 1 0",),
    "rpoplpush": (
        "RW access delete | index 1 | range 0 1 0",
        "RW insert | index 2 | range 0 1 0",
    ),
    "rpush": ("RW insert | index 1 | range 0 1 0",),
    "rpushx": ("RW insert | index 1 | range 0 1 0",),
    "sadd": ("RW insert | index 1 | range 0 1 0",),
    "scard": ("RO | index 1 | range 0 1 0",),
    "sdiff": ("RO access | index 1 | range -1 1 0",),
    "sdiffstore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | range -1 1 0",
    ),
    "set": (
        "RW access update variable_flags | index 1 | range 0 1 0 | notes: RW and ACCESS due to the optional `GET` argument",),
    "setbit": ("RW access update | index 1 | range 0 1 0",),
    "setex": ("OW update | index 1 | range 0 1 0",),
    "setnx": ("OW insert | index 1 | range 0 1 0",),
    "setrange": ("RW update | index 1 | range 0 1 0",),
    "sinter": ("RO access | index 1 | range -1 1 0",),
    "sintercard": ("RO access | index 1 | keynum 0 1 1",),
    "sinterstore": (
        "RW update | index 1 | range 0 1 0",
        "RO access | index 2 | range -1 1 0",
    ),
    "sismember": ("RO | index 1 | range 0 1 0",),
    "smembers": ("RO access | index 1 | range 0 1 0",),
    "smismember": ("RO access | index 1 | range 0 1 0",),
    "smove": (
        "RW access delete | index 1 | range 0 1 0",
        "RW insert | index 2 | range 0 1 0",
    ),
    "spop": ("RW access delete | index 1 | range 0 1 0",),
    "srandmember": ("RO access | index 1 | range 0 1 0",),
    "srem": ("RW delete | index 1 | range 0 1 0",),
    "sscan": ("RO access | index 1 | range 0 1 0",),
    "strlen": ("RO | index 1 | range 0 1 0",),
    "substr": ("RO access | index 1 | range 0 1 0",),
    "sunion": ("RO access | index 1 | range -1 1 0",),
    "sunionstore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | range -1 1 0",
    ),
    "touch": ("RO | index 1 | range -1 1 0",),
    "ttl": ("RO access | index 1 | range 0 1 0",),
    "type": ("RO | index 1 | range 0 1 0",),
    "unlink": ("RM delete | index 1 | range -1 1 0",),
    "watch": ("RO | index 1 | range -1 1 0",),
    "zadd": ("RW update | index 1 | range 0 1 0",),
    "zcard": ("RO | index 1 | range 0 1 0",),
    "zcount": ("RO access | index 1 | range 0 1 0",),
    "zdiff": ("RO access | index 1 | keynum 0 1 1",),
    "zdiffstore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | keynum 0 1 1",
    ),
    "zincrby": ("RW access update | index 1 | range 0 1 0",),
    "zinter": ("RO access | index 1 | keynum 0 1 1",),
    "zintercard": ("RO access | index 1 | keynum 0 1 1",),
    "zinterstore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | keynum 0 1 1",
    ),
    "zlexcount": ("RO access | index 1 | range 0 1 0",),
    "zmpop": ("RW access delete | index 1 | keynum 0 1 1",),
    "zmscore": ("RO access | index 1 | range 0 1 0",),
    "zpopmax": ("RW access delete | index 1 | range 0 1 0",),
    "zpopmin": ("RW access delete | index 1 | range 0 1 0",),
    "zrandmember": ("RO access | index 1 | range 0 1 0",),
    "zrange": ("RO access | index 1 | range 0 1 0",),
    "zrangebylex": ("RO access | index 1 | range 0 1 0",),
    "zrangebyscore": ("RO access | index 1 | range 0 1 0",),
    "zrangestore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | range 0 1 0",
    ),
    "zrank": ("RO access | index 1 | range 0 1 0",),
    "zrem": ("RW delete | index 1 | range 0 1 0",),
    "zremrangebylex": ("RW delete | index 1 | range 0 1 0",),
    "zremrangebyrank": ("RW delete | index 1 | range 0 1 0",),
    "zremrangebyscore": ("RW delete | index 1 | range 0 1 0",),
    "zrevrange": ("RO access | index 1 | range 0 1 0",),
    "zrevrangebylex": ("RO access | index 1 | range 0 1 0",),
    "zrevrangebyscore": ("RO access | index 1 | range 0 1 0",),
    "zrevrank": ("RO access | index 1 | range 0 1 0",),
    "zscan": ("RO access | index 1 | range 0 1 0",),
    "zscore": ("RO access | index 1 | range 0 1 0",),
    "zunion": ("RO access | index 1 | keynum 0 1 1",),
    "zunionstore": (
        "OW update | index 1 | range 0 1 0",
        "RO access | index 2 | keynum 0 1 1",
    ),
}

# name -> tips (COMMAND INFO's hints for clients and proxies)
TIPS = {
    "command": ("nondeterministic_output_order",),
    "dbsize": ("request_policy:all_shards", "response_policy:agg_sum"),
    "del": ("request_policy:multi_shard", "response_policy:agg_sum"),
    "exists": ("request_policy:multi_shard", "response_policy:agg_sum"),
    "flushall": ("request_policy:all_shards", "response_policy:all_succeeded"),
    "flushdb": ("request_policy:all_shards", "response_policy:all_succeeded"),
    "hgetall": ("nondeterministic_output_order",),
    "hkeys": ("nondeterministic_output_order",),
    "hrandfield": ("nondeterministic_output",),
    "hscan": ("nondeterministic_output",),
    "hvals": ("nondeterministic_output_order",),
    "info": ("nondeterministic_output", "request_policy:all_shards", "response_policy:special"),
    "keys": ("request_policy:all_shards", "nondeterministic_output_order"),
    "lastsave": ("nondeterministic_output",),
    "mget": ("request_policy:multi_shard",),
    "mset": ("request_policy:multi_shard", "response_policy:all_succeeded"),
    "msetnx": ("request_policy:multi_shard", "response_policy:agg_min"),
    "ping": ("request_policy:all_shards", "response_policy:all_succeeded"),
    "pttl": ("nondeterministic_output",),
    "randomkey": ("request_policy:all_shards", "nondeterministic_output"),
    "scan": ("nondeterministic_output", "request_policy:special"),
    "sdiff": ("nondeterministic_output_order",),
    "sinter": ("nondeterministic_output_order",),
    "smembers": ("nondeterministic_output_order",),
    "spop": ("nondeterministic_output",),
    "srandmember": ("nondeterministic_output",),
    "sscan": ("nondeterministic_output",),
    "sunion": ("nondeterministic_output_order",),
    "time": ("nondeterministic_output",),
    "touch": ("request_policy:multi_shard", "response_policy:agg_sum"),
    "ttl": ("nondeterministic_output",),
    "unlink": ("request_policy:multi_shard", "response_policy:agg_sum"),
    "zrandmember": ("nondeterministic_output",),
    "zscan": ("nondeterministic_output",),
}


# Redis's getkeys procedures ("getkeys_proc"): GETKEYS uses them when the key
# specs refuse the arguments (a numkeys that is not a plain integer, or too
# large), or instead of the specs when those are marked variable_flags.
_NUMKEYS_AT_1 = numkeys_procedure(count_at=1, first_at=2)                # ZUNION 2 a b
_NUMKEYS_AT_2 = numkeys_procedure(count_at=2, first_at=3)                # BLMPOP 0 2 a b
_STORE_NUMKEYS_AT_2 = numkeys_procedure(count_at=2, first_at=3, store_at=1)  # ZUNIONSTORE d 2 a b

PROCEDURES = {
    "zunion": _NUMKEYS_AT_1, "zinter": _NUMKEYS_AT_1, "zdiff": _NUMKEYS_AT_1,
    "zintercard": _NUMKEYS_AT_1, "sintercard": _NUMKEYS_AT_1,
    "lmpop": _NUMKEYS_AT_1, "zmpop": _NUMKEYS_AT_1,
    "blmpop": _NUMKEYS_AT_2, "bzmpop": _NUMKEYS_AT_2,
    "zunionstore": _STORE_NUMKEYS_AT_2, "zinterstore": _STORE_NUMKEYS_AT_2,
    "zdiffstore": _STORE_NUMKEYS_AT_2,
    "set": get_option_procedure(read_flags=("RW", "access", "update"), write_flags=("OW", "update")),
    "bitfield": bitfield_procedure,
}

# Containers whose subcommands Redis describes in COMMAND INFO (and looks up
# in COMMAND GETKEYS): name -> {subcommand: (arity, flags, (first, last, step),
# key specs, tips)}.
_OBJECT_KEY = ("RO | index 2 | range 0 1 0",)
SUBCOMMANDS = {
    "object": {
        "encoding": (3, "readonly", (2, 2, 1), _OBJECT_KEY, ("nondeterministic_output",)),
        "freq": (3, "readonly", (2, 2, 1), _OBJECT_KEY, ("nondeterministic_output",)),
        "help": (2, "loading stale", (0, 0, 0), (), ()),
        "idletime": (3, "readonly", (2, 2, 1), _OBJECT_KEY, ("nondeterministic_output",)),
        "refcount": (3, "readonly", (2, 2, 1), _OBJECT_KEY, ("nondeterministic_output",)),
    },
}
