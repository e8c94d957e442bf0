"""The store on PostgreSQL: the same schema, write jobs and read queries as the SQLite engine,
for a history shared by many hosts and many server processes.

Writers in different processes are serialized by a transaction-scoped advisory lock (see
store.postgres.locks), so the engine-neutral jobs in store.sqlite.jobs keep their SQLite
guarantees; reads run in REPEATABLE READ snapshots from a connection pool."""
