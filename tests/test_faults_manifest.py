"""Manifest damage and `tenantkv check-aof` (issue 11, point 6).

Real layouts are made once by real servers (module fixture `layouts`): the
default (.kdb base), an AOF base (aof-use-rdb-preamble no), several
incremental files (a rewrite killed by the shutdown), a BGREWRITEAOF with the
log off, CONFIG SET appendonly toggles. Each test damages a copy. A damaged
log must stop the start (exit 1) with a message naming the file and the
problem, leave every file as it was, and `tenantkv check-aof` must agree; once
repaired, the server starts with every key. Loopback only, bounded waits.
"""

import os
import random
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ServerProcess, dump_tenant, free_port

ENV = {**os.environ, "TENANTKV_AUTH__DEFAULT_USER": "nopass"}
CHECK = [sys.executable, "-m", "tenantkv.cli.admin", "check-aof"]
MANIFEST = "appendonly.aof.manifest"


# -- helpers -----------------------------------------------------------------------

def log_server(data_dir, *extra) -> ServerProcess:
    # No snapshot rules: what comes back comes through the log.
    os.makedirs(str(data_dir), exist_ok=True)
    return ServerProcess(data_dir, "--appendonly", "yes", "--save", "", *extra)


def fill(c, prefix: str) -> None:
    """Strings, a list, a hash, a set in db 3, a transaction, a TTL."""
    for i in range(40):
        c.set("%s:s%d" % (prefix, i), "v%d" % i)
    c.rpush(prefix + ":list", *range(30))
    c.hset(prefix + ":hash", mapping={"f%d" % i: i for i in range(20)})
    c.set(prefix + ":ttl", "x", ex=10000)
    pipe = c.pipeline(transaction=True)
    pipe.incr(prefix + ":counter")
    pipe.lpush(prefix + ":list", "in-multi")
    pipe.execute()
    c.execute_command("SELECT", 3)
    c.sadd(prefix + ":set", *range(10))
    c.execute_command("SELECT", 0)


def content(c) -> dict:
    """Every key of the tenant, its value, and whether it has a TTL (the
    remaining time changes between two starts)."""
    return {key: (kind, value, ttl > 0) for key, (kind, value, ttl) in dump_tenant(c).items()}


def wait_rewrites(c, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = c.info("persistence")
        if info["aof_rewrites"] >= count and not info["aof_rewrite_in_progress"]:
            return
        time.sleep(0.05)
    raise AssertionError("no AOF rewrite done in 20 s")


def snapshot(directory) -> dict:
    """{name: bytes} of every file under `directory` but the user database
    (the server creates it, and root's password, before it reads the log):
    "left untouched"."""
    out = {}
    for root, _dirs, names in os.walk(str(directory)):
        for name in names:
            if name.startswith("users.db") or name == "root.password":
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, str(directory))] = f.read()
    return out


def copy_layout(layout, tmp_path, name: str = "data"):
    source, expected = layout
    target = tmp_path / name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.log"))
    return target, expected


def refused(data_dir, *extra) -> str:
    """Start a server that must refuse: exit status 1 before listening; its log."""
    log_path = os.path.join(os.path.dirname(str(data_dir)), "refused.log")
    process = subprocess.Popen(
        [sys.executable, "-m", "tenantkv", "--port", str(free_port()), "--dir", str(data_dir),
         "--appendonly", "yes", "--save", "", "--logfile", log_path, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the server started on a damaged log")
    with open(log_path, "rb") as f:
        text = (f.read() + output).decode("utf-8", "replace")
    os.unlink(log_path)
    assert process.returncode == 1, text
    assert "Traceback" not in text, text
    return text


def check_aof(*args):
    """tenantkv check-aof ARGS: (exit status, output)."""
    result = subprocess.run([*CHECK, *map(str, args)], capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL, env=ENV)
    assert b"Traceback" not in result.stderr, result.stderr
    return result.returncode, (result.stdout + result.stderr).decode("utf-8", "replace")


def starts_with_every_key(data_dir, expected: dict) -> None:
    with log_server(data_dir) as server:
        assert content(server.client()) == expected


def files_of(data_dir) -> list:
    """The manifest's lines, parsed: [(name, type)]."""
    text = (data_dir / "appendonlydir" / MANIFEST).read_text()
    return re.findall(r"^file (\S+) seq \d+ type (\w)$", text, re.M)


# -- the layouts -------------------------------------------------------------------

@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    out = {}

    # The default: a .kdb base (a rewrite made it hold data), one incremental file.
    with log_server(root / "kdb") as server:
        c = server.client()
        fill(c, "a")
        c.bgrewriteaof()
        wait_rewrites(c, 1)
        fill(c, "b")
        out["kdb"] = (root / "kdb", content(c))

    # aof-use-rdb-preamble no: the base is AOF records.
    with log_server(root / "aof", "--aof-use-rdb-preamble", "no") as server:
        c = server.client()
        fill(c, "a")
        c.bgrewriteaof()
        wait_rewrites(c, 1)
        fill(c, "b")
        out["aof"] = (root / "aof", content(c))

    # Several incremental files: a rewrite held in progress (0.1 s per key)
    # is killed by the shutdown; the manifest keeps base 1, incr 1 and incr 2.
    with log_server(root / "incrs", "--rdb-key-save-delay", "100000") as server:
        c = server.client()
        fill(c, "a")
        c.bgrewriteaof()
        assert c.info("persistence")["aof_rewrite_in_progress"] == 1
        fill(c, "b")
        out["incrs"] = (root / "incrs", content(c))

    # BGREWRITEAOF with the log off, over the log of a first run (whose final
    # snapshot the second run loads).
    (root / "logoff").mkdir()
    with ServerProcess(root / "logoff", "--appendonly", "yes") as server:
        fill(server.client(), "a")
    with ServerProcess(root / "logoff") as server:
        c = server.client()
        c.bgrewriteaof()
        wait_rewrites(c, 1)
        out["logoff"] = (root / "logoff", content(c))

    # CONFIG SET appendonly yes / no / yes with writes in each state.
    (root / "toggles").mkdir()
    with ServerProcess(root / "toggles", "--save", "") as server:
        c = server.client()
        fill(c, "a")
        c.config_set("appendonly", "yes")
        wait_rewrites(c, 1)
        fill(c, "b")
        c.config_set("appendonly", "no")
        fill(c, "c")
        c.config_set("appendonly", "yes")
        wait_rewrites(c, 2)
        fill(c, "d")
        out["toggles"] = (root / "toggles", content(c))
    return out


def test_layouts_are_what_they_claim(layouts):
    assert [t for _, t in files_of(layouts["kdb"][0])] == ["b", "i"]
    assert files_of(layouts["kdb"][0])[0][0].endswith(".base.kdb")
    assert files_of(layouts["aof"][0])[0][0].endswith(".base.aof")
    assert [t for _, t in files_of(layouts["incrs"][0])] == ["b", "i", "i"]
    assert len(layouts["kdb"][1]) == 90   # 2 x (40 strings, list, hash, ttl, counter, set)


# -- check-aof on healthy layouts ----------------------------------------------------

@pytest.mark.parametrize("name", ["kdb", "aof", "incrs", "logoff", "toggles"])
def test_check_aof_passes_every_healthy_layout(layouts, name):
    directory = layouts[name][0] / "appendonlydir"
    before = snapshot(directory)
    status, output = check_aof(directory / MANIFEST)
    assert status == 0, output
    assert "All AOF files and manifest are valid" in output
    assert "--fix" not in output
    kind = "RESP" if name == "aof" else "KDB"
    assert "Start to check BASE AOF (%s format)." % kind in output
    for file_name, _ in files_of(layouts[name][0]):
        assert re.search(r"(BASE|INCR) AOF %s is (valid|empty)" % re.escape(file_name), output)
    assert snapshot(directory) == before
    # the directory names the same check
    assert check_aof(directory)[0] == 0


def test_healthy_layouts_start_with_every_key(layouts, tmp_path):
    for name in ("aof", "logoff", "toggles"):
        data_dir, expected = copy_layout(layouts[name], tmp_path, name)
        starts_with_every_key(data_dir, expected)


def test_check_aof_on_a_single_file(layouts, tmp_path):
    """A single-file log (the layout before Redis 7), a lone .kdb file, and one
    file of a manifest checked alone."""
    data_dir = layouts["aof"][0] / "appendonlydir"
    names = [name for name, _ in files_of(layouts["aof"][0])]
    single = tmp_path / "appendonly.aof"
    single.write_bytes(b"".join((data_dir / name).read_bytes() for name in names))
    status, output = check_aof(single)
    assert status == 0, output
    assert "Start checking Old-Style AOF" in output and "AOF %s is valid" % single in output
    base = layouts["kdb"][0] / "appendonlydir" / files_of(layouts["kdb"][0])[0][0]
    status, output = check_aof(base)
    assert status == 0 and "Checksums OK" in output, output
    incr = data_dir / names[-1]
    status, output = check_aof(incr)
    assert status == 0 and "is file 2 of 2 of the manifest" in output, output


def test_check_aof_reads_as_redis_check_aof(layouts, tmp_path):
    """The 'AOF analyzed' line gives what redis-check-aof gives on the same file."""
    tool = shutil.which("redis-check-aof")
    if tool is None:
        pytest.skip("redis-check-aof is not installed")
    incr = layouts["kdb"][0] / "appendonlydir" / files_of(layouts["kdb"][0])[-1][0]
    torn = tmp_path / "torn.aof"
    data = incr.read_bytes()
    torn.write_bytes(data[:-5])
    for path in (incr, torn):
        ours = dict(re.findall(r"(\w+)=(\d+)", re.search(r"AOF analyzed: .*",
                                                       check_aof(path)[1]).group(0)))
        theirs = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL).stdout
        theirs = dict(re.findall(r"(\w+)=(\d+)", re.search(r"AOF analyzed: .*", theirs).group(0)))
        if path == torn:
            # redis-check-aof counts the lines it read, the torn record's
            # included; ours is the line at ok_up_to.
            assert int(ours.pop("ok_up_to_line")) < int(theirs.pop("ok_up_to_line"))
        assert ours == theirs and len(ours) == 4 - (path == torn)


# -- manifest damage: refused, untouched, check-aof agrees, repaired ------------------

def _manifest_edit(edit):
    def damage(data_dir):
        path = data_dir / "appendonlydir" / MANIFEST
        saved = path.read_bytes()
        path.write_bytes(edit(saved))
        return lambda: path.write_bytes(saved)
    return damage


def _remove(index: int):
    def damage(data_dir):
        name = files_of(data_dir)[index][0]
        path = data_dir / "appendonlydir" / name
        saved = path.read_bytes()
        path.unlink()
        return lambda: path.write_bytes(saved)
    return damage


def _remove_manifest(data_dir):
    path = data_dir / "appendonlydir" / MANIFEST
    saved = path.read_bytes()
    path.unlink()
    return lambda: path.write_bytes(saved)


DAMAGES = {
    # name: (layout, damage, the problem the server and check-aof both name)
    "empty": ("kdb", _manifest_edit(lambda m: b""), "Found an empty AOF manifest"),
    "binary": ("kdb", _manifest_edit(lambda m: random.Random(11).randbytes(300)),
               "Invalid AOF manifest file format: not valid UTF-8"),
    "non-numeric seq": ("kdb", _manifest_edit(lambda m: m.replace(b"seq 2 type i", b"seq two type i")),
                        "seq must be a positive integer, not 'two'"),
    "unknown type": ("kdb", _manifest_edit(lambda m: m.replace(b"type i", b"type x")),
                     "Unknown AOF file type 'x'"),
    "two bases": ("kdb", _manifest_edit(lambda m: m + b"file appendonly.aof.1.base.kdb seq 1 type b\n"),
                  "Found duplicate base file information"),
    "path": ("kdb", _manifest_edit(lambda m: re.sub(rb"file \S+ (seq \d+ type b)",
                                                    rb"file ../../etc/passwd \1", m)),
             "File can't be a path, just a filename: '../../etc/passwd'"),
    "incr seqs out of order": ("incrs", _manifest_edit(
        lambda m: b"".join(m.splitlines(True)[:1] + m.splitlines(True)[:0:-1])),
        "Found a non-monotonic sequence number"),
    "missing base": ("kdb", _remove(0), "doesn't exist"),
    "missing non-last incr": ("incrs", _remove(1), "doesn't exist"),
    "no manifest": ("kdb", _remove_manifest, "holds files of an append only log"),
}


@pytest.mark.parametrize("damage_name", list(DAMAGES))
def test_damaged_manifest_refuses_to_start(layouts, tmp_path, damage_name):
    layout, damage, problem = DAMAGES[damage_name]
    data_dir, expected = copy_layout(layouts[layout], tmp_path)
    restore = damage(data_dir)
    manifest = str(data_dir / "appendonlydir" / MANIFEST)
    before = snapshot(data_dir)

    log = refused(data_dir)
    assert problem in log, log
    assert manifest in log, log              # the file...
    if damage_name.startswith("missing"):    # ...and the one missing
        assert re.search(r"The (base|incremental) file \S+appendonlydir/appendonly\.aof\.\d+\."
                         r"(base\.kdb|incr\.aof), named at line \d of the manifest, doesn't "
                         r"exist", log), log
    assert "check-aof --fix" not in log      # nothing --fix could repair
    assert snapshot(data_dir) == before      # nothing touched

    status, output = check_aof(manifest)
    assert status == 1, output
    assert problem in output, output
    assert "Use the --fix option" not in output
    status, output = check_aof(manifest, "--fix", "--yes")
    assert status == 1 and problem in output, output
    assert snapshot(data_dir) == before      # --fix refused too

    restore()
    assert check_aof(manifest)[0] == 0
    starts_with_every_key(data_dir, expected)


def test_a_manifest_problem_names_its_line(layouts, tmp_path):
    data_dir, _ = copy_layout(layouts["kdb"], tmp_path)
    path = data_dir / "appendonlydir" / MANIFEST
    lines = path.read_bytes().splitlines(True)
    path.write_bytes(b"# a comment\n" + lines[0] + lines[1].replace(b"type i", b"type q"))
    log = refused(data_dir)
    assert "Reading the manifest file %s, at line 3" % path in log
    assert ">>> '%s'" % lines[1].replace(b"type i", b"type q").decode().strip() in log
    status, output = check_aof(path)
    assert status == 1 and "at line 3" in output


def test_legacy_single_file_is_refused_until_moved_in(layouts, tmp_path):
    """A single-file log in the data directory and no manifest: Redis would
    move it into the directory as the base; tenantkv refuses and says how."""
    source = layouts["aof"][0] / "appendonlydir"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    single = data_dir / "appendonly.aof"
    single.write_bytes(b"".join((source / name).read_bytes()
                                for name, _ in files_of(layouts["aof"][0])))
    before = snapshot(data_dir)
    log = refused(data_dir)
    assert "Found %s, a single-file append only log" % single in log, log
    assert "file appendonly.aof seq 1 type b" in log
    assert snapshot(data_dir) == before
    # as the message says
    (data_dir / "appendonlydir").mkdir()
    single.rename(data_dir / "appendonlydir" / "appendonly.aof")
    (data_dir / "appendonlydir" / MANIFEST).write_text("file appendonly.aof seq 1 type b\n")
    assert check_aof(data_dir / "appendonlydir")[0] == 0
    starts_with_every_key(data_dir, layouts["aof"][1])


# -- damaged files: --fix suggested only where it repairs ------------------------------

def test_torn_tail_of_the_last_file_is_fixed(layouts, tmp_path):
    data_dir, _ = copy_layout(layouts["kdb"], tmp_path)
    last = data_dir / "appendonlydir" / files_of(data_dir)[-1][0]
    data = last.read_bytes()
    last.write_bytes(data[:-3])
    status, output = check_aof(data_dir / "appendonlydir")
    assert status == 1, output
    assert "Unexpected end of file" in output and "Use the --fix option" in output
    status, output = check_aof(data_dir / "appendonlydir", "--fix")   # no terminal: asks, no
    assert status == 1 and "Aborting..." in output
    assert last.read_bytes() == data[:-3]
    status, output = check_aof(data_dir / "appendonlydir", "--fix", "--yes")
    assert status == 0, output
    assert "Successfully truncated AOF %s" % last.name in output
    assert data.startswith(last.read_bytes()) and len(last.read_bytes()) < len(data) - 3


def test_damage_that_fix_cannot_repair(layouts, tmp_path):
    """A torn non-last file, a damaged .kdb base: no --fix suggestion, --fix
    refuses, the server refuses naming the file."""
    data_dir, _ = copy_layout(layouts["incrs"], tmp_path)
    first = data_dir / "appendonlydir" / files_of(data_dir)[1][0]
    first.write_bytes(first.read_bytes()[:-3])
    before = snapshot(data_dir)
    status, output = check_aof(data_dir / "appendonlydir", "--fix", "--yes")
    assert status == 1, output
    assert "not the last file" in output and "Use the --fix option" not in output
    log = refused(data_dir)
    assert str(first) in log and "cannot be repaired automatically" in log, log
    assert "check-aof --fix" not in log
    assert snapshot(data_dir) == before

    data_dir, _ = copy_layout(layouts["kdb"], tmp_path, "kdb")
    base = data_dir / "appendonlydir" / files_of(data_dir)[0][0]
    data = bytearray(base.read_bytes())
    data[len(data) // 2] ^= 0xFF
    base.write_bytes(bytes(data))
    before = snapshot(data_dir)
    status, output = check_aof(data_dir / "appendonlydir", "--fix", "--yes")
    assert status == 1 and "is not sane" in output and "Use the --fix option" not in output
    log = refused(data_dir)
    assert str(base) in log and "checksum mismatch" in log, log
    assert snapshot(data_dir) == before


def test_unknown_command_in_the_log(layouts, tmp_path):
    """A well-formed record with a command this server does not know: an
    error, with file and offset, that truncation must not 'repair'."""
    data_dir, _ = copy_layout(layouts["kdb"], tmp_path)
    last = data_dir / "appendonlydir" / files_of(data_dir)[-1][0]
    offset = last.stat().st_size
    with open(last, "ab") as f:
        f.write(b"*2\r\n$10\r\nFROBNICATE\r\n$1\r\nx\r\n*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n")
    before = snapshot(data_dir)
    log = refused(data_dir)
    assert ("Unknown command 'FROBNICATE' reading the append only file %s at offset %d"
            % (last, offset)) in log, log
    assert "check-aof --fix" not in log
    status, output = check_aof(data_dir / "appendonlydir", "--fix", "--yes")
    assert status == 1, output
    assert "Unknown command 'FROBNICATE' reading the append only file" in output
    assert "at offset %d" % offset in output
    assert "--fix cannot repair it" in output
    assert snapshot(data_dir) == before
