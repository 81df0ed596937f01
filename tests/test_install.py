"""`pip install .` gives working entry points: a wheel built offline from
this source, installed into a fresh virtual environment (without its
dependencies, which come from the running environment's site-packages),
runs tenantkv-server, tenantkv and tenantkv-cli, and the server it starts
finds its package data (the command table) and answers."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import redis

from conftest import free_port, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_installs_working_entry_points(tmp_path):
    # A copy of the source: the build writes build/ and *.egg-info beside it.
    source = tmp_path / "source"
    shutil.copytree(os.path.join(ROOT, "src"), source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = os.listdir(wheels)

    # Without PYTHONPATH (a test run's own source tree): pip would take that
    # tenantkv for installed already.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                    "--no-index", str(wheels / wheel)], check=True, capture_output=True, timeout=300,
                   env=env)
    # The dependencies (uvloop, hiredis, tomlkit...) from this environment,
    # after the new one's own site-packages: tenantkv comes from the wheel.
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "deps.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    bin_dir = venv / "bin"

    def run(*args):
        return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=60)

    where = subprocess.run([python, "-c", "import tenantkv; print(tenantkv.__file__)"],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert where.startswith(purelib)
    from tenantkv import __version__
    version = run("tenantkv-server", "--version")
    assert (version.returncode, version.stdout) == (0, "tenantkv %s\n" % __version__)
    usage = run("tenantkv-server", "--help")
    assert usage.returncode == 0 and usage.stdout.startswith("usage: tenantkv-server")
    admin = run("tenantkv", "--help")
    assert admin.returncode == 0 and "user" in admin.stdout
    cli = run("tenantkv-cli", "--help")
    assert cli.returncode == 0 and "tenantkv-cli" in cli.stdout + cli.stderr

    port = free_port()
    proc = subprocess.Popen([str(bin_dir / "tenantkv-server"), "--port", str(port),
                             "--dir", str(tmp_path / "data")],
                            env={**env, "TENANTKV_AUTH__DEFAULT_USER": "nopass"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_for_port(port, proc)
        client = redis.Redis(port=port)
        assert client.ping() is True
        assert client.command_count() > 200   # the recorded table is there
        assert client.set("k", "v") and client.get("k") == b"v"
        assert client.eval("return redis.call('GET', KEYS[1])", 1, "k") == b"v"   # the Lua prelude
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_users_db_of_a_newer_version_stops_the_start_clearly(tmp_path):
    """A downgrade (users.db from a newer tenantkv): one line naming the file
    and both versions, exit status 1, no traceback, the file untouched."""
    import sqlite3
    from tenantkv.tenancy.store import SCHEMA_VERSION, UserStore
    path = tmp_path / "users.db"
    UserStore(str(path)).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 999")
    con.commit()
    con.close()
    before = path.read_bytes()
    done = subprocess.run([sys.executable, "-m", "tenantkv", "--port", str(free_port()),
                           "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(
        "# cannot start: %s has schema version 999; this tenantkv knows up to %d"
        % (path, SCHEMA_VERSION))
    assert path.read_bytes() == before
