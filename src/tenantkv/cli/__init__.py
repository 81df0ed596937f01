"""Command-line tools: `tenantkv` (offline administration of the user database)."""
