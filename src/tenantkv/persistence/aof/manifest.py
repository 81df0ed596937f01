"""The log's directory and its manifest.

Layout (Redis 7's multi-part AOF, see docs/aof-format.md): a directory
<dir>/<appenddirname> holding one base file (the data set at some moment,
written by a rewrite), the incremental logs written since, and a manifest
naming them in order. The manifest is replaced atomically (temp file, fsync,
rename, directory fsync); the files it names are the truth.
"""

import os

from tenantkv.persistence.files import fsync_dir

MANIFEST_MAX_LINE = 1024   # bytes, the newline included (Redis's MANIFEST_MAX_LINE)
INVALID = "Invalid AOF manifest file format"


class ManifestError(Exception):
    """A manifest that cannot be used: `path`, the `problem` (Redis's wording
    where Redis has one), and the line (number and text) where it was found."""

    # What to do about it: a manifest is never repaired automatically.
    advice = ("The manifest cannot be repaired automatically: restore it (from a backup), or "
              "correct it by hand (docs/aof-format.md gives its rules)")

    def __init__(self, path: str, problem: str, number: int = 0, line: bytes = b"",
                 advice: str = "") -> None:
        super().__init__(path, problem, number)
        self.path, self.problem, self.number, self.line = path, problem, number, line
        if advice:
            self.advice = advice

    def __str__(self) -> str:
        where = ", line %d" % self.number if self.number else ""
        return "%s (AOF manifest %s%s)" % (self.problem, self.path, where)

    def report(self) -> list:
        """The lines to print or log, as Redis logs a bad manifest."""
        lines = ["*** FATAL AOF MANIFEST FILE ERROR ***"]
        if self.number:
            lines.append("Reading the manifest file %s, at line %d" % (self.path, self.number))
            if self.line:   # as Redis's sdscatrepr: binary stays one readable line
                shown = "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else "\\x%02x" % c
                                for c in self.line[:160])
                lines.append(">>> '%s'%s" % (shown, "..." if len(self.line) > 160 else ""))
        lines.append("%s: %s" % (self.path, self.problem))
        return lines


def _split_args(line: bytes):
    """Redis's sdssplitargs for a manifest line: words separated by
    whitespace, "double quoted" with \\xHH \\n \\r \\t \\b \\a \\" \\\\
    escapes, or 'single quoted' with \\'. None when the quoting is broken."""
    words, i, n = [], 0, len(line)
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
    while True:
        while i < n and line[i] in b" \t\r\n\v\f":
            i += 1
        if i == n:
            return words
        word = bytearray()
        quote = line[i]
        if quote in b"\"'":
            i += 1
            while True:
                if i >= n:
                    return None   # no closing quote
                c = line[i]
                if c == quote:
                    i += 1
                    break
                if c == 0x5C and i + 1 < n:   # backslash
                    nxt = line[i + 1]
                    if quote == 0x22 and nxt == ord("x") and i + 3 < n:
                        try:
                            word.append(int(line[i + 2:i + 4], 16))
                            i += 4
                            continue
                        except ValueError:
                            pass
                    if quote == 0x22:
                        word += escapes.get(nxt, bytes([nxt]))
                        i += 2
                        continue
                    if nxt == 0x27:
                        word.append(0x27)
                        i += 2
                        continue
                word.append(c)
                i += 1
            if i < n and line[i] not in b" \t\r\n\v\f":
                return None   # a closing quote must end the word
        else:
            while i < n and line[i] not in b" \t\r\n\v\f":
                if line[i] in b"\"'":
                    return None
                word.append(line[i])
                i += 1
        words.append(bytes(word))


def _needs_quotes(name: str) -> bool:
    return not name or any(not (c.isprintable() and c.isascii()) or c in " \"'\\" for c in name)


def _quote(name: str) -> str:
    out = ['"']
    for byte in name.encode("utf-8", "surrogateescape"):
        c = chr(byte)
        if c in "\\\"":
            out.append("\\" + c)
        elif c in "\n\r\t\a\b":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\a": "\\a", "\b": "\\b"}[c])
        elif 0x20 <= byte < 0x7F:
            out.append(c)
        else:
            out.append("\\x%02x" % byte)
    out.append('"')
    return "".join(out)


def quoted(name: str) -> str:
    """A file name as the manifest writes it: bare, or quoted when it must be."""
    return _quote(name) if _needs_quotes(name) else name


class Manifest:
    """Redis 7's manifest: `file <name> seq <n> type b|h|i` lines.

    Read as strictly as Redis reads it at start-up (aofLoadManifestFromFile),
    plus a few checks of tenantkv's own; anything else raises ManifestError:
    every line ends with a newline and is at most 1024 bytes with it; '#'
    starts a comment line; no empty line; valid UTF-8; each line is key/value
    pairs (keys case-insensitive, unknown keys ignored for forward
    compatibility, as Redis), with `file`, `seq` and `type` present once; a
    file is a name in the log's directory, never a path; seq is a positive
    integer; type is b (base), h (history: a file a rewrite replaced, ignored)
    or i (incremental); at most one base; incremental seqs strictly increase;
    no file named twice; at least one base or incremental file."""

    def __init__(self, base=None, incrs=None) -> None:
        self.base = base            # (name, seq) or None
        self.incrs = incrs or []    # [(name, seq)], oldest first
        self.lines = {}             # name -> line number in the file read

    @classmethod
    def read(cls, path: str) -> "Manifest":
        with open(path, "rb") as f:
            return cls.parse(f, path)

    @classmethod
    def parse(cls, f, path: str) -> "Manifest":
        manifest = cls()
        number = 0
        maxseq = 0
        names = {}
        while True:
            raw = f.readline(MANIFEST_MAX_LINE)
            if not raw:
                if number == 0:
                    raise ManifestError(path, "Found an empty AOF manifest")
                break
            number += 1

            def fail(problem: str) -> None:
                raise ManifestError(path, problem, number, raw.rstrip(b"\r\n"))

            comment = raw.startswith(b"#")
            line = raw.strip(b" \t\r\n")
            if not comment:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    fail("%s: not valid UTF-8 (binary data?)" % INVALID)
                if any(c < 0x20 and c != 0x09 or c == 0x7F for c in line):
                    fail("%s: control characters in the line (binary data?)" % INVALID)
            if not raw.endswith(b"\n"):
                if len(raw) >= MANIFEST_MAX_LINE:
                    fail("The AOF manifest file contains too long line (over %d bytes)"
                         % MANIFEST_MAX_LINE)
                fail("%s: the last line does not end with a newline (a truncated "
                     "manifest?)" % INVALID)
            if comment:
                continue
            if not line:
                fail("%s: an empty line" % INVALID)
            words = _split_args(line)
            if words is None:
                fail("%s: unbalanced quotes" % INVALID)
            if len(words) < 6 or len(words) % 2:
                fail("%s: expected 'file <name> seq <n> type b|h|i'" % INVALID)
            fields = {}
            for key, value in zip(words[0::2], words[1::2]):
                key = key.decode("utf-8", "replace").lower()
                if key in fields:
                    fail("%s: '%s' appears twice" % (INVALID, key))
                fields[key] = value
            for key in ("file", "seq", "type"):
                if key not in fields:
                    fail("%s: no '%s'" % (INVALID, key))
            try:
                name = fields["file"].decode("utf-8")
            except UnicodeDecodeError:
                fail("%s: the file name is not valid UTF-8" % INVALID)
            if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
                fail("File can't be a path, just a filename: '%s'" % name)
            if any(not c.isprintable() for c in name):
                fail("%s: the file name holds control characters" % INVALID)
            seq = fields["seq"]
            if not seq.isdigit() or not 0 < int(seq) < 1 << 63:
                fail("%s: seq must be a positive integer, not '%s'"
                     % (INVALID, seq.decode("utf-8", "replace")))
            seq = int(seq)
            kind = fields["type"]
            if kind == b"h":
                continue   # history: a file a rewrite replaced, not part of the log
            if kind not in (b"b", b"i"):
                fail("Unknown AOF file type '%s' (b: base, i: incremental, h: history)"
                     % kind.decode("utf-8", "replace"))
            if name in names:
                fail("Found duplicate file name '%s' (line %d names it too)" % (name, names[name]))
            names[name] = number
            if kind == b"b":
                if manifest.base is not None:
                    fail("Found duplicate base file information (line %d names the base %s)"
                         % (names[manifest.base[0]], manifest.base[0]))
                manifest.base = (name, seq)
            else:
                if seq <= maxseq:
                    fail("Found a non-monotonic sequence number (%d after %d)" % (seq, maxseq))
                manifest.incrs.append((name, seq))
                maxseq = seq
        if manifest.base is None and not manifest.incrs:
            raise ManifestError(path, "The AOF manifest names no base or incremental file "
                                "(only comments or history lines)")
        manifest.lines = names
        return manifest

    def text(self) -> str:
        lines = []
        if self.base:
            lines.append("file %s seq %d type b\n" % (quoted(self.base[0]), self.base[1]))
        lines.extend("file %s seq %d type i\n" % (quoted(name), seq) for name, seq in self.incrs)
        return "".join(lines)

    def write(self, path: str) -> None:
        temp = path + ".tmp"
        with open(temp, "w", encoding="utf-8") as f:
            f.write(self.text())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        fsync_dir(os.path.dirname(path))

    def files(self) -> list:
        return ([self.base[0]] if self.base else []) + [name for name, _ in self.incrs]


def log_files(directory: str, appendfilename: str) -> list:
    """The non-empty files in `directory` named as parts of a log are
    (`<appendfilename>.<n>.base.<ext>`, `<appendfilename>.<n>.incr.aof`):
    with no manifest naming them, their data is out of view. Empty ones hold
    nothing (a failed first rewrite leaves one) and are left out."""
    prefix = appendfilename + "."
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        rest = name[len(prefix):].split(".") if name.startswith(prefix) else ()
        if (len(rest) == 3 and rest[0].isdigit()
                and (rest[1:] == ["incr", "aof"] or rest[1] == "base")):
            try:
                if os.path.getsize(os.path.join(directory, name)) > 0:
                    found.append(name)
            except OSError:
                pass
    return found
