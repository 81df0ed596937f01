"""CONFIG REWRITE: the current settings back into the TOML file the server
started from, comments and order kept; refused as Redis without a file."""

import os
import tomllib

import pytest
import redis

from conftest import ServerProcess

CONFIG = """\
# The operator's header comment.
[network]
timeout = 0                 # close idle clients (kept comment)

[limits]
maxmemory = "1gb"           # memory limit
client_query_buffer_limit = "1gb"

[auth]
root_password = "first-Start-Secret-77"   # never rewritten

# The article's spelling of data.dir:
[server.db]
backup_interval = 3600
"""


def test_without_a_config_file_as_redis(make_server, redis_server):
    server = make_server()
    with pytest.raises(redis.ResponseError) as ours:
        server.client().execute_command("CONFIG", "REWRITE")
    with pytest.raises(redis.ResponseError) as theirs:
        redis.Redis(port=redis_server.port).execute_command("CONFIG", "REWRITE")
    assert str(ours.value) == str(theirs.value) == "The server is running without a config file"


def test_rewrite_keeps_comments_and_round_trips(tmp_path, make_server):
    path = tmp_path / "tenantkv.toml"
    path.write_text(CONFIG)
    os.chmod(path, 0o640)
    server = make_server("--config", str(path))
    client = server.client()
    client.config_set("timeout", 30)
    client.config_set("maxmemory-policy", "allkeys-lru")     # not in the file: added
    client.config_set("hash-max-listpack-entries", 77)      # a Redis-only parameter
    client.config_set("notify-keyspace-events", "Ex")
    client.config_set("client-output-buffer-limit", "pubsub 1mb 512kb 30")
    assert client.execute_command("CONFIG", "REWRITE") == b"OK"
    text = path.read_text()
    assert os.stat(path).st_mode & 0o777 == 0o640
    for kept in ("# The operator's header comment.", "# close idle clients (kept comment)",
                 "# memory limit", 'maxmemory = "1gb"', 'root_password = "first-Start-Secret-77"',
                 "# The article's spelling of data.dir:", "backup_interval = 3600"):
        assert kept in text
    document = tomllib.loads(text)
    assert document["network"]["timeout"] == 30
    assert document["limits"]["maxmemory_policy"] == "allkeys-lru"
    assert document["redis"]["hash-max-listpack-entries"] == 77
    assert "backup_interval" not in document.get("auth", {})   # written where it was
    assert "default_user" not in document["auth"]   # immutable: the environment's, not baked in
    server.stop()

    # (the same port: --port is a current setting, rewritten like the others)
    again = make_server("--config", str(path), port=server.port)
    got = again.client().config_get("*")
    assert got["timeout"] == "30"
    assert got["maxmemory"] == str(1024**3)
    assert got["maxmemory-policy"] == "allkeys-lru"
    assert got["hash-max-listpack-entries"] == "77"
    assert got["notify-keyspace-events"] == "xE"
    assert got["client-output-buffer-limit"] == (
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 30")
    # Nothing changed: a second rewrite leaves the file byte for byte.
    assert again.client().execute_command("CONFIG", "REWRITE") == b"OK"
    assert path.read_text() == text


def test_rewrite_failure_is_an_error_and_the_server_stays(tmp_path, make_server):
    path = tmp_path / "conf" / "tenantkv.toml"
    path.parent.mkdir()
    path.write_text("[network]\ntimeout = 0\n")
    server = make_server("--config", str(path))
    client = server.client()
    path.unlink()
    path.parent.rmdir()
    with pytest.raises(redis.ResponseError, match="^Rewriting config file: No such file or directory$"):
        client.execute_command("CONFIG", "REWRITE")
    path.parent.mkdir()
    path.write_text("[network\n")   # no longer TOML
    with pytest.raises(redis.ResponseError, match="^Rewriting config file: the config file no longer parses"):
        client.execute_command("CONFIG", "REWRITE")
    assert path.read_text() == "[network\n"
    assert client.ping() is True
    assert os.listdir(path.parent) == ["tenantkv.toml"]   # no temporary file left


def test_tenant_cannot_rewrite(tmp_path, make_server):
    from conftest import add_user, login
    path = tmp_path / "tenantkv.toml"
    path.write_text("[network]\ntimeout = 0\n")
    add_user(tmp_path, "root", "root-pw-1", "--root")
    add_user(tmp_path, "alice", "alice-pw-1")
    server = make_server("--config", str(path), env={"TENANTKV_AUTH__DEFAULT_USER": "off"})
    alice = login(server, "alice", "alice-pw-1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        alice.execute_command("CONFIG", "REWRITE")
    assert path.read_text() == "[network]\ntimeout = 0\n"
