"""The append-only log (docs/aof-format.md): the format and its life in the server.

    format.py      records (RESP arrays, @context, MULTI/EXEC) and base files as records
    recorders.py   what each write command logs, so that replay does what it did live
    journal.py     the file being appended to: group commit, fsync, failed writes
    replay.py      reading a file back: scan, the checks on each record, Replayer
    manifest.py    the log's directory and its manifest (Redis 7's multi-part AOF)
    appendonly.py  its life in the server: load at start-up, log, BGREWRITEAOF,
                   CONFIG SET appendonly, shutdown
    checkaof.py    tenantkv check-aof (redis-check-aof for this log)
"""
