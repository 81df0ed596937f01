"""Persistence: .kdb snapshots and the append-only log."""
