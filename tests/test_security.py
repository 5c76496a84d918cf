"""`refsift sql` and `refsift.open_run` cannot write, read outside the run, or reach the
network: every statement below leaves the run directory byte for byte as it was."""

import hashlib
import subprocess
import sys

import pytest

import refsift
from refsift import catalog, cli
from refsift.errors import RefsiftError
from tests.conftest import held_out, write_jsonl


def fingerprint(directory):
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory, prose_model):
    d = tmp_path_factory.mktemp("security")
    write_jsonl(d / "docs.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(held_out("prose", 3))])
    out = d / "it's a run"  # a quote in the path must not break any SQL refsift writes
    assert cli.main(["score", "--input", str(d / "docs.jsonl"), "--model", prose_model, "--out", str(out)]) == 0
    return out


def attacks(run):
    shard = next((run / "examples").glob("part-*.parquet"))
    return [
        f"COPY (SELECT 1 AS a) TO '{shard}'",
        f"EXPLAIN ANALYZE COPY (SELECT 'x' AS doc_id) TO '{shard}'",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{run / catalog.CATALOG}'",
        "EXPLAIN ANALYZE DROP VIEW examples",
        "DROP VIEW examples",
        "DELETE FROM examples",
        "CREATE TABLE x AS SELECT 1",
        "CREATE TEMP TABLE x AS SELECT 1",
        "SET threads = 1",
        "SET enable_external_access = true",
        "CALL pragma_version()",
        "LOAD httpfs",
        "INSTALL httpfs",
        f"ATTACH '{run / 'other.duckdb'}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM glob('{run}/*')",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_parquet('{shard}')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT 1; DROP VIEW examples",
    ]


def test_sql_escapes_fail_and_the_run_is_untouched(run, capsys):
    before = fingerprint(run)
    for statement in attacks(run):
        assert cli.main(["sql", str(run), statement]) == 2, statement
        err = capsys.readouterr().err
        assert err.startswith("refsift: error:") and len(err.strip().splitlines()) == 1, (statement, err)
    assert fingerprint(run) == before
    assert cli.main(["sql", str(run), "SELECT count(*) AS n FROM examples"]) == 0
    assert capsys.readouterr().out.split()[2] == "3"


def test_the_python_api_is_confined_the_same_way(run):
    before = fingerprint(run)
    with refsift.open_run(str(run)) as opened:
        for statement in attacks(run):
            with pytest.raises((RefsiftError, Exception)):  # refused, or DuckDB's permission error
                opened.sql(statement).fetchall()
        assert opened.sql("SELECT count(*) FROM token_scores").fetchall()[0][0] > 0
    assert fingerprint(run) == before


def test_a_query_cannot_write_through_the_selection_views(run, tmp_path):
    refsift.select(str(run), out=str(tmp_path / "x'); DROP VIEW examples; SELECT ('"), budget="1")
    assert catalog.query(str(run), "SELECT count(*) FROM examples")[1] == [(3,)]
    views = {name for name, *_ in catalog.metadata(str(run))[0]}
    assert "selection_x____DROP_VIEW_examples__SELECT___" in views


def test_table_output_escapes_control_characters(tmp_path, prose_model):
    evil = "\x1b[2J\x1b]0;owned\x07\rline\u202eevil\x85"
    write_jsonl(tmp_path / "docs.jsonl", [{"id": evil, "text": held_out("prose", 1)[0]}])
    out = tmp_path / "run"
    assert cli.main(["score", "--input", str(tmp_path / "docs.jsonl"), "--model", prose_model, "--out", str(out)]) == 0
    proc = subprocess.run(
        [sys.executable, "-m", "refsift.cli", "sql", str(out), "SELECT doc_id FROM examples"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert not any(c in proc.stdout for c in "\x1b\x07\r\u202e\x85")
    assert "\\x1b[2J\\x1b]0;owned\\x07\\rline\\u202eevil\\x85" in proc.stdout
    raw = subprocess.run(
        [sys.executable, "-m", "refsift.cli", "sql", str(out), "SELECT doc_id FROM examples", "--format", "json"],
        capture_output=True,
        text=True,
    )
    import json

    assert json.loads(raw.stdout)[0]["doc_id"] == evil  # machine formats stay exact
