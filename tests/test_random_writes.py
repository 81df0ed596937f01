"""Random commands (many with bad arguments) from several clients, through the
append-only log: no reply is an internal error, the server stays up, and a
restart replays the log to the very same data (DEBUG DIGEST, Redis's digest).

This covers the commands whose logging is rewritten for determinism (SPOP,
INCRBYFLOAT, SET/GETEX with relative expiries, blocking pops, MULTI/EXEC...)
with inputs nobody wrote a test for."""

import random
import socket

import redis

from conftest import ServerProcess, resp

COMMANDS = [
    "SELECT", "INCRBYFLOAT", "HINCRBYFLOAT", "GETEX", "SETEX", "PERSIST", "RENAME", "COPY",
    "MOVE", "LMOVE", "ZINCRBY", "SINTERSTORE", "ZUNIONSTORE", "MULTI", "EXEC",
    "DISCARD", "WATCH", "UNWATCH", "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP",
    "BZPOPMIN", "BZPOPMAX", "BZMPOP", "SETBIT", "GETBIT", "BITCOUNT", "BITPOS", "BITOP",
    "BITFIELD", "BITFIELD_RO", "LASTSAVE", "COMMAND", "CLIENT", "SPOP", "SRANDMEMBER",
    "HRANDFIELD", "LPUSH", "SADD", "ZADD", "HSET", "SET", "EXPIRE", "DEL", "OBJECT",
]
WORDS = [
    b"EX", b"PX", b"KEEPTTL", b"PXAT", b"DB", b"1.5", b"3", b"k", b"l", b"z", b"s", b"h", b"0",
    b"1", b"-1", b"0.01", b"2", b"100", b"-100", b"LEFT", b"RIGHT", b"MIN", b"MAX", b"COUNT",
    b"GET", b"SET", b"INCRBY", b"OVERFLOW", b"SAT", b"FAIL", b"WRAP", b"u8", b"i64", b"u63",
    b"#1", b"BIT", b"BYTE", b"AND", b"OR", b"NOT", b"XOR", b"nan", b"inf",
    b"9223372036854775807", b"4294967296", b"", b"\x00\xff", b"REPLACE", b"ENCODING",
    b"WITHVALUES", b"GETKEYS", b"UNBLOCK", b"TIMEOUT",
]


def test_random_commands_replay_to_the_same_data(tmp_path):
    rng = random.Random(7)
    with ServerProcess(tmp_path, "--save", "", "--appendonly", "yes") as srv:
        socks = [srv.raw() for _ in range(4)]
        ids = {}
        for sock in socks:
            sock.sendall(resp("CLIENT", "ID"))
            ids[sock] = int(sock.recv(100)[1:-2])
            sock.settimeout(0.5)
        admin = redis.Redis(port=srv.port)
        for _ in range(4000):
            sock = rng.choice(socks)
            name = rng.choice(COMMANDS)
            args = [name.encode()] + [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
            if name in ("BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"):
                args.append(rng.choice([b"0.01", b"-1", b"x"]))
            sock.sendall(resp(*args))
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                # Parked by a blocking pop with timeout 0: unblocked as by its
                # timeout (CLIENT UNBLOCK), then its reply comes.
                # (0 if it was only slow: then its reply is on its way.)
                admin.client_unblock(ids[sock])
                sock.settimeout(10)
                data = sock.recv(1 << 20)
                sock.settimeout(0.5)
            assert b"internal error" not in data, (args, data)
            assert data, args   # the server never closes a client for bad arguments
        admin.close()
        client = redis.Redis(port=srv.port)
        assert client.ping()
        digest = client.execute_command("DEBUG", "DIGEST")
        keys = client.dbsize()
        print("random writes: %d keys left in db 0, digest %s" % (keys, digest.decode()))
        assert digest != b"0" * 40   # something survived to be compared
        client.close()
        for sock in socks:
            sock.close()
    with ServerProcess(tmp_path, "--save", "", "--appendonly", "yes") as again:
        client = redis.Redis(port=again.port)
        assert client.execute_command("DEBUG", "DIGEST") == digest
        assert client.dbsize() == keys
        client.close()
