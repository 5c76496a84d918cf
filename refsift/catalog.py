"""The DuckDB catalog of a run directory: views over its Parquet shards, and read-only SQL.

`catalog.duckdb` holds views only (`examples`, `tokens`, `rejected`, `token_scores`, and
any registered selections), written with paths relative to the run directory; opening a
run sets DuckDB's `file_search_path` to the directory, so a moved run still opens. From the
duckdb CLI, `cd` into the run directory first.
"""

from __future__ import annotations

import glob
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from refsift.errors import RefsiftError

CATALOG = "catalog.duckdb"
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def token_scores_sql(roles: list[str]) -> str:
    """One row per scored token, positions counted from the document's first token."""
    nll = ", ".join(f"{_ident('nll_' + r)}[i] AS {_ident('nll_' + r)}" for r in roles)
    excess = "nll_model[i] - nll_reference[i]" if "reference" in roles else "CAST(NULL AS FLOAT)"
    return f"""
        SELECT doc_id, "window", token_start + i - 1 AS position, token_ids[i] AS token_id,
               char_start[i] AS char_start, char_end[i] AS char_end, {nll}, {excess} AS excess
        FROM (SELECT *, unnest(range(1, len(token_ids) + 1)) AS i FROM tokens)
        WHERE nll_model[i] IS NOT NULL"""


def build(run_dir: str, tables: dict[str, pa.Schema], roles: list[str] | None = None) -> Path:
    """Writes `catalog.duckdb` for a local run directory; returns its path. With `roles`
    (a scoring run), also the `token_scores` view.

    A table whose folder holds no shard gets one empty shard with its schema, so that its
    view exists and has the right columns.
    """
    run = Path(run_dir)
    for table, schema in tables.items():
        (run / table).mkdir(parents=True, exist_ok=True)
        if not glob.glob(str(run / table / "*.parquet")):
            pq.write_table(schema.empty_table(), run / table / "part-empty.parquet")
    path = run / CATALOG
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(f"SET file_search_path = '{run.resolve()}'")
        for table in tables:
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{table}/*.parquet')")
        if roles:
            con.execute(f"CREATE VIEW token_scores AS {token_scores_sql(roles)}")
    return path


def connect(run_dir: str, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection to the run's catalog with relative paths resolving inside the run."""
    run = Path(run_dir)
    if not (run / CATALOG).is_file():
        raise RefsiftError(f"{run_dir} has no {CATALOG}: not a refsift run directory")
    con = duckdb.connect(str(run / CATALOG), read_only=read_only)
    con.execute(f"SET file_search_path = '{run.resolve()}'")
    return con


def mirror(run_dir: str) -> duckdb.DuckDBPyConnection:
    """An in-memory connection holding the catalog's views, so that long-lived readers
    (`refsift.open_run`) never keep the catalog file open and writers can still register
    selections."""
    with connect(run_dir) as con:
        views = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    memory = duckdb.connect()
    memory.execute(f"SET file_search_path = '{Path(run_dir).resolve()}'")
    pending = dict(views)
    while pending:  # views may refer to each other: create each once its dependencies exist
        progressed = False
        for name, sql in list(pending.items()):
            try:
                memory.execute(sql)
            except duckdb.CatalogException:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise RefsiftError(f"cannot rebuild views {', '.join(pending)} of {run_dir}")
    return memory


def document_tokens(con: duckdb.DuckDBPyConnection, doc_ids: list[str], columns: str) -> dict[str, list[tuple]]:
    """Scored tokens of a few documents, in order, from one pass over `token_scores`:
    doc_id -> [(char_start, char_end, *columns)]. `columns` is a SELECT list."""
    by_doc: dict[str, list[tuple]] = {doc_id: [] for doc_id in doc_ids}
    rows = con.execute(
        f"SELECT doc_id, char_start, char_end, {columns} FROM token_scores "
        "WHERE list_contains(?, doc_id) ORDER BY doc_id, position",
        [list(doc_ids)],
    ).fetchall()
    for doc_id, *token in rows:
        by_doc[doc_id].append(tuple(token))
    return by_doc


def register_view(run_dir: str, name: str, sql: str) -> None:
    """Adds or replaces a view (for example a selection) in the run's catalog."""
    with connect(run_dir, read_only=False) as con:
        con.execute(f"CREATE OR REPLACE VIEW {_ident(name)} AS {sql}")


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuses anything but one SELECT or EXPLAIN statement."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise RefsiftError(f"SQL error: {str(err).splitlines()[0]}") from None
    if len(statements) != 1:
        raise RefsiftError("give exactly one SQL statement")
    if statements[0].type not in _READ_ONLY:
        kind = statements[0].type.name
        raise RefsiftError(f"refused: {kind} statements would modify the run; the catalog is read-only")


def query(run_dir: str, sql: str) -> tuple[list[str], list[tuple]]:
    """Runs one read-only statement; refuses anything that would write."""
    con = connect(run_dir)
    try:
        check_read_only(con, sql)
        try:
            result = con.execute(sql)
            return [d[0] for d in result.description], result.fetchall()
        except duckdb.Error as err:
            raise RefsiftError(f"SQL error: {' '.join(str(err).split())}") from None
    finally:
        con.close()


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    return path.removeprefix("file://") if is_local(path) else path
