"""The harness itself: argument splitting, the raw RESP reader, markers (no servers)."""

import pytest

from compat import harness
from compat.harness import SessionSyntaxError, split_args


@pytest.mark.parametrize("line, expected", [
    ("SET k v", [b"SET", b"k", b"v"]),
    ("  SET   k\tv  ", [b"SET", b"k", b"v"]),
    ('SET "a b" c', [b"SET", b"a b", b"c"]),
    ('ECHO ""', [b"ECHO", b""]),
    ("ECHO ''", [b"ECHO", b""]),
    (r'ECHO "\x41\x00\xff\xZZ"', [b"ECHO", b"A\x00\xff\\xZZ".replace(b"\\", b"")]),
    (r'ECHO "\n\r\t\b\a\"\\\q"', [b"ECHO", b"\n\r\t\b\a\"\\q"]),
    (r"ECHO 'it\'s' '\n'", [b"ECHO", b"it's", b"\\n"]),
    ('ECHO ab"cd ef"gh', None),            # closing quote not followed by a space
    ('ECHO ab"cd ef"', [b"ECHO", b"abcd ef"]),
    ('ECHO "unterminated', None),
    ("ECHO 'unterminated", None),
    ("ECHO café", [b"ECHO", "café".encode()]),
    ("", []),
])
def test_split_args_as_sdssplitargs(line, expected):
    if expected is None:
        with pytest.raises(SessionSyntaxError):
            split_args(line)
    else:
        assert split_args(line) == expected


@pytest.mark.parametrize("reply", [
    b"+OK\r\n", b"-ERR x\r\n", b":-5\r\n", b"$3\r\na\r\n\r\n", b"$0\r\n\r\n", b"$-1\r\n", b"*-1\r\n",
    b"_\r\n", b",1.5\r\n", b"#t\r\n", b"(12345678901234567890\r\n", b"!3\r\nerr\r\n",
    b"=8\r\ntxt:abcd\r\n", b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", b"%1\r\n+k\r\n~2\r\n:1\r\n:2\r\n",
    b">2\r\n+a\r\n+b\r\n", b"|1\r\n+key\r\n+val\r\n:7\r\n", b"*0\r\n", b"%0\r\n",
])
def test_parse_reply_reads_exactly_one_reply(reply):
    node, end = harness.parse_reply(reply + b"+NEXT\r\n")
    assert end == len(reply)
    assert node.raw == reply
    for cut in range(len(reply)):
        with pytest.raises(harness._Incomplete):
            harness.parse_reply(reply[:cut])


def test_markers_and_directives(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("\n".join([
        "# comment",
        "",
        "@resp3 ## shape",
        "GET k ## known-diff: a reason: with colon",
        "!known-diff the reason: SET k v",
        "TTL k ## match :[0-9]+\\r\\n",
        "KEYS * ## unordered",
        "@sleep 0.01",
        "@resp2",
        'ECHO "x ## y"',
        "SUBSCRIBE a b ## replies 2",
    ]) + "\n")
    steps = harness.parse_session(str(path))
    assert [(s.lineno, s.kind, s.args, s.mode, s.detail) for s in steps] == [
        (3, "command", [b"HELLO", b"3"], "shape", ""),
        (4, "command", [b"GET", b"k"], "known-diff", "a reason: with colon"),
        (5, "command", [b"SET", b"k", b"v"], "known-diff", "the reason"),
        (6, "command", [b"TTL", b"k"], "match", ":[0-9]+\\r\\n"),
        (7, "command", [b"KEYS", b"*"], "unordered", ""),
        (8, "sleep", None, "exact", "0.01"),
        (9, "command", [b"HELLO", b"2"], "exact", ""),
        (10, "command", [b"ECHO", b"x ## y"], "exact", ""),
        (11, "command", [b"SUBSCRIBE", b"a", b"b"], "exact", ""),
    ]
    assert [s.replies for s in steps] == [1] * 8 + [2]


def test_compare_modes():
    step = harness.Step(1, "X", "command", [b"X"])
    assert harness.compare(step, b":1\r\n", b":1\r\n")
    assert not harness.compare(step, b":1\r\n", b":2\r\n")
    step.mode = "shape"
    assert harness.compare(step, b"*2\r\n:1\r\n$1\r\na\r\n", b"*2\r\n:9\r\n$2\r\nbb\r\n")
    assert not harness.compare(step, b"*2\r\n:1\r\n:1\r\n", b"*3\r\n:1\r\n:1\r\n:1\r\n")
    assert not harness.compare(step, b"$-1\r\n", b"$1\r\na\r\n")
    step.mode = "unordered"
    assert harness.compare(step, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*2\r\n$1\r\nb\r\n$1\r\na\r\n")
    assert not harness.compare(step, b"*2\r\n$1\r\na\r\n$1\r\na\r\n", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n")
    step.mode, step.detail = "match", r":[12]\r\n"
    assert harness.compare(step, b":1\r\n", b":2\r\n")
    assert not harness.compare(step, b":1\r\n", b":3\r\n")


def test_every_session_file_parses():
    files = harness.session_files()
    assert files
    for name in files:
        assert harness.parse_session(str(harness.SESSIONS_DIR + "/" + name))
