"""The Prometheus endpoint (issue 19, server/metrics.py): scraped over real
HTTP and parsed with prometheus_client's own parser; per-tenant series after
known traffic, the cap on tenants (top N + "other"), basic auth, bad
requests; Debian's prometheus-redis-exporter against tenantkv; the Grafana
dashboard in contrib/grafana/."""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import WRONGPASS, ServerProcess, add_user, exchange, free_port, login, resp

ROOT_PASSWORD = "metrics-root-secret"
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "contrib", "grafana", "tenantkv.json")


def metrics_server(data_dir, users: dict, *flags: str, env: dict | None = None) -> ServerProcess:
    """A server that requires AUTH, with root and `users`, and the metrics
    endpoint on a free port (proc.metrics_port)."""
    add_user(data_dir, "root", ROOT_PASSWORD, "--root")
    for name, password in users.items():
        add_user(data_dir, name, password)
    port = free_port()
    proc = ServerProcess(data_dir, "--metrics-port", str(port), *flags,
                         env={"TENANTKV_AUTH__DEFAULT_USER": "off", **(env or {})},
                         passwords={"root": ROOT_PASSWORD, **users})
    proc.metrics_port = port
    wait_http(port, proc)
    return proc


def wait_http(port: int, proc: ServerProcess) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.alive()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("metrics endpoint did not listen")


def fetch(port: int, path: str = "/metrics", auth: tuple | None = None):
    """(status, headers, body text) of a GET."""
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if auth is not None:
        token = base64.b64encode(("%s:%s" % auth).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def scrape(port: int, auth: tuple | None = None) -> dict:
    """{(sample name, frozenset of label items): value} of one scrape."""
    status, headers, body = fetch(port, auth=auth)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels):
    return samples.get((name, frozenset(labels.items())))


def tenant_labels(samples: dict) -> set:
    return {dict(labels)["tenant"] for name, labels in samples
            if name == "tenantkv_tenant_keys"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with metrics_server(tmp_path_factory.mktemp("metrics"), USERS) as proc:
        yield proc


def test_two_tenants_series_after_known_traffic(srv):
    root = login(srv, "root")
    alice = login(srv, "alice")
    bob = login(srv, "bob")
    # (After bob's login: a quota set on a tenant not made yet does not
    # turn the memory accounting on when the tenant comes; a separate issue.)
    root.execute_command("ACL", "SETUSER", "bob", "quota:keys=3")
    for i in range(3):
        alice.set("a%d" % i, "x")
    alice.get("a0")
    alice.get("missing")
    with pytest.raises(Exception, match="WRONGTYPE"):
        alice.lpush("a0", "y")
    for i in range(5):
        bob.incr("counter")
    bob.set("b1", "x")
    bob.set("b2", "x")
    with pytest.raises(Exception, match="'keys' quota"):
        bob.set("b3", "x")   # a 4th key: over bob's keys quota of 3
    # A rejected AUTH on a connection of alice's (raw: redis-py would retry).
    sock = srv.raw()
    exchange(sock, resp("AUTH", "alice", USERS["alice"]), b"+OK\r\n")
    exchange(sock, resp("AUTH", "alice", "not-her-password"), WRONGPASS)
    sock.close()

    s = scrape(srv.metrics_port)
    assert value(s, "tenantkv_tenant_commands_total", tenant="alice", command="set") == 3
    assert value(s, "tenantkv_tenant_commands_total", tenant="alice", command="get") == 2
    assert value(s, "tenantkv_tenant_commands_failed_total", tenant="alice", command="lpush") == 1
    assert value(s, "tenantkv_tenant_errors_total", tenant="alice", prefix="WRONGTYPE") == 1
    assert value(s, "tenantkv_tenant_errors_total", tenant="alice", prefix="WRONGPASS") == 1
    assert value(s, "tenantkv_tenant_auth_failures_total", tenant="alice") == 1
    assert value(s, "tenantkv_tenant_keys", tenant="alice") == 3
    assert value(s, "tenantkv_tenant_connected_clients", tenant="alice") == 1
    assert value(s, "tenantkv_tenant_connections_total", tenant="alice") == 2
    assert value(s, "tenantkv_tenant_quota_refusals_total", tenant="alice", quota="keys") == 0

    assert value(s, "tenantkv_tenant_commands_total", tenant="bob", command="incrby") == 5   # redis-py sends INCRBY
    assert value(s, "tenantkv_tenant_commands_total", tenant="bob", command="set") == 3
    assert value(s, "tenantkv_tenant_commands_rejected_total", tenant="bob", command="set") is None
    assert value(s, "tenantkv_tenant_keys", tenant="bob") == 3
    assert value(s, "tenantkv_tenant_quota", tenant="bob", quota="keys") == 3
    assert value(s, "tenantkv_tenant_quota", tenant="alice", quota="keys") == 0
    assert value(s, "tenantkv_tenant_quota_refusals_total", tenant="bob", quota="keys") == 1
    # The keys quota turns the memory accounting on: bob's data is counted.
    assert value(s, "tenantkv_tenant_memory_used_bytes", tenant="bob") > 0
    assert value(s, "tenantkv_tenant_auth_failures_total", tenant="bob") == 0
    # No traffic of one tenant shows in the other's series.
    assert value(s, "tenantkv_tenant_commands_total", tenant="bob", command="get") is None
    assert value(s, "tenantkv_tenant_commands_total", tenant="alice", command="incrby") is None

    # Server-wide series.
    assert value(s, "tenantkv_keys") == 6
    assert value(s, "tenantkv_connected_clients") == 3
    assert value(s, "tenantkv_commands_total", command="incrby") == 5
    assert value(s, "tenantkv_errors_total", prefix="WRONGTYPE") == 1
    assert value(s, "tenantkv_uptime_seconds") > 0
    assert value(s, "tenantkv_persistence_rdb_last_bgsave_status") == 1
    assert value(s, "tenantkv_tenants_other") == 0

    # Slow commands: every command is slow for a moment; alice's two PINGs
    # are hers, none is bob's.
    slow_before = {t: value(s, "tenantkv_tenant_slow_commands_total", tenant=t)
                   for t in ("alice", "bob")}
    root.config_set("slowlog-log-slower-than", 0)
    try:
        alice.ping()
        alice.ping()
    finally:
        root.config_set("slowlog-log-slower-than", 10000)
    s = scrape(srv.metrics_port)
    assert value(s, "tenantkv_tenant_slow_commands_total", tenant="alice") == slow_before["alice"] + 2
    assert value(s, "tenantkv_tenant_slow_commands_total", tenant="bob") == slow_before["bob"]
    for client in (root, alice, bob):
        client.close()


def test_counters_follow_more_traffic_and_disconnects(srv):
    alice = login(srv, "alice")
    before = scrape(srv.metrics_port)
    for _ in range(7):
        alice.ping()
    alice.close()
    deadline = time.monotonic() + 10
    while True:
        after = scrape(srv.metrics_port)
        if value(after, "tenantkv_tenant_connected_clients", tenant="alice") == 0 \
                or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value(after, "tenantkv_tenant_connected_clients", tenant="alice") == 0
    assert (value(after, "tenantkv_tenant_commands_total", tenant="alice", command="ping")
            - (value(before, "tenantkv_tenant_commands_total", tenant="alice", command="ping")
               or 0)) == 7
    assert value(after, "tenantkv_scrapes_total") > value(before, "tenantkv_scrapes_total")


def test_cardinality_cap_top_n_plus_other(tmp_path):
    users = {"user%d" % i: "pw-%d" % i for i in range(6)}
    with metrics_server(tmp_path, users, "--metrics-max-tenants", "3") as proc:
        # user i runs 100 + 50 i PINGs: users 5, 4, 3 are the most active,
        # far ahead of root's own few commands.
        for i in range(6):
            client = login(proc, "user%d" % i)
            pipe = client.pipeline(transaction=False)
            for _ in range(100 + 50 * i):
                pipe.ping()
            pipe.set("k", "v")
            pipe.execute()
            client.close()
        s = scrape(proc.metrics_port)
        assert tenant_labels(s) == {"user5", "user4", "user3", "other"}
        # The others are summed: users 0-2 (login() PINGs once), and the
        # idle default tenant of connections that never logged in.
        assert value(s, "tenantkv_tenant_commands_total", tenant="other", command="ping") \
            == sum(100 + 50 * i + 1 for i in range(3))
        assert value(s, "tenantkv_tenant_keys", tenant="other") == 3
        assert value(s, "tenantkv_tenants_other") == value(s, "tenantkv_tenants") - 3
        assert value(s, "tenantkv_tenant_commands_total", tenant="user5", command="ping") == 351

        # The cap is a runtime setting; 0: every tenant is "other".
        root = login(proc, "root")
        root.config_set("metrics-max-tenants", "0")
        assert tenant_labels(scrape(proc.metrics_port)) == {"other"}
        root.config_set("metrics-max-tenants", "100")
        labels = tenant_labels(scrape(proc.metrics_port))
        assert {"user%d" % i for i in range(6)} | {"root"} <= labels
        assert "other" not in labels or value(scrape(proc.metrics_port), "tenantkv_tenants_other")
        with pytest.raises(Exception, match="metrics-max-tenants"):
            root.config_set("metrics-max-tenants", "-1")
        with pytest.raises(Exception, match="metrics-port"):
            root.config_set("metrics-port", "1234")   # set at start only
        root.close()


def test_basic_auth(tmp_path):
    env = {"TENANTKV_METRICS__USER": "prom", "TENANTKV_METRICS__PASSWORD": "scrape-secret-pw"}
    with metrics_server(tmp_path, {}, env=env) as proc:
        status, headers, _ = fetch(proc.metrics_port)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="tenantkv"'
        assert fetch(proc.metrics_port, auth=("prom", "wrong"))[0] == 401
        assert fetch(proc.metrics_port, auth=("other", "scrape-secret-pw"))[0] == 401
        s = scrape(proc.metrics_port, auth=("prom", "scrape-secret-pw"))
        assert value(s, "tenantkv_connected_clients") is not None
        # The password is never shown: not in CONFIG GET, not in the log.
        root = login(proc, "root")
        shown = root.config_get("*")
        assert "scrape-secret-pw" not in json.dumps(shown)
        assert shown["metrics-port"] == str(proc.metrics_port)
        root.close()
    with open(proc.log_path, "rb") as handle:
        assert b"scrape-secret-pw" not in handle.read()


def test_bad_requests_get_errors_and_the_server_stays_up(srv):
    port = srv.metrics_port
    assert fetch(port, "/nope")[0] == 404

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    assert raw(b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert raw(b"HEAD /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    # A head over the limit (8 KB) is dropped, unanswered.
    assert raw(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n") == b""
    # Connections that send nothing do not lock the scraper out: more than
    # the endpoint's limit (16) of them open, and a scrape still works (the
    # oldest idle one makes room).
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        assert value(scrape(port), "tenantkv_uptime_seconds") > 0
        assert value(scrape(port), "tenantkv_uptime_seconds") > 0
        client = login(srv, "alice")
        assert client.ping()
        client.close()
    finally:
        for sock in idle:
            sock.close()
    assert srv.alive()


def test_off_by_default(make_server):
    proc = make_server()
    assert proc.client().config_get("metrics-port") == {"metrics-port": "0"}
    assert proc.client().config_get("metrics-max-tenants") == {"metrics-max-tenants": "100"}


EXPORTER = shutil.which("prometheus-redis-exporter") or shutil.which("redis_exporter")


@pytest.mark.skipif(EXPORTER is None, reason="prometheus-redis-exporter is not installed "
                    "(Debian: `make redis-tools` installs it)")
def test_redis_exporter_against_tenantkv(srv):
    root = login(srv, "root")
    root.set("exported", "1")
    root.set("with-ttl", "1", ex=1000)
    root.close()
    port = free_port()
    # The password by environment (REDIS_PASSWORD), as a service would
    # pass it; -redis.password-file is a JSON map in this version.
    exporter = subprocess.Popen(
        [EXPORTER, "-redis.addr", "redis://127.0.0.1:%d" % srv.port, "-redis.user", "root",
         "-web.listen-address", "127.0.0.1:%d" % port],
        env={**os.environ, "REDIS_PASSWORD": ROOT_PASSWORD},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        body = None
        while time.monotonic() < deadline:
            try:
                status, _, body = fetch(port)
                if status == 200 and "redis_up" in body:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert body is not None
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        assert value(samples, "redis_up") == 1
        assert value(samples, "redis_db_keys", db="db0") == 2
        assert value(samples, "redis_db_keys_expiring", db="db0") == 1
        assert value(samples, "redis_commands_total", cmd="set") >= 2
        assert value(samples, "redis_connected_clients") >= 1
        assert value(samples, "redis_commands_processed_total") > 0
    finally:
        exporter.terminate()
        exporter.wait(10)
    assert srv.alive()


def test_grafana_dashboard_is_valid_with_the_expected_panels():
    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Server overview", "Tenant: $tenant"]
    titles = {p["title"] for p in panels if p["type"] != "row"}
    for wanted in ("Ops/s by tenant", "Errors/s by tenant", "Memory vs quota",
                   "Connections", "Slow commands", "Keys", "Quota refusals"):
        assert any(wanted in title for title in titles), wanted
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    query = variables["tenant"]["query"]["query"]
    assert query.startswith("label_values(tenantkv_tenant_keys") and query.endswith(", tenant)")
    # Every query names series the endpoint exports.
    exported = {
        "tenantkv_tenant_commands_total", "tenantkv_tenant_commands_failed_total",
        "tenantkv_tenant_commands_rejected_total", "tenantkv_tenant_errors_total",
        "tenantkv_tenant_keys", "tenantkv_tenant_memory_used_bytes",
        "tenantkv_tenant_connected_clients", "tenantkv_tenant_connections_total",
        "tenantkv_tenant_auth_failures_total", "tenantkv_tenant_quota_refusals_total",
        "tenantkv_tenant_quota", "tenantkv_tenant_slow_commands_total",
        "tenantkv_connected_clients", "tenantkv_commands_processed_total",
        "tenantkv_error_replies_total", "tenantkv_memory_used_bytes", "tenantkv_memory_rss_bytes",
        "tenantkv_memory_max_bytes", "tenantkv_keys", "tenantkv_keys_expiring",
        "tenantkv_expired_keys_total", "tenantkv_evicted_keys_total", "tenantkv_uptime_seconds",
        "tenantkv_tenants", "tenantkv_persistence_rdb_changes_since_last_save",
        "tenantkv_persistence_rdb_last_save_time", "tenantkv_auth_failures_total",
        "tenantkv_scrape_previous_duration_seconds", "tenantkv_errors_total",
        "tenantkv_commands_total",
    }
    for panel in panels:
        for target in panel.get("targets", []):
            names = set(re.findall(r"tenantkv_[a-z_]+", target["expr"]))
            assert names and names <= exported, (panel["title"], names - exported)
