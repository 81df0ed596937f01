"""Persistence: what survives a restart, each format in a package of its own
beside its life in the server.

    kdb/          the snapshot: the .kdb format, SAVE/BGSAVE and loading
    aof/          the append-only log: records, the manifest, writing and
                  replaying it, rewriting it in the background, check-aof
    child.py      forking a background writer (BGSAVE, BGREWRITEAOF)
    diskerror.py  refusing writes the server can no longer persist (-MISCONF)
    files.py      fsync of a directory, after a rename
"""
