"""The one place that talks to DuckDB's Python API (it moves between releases)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb


def connect(**relations: Any) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection with ``relations`` (Arrow tables, Lance datasets)
    registered under their keyword names."""
    import duckdb  # on first use: keeps `viewfinder --help` and worker forks light

    con = duckdb.connect()
    for name, rel in relations.items():
        con.register(name, rel)
    return con


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pa.Table:
    """Run ``sql`` with bound ``params`` and return an Arrow table."""
    rel = con.sql(sql, params=params) if params else con.sql(sql)
    return rel.to_arrow_table() if rel is not None else pa.table({})
