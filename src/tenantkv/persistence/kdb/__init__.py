"""The snapshot: format.py is the .kdb file (docs/kdb-format.md), snapshot.py
its life in the server (SAVE, BGSAVE, the save schedule, loading at start-up,
saving at shutdown)."""
