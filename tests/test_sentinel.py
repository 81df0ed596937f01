"""Automatic failover driven by the real Redis Sentinel (issue 20's first
done-when point): 1 primary + 2 replicas + 3 sentinels on loopback, writes of
two tenants acknowledged by WAIT, the primary SIGKILLed; Sentinel promotes a
replica, redis-py's Sentinel client finds it, every acknowledged write is there,
each tenant still sees only its own keys, and the old primary, restarted,
rejoins as a replica and converges, dropping a write it took alone.

The sentinels are Debian's `redis-server --sentinel`, unchanged, with their
timeouts set low so the test stays bounded. The same test runs against
redis-server nodes (TENANTKV_SENTINEL_REFERENCE=1) to show its expectations
are Redis's own; only the node start differs."""

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib

import pytest
import redis
from redis.sentinel import Sentinel

from compat import harness
from conftest import free_port, terminate, wait_for_port

ROOT_PW = "root-sentinel-pw"
SENTINEL_PW = "sentinels-own-pw"   # the sentinels' port, as the README's setup
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
MASTER = "mymaster"


def _redis_server() -> str | None:
    return harness.redis_server_path()


def until(check, timeout: float, what: str, interval: float = 0.1):
    """check() until it returns something true (its value is returned);
    errors of a node that is down or changing role count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


class Node:
    """One data node: tenantkv, or redis-server as the reference. Started with
    a config file of its own that CONFIG REWRITE (Sentinel's failover
    transaction) rewrites; restartable on the same port, dir and file."""

    def __init__(self, kind: str, directory, replicaof: int | None = None,
                 replication: bool = True) -> None:
        self.kind = kind
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "node.log")
        if kind == "tenantkv":
            self.conf = os.path.join(self.dir, "node.toml")
            # Every node, the primary too: any of them may be made a replica.
            lines = ["[replication]", 'masteruser = "root"', 'masterauth = "%s"' % ROOT_PW]
            if not replication:   # a node that is only watched, never a replica
                lines = ["[server]"]
            elif replicaof is not None:
                lines.append('replicaof = "127.0.0.1 %d"' % replicaof)
        else:
            self.conf = os.path.join(self.dir, "node.conf")
            # Redis does not replicate ACLs: every reference node has the users.
            lines = ["user default off", "user root on >%s ~* &* +@all" % ROOT_PW,
                     "masteruser root", "masterauth %s" % ROOT_PW, "save \"\"",
                     "appendonly yes"]
            lines += ["user %s on >%s ~* &* +@all" % item for item in USERS.items()]
            if replicaof is not None:
                lines.append("replicaof 127.0.0.1 %d" % replicaof)
        with open(self.conf, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self.start()

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        if self.kind == "tenantkv":
            env = {**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "off",
                   "TENANTKV_ROOT_PASSWORD": ROOT_PW}
            argv = [sys.executable, "-m", "tenantkv", self.conf, "--port", str(self.port),
                    "--dir", self.dir, "--loglevel", "verbose"]
        else:
            env = dict(os.environ)
            argv = [_redis_server(), self.conf, "--port", str(self.port), "--dir", self.dir,
                    "--bind", "127.0.0.1", "--loglevel", "verbose"]
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_for_port(self.port, self.process)

    def client(self, user: str = "root", password: str = ROOT_PW, **kwargs) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 5)
        return redis.Redis(port=self.port, username=user, password=password, **kwargs)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()

    def replication(self) -> dict:
        with self.client() as client:
            return client.info("replication")

    def configured_master(self):
        """The primary the config file names (CONFIG REWRITE keeps it), or None."""
        if self.kind == "tenantkv":
            with open(self.conf, "rb") as handle:
                text = tomllib.load(handle).get("replication", {}).get("replicaof", "")
        else:
            with open(self.conf) as handle:
                found = [line.split(None, 1)[1] for line in handle
                         if line.lower().startswith(("replicaof ", "slaveof "))]
            text = found[-1] if found else ""
        if not text.strip():
            return None
        host, port = text.split()
        return host, int(port)


class SentinelProcess:
    """`redis-server <conf> --sentinel` with a writable conf of its own (Sentinel
    rewrites it with what it learns)."""

    def __init__(self, directory, master_port: int) -> None:
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        self.log_path = os.path.join(self.dir, "sentinel.log")
        with open(self.conf, "w") as handle:
            handle.write("\n".join([
                "port %d" % self.port,
                "bind 127.0.0.1",
                "daemonize no",
                "dir %s" % self.dir,
                "logfile %s" % self.log_path,
                "loglevel verbose",
                "sentinel resolve-hostnames no",
                "sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, master_port),
                "sentinel auth-user %s root" % MASTER,
                "sentinel auth-pass %s %s" % (MASTER, ROOT_PW),
                # Low timeouts keep the test bounded: down after 2 s of silence,
                # a failover that stalls is retried after 6 s. Not 1 s: Sentinel
                # pings a new link only after 1 s (its ping period), so a primary
                # it has just switched to can look down to it at 1 s and be
                # failed over again at once (seen with redis-server nodes).
                "sentinel down-after-milliseconds %s 2000" % MASTER,
                "sentinel failover-timeout %s 6000" % MASTER,
                "sentinel parallel-syncs %s 2" % MASTER,
                "requirepass %s" % SENTINEL_PW,
                "sentinel sentinel-pass %s" % SENTINEL_PW,
            ]) + "\n")
        self.process = subprocess.Popen([_redis_server(), self.conf, "--sentinel"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=SENTINEL_PW, socket_timeout=5,
                           decode_responses=True)

    def master_addr(self) -> tuple:
        with self.client() as client:
            host, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return host, int(port)

    def stop(self) -> None:
        terminate(self.process)


def _kinds():
    kinds = ["tenantkv"]
    if os.environ.get("TENANTKV_SENTINEL_REFERENCE"):
        kinds.insert(0, "redis")
    return kinds


@pytest.fixture(params=_kinds())
def cluster(request, tmp_path):
    if _redis_server() is None:
        pytest.skip("redis-server is not installed (`make redis-tools`)")
    kind = request.param
    nodes, sentinels = [], []
    try:
        primary = Node(kind, tmp_path / "n0")
        nodes.append(primary)
        for index in (1, 2):
            nodes.append(Node(kind, tmp_path / ("n%d" % index), replicaof=primary.port))
        # Both replicas attached and in sync before Sentinel looks.
        until(lambda: primary.replication().get("connected_slaves") == 2
              and all(primary.replication()["slave%d" % i]["state"] == "online" for i in (0, 1)),
              30, "two replicas online")
        for index in range(3):
            sentinels.append(SentinelProcess(tmp_path / ("s%d" % index), primary.port))
        yield kind, nodes, sentinels
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        for node in nodes:
            node.stop()


def _sentinels_ready(sentinels, master_port: int) -> bool:
    """Each sentinel knows both replicas and the two other sentinels (the
    latter through __sentinel__:hello on the nodes: pub/sub works there)."""
    for sentinel in sentinels:
        with sentinel.client() as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER)
            peers = client.execute_command("SENTINEL", "SENTINELS", MASTER)
        if len(replicas) != 2 or len(peers) != 2:
            return False
        for replica in replicas:
            fields = replica   # redis-py parses each into a dict
            if "s_down" in fields["flags"] or "disconnected" in fields["flags"]:
                return False
            # What Sentinel read in the replica's INFO replication (it picks
            # the replica to promote from these).
            if (fields["master-link-status"], fields["master-port"]) != ("ok", str(master_port)):
                return False
            assert fields["flags"] == "slave" and fields["slave-priority"] == "100", fields
            assert fields["replica-announced"] == "1", fields
    return True


def _tenant_keys(client) -> set:
    return set(client.keys("*"))


@pytest.mark.slow
def test_sentinel_failover_keeps_acknowledged_writes_and_tenants(cluster):
    kind, nodes, sentinels = cluster
    primary, replicas = nodes[0], nodes[1:]
    until(lambda: _sentinels_ready(sentinels, primary.port), 40,
          "the sentinels to see 2 replicas and 2 peers", interval=0.3)

    if kind == "tenantkv":
        with primary.client() as root:
            for name, password in USERS.items():
                root.execute_command("ACL", "SETUSER", name, "on", ">" + password)
    clients = {name: primary.client(name, password, single_connection_client=True)
               for name, password in USERS.items()}
    # Redis has one keyspace: the reference run prefixes each user's keys, so
    # the same checks hold (tenantkv needs no prefix: each user is a tenant).
    prefix = {name: (name + ":" if kind == "redis" else "") for name in USERS}
    acked = {name: {} for name in USERS}
    for i in range(40):
        for name, client in clients.items():
            key, value = "%skey:%d" % (prefix[name], i), "%s-%d" % (name, i)
            client.set(key, value)
            client.hset("%shash" % prefix[name], str(i), value)
            if client.execute_command("WAIT", 1, 1000) >= 1:
                acked[name][key] = value
    for name in USERS:
        # On an idle loopback every write is acknowledged; far fewer means a broken WAIT.
        assert len(acked[name]) >= 30, acked[name]
    for client in clients.values():
        client.close()

    old = ("127.0.0.1", primary.port)
    assert sentinels[0].master_addr() == old
    primary.kill()

    # Sentinel promotes one of the replicas (every sentinel agrees in the end).
    new_addr = until(lambda: (lambda addr: addr != old and addr)(sentinels[0].master_addr()),
                     40, "a failover", interval=0.2)
    assert new_addr[1] in {node.port for node in replicas}
    until(lambda: all(s.master_addr() == new_addr for s in sentinels), 20,
          "every sentinel to name the new primary")
    new_primary = next(node for node in replicas if node.port == new_addr[1])
    other_replica = next(node for node in replicas if node is not new_primary)
    until(lambda: new_primary.replication()["role"] == "master", 20, "the promoted node's role")

    # redis-py's Sentinel client finds the new primary and writes there.
    finder = Sentinel([("127.0.0.1", s.port) for s in sentinels], socket_timeout=5,
                      sentinel_kwargs={"socket_timeout": 5, "password": SENTINEL_PW})
    masters = {name: finder.master_for(MASTER, username=name, password=password,
                                       decode_responses=True, socket_timeout=5)
               for name, password in USERS.items()}
    for name, master in masters.items():
        key = "%safter" % prefix[name]
        until(lambda: master.set(key, name + "-after"), 30, "a write through master_for")
        acked[name][key] = name + "-after"
        assert master.connection_pool.get_master_address() == new_addr

    # Every acknowledged write of both tenants is on the new primary, and each
    # tenant sees only its own keys.
    for name, master in masters.items():
        for key, value in acked[name].items():
            assert master.get(key) == value, (name, key)
        keys = _tenant_keys(master)
        if kind == "tenantkv":
            # Both tenants wrote the same key names: each sees its own values only.
            assert keys <= {"key:%d" % i for i in range(40)} | {"hash", "after"}
            assert keys >= set(acked[name])
            values = master.mget(sorted(keys - {"hash"})) + master.hvals("hash")
            assert all(v.startswith(name + "-") for v in values), values
            assert master.hlen("hash") == 40
        else:
            assert {k for k in keys if k.startswith(name + ":")} >= set(acked[name])

    # The old primary comes back with its own dir and config: Sentinel turns
    # it into a replica of the new primary, and it converges.
    primary.start()
    # Until Sentinel demotes it (it waits a few seconds) the old primary is a
    # primary of its own: a write it takes there is divergent history that the
    # resync from the new primary must drop.
    with primary.client("alice", USERS["alice"], decode_responses=True) as stale:
        assert stale.set("%sdivergent" % prefix["alice"], "lost") is True

    def rejoined():
        info = primary.replication()
        return (info["role"] == "slave" and info["master_link_status"] == "up"
                and ("127.0.0.1", info["master_port"]) == sentinels[0].master_addr())

    until(rejoined, 40, "the old primary to rejoin as a replica", interval=0.3)
    with primary.client() as client:
        role = client.execute_command("ROLE")
    assert role[0] == b"slave" and (role[1].decode(), role[2]) == sentinels[0].master_addr()
    for name, master in masters.items():
        assert master.execute_command("WAIT", 2, 5000) == 2
    # Sentinel's CONFIG REWRITEs put every node's new role in its file.
    current = sentinels[0].master_addr()
    for node in nodes:
        expected = None if node.port == current[1] else current
        until(lambda: node.configured_master() == expected, 20,
              "the config of the node at %d to name %r" % (node.port, expected))
    for name, password in USERS.items():
        expected = {k: v for k, v in acked[name].items()}
        assert masters[name].get("%sdivergent" % prefix[name]) is None
        for node in (primary, other_replica):
            with node.client(name, password, decode_responses=True) as reader:
                assert reader.get("%sdivergent" % prefix[name]) is None
                until(lambda: all(reader.get(k) == v for k, v in expected.items()), 20,
                      "%s's writes on the replica at %d" % (name, node.port))
                if kind == "tenantkv":
                    assert _tenant_keys(reader) == _tenant_keys(masters[name])
    for master in masters.values():
        master.close()


# -- what Sentinel does on a node, besides replication ------------------------------

@pytest.fixture
def watched(tmp_path):
    """A tenantkv primary with user alice, watched by 2 sentinels."""
    if _redis_server() is None:
        pytest.skip("redis-server is not installed (`make redis-tools`)")
    node = Node("tenantkv", tmp_path / "n0", replication=False)
    sentinels = []
    try:
        with node.client() as root:
            root.execute_command("ACL", "SETUSER", "alice", "on", ">" + USERS["alice"])
        for index in range(2):
            sentinels.append(SentinelProcess(tmp_path / ("s%d" % index), node.port))
        yield node, sentinels
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        node.stop()


def _master_state(sentinel) -> dict:
    with sentinel.client() as client:
        return client.execute_command("SENTINEL", "MASTER", MASTER)


def test_sentinels_watch_a_tenantkv_node_from_roots_tenant(watched):
    """Sentinel logs in as its auth-user (root), names its links (CLIENT
    SETNAME), reads INFO's run_id and finds the other sentinels through
    __sentinel__:hello on the node: that channel lives in root's tenant and
    no other tenant sees it or Sentinel's clients."""
    node, sentinels = watched
    with node.client() as root:
        run_id = root.info("server")["run_id"]

    def healthy():
        for sentinel in sentinels:
            state = _master_state(sentinel)
            if state["flags"] != "master" or int(state["num-other-sentinels"]) != 1 \
                    or state["runid"] != run_id:
                return False
        return True

    until(healthy, 30, "both sentinels to see the node and each other", interval=0.3)
    with node.client(decode_responses=True) as root:
        names = [c["name"] for c in root.client_list() if c["name"].startswith("sentinel-")]
        assert sorted(n.rsplit("-", 1)[1] for n in names) == ["cmd", "cmd", "pubsub", "pubsub"]
        assert sorted(c["name"] for c in root.client_list(_type="pubsub")) == \
            sorted(n for n in names if n.endswith("-pubsub"))
        assert "__sentinel__:hello" in root.pubsub_channels()
    with node.client("alice", USERS["alice"], decode_responses=True,
                     single_connection_client=True) as alice:
        assert alice.pubsub_channels() == []
        assert [c["user"] for c in alice.client_list()] == ["alice"]
        assert alice.publish("__sentinel__:hello", "forged") == 0


def test_sentinels_failover_transaction_runs_on_tenantkv(watched):
    """Sentinel's reconfiguration, in its order, without the replication
    command: CONFIG REWRITE and both CLIENT KILLs run inside EXEC; the kills
    cut the other clients of every tenant (their clients must ask Sentinel
    again, as with Redis) but not the caller; the sentinels come back."""
    node, sentinels = watched
    until(lambda: all(int(_master_state(s)["num-other-sentinels"]) == 1 for s in sentinels), 30,
          "the sentinels to find each other", interval=0.3)
    alice = node.client("alice", USERS["alice"], single_connection_client=True)
    alice_id = alice.client_id()
    with node.client(single_connection_client=True) as root:
        pipe = root.pipeline(transaction=True)
        pipe.execute_command("CONFIG", "REWRITE")
        pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        rewrite, normal, pubsub = pipe.execute()
        assert rewrite in (True, b"OK")
        assert normal >= 3   # the 2 sentinels' command links and alice
        assert pubsub == 2   # the 2 sentinels' hello subscriptions
        assert root.ping()
        assert alice_id not in {int(c["id"]) for c in root.client_list()}   # cut
    alice.close()
    with node.client(decode_responses=True) as root:
        until(lambda: len(root.client_list(_type="pubsub")) == 2, 20,
              "the sentinels to subscribe again")
    until(lambda: all(_master_state(s)["flags"] == "master" for s in sentinels), 20,
          "the sentinels to see the node again")


# A script that reads TIME now and then until ARGV[1] seconds have passed
# (longer than down-after-milliseconds, 2 s), writing nothing.
SPIN = """
local start = redis.call('TIME')
local n = 0
while true do
    n = n + 1
    if n % 20000 == 0 then
        local now = redis.call('TIME')
        if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > ARGV[1] * 1000000 then
            return n
        end
    end
end
"""


def test_a_tenants_long_script_does_not_look_like_a_dead_node(watched):
    """In Redis a long script makes PING answer -BUSY and Sentinel sends
    SCRIPT KILL, then calls the node down if it cannot be killed. Here a
    script holds only its own tenant: Sentinel's PINGs, in root's tenant,
    keep being answered, so no sentinel flags the node and the script runs
    to its end."""
    node, sentinels = watched
    until(lambda: all(int(_master_state(s)["num-other-sentinels"]) == 1 for s in sentinels), 30,
          "the sentinels to find each other", interval=0.3)
    result = {}

    def spin():
        with node.client("alice", USERS["alice"], socket_timeout=30) as alice:
            result["reply"] = alice.eval(SPIN, 0, 4)

    thread = threading.Thread(target=spin)
    started = time.monotonic()
    thread.start()
    flags = set()
    with node.client(single_connection_client=True) as root:
        while thread.is_alive() and time.monotonic() - started < 30:
            assert root.ping()   # root's tenant is served while alice's is held
            flags.update(_master_state(s)["flags"] for s in sentinels)
            time.sleep(0.2)
    thread.join(30)
    assert time.monotonic() - started >= 4
    assert result["reply"] > 0           # ran to its end: nobody killed it
    assert flags == {"master"}           # never s_down to any sentinel
    for sentinel in sentinels:
        with open(sentinel.log_path) as log:
            assert "+sdown" not in log.read()


def test_client_kill_normal_and_pubsub_spare_replica_links(tmp_path):
    """Sentinel's transaction kills every normal and pub/sub client of a node
    it reconfigures; a replica's link to it is neither (type slave, flag S),
    so the replicas stay attached. CLIENT KILL TYPE replica (or slave) does
    cut them, and the replica comes back by itself."""
    primary = Node("tenantkv", tmp_path / "n0")
    replica = Node("tenantkv", tmp_path / "n1", replicaof=primary.port)
    try:
        until(lambda: primary.replication().get("slave0", {}).get("state") == "online", 30,
              "the replica online")
        with primary.client(decode_responses=True, single_connection_client=True) as root:
            links = root.client_list(_type="replica")
            assert len(links) == 1 and "S" in links[0]["flags"]
            slaves = root.execute_command("CLIENT", "LIST", "TYPE", "slave")
            assert [line.split()[0] for line in slaves.splitlines()] == ["id=" + links[0]["id"]]
            assert links[0]["id"] not in {c["id"] for c in root.client_list(_type="normal")}
            pipe = root.pipeline(transaction=True)
            pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
            pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            pipe.execute()
            assert [c["id"] for c in root.client_list(_type="replica")] == [links[0]["id"]]
            root.set("after-kill", "1")
            assert root.wait(1, 5000) == 1
            # A tenant sees and reaches only its own clients: not the link.
            root.execute_command("ACL", "SETUSER", "alice", "on", ">" + USERS["alice"])
            with primary.client("alice", USERS["alice"], decode_responses=True) as alice:
                assert alice.execute_command("CLIENT", "LIST", "TYPE", "replica") == ""
                assert alice.execute_command("CLIENT", "KILL", "TYPE", "replica") == 0
                with pytest.raises(redis.ResponseError):
                    alice.execute_command("SLAVEOF", "NO", "ONE")
            assert [c["id"] for c in root.client_list(_type="replica")] == [links[0]["id"]]
            assert root.execute_command("CLIENT", "KILL", "TYPE", "replica") == 1
            until(lambda: root.client_list(_type="replica")
                  and root.client_list(_type="replica")[0]["id"] != links[0]["id"]
                  and primary.replication()["slave0"]["state"] == "online", 30,
                  "the replica to come back")
            root.set("after-reconnect", "1")
            assert root.wait(1, 5000) == 1
        with replica.client(decode_responses=True) as reader:
            assert reader.get("after-reconnect") == "1"
    finally:
        replica.stop()
        primary.stop()


def test_sentinel_kills_a_script_of_its_own_tenant(watched):
    """A long script in Sentinel's own tenant (root's) holds its PINGs: past
    busy-reply-threshold they get -BUSY, Sentinel flags the node down and
    sends SCRIPT KILL, as with Redis; the script ends with Redis's error and
    the node is up again for the sentinels."""
    node, sentinels = watched
    until(lambda: all(int(_master_state(s)["num-other-sentinels"]) == 1 for s in sentinels), 30,
          "the sentinels to find each other", interval=0.3)
    with node.client() as root:
        root.config_set("busy-reply-threshold", 500)
    started = time.monotonic()
    with node.client(socket_timeout=60) as root:
        with pytest.raises(redis.ResponseError, match="Script killed by user with SCRIPT KILL"):
            root.eval(SPIN, 0, 40)
    assert time.monotonic() - started < 30   # killed, long before its 40 s
    with node.client() as root:   # the kill came from a sentinel: the test sent none
        assert root.info("commandstats")["cmdstat_script|kill"]["calls"] >= 1
    until(lambda: all(_master_state(s)["flags"] == "master" for s in sentinels), 20,
          "the sentinels to see the node up again")
