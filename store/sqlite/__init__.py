"""The SQLite engine: one writer thread with group commit, a pool of aiosqlite readers."""
