"""The append-only log: journal.py is the log's format, writer and reader
(docs/aof-format.md), appendonly.py its life in the server (loading at
start-up, logging, BGREWRITEAOF, CONFIG SET appendonly, shutdown),
checkaof.py `tenantkv check-aof`."""
