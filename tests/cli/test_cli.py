"""The command line: one-line errors, read-only SQL, text and Hugging Face inputs."""

import json

import pytest

from refsift import catalog, cli
from tests.conftest import held_out, run_cli, write_jsonl


def refsift(*args, check=True):
    proc = run_cli(*args)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def score_prose(small_run, model, *extra):
    """`refsift score` on the small corpus's prose file, expected to fail."""
    return refsift("score", "--input", str(small_run.parent / "prose.jsonl"), "--model", model, *extra, check=False)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, prose_model):
    d = tmp_path_factory.mktemp("small")
    write_jsonl(d / "prose.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(held_out("prose", 3))])
    write_jsonl(d / "code.jsonl", [{"id": f"c{i}", "text": t} for i, t in enumerate(held_out("code", 2))])
    assert cli.main(["score", "--input", f"{d}/*.jsonl", "--model", prose_model, "--out", str(d / "run")]) == 0
    return d / "run"


def test_sql_group_by_as_table_csv_and_json(small_run, capsys):
    query = "SELECT source, count(*) AS n FROM examples GROUP BY source ORDER BY source"
    assert cli.main(["sql", str(small_run), query]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["source", "n"] and table[2].split() == ["code", "2"] and table[-1] == "(2 rows)"
    assert cli.main(["sql", str(small_run), query, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"source": "code", "n": 2}, {"source": "prose", "n": 3}]
    assert cli.main(["sql", str(small_run), query, "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["source,n", "code,2", "prose,3"]


def test_sql_jsonl_is_an_input_refsift_reads(small_run, prose_model, tmp_path, capsys):
    query = "SELECT doc_id AS id, text FROM examples WHERE source = 'prose' ORDER BY doc_id"
    assert cli.main(["sql", str(small_run), query, "--format", "jsonl"]) == 0
    (tmp_path / "prose_again.jsonl").write_text(capsys.readouterr().out, encoding="utf-8")
    out = tmp_path / "again"
    assert (
        cli.main(["score", "--input", str(tmp_path / "prose_again.jsonl"), "--model", prose_model, "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    again = "SELECT doc_id, nll_model FROM examples ORDER BY doc_id"
    first = "SELECT doc_id, nll_model FROM examples WHERE source = 'prose' ORDER BY doc_id"
    _, rows_again = catalog.query(out, again)
    _, rows_first = catalog.query(small_run, first)
    assert len(rows_again) == 3
    assert [r[0] for r in rows_again] == [r[0] for r in rows_first]
    assert [r[1] for r in rows_again] == pytest.approx([r[1] for r in rows_first], rel=1e-5)


@pytest.mark.parametrize(
    "statement",
    ["DELETE FROM examples", "CREATE TABLE x AS SELECT 1", "DROP VIEW examples", "COPY (SELECT 1) TO 'x.csv'"],
)
def test_sql_refuses_writes_and_leaves_the_run_untouched(small_run, statement):
    before = {p.name: p.stat().st_mtime_ns for p in small_run.rglob("*")}
    proc = refsift("sql", str(small_run), statement, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("refsift: error: refused") and "Traceback" not in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in small_run.rglob("*")} == before
    assert refsift("sql", str(small_run), "SELECT count(*) FROM examples").stdout.split()[2] == "5"


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "--input", "/nonexistent/*.jsonl", "--model", "{model}", "--out", "x"], "matches no file"),
        (["score", "--input", "{corpus}", "--model", "/nonexistent/model", "--out", "x"], "neither a local directory"),
        (["score", "--input", "{corpus}", "--checkpoint", "nopath", "--out", "x"], "expected NAME=PATH"),
        (["score", "--input", "{corpus}", "--model", "{model}", "--max-length", "8", "--context", "8"], "--context"),
        (["score", "--input", "{corpus}", "--format", "csv"], "invalid choice"),
        (["score", "--input", "{run}", "--model", "{model}", "--out", "x"], "is a directory"),
        (["sql", "/nonexistent", "SELECT 1"], "is not a directory"),
        (["sql", "{run}", "SELEC nonsense"], "SQL error"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message, small_run, prose_model):
    corpus = str(small_run.parent / "prose.jsonl")
    proc = refsift(*(a.format(corpus=corpus, run=small_run, model=prose_model) for a in args), check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.startswith("refsift")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_roles_must_share_a_tokenizer(small_run, prose_model, foreign_model, tmp_path):
    proc = score_prose(small_run, prose_model, "--reference", foreign_model, "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert prose_model in proc.stderr and foreign_model in proc.stderr and "tokenizer" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_existing_run_needs_overwrite(small_run, prose_model):
    proc = score_prose(small_run, prose_model, "--out", str(small_run))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_text_per_line_and_huggingface_inputs(tmp_path, prose_model):
    import datasets

    from refsift import catalog

    lines = held_out("prose", 3)
    (tmp_path / "notes.txt").write_text("\n".join(t.replace("\n", " ") for t in lines) + "\n\n", encoding="utf-8")
    datasets.Dataset.from_dict({"body": held_out("code", 2), "lang": ["py", "py"]}).save_to_disk(tmp_path / "hf")
    assert (
        cli.main(
            [
                "score",
                "--input",
                str(tmp_path / "notes.txt"),
                "--format",
                "text",
                "--text-per-line",
                "--model",
                prose_model,
                "--out",
                str(tmp_path / "r1"),
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "score",
                "--input",
                str(tmp_path / "hf"),  # a save_to_disk directory: --format auto reads it as hf
                "--text-field",
                "body",
                "--source-field",
                "lang",
                "--model",
                prose_model,
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 0
    )
    assert catalog.query(str(tmp_path / "r1"), "SELECT source, row FROM examples ORDER BY row")[1] == [
        ("notes", 0),
        ("notes", 1),
        ("notes", 2),
    ]
    assert catalog.query(str(tmp_path / "r2"), "SELECT source, count(*) FROM examples GROUP BY 1")[1] == [("py", 2)]


def test_version_and_help():
    assert refsift("--version").stdout.strip().startswith("refsift ")
    for command in ("score", "sql", "select", "finetune", "novelty", "report", "demo"):
        assert "usage: refsift " + command in refsift(command, "--help").stdout


def test_mistyped_options_are_refused_not_passed_to_beam(small_run, prose_model):
    proc = score_prose(small_run, prose_model, "--max-lenght", "64", "--out", str(small_run.parent / "typo"))
    assert proc.returncode == 2 and "unrecognized arguments: --max-lenght" in proc.stderr
    assert not (small_run.parent / "typo").exists()
