"""Random commands (many with bad arguments) from several clients on a
primary, with a replica attached: at the end the replica's data is the
primary's to the digest (DEBUG DIGEST), across the commands whose effect
is replicated instead of the command (SPOP, INCRBYFLOAT, relative expiries,
blocking pops, MULTI/EXEC...), a link cut in the middle (a partial
resync) and a full sync taken while the writes go on."""

import random
import socket
import time

import redis

from conftest import ServerProcess, add_user, resp
from test_random_writes import COMMANDS, WORDS


def _link_up(client) -> bool:
    return client.info("replication").get("master_link_status") == "up"


def _wait_for(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _random_commands(rng, socks, ids, admin, count: int) -> None:
    for _ in range(count):
        sock = rng.choice(socks)
        name = rng.choice(COMMANDS)
        args = [name.encode()] + [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
        if name in ("BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"):
            args.append(rng.choice([b"0.01", b"-1", b"x"]))
        sock.sendall(resp(*args))
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:   # parked by a blocking pop with timeout 0 (see test_random_writes)
            admin.client_unblock(ids[sock])
            sock.settimeout(10)
            data = sock.recv(1 << 20)
            sock.settimeout(0.5)
        assert b"internal error" not in data, (args, data)
        if rng.random() < 0.03:   # a transaction and a script that write, now and then
            pipe = admin.pipeline(transaction=True)
            pipe.sadd("tx-set", rng.choice(WORDS)).spop("tx-set").incrbyfloat("tx-f", 1.5)
            pipe.execute(raise_on_error=False)
            admin.eval("redis.call('lpush', 'tx-l', ARGV[1]) return redis.call('rpop', 'tx-l')",
                       0, rng.choice(WORDS))


def test_random_commands_reach_the_replica_to_the_digest(tmp_path):
    rng = random.Random(11)
    primary_dir, replica_dir = tmp_path / "primary", tmp_path / "replica"
    primary_dir.mkdir()
    replica_dir.mkdir()
    add_user(primary_dir, "root", "root-pw", "--root")
    add_user(replica_dir, "root", "other-pw", "--root")
    with ServerProcess(primary_dir, "--save", "") as primary:
        socks = [primary.raw() for _ in range(4)]
        ids = {}
        for sock in socks:
            sock.sendall(resp("CLIENT", "ID"))
            ids[sock] = int(sock.recv(100)[1:-2])
            sock.settimeout(0.5)
        admin = redis.Redis(port=primary.port)
        _random_commands(rng, socks, ids, admin, 1500)   # before the replica: in its full sync
        with ServerProcess(replica_dir, "--save", "", "--replicaof", "127.0.0.1 %d" % primary.port,
                           "--masteruser", "root", "--masterauth", "root-pw") as replica:
            mirror = redis.Redis(port=replica.port)
            _random_commands(rng, socks, ids, admin, 1500)   # during and after the sync
            _wait_for(lambda: _link_up(mirror))
            # The link cut: the replica continues from its offset (partial).
            admin.execute_command("CLIENT", "KILL", "TYPE", "replica")
            _random_commands(rng, socks, ids, admin, 1500)
            _wait_for(lambda: _link_up(mirror))
            assert admin.execute_command("WAIT", 1, 5000) == 1
            digest = admin.execute_command("DEBUG", "DIGEST")
            assert digest != b"0" * 40   # something survived to be compared
            _wait_for(lambda: mirror.execute_command("DEBUG", "DIGEST") == digest, 5)
            assert mirror.dbsize() == admin.dbsize()
            stats = admin.info("stats")
            assert stats["sync_full"] == 1 and stats["sync_partial_ok"] == 1, stats
            mirror.close()
        admin.close()
        for sock in socks:
            sock.close()
