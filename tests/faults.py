"""Fault injection for the durability tests: a small filesystem that fills up.

`SmallFilesystem` mounts a size-limited tmpfs (root only; the tests that use it
skip with the reason otherwise). `fill()` takes every free byte with a filler
file, so the server's next write fails with ENOSPC; `free()` deletes the filler,
as an operator freeing space would. Nothing leaves this machine: the mount is
a directory under the test's tmp_path, unmounted at the end.
"""

import errno
import os
import subprocess

import pytest


class SmallFilesystem:
    def __init__(self, path, size_mb: int) -> None:
        self.path = str(path)
        self.size_mb = size_mb
        self.filler = os.path.join(self.path, "filler.bin")
        os.makedirs(self.path, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb,
                                 "tmpfs", self.path], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip("cannot mount a small tmpfs (needs root and mount rights): %s"
                        % (result.stderr.strip() or result.returncode))

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all free space but `leave` bytes (0: the disk is full)."""
        chunk = b"\0" * (1 << 20)
        # Unbuffered: a buffered file keeps what a short write left and
        # raises ENOSPC again when it is closed (the server may take the
        # space between free_bytes() and the write).
        with open(self.filler, "ab", buffering=0) as f:
            while True:
                room = self.free_bytes() - leave
                if room <= 0:
                    break
                try:
                    f.write(chunk[:min(room, len(chunk))])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def free(self) -> None:
        try:
            os.unlink(self.filler)
        except FileNotFoundError:
            pass

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """A factory: small_fs(size_mb) -> a mounted SmallFilesystem (unmounted after)."""
    if os.geteuid() != 0:
        pytest.skip("the full-disk tests mount a small tmpfs, which needs root")
    mounted = []

    def make(size_mb: int = 16, name: str = "disk") -> SmallFilesystem:
        fs = SmallFilesystem(tmp_path / name, size_mb)
        mounted.append(fs)
        return fs
    yield make
    for fs in mounted:
        fs.unmount()
