"""tenantkv check-aof: redis-check-aof for tenantkv's append-only log.

    check(path, fix=False, yes=False, databases=None, appendfilename="appendonly.aof",
          out=print, ask=input) -> exit status

`path`: the manifest (or the directory holding it), one file of the log, or
a single-file log. `databases` and `appendfilename` come from the config
(limits.databases, data.appendfilename), as the server's. The output follows redis-check-aof's (its messages where
they fit), and the checks are the server's at start-up, so the two agree:
the manifest read by the same strict rules (aof/manifest.py), every file it
names present, a .kdb base verified as the kdb module loads it (checksums
and all), every AOF record parsed and checked as Replayer checks it before
running it (an unknown command, a read command, a wrong number of
arguments, a bad @context: the server refuses those, so they are errors
here, with file and offset, though redis-check-aof reads only the RESP).

--fix repairs only what truncation can: damaged bytes in the last
incremental file (a torn tail after a crash, the usual case), cut at the
end of the last good record after saying how many bytes go. Anything else
(the manifest, a missing file, a base, a file that is not the last, a
well-formed record the server cannot replay) is reported as not fixable
automatically, with what to do instead. Exit status: 0 when every file is
valid (or was fixed), 1 otherwise.
"""

import os

from tenantkv.persistence.aof import replay
from tenantkv.persistence.aof.format import is_kdb
from tenantkv.persistence.aof.manifest import Manifest, ManifestError, log_files
from tenantkv.persistence.kdb import format as kdb

FIX_HINT = "Use the --fix option to try fixing it."


class Checker:
    def __init__(self, fix: bool, yes: bool, databases, appendfilename: str, out, ask) -> None:
        self.fix, self.yes, self.databases = fix, yes, databases
        self.appendfilename = appendfilename
        self.out, self.ask = out, ask
        self.bad = 0

    # -- entry points ------------------------------------------------------------

    def run(self, path: str) -> int:
        if os.path.isdir(path):
            manifests = sorted(name for name in os.listdir(path) if name.endswith(".manifest"))
            if len(manifests) > 1:
                self.out("%s holds several manifests (%s): give the one to check"
                         % (path, ", ".join(manifests)))
                return 1
            path = os.path.join(path, manifests[0] if manifests
                                else self.appendfilename + ".manifest")
        if not os.path.lexists(path):
            found = (log_files(os.path.dirname(path), self.appendfilename)
                     if path.endswith(".manifest") else [])
            if found:
                self.out("*** FATAL AOF MANIFEST FILE ERROR ***")
                self.out("The AOF manifest %s doesn't exist, but %s holds files of an append "
                         "only log: %s" % (path, os.path.dirname(path) or ".", ", ".join(found)))
                self.out("The server refuses to start so. --fix cannot make a manifest up: "
                         "restore it (docs/aof-format.md: one 'file <name> seq <n> type b|i' "
                         "line per file, the base first), or move the files away.")
            else:
                self.out("Cannot open file %s: No such file or directory, aborting..." % path)
            return 1
        if _is_manifest(path):
            self.multi_part(path)
        else:
            self.old_style(path)
        return 1 if self.bad else 0

    def multi_part(self, path: str) -> None:
        self.out("Start checking Multi Part AOF")
        try:
            manifest = Manifest.read(path)
        except ManifestError as exc:
            for line in exc.report():
                self.out(line)
            self.out("%s. --fix cannot repair a manifest." % exc.advice)
            self.bad += 1
            return
        except OSError as exc:
            self.out("Cannot read the AOF manifest %s: %s" % (path, exc.strerror or exc))
            self.bad += 1
            return
        directory = os.path.dirname(path)
        entries = ([("BASE", manifest.base[0])] if manifest.base else []) + \
            [("INCR", name) for name, _ in manifest.incrs]
        for i, (kind, name) in enumerate(entries):
            if kind == "INCR" and (i == 0 or entries[i - 1][0] == "BASE"):
                self.out("Start to check INCR files.")
            file_path = os.path.join(directory, name)
            last = i == len(entries) - 1
            where = "named at line %d of the manifest" % manifest.lines.get(name, 0)
            if not os.path.isfile(file_path):
                if kind == "INCR" and last and not os.path.lexists(file_path):
                    self.out("INCR AOF %s doesn't exist: the last file, %s, created by the "
                             "server and never written to? (the server starts and creates it "
                             "empty)" % (name, where))
                    continue
                self.out("%s AOF %s, %s, %s. --fix cannot make it up again: restore it from "
                         "a backup (what it held is lost otherwise)."
                         % (kind, name, where, "doesn't exist" if not os.path.lexists(file_path)
                            else "is not a regular file"))
                self.bad += 1
                continue
            if kind == "BASE":
                kdb_base = is_kdb(file_path)
                self.out("Start to check BASE AOF (%s format)." % ("KDB" if kdb_base else "RESP"))
                ok = (self.check_kdb(file_path, name) if kdb_base
                      else self.check_aof(file_path, name, last, "BASE"))
            else:
                ok = self.check_aof(file_path, name, last, "INCR")
            if ok:
                self.out("%s AOF %s is %s" % (kind, name, ok))
        if not self.bad:
            self.out("All AOF files and manifest are valid")

    def old_style(self, path: str) -> None:
        if is_kdb(path):
            self.out("Start checking a KDB file")
            if self.check_kdb(path, path):
                self.out("KDB %s is valid" % path)
            return
        self.out("Start checking Old-Style AOF")
        last, note, kind = True, None, ""
        manifest = _manifest_naming(path)
        if manifest is not None:
            names = manifest[1].files()
            index = names.index(os.path.basename(path))
            last = index == len(names) - 1
            if manifest[1].base and index == 0:
                kind = "BASE"
            note = "%s is file %d of %d of the manifest %s" % (
                path, index + 1, len(names), manifest[0])
            self.out(note)
        ok = self.check_aof(path, path, last, kind)
        if ok:
            self.out("AOF %s is %s" % (path, ok))

    # -- one file -------------------------------------------------------------------

    def check_kdb(self, path: str, name: str):
        self.out("[offset 0] Checking KDB file %s" % name)
        try:
            loaded = kdb.read_file(path, None, self.databases)
        except kdb.KdbError as exc:
            self.out("[offset %d] %s" % (exc.offset, exc.message))
            self.out("KDB file %s is not sane. --fix cannot repair it (a .kdb file is written "
                     "whole, then renamed: damage in it is not a torn tail): restore it from a "
                     "backup." % name)
            self.bad += 1
            return None
        self.out("[offset %d] Checksums OK" % loaded.size)
        self.out("[info] %d keys read, %d tenants" % (loaded.keys, len(loaded.tenants)))
        return "valid"

    def check_aof(self, path: str, name: str, last: bool, kind: str):
        """`kind`: "BASE", "INCR" or "" (a file checked alone)."""
        try:
            size = os.path.getsize(path)
            if size == 0:
                return "empty"
            result = replay.scan(path, replay.Checker(self.databases).apply)
        except replay.AofError as exc:
            good, good_line, problem, fixable_kind = exc.good, exc.good_line, str(exc), exc.kind
        except OSError as exc:
            self.out("Cannot read file %s: %s" % (path, exc.strerror or exc))
            self.bad += 1
            return None
        else:
            if not result.torn:
                self.out("AOF analyzed: filename=%s, size=%d, ok_up_to=%d, ok_up_to_line=%d, "
                         "diff=0" % (name, size, size, result.good_line))
                return "valid"
            good, good_line, fixable_kind = result.good, result.good_line, "format"
            problem = "Unexpected end of file in %s: %s%s" % (
                name, result.torn, " (a torn tail: a crash while writing?)" if last else "")
        self.out(problem)
        self.out("AOF analyzed: filename=%s, size=%d, ok_up_to=%d, ok_up_to_line=%d, diff=%d"
                 % (name, size, good, good_line, size - good))
        why_not = None
        if fixable_kind == "record":
            why_not = ("the record is well-formed, so it is not damage that truncation repairs "
                       "(it would throw good data away): a newer tenantkv may know the command, "
                       "or restore the file from a backup")
        elif kind == "BASE":
            why_not = ("it is the base: a base file is written whole, then renamed, so damage in "
                       "it is not a torn tail; restore it from a backup")
        elif not last:
            why_not = ("it is not the last file of the log: truncating it would drop writes the "
                       "later files build on; restore it from a backup")
        if why_not is not None:
            self.out("AOF %s is not valid, and --fix cannot repair it: %s." % (name, why_not))
            self.bad += 1
            return None
        if self.fix and self.bad:
            self.out("AOF %s is not valid. Not fixing it: a problem above cannot be repaired "
                     "automatically." % name)
            self.bad += 1
            return None
        if not self.fix:
            self.out("AOF %s is not valid. %s (It truncates the file at offset %d: the %d "
                     "bytes after it are lost.)" % (name, FIX_HINT, good, size - good))
            self.bad += 1
            return None
        self.out("This will shrink the AOF %s from %d bytes, with %d bytes, to %d bytes"
                 % (name, size, size - good, good))
        if not self.yes:
            try:
                answer = self.ask("Continue? [y/N]: ")
            except EOFError:
                answer = ""
            if not answer.strip().lower().startswith("y"):
                self.out("Aborting...")
                self.bad += 1
                return None
        os.truncate(path, good)
        self.out("Successfully truncated AOF %s" % name)
        return "valid (fixed)"


def _is_manifest(path: str) -> bool:
    """By its name, else by its lines (as redis-check-aof: a line starting with
    "file"). An empty file not named .manifest is an (empty) old-style log."""
    if path.endswith(".manifest"):
        return True
    if not os.path.isfile(path) or is_kdb(path):
        return False
    with open(path, "rb") as f:
        head = f.read(4096)
    return not head.startswith(b"*") and any(
        line.startswith(b"file") for line in head.split(b"\n") if not line.startswith(b"#"))


def _manifest_naming(path: str):
    """(manifest path, Manifest) when the manifest beside `path` names it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".manifest")]
    except OSError:
        return None
    for name in names:
        try:
            manifest = Manifest.read(os.path.join(directory, name))
        except (ManifestError, OSError):
            continue
        if os.path.basename(path) in manifest.files():
            return os.path.join(directory, name), manifest
    return None


def check(path: str, fix: bool = False, yes: bool = False, databases=None,
          appendfilename: str = "appendonly.aof", out=print, ask=input) -> int:
    return Checker(fix, yes, databases, appendfilename, out, ask).run(path)
