"""The process's resident memory, as INFO's used_memory_rss and the memory
accounting's baseline and trims read it (one copy of how)."""

import os
import resource


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
