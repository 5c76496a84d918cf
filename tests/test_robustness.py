"""Nothing lost, no one in: bad records become `rejected` rows, damaged files are reported
where they break, refsift writes only where it may, and every wrong command is one line."""

import gzip
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refsift
from refsift import catalog, cli
from refsift.jobs import rundir
from tests.conftest import held_out, run_cli, write_jsonl

GOOD = held_out("prose", 8, start=170)


def score(model, inputs, out, *extra):
    return cli.main(["score", "--input", *map(str, inputs), "--model", model, "--out", str(out), "--max-length", "64",
                     "--context", "16", *extra])  # fmt: skip


def rejected(out) -> dict:
    rows = catalog.query(str(out), "SELECT input, row, reason FROM rejected")[1]
    return {(Path(i).name, r): reason for i, r, reason in rows}


def test_every_kind_of_bad_record_is_a_rejection_and_good_ones_are_scored(tmp_path, prose_model, capsys):
    lines = [
        b"\xef\xbb\xbf" + json.dumps({"id": "bom", "text": GOOD[0]}).encode(),  # a UTF-8 BOM before a valid record
        b'{"id": "surrogate", "text": "caf\\ud800 latte"}',
        b'{"id": "\\udfff", "text": "a lone surrogate in the id"}',
        b'{"id": "deep", "text": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"id": ' + b"9" * 5000 + b', "text": "a 5000-digit id"}',
        b'{"id": "latin1", "text": "caf\xe9"}',
        json.dumps({"id": "ok", "text": GOOD[1]}).encode(),
    ]
    (tmp_path / "web.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    records = b"".join(json.dumps({"id": f"gz{i}", "text": GOOD[2]}).encode() + b"\n" for i in range(30))
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(records)[:-60])  # the stream's end is missing
    pq.write_table(pa.table({"id": ["pq0", "pq1"], "text": [GOOD[3], GOOD[4]]}), tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # no footer: nothing readable
    out = tmp_path / "run"
    assert score(prose_model, [tmp_path / "*"], out) == 0
    printed = capsys.readouterr().out
    assert "warning: some inputs could not be read to their end" in printed
    got = rejected(out)
    assert {k: v for k, v in got.items() if k[0] == "web.jsonl"} == {
        ("web.jsonl", 1): "invalid_unicode",
        ("web.jsonl", 2): "invalid_unicode",
        ("web.jsonl", 3): "invalid_json",
        ("web.jsonl", 4): "invalid_json",
        ("web.jsonl", 5): "invalid_utf8",
    }
    assert got[("cut.parquet", 0)] == "read_error"
    assert [reason for (name, _), reason in got.items() if name == "cut.jsonl.gz"][-1] == "read_error"
    scored = {d for (d,) in catalog.query(str(out), "SELECT doc_id FROM examples")[1]}
    assert {"bom", "ok", "pq0", "pq1"} <= scored and "gz0" in scored
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["read"] == counts["scored"] + counts["rejected"]
    detail = catalog.query(str(out), "SELECT detail FROM rejected WHERE reason = 'read_error' ORDER BY input")[1]
    assert all(d for (d,) in detail)  # says what broke


MALFORMED = {
    "invalid_json": b'{"id": "x", "text": "unterminated',
    "not_an_object": b"[1, 2, 3]",
    "missing_text": b'{"id": "x"}',
    "non_string_text": b'{"text": {"a": 1}}',
    "empty_text": b'{"text": " \\t "}',
    "lone_surrogate": b'{"text": "\\ud83d alone"}',
    "deep": b"[" * 50_000 + b"]" * 50_000,
    "huge_number": b'{"text": "t", "n": ' + b"1" * 6000 + b"}",
    "latin1": b'{"text": "ni\xf1o"}',
    "blank": b"   ",
}


@settings(max_examples=10, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.one_of(st.sampled_from(sorted(MALFORMED)), st.integers(0, len(GOOD) - 1)), min_size=1, max_size=14),
    st.sampled_from(["jsonl", "jsonl.gz", "text", "parquet"]),
)
def test_fuzz_random_mixtures_of_good_and_bad_records(prose_model, items, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = set()
        if fmt == "parquet":  # a column of one type: the malformed are nulls and wrong lengths
            texts = [GOOD[i] if isinstance(i, int) else (None if k % 2 else "") for k, i in enumerate(items)]
            ids = [f"r{k}" for k in range(len(items))]
            pq.write_table(pa.table({"id": ids, "text": texts}), tmp / "data.parquet")
            good = {f"r{k}" for k, t in enumerate(texts) if t}
        else:
            lines = []
            for k, item in enumerate(items):
                if isinstance(item, int):
                    text = GOOD[item].replace("\n", " ")
                    lines.append(text.encode() if fmt == "text" else json.dumps({"id": f"r{k}", "text": text}).encode())
                    if fmt != "text":
                        good.add(f"r{k}")
                else:
                    lines.append(MALFORMED[item])
            data = b"\n".join(lines) + b"\n"
            name = {"jsonl": "data.jsonl", "jsonl.gz": "data.jsonl.gz", "text": "data.txt"}[fmt]
            (tmp / name).write_bytes(gzip.compress(data) if fmt == "jsonl.gz" else data)
        extra = ["--text-per-line"] if fmt == "text" else []
        assert score(prose_model, [f"{tmp}/data*"], tmp / "run", *extra) == 0  # an exception would fail the test
        counts = json.loads((tmp / "run" / "manifest.json").read_text())["counts"]
        assert counts["read"] == counts["scored"] + counts["rejected"]
        scored = {d for (d,) in catalog.query(str(tmp / "run"), "SELECT doc_id FROM examples")[1]}
        assert good <= scored
        if fmt == "text":  # every non-blank line is a record; the valid UTF-8 ones are scored
            assert counts["scored"] == sum(1 for i in items if isinstance(i, int) or i not in ("blank", "latin1"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, prose_model):
    d = tmp_path_factory.mktemp("robust")
    write_jsonl(d / "prose.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(GOOD[:4])])
    write_jsonl(d / "code.jsonl", [{"id": f"c{i}", "text": t} for i, t in enumerate(held_out("code", 2))])
    assert score(prose_model, [d / "*.jsonl"], d / "run") == 0
    return d / "run"


def test_overwrite_only_replaces_what_refsift_made_and_never_an_input(tmp_path, small_run, prose_model, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert score(prose_model, [small_run.parent / "prose.jsonl"], mine, "--overwrite") == 2
    assert "was not made by refsift" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work"

    out = tmp_path / "out"
    assert score(prose_model, [small_run.parent / "prose.jsonl"], out) == 0
    shutil.copy(small_run.parent / "prose.jsonl", out / "data.jsonl")
    assert score(prose_model, [out / "data.jsonl"], out, "--overwrite") == 2
    assert "which this command reads" in capsys.readouterr().err
    assert (out / "data.jsonl").is_file()

    before = sorted(p.name for p in small_run.iterdir())
    assert cli.main(["select", str(small_run), "--out", str(small_run), "--overwrite"]) == 2
    assert "which this command reads" in capsys.readouterr().err
    assert sorted(p.name for p in small_run.iterdir()) == before

    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(out)
    for target, message in ((tmp_path / "file", "is a file"), (tmp_path / "link", "symbolic link")):
        assert score(prose_model, [small_run.parent / "prose.jsonl"], target) == 2
        assert message in capsys.readouterr().err


def test_a_second_writer_is_refused_while_the_first_holds_the_directory(tmp_path, small_run, prose_model):
    out = tmp_path / "busy"
    with rundir.claim(str(out), kind="run"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "refsift.cli",
                "score",
                "--input",
                str(small_run.parent / "prose.jsonl"),
                "--model",
                prose_model,
                "--out",
                str(out),
                "--overwrite",
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 2 and "being written by another refsift command" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [".lock", ".refsift"]


def test_commands_on_an_incomplete_run_say_so_in_one_line(small_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(small_run, broken)
    (broken / ".refsift").write_text(json.dumps({"kind": "run", "status": "running"}))
    for args in (
        ["sql", str(broken), "SELECT 1"],
        ["report", str(broken)],
        ["select", str(broken), "--out", str(tmp_path / "m")],
    ):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert "incomplete scoring run" in err and "--resume" in err and len(err.strip().splitlines()) == 1


def test_a_model_directory_without_its_tokenizer_is_refused(tmp_path, prose_model, small_run, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(prose_model) / name, bare / name)
    assert score(str(bare), [small_run.parent / "prose.jsonl"], tmp_path / "run") == 2
    assert "encodes text to nothing" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_novelty_refuses_a_run_scored_with_other_models(
    small_run, tmp_path, prose_model, code_model, mixed_model, capsys
):
    run = tmp_path / "ft-run"
    assert score(prose_model, [small_run.parent / "prose.jsonl"], run, "--finetuned", mixed_model) == 0
    assert cli.main(["novelty", "--base", prose_model, "--finetuned", code_model, "--run", str(run),
                     "--out", str(tmp_path / "n"), "--num-samples", "1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "was scored with finetuned" in err and code_model in err


def test_select_refuses_what_would_mean_nothing_before_any_work(small_run, tmp_path, capsys):
    for args, message in [
        (["--by", "learnability"], "is NULL for every candidate"),
        (["--mix", "prose=0.5,poetry=0.5", "--budget", "50%"], "sources the run does not have: poetry"),
        (["--mix", "prose=nan,code=0.5"], "positive shares"),
        (["--tokens", "random", "--ratio", "1.5"], "--ratio must be in (0, 1], got 1.5"),
    ]:
        assert cli.main(["select", str(small_run), "--out", str(tmp_path / "mix"), *args]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "mix").exists()


def test_learning_percentage_needs_two_checkpoints_or_the_finetuned_model(
    small_run, tmp_path, prose_model, code_model, mixed_model, capsys
):  # noqa: E501
    data = small_run.parent / "prose.jsonl"
    assert score(prose_model, [data], tmp_path / "one", "--checkpoint", f"c1={code_model}") == 2
    assert "two --checkpoint" in capsys.readouterr().err
    assert (
        score(prose_model, [data], tmp_path / "ft", "--checkpoint", f"c1={code_model}", "--finetuned", mixed_model) == 0
    )
    import math

    for m, c1, ft, lp in catalog.query(
        str(tmp_path / "ft"), "SELECT nll_model, nll_c1, nll_finetuned, learning_percentage FROM examples"
    )[1]:  # noqa: E501
        p0, p1, pn = math.exp(m), math.exp(c1), math.exp(ft)
        assert lp == pytest.approx((p0 - p1) / (p0 - pn))


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "--input", "{data}", "--model", "{model}", "--max-length", "100000"], "at most 512"),
        (["score", "--input", "{data}", "--model", "{model}", "--device", "cuda"], "CUDA is not available"),
        (["score", "--input", "{data}", "--model", "{model}", "--device", "gpu9"], "not a device"),
        (["score", "--input", "{data}", "--model", "{model}", "--format", "parquet"], "is not a Parquet file"),
        (["score", "--input", "{data}", "--model", "{model}", "--format", "hf"], "--format hf takes"),
        (["score", "--input", "{data}", "--model", "{remote}"], "--trust-remote-code"),
        (["score", "--input", "{data}", "--model", "{model}", "--chunk-size", "lots"], "expected a size"),
        (
            ["novelty", "--base", "{model}", "--finetuned", "{model}", "--num-beams", "0"],
            "--num-beams must be at least 1",
        ),
        (["novelty", "--base", "{model}", "--finetuned", "{model}", "--top-documents", "-1"], "--top-documents"),
        (["novelty", "--base", "{model}", "--finetuned", "{model}", "--top-k", "-3"], "--top-k must be 0"),
        (["select", "{run}", "--mix", "x=nan"], "positive shares"),
        (["select", "{run}", "--tokens", "excess", "--ratio", "1.5"], "--ratio must be in (0, 1]"),
    ],
)
def test_wrong_commands_are_one_line_errors(args, message, small_run, prose_model, tmp_path):
    remote = tmp_path / "remote"
    shutil.copytree(prose_model, remote)
    config = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "x.Model"}}))
    values = dict(data=small_run.parent / "prose.jsonl", model=prose_model, remote=remote, run=small_run)
    argv = [a.format(**values) for a in args] + ["--out", str(tmp_path / "out")]
    proc = run_cli(*argv)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_report_function_survives_importing_the_pages_package(small_run, tmp_path):
    import refsift.pages.run  # noqa: F401  (the package that once shadowed the function)

    path = refsift.report(str(small_run), out=str(tmp_path / "new" / "dir" / "page.html"))
    assert path.is_file() and "Run report" in path.read_text()


def test_a_report_does_not_grow_with_its_documents(tmp_path, prose_model):
    pages = []
    for copies in (2, 20):
        huge = " ".join(held_out("prose", 20)) * copies
        write_jsonl(tmp_path / f"{copies}.jsonl", [{"id": "huge", "text": huge}, {"id": "small", "text": GOOD[0]}])
        out = tmp_path / f"run{copies}"
        assert score(prose_model, [tmp_path / f"{copies}.jsonl"], out, "--max-length", "512") == 0
        pages.append(len(refsift.report(str(out)).read_text()))
    assert len(huge) > 500_000 and "more characters not shown" in (out / "report.html").read_text()
    assert pages[1] < 1.05 * pages[0] and pages[1] < 2_000_000, pages


def test_markdown_report_escapes_html_and_markup():
    from refsift.pages import novelty as page
    from refsift.reports import novelty

    row = {"sample_id": "<img src=x onerror=alert(1)>", "mode": "cge", "iteration": None, "prompt": "",
           "text": "<script>alert(1)</script>", "token_ids": [1], "token_text": ["<b>"], "logp_ft": [-1.0],
           "logp_base": [-2.0], "score": [1.0], "n_tokens": 1, "finished": True, "mean_contrast": 1.0}  # fmt: skip
    report = novelty.build(base={"spec": "[b](javascript:x)"}, finetuned={"spec": "<f>"}, settings={},
                           samples=[row, {**row, "sample_id": "p", "mode": "baseline"}], created="now",
                           refsift_version="0")  # fmt: skip
    text = page.render_md(report)
    assert "<img" not in text and "<f>" not in text and "](javascript" not in text
    assert "    <script>alert(1)</script>" in text  # sample text only inside an indented code block
