"""The DuckDB catalog of a run directory, and SQL that cannot reach outside it.

`catalog.duckdb` holds two kinds of view, written with paths relative to the run directory
(a moved run still opens; from the duckdb CLI, `cd` into the run directory first):
- tables: views over files (`examples`, `tokens`, `rejected`, a selection's export), listed
  in the metadata table `refsift_tables` (name, relative glob, format);
- derived views (`token_scores`, attribution rankings), SQL over other views, listed in
  `refsift_views` (name, SQL) in creation order.

Reading goes through `connect`, never through the file: it builds an in-memory DuckDB with
each table handed over as a pyarrow dataset, recreates the derived views, then turns off
DuckDB's external access and locks its configuration. That connection can open no file and
no URL, write nothing, load no extension and change no setting; whatever a query does
(`COPY ... TO`, `EXPLAIN ANALYZE COPY`, `ATTACH`, `read_csv('/etc/passwd')`, `DROP VIEW`)
fails or touches only memory. It has a memory limit and spills to a temporary directory of
its own, and `execute` interrupts a query that runs past its time limit. `check_read_only`
also refuses anything but one SELECT, so a user gets a clear answer rather than a
permission error. User data and paths meet SQL only as quoted literals and identifiers
(`literal`, `ident`).

A run directory is data, not code: runs are copied between people and machines, and
`catalog.duckdb` can say anything. So `connect` resolves every file a table names and reads
none that leaves the run directory, is reached through a symbolic link, or is not a regular
file; the one way out of the run is a selection's export, in a complete refsift selection
made from this very run. Errors name files, never their contents.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import tempfile
import threading
import weakref
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from refsift.config import DEFAULT_TIMEOUT, MAX_TIMEOUT
from refsift.errors import RefsiftError
from refsift.jobs import rundir
from refsift.kernels.scores import excess_loss_sql

CATALOG = "catalog.duckdb"
EMPTY_SHARD = "part-empty.parquet"  # a table no chunk wrote to gets one, so that its view has columns
TABLES_META = "refsift_tables"
VIEWS_META = "refsift_views"
FORMATS = {"parquet": "read_parquet", "json": "read_json_auto"}
_READ_ONLY = {duckdb.StatementType.SELECT}


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def token_scores_sql(roles: list[str]) -> str:
    """One row per scored token; `position` counts the model's input sequence (the prefix
    token is position 0)."""
    nll = ", ".join(f"{ident('nll_' + r)}[i] AS {ident('nll_' + r)}" for r in roles)
    excess = excess_loss_sql("nll_model[i]", "nll_reference[i]") if "reference" in roles else "CAST(NULL AS FLOAT)"
    return f"""
        SELECT doc_id, "window", token_start + i - 1 AS position, token_ids[i] AS token_id,
               char_start[i] AS char_start, char_end[i] AS char_end, {nll}, {excess} AS excess
        FROM (SELECT *, unnest(range(1, len(token_ids) + 1)) AS i FROM tokens)
        WHERE nll_model[i] IS NOT NULL"""


def _writable(run_dir: str) -> duckdb.DuckDBPyConnection:
    """The catalog file, open for writing, with relative paths resolving inside the run."""
    run = Path(run_dir).resolve()
    if "," in str(run):
        raise RefsiftError(f"{run}: DuckDB cannot resolve files in a directory whose path holds a comma")
    con = duckdb.connect(str(run / CATALOG))
    con.execute(f"SET file_search_path = {literal(str(run))}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLES_META} (name VARCHAR PRIMARY KEY, pattern VARCHAR, format VARCHAR)")
    con.execute(f"CREATE TABLE IF NOT EXISTS {VIEWS_META} (name VARCHAR PRIMARY KEY, sql VARCHAR, position INTEGER)")
    return con


def build(run_dir: str, tables: dict[str, pa.Schema], views: dict[str, str] | None = None) -> Path:
    """Writes `catalog.duckdb` anew for a local directory: a table per folder of Parquet
    shards (`<name>/*.parquet`), then the derived views. A folder without shards gets one
    empty shard with its schema, so that its view exists and has the right columns."""
    run = Path(run_dir)
    for table, schema in tables.items():
        (run / table).mkdir(parents=True, exist_ok=True)
        if not glob.glob(str(run / table / "*.parquet")):
            pq.write_table(schema.empty_table(), run / table / EMPTY_SHARD)
    (run / CATALOG).unlink(missing_ok=True)
    try:
        with _writable(run_dir) as con:
            for table in tables:
                _add_table(con, table, f"{table}/*.parquet", "parquet")
            for name, sql in (views or {}).items():
                _add_view(con, name, sql)
    except duckdb.Error as err:  # a full disk, say: DuckDB says so in its own exception
        raise RefsiftError(f"cannot write {run / CATALOG}: {str(err).splitlines()[0][:200]}") from None
    return run / CATALOG


def _add_table(con, name: str, pattern: str, fmt: str) -> None:
    con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM {FORMATS[fmt]}({literal(pattern)})")
    con.execute(f"INSERT OR REPLACE INTO {TABLES_META} VALUES (?, ?, ?)", [name, pattern, fmt])


def _add_view(con, name: str, sql: str) -> None:
    con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS {sql}")
    position = con.execute(f"SELECT coalesce(max(position), 0) + 1 FROM {VIEWS_META}").fetchone()[0]
    con.execute(f"INSERT OR REPLACE INTO {VIEWS_META} VALUES (?, ?, ?)", [name, sql, position])


def register_table(run_dir: str, name: str, pattern: str, fmt: str = "parquet") -> None:
    """Adds or replaces a file-backed table (a selection's export); `pattern` is relative
    to the run directory (it may lead out of it, e.g. ../mix/data/*.parquet). The catalog
    is checked as `metadata` reads it before refsift writes into it."""
    metadata(run_dir)
    try:
        with _writable(run_dir) as con:
            _add_table(con, name, pattern, fmt)
    except duckdb.Error as err:  # a full disk, say
        raise RefsiftError(f"cannot register {name} in {run_dir}/{CATALOG}: {str(err).splitlines()[0][:200]}") from None


def open_locked(path: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """A DuckDB file someone else may have written, opened so that nothing in it can reach
    outside: read only, no file or URL access, no extension loaded or installed, and the
    configuration locked, all set before the file's first byte is read."""
    return duckdb.connect(
        str(path),
        read_only=True,
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "lock_configuration": True,
        },
    )


def metadata(run_dir: str) -> tuple[list[tuple], list[tuple]]:
    """(tables: [(name, pattern, format)], views: [(name, sql)]) of a run's catalog, read
    through `open_locked` from the two tables refsift writes (a view in their place, which
    would run its own SQL, is refused)."""
    path = Path(run_dir) / CATALOG
    if not path.is_file():
        raise RefsiftError(f"{run_dir} has no {CATALOG}: not a refsift run directory")
    try:
        with open_locked(path) as con:
            base = {
                n
                for (n,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
            }
            for meta in (TABLES_META, VIEWS_META):
                if meta not in base:
                    raise RefsiftError(
                        f"{path}: {meta} is not the table refsift writes; refusing to read this catalog (was the run "
                        "directory copied from elsewhere?)"
                    )
            tables = con.execute(f"SELECT name, pattern, format FROM main.{TABLES_META} ORDER BY name").fetchall()
            views = con.execute(f"SELECT name, sql FROM main.{VIEWS_META} ORDER BY position").fetchall()
    except duckdb.Error as err:
        raise RefsiftError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    return tables, views


def problems(run_dir: str) -> list[str]:
    """What is wrong with a run's catalog, as lines (none when refsift could have written
    it): metadata that is not refsift's tables, a table whose files lead out of the run or
    through a link, a derived view that is not one SELECT."""
    try:
        tables, views = metadata(run_dir)
    except RefsiftError as err:
        return [str(err)]
    found = []
    run = Path(run_dir).resolve()
    for name, pattern, fmt in tables:
        if fmt not in FORMATS:
            found.append(f"the catalog's table {name!r} has an unknown format {fmt!r}")
            continue
        try:
            table_files(run, name, pattern)
        except RefsiftError as err:
            found.append(str(err))
    found += [f"the catalog's view {name!r} is not one SELECT" for name, sql in views if not one_select(sql)]
    return found


def one_select(sql, *, unparsable: bool = False) -> bool:
    """Whether `sql` is exactly one SELECT statement; `unparsable` answers for text DuckDB
    cannot parse (True where a later query reports the syntax error in DuckDB's words)."""
    if not isinstance(sql, str):
        return False
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return unparsable
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


DEFAULT_MEMORY = "50%"  # of the machine's memory; DuckDB spills what does not fit


def confined(memory_limit: str = DEFAULT_MEMORY) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can open no file or URL, load no extension and change no
    setting: data reaches it only through `register` (Arrow tables, batches, datasets).
    It uses at most `memory_limit` and spills into a temporary directory of its own,
    removed with the connection."""
    spill = tempfile.mkdtemp(prefix="refsift-duckdb-")
    try:
        con = duckdb.connect(
            config={
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
                "memory_limit": memory_limit,
                "temp_directory": spill,
            }
        )
    except duckdb.Error as err:
        shutil.rmtree(spill, ignore_errors=True)
        raise RefsiftError(f"--memory-limit {memory_limit}: {' '.join(str(err).split())[:200]}") from None
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _links(path: Path, root: Path) -> bool:
    """Whether any step from `root` down to `path` is a symbolic link."""
    for step in (path, *path.parents):
        if step == root:
            return False
        if step.is_symlink():
            return True
    return True  # not below root at all


CLUSTERS_FILE = "clusters.parquet"  # a --per-cluster selection's clusters, beside its data folder


def _selection_home(run: Path, directory: Path, file: str) -> Path | None:
    """The selection a table outside the run lives in: `directory` must be the `data`
    folder of a complete refsift selection made from this run, or the selection itself for
    its clusters file."""
    home = directory.parent if directory.name == "data" else directory if file == CLUSTERS_FILE else None
    if home is None or home.is_symlink() or directory.is_symlink():
        return None
    found = rundir.marker(str(home))
    if not found or found.get("kind") != "selection" or found.get("status") != "complete":
        return None
    record = rundir.read_json(str(home / "selection.json")) or {}
    made_from, digest = record.get("run"), record.get("run_manifest_sha256")
    if isinstance(made_from, str) and Path(made_from).resolve() == run:
        return home
    # "run" is the path as the user gave it, relative to where select ran: the manifest's digest
    # says the same wherever the command runs now
    manifest = run / "manifest.json"
    if isinstance(digest, str) and manifest.is_file() and hashlib.sha256(manifest.read_bytes()).hexdigest() == digest:
        return home
    return None


def table_files(run: Path, name: str, pattern: str) -> list[str]:
    """The files a table of the catalog names, checked (see the module docstring)."""

    def refuse(why: str):
        return RefsiftError(
            f"{run}: the catalog's table {name!r} names {pattern!r}, which {why}; refusing to read it "
            "(was the run directory copied from elsewhere?)"
        )

    if not isinstance(pattern, str) or os.path.isabs(pattern) or "**" in pattern:
        raise refuse("is not a path inside the run")
    directory = Path(os.path.normpath(run / os.path.dirname(pattern)))
    inside = directory == run or run in directory.parents
    if not inside and not directory.exists() and not directory.is_symlink():
        return []  # a selection moved or deleted since: nothing to read, nothing to refuse
    root = run if inside else _selection_home(run, directory, os.path.basename(pattern))
    if root is None:
        raise refuse("leads out of the run directory")
    files = []
    for file in sorted(glob.glob(str(run / pattern))):
        path = Path(os.path.normpath(file))
        if _links(path, root):
            raise refuse(f"reaches {path.name} through a symbolic link")
        if not path.is_file():
            raise refuse(f"matches {path.name}, which is not a regular file")
        files.append(str(path))
    return files


def connect(run_dir: str | os.PathLike, *, memory_limit: str = DEFAULT_MEMORY) -> duckdb.DuckDBPyConnection:
    """A `confined` connection holding a complete run's tables (as pyarrow datasets over
    its files, each checked by `table_files`) and its derived views."""
    import pyarrow.dataset as ds

    run_dir = os.fspath(run_dir)
    rundir.require(run_dir, ("run", "dedup", "novelty", "attribution", "ablation", "mixture"))
    run = Path(run_dir).resolve()
    tables, views = metadata(run_dir)
    con = confined(memory_limit)
    try:
        for name, pattern, fmt in tables:
            if fmt not in FORMATS:
                raise RefsiftError(f"{run_dir}: the catalog's table {name!r} has an unknown format {fmt!r}")
            files = table_files(run, name, pattern)
            if not files:  # a selection whose files were moved or deleted: an empty view, with no columns to mislead
                con.execute(f"CREATE VIEW {ident(name)} AS SELECT NULL AS missing_files LIMIT 0")
                continue
            try:
                dataset = ds.dataset(files, format=fmt)
            except (pa.ArrowException, OSError) as err:
                raise RefsiftError(
                    f"{run_dir}: cannot read table {name} ({type(err).__name__}); is a shard damaged?"
                ) from None
            con.register(name, dataset)
        for name, sql in views:
            if not one_select(sql):
                raise RefsiftError(f"{run_dir}: the catalog's view {name!r} is not one SELECT; refusing to make it")
            try:
                con.execute(f"CREATE VIEW {ident(name)} AS {sql}")
            except duckdb.Error as err:
                raise RefsiftError(
                    f"{run_dir}: the catalog's view {name!r} cannot be made here ({str(err).splitlines()[0][:200]}); "
                    "was the run directory copied from elsewhere?"
                ) from None
    except BaseException:
        con.close()
        raise
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuses anything but exactly one SELECT statement, or an EXPLAIN of one."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as err:
        raise RefsiftError(f"SQL error: {' '.join(str(err).split())[:300]}") from None
    if len(statements) != 1:
        raise RefsiftError("give exactly one SQL statement")
    statement = statements[0]
    if statement.type == duckdb.StatementType.EXPLAIN:  # EXPLAIN [ANALYZE] runs what it explains: check that
        explained = re.match(r"\s*EXPLAIN\s+(?:ANALYZE\s+)?(.*)", statement.query, re.S | re.I)
        if explained is None:
            raise RefsiftError("refused: write EXPLAIN first, before any comment")
        return check_read_only(con, explained.group(1))
    if statement.type not in _READ_ONLY:
        raise RefsiftError(
            f"refused: only SELECT (and EXPLAIN SELECT) run here, not {statement.type.name}; the catalog is read-only"
        )


@contextlib.contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, timeout: float | None, *, option: str = "--timeout"):
    """Interrupts what `con` runs inside the block once `timeout` seconds have passed (None
    or 0: no limit): a one-line RefsiftError naming `option`. Ctrl-C, which DuckDB turns
    into its own exception, stays an interrupt."""
    if timeout is not None and not 0 <= timeout <= MAX_TIMEOUT:
        raise RefsiftError(f"{option} must be a number of seconds up to {MAX_TIMEOUT:g} (0: no limit)")
    expired = threading.Event()

    def stop():
        expired.set()
        con.interrupt()

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer:
        timer.start()
    try:
        yield
    except (duckdb.InterruptException, RuntimeError) as err:
        if not expired.is_set():
            if isinstance(err, duckdb.InterruptException) or "interrupted" in str(err).lower():
                raise KeyboardInterrupt from None
            raise
        raise RefsiftError(f"the query ran longer than {timeout:g} s and was stopped ({option})") from None
    finally:
        if timer:
            timer.cancel()


def execute(con: duckdb.DuckDBPyConnection, sql: str, params=None, *, timeout: float | None = None):
    """Runs one SELECT on a `connect` connection and fetches it; SQL errors and a query
    past `timeout` seconds (interrupted) become one-line RefsiftErrors. Returns (column
    names, rows)."""
    check_read_only(con, sql)
    if timeout == 0:
        raise RefsiftError(f"--timeout must be a number of seconds up to {MAX_TIMEOUT:g} (0: no limit)")
    try:
        with time_limit(con, timeout):
            result = con.execute(sql, params) if params is not None else con.execute(sql)
            return [d[0] for d in result.description], result.fetchall()
    except duckdb.OutOfMemoryException:
        raise RefsiftError("the query needs more memory than --memory-limit allows, even spilling to disk") from None
    except (duckdb.Error, pa.ArrowException, OSError) as err:
        raise RefsiftError(f"SQL error: {' '.join(str(err).split())[:500]}") from None


def query(
    run_dir: str | os.PathLike,
    sql: str,
    params=None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    memory_limit: str = DEFAULT_MEMORY,
) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of one read-only statement over a run."""
    con = connect(run_dir, memory_limit=memory_limit)
    try:
        return execute(con, sql, params, timeout=timeout)
    finally:
        con.close()


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
