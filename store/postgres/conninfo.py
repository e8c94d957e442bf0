"""Connection settings shared by the writer's connection and the reader pool."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict


def connection_kwargs(url: str, role: str) -> dict[str, Any]:
    """Autocommit (the store opens its transactions itself), and a name that shows in
    pg_stat_activity: the URL's own application_name when it has one (an operator labelling
    each server of a fleet), else `role`."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if "application_name" not in conninfo_to_dict(url):
        kwargs["application_name"] = role
    return kwargs
