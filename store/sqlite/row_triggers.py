"""Row triggers that keep a rollup table in step with the rows of another (store.sqlite.run_tallies
on executions, store.sqlite.failure_groups on failures): an insert adds the new row to its rollup
row, a delete takes the old one out, and an update that changes a watched column does both.

`add` and `remove` are statements over a row named `{r}`, filled in with NEW or OLD; both engines
run the same statements (SQLite in its trigger bodies, PostgreSQL in one plpgsql function)."""

from __future__ import annotations

from collections.abc import Callable


def _changed(watched: tuple[str, ...], distinct: str) -> str:
    return "(" + " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in watched) + ")"


def sqlite_triggers(
    name: str, table: str, add: Callable[[str], list[str]], remove: Callable[[str], list[str]],
    watched: tuple[str, ...],
) -> tuple[str, ...]:  # fmt: skip
    def trigger(event: str, suffix: str, body: list[str], when: str = "") -> str:
        statements = "".join(f"{s};\n" for s in body)
        return f"CREATE TRIGGER tr_{name}_{suffix} AFTER {event} ON {table}{when}\nBEGIN\n{statements}END"

    return (
        trigger("INSERT", "insert", add("NEW")),
        trigger(
            f"UPDATE OF {', '.join(watched)}", "update", [*remove("OLD"), *add("NEW")],
            f" WHEN {_changed(watched, 'IS NOT')}",
        ),
        trigger("DELETE", "delete", remove("OLD")),
    )  # fmt: skip


def postgres_triggers(
    name: str, table: str, add: Callable[[str], list[str]], remove: Callable[[str], list[str]],
    watched: tuple[str, ...],
) -> tuple[str, ...]:  # fmt: skip
    """One plpgsql function for the three events; the update trigger skips rows whose watched
    columns did not change."""

    def block(statements: list[str]) -> str:
        return "".join(f"    {s};\n" for s in statements)

    function = (
        f"CREATE FUNCTION th_{name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"  IF TG_OP <> 'INSERT' THEN\n{block(remove('OLD'))}  END IF;\n"
        f"  IF TG_OP <> 'DELETE' THEN\n{block(add('NEW'))}  END IF;\n"
        "  RETURN NULL;\nEND\n$$"
    )
    run = f"FOR EACH ROW {{when}}EXECUTE FUNCTION th_{name}()"
    return (
        function,
        f"CREATE TRIGGER tr_{name}_insert AFTER INSERT ON {table} " + run.format(when=""),
        f"CREATE TRIGGER tr_{name}_update AFTER UPDATE OF {', '.join(watched)} ON {table} "
        + run.format(when=f"WHEN {_changed(watched, 'IS DISTINCT FROM')} "),
        f"CREATE TRIGGER tr_{name}_delete AFTER DELETE ON {table} " + run.format(when=""),
    )
