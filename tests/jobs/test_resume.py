"""Resumable runs and split inputs: a run killed at any point and resumed equals a run that
was never interrupted; a file cut into byte-range tasks reads as the whole file does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refsift import cli
from refsift.demo import corpora
from tests.conftest import snapshot, write_jsonl

CHUNK = "6K"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three inputs: a gzipped file, a small file, and one large enough to split into
    byte-range tasks, with blank lines, bad records and an id repeated across the split."""
    d = tmp_path_factory.mktemp("resume-corpus")
    docs = corpora.documents("prose", target_chars=700)
    write_jsonl(d / "code.jsonl.gz", corpora.numbered(corpora.documents("code", target_chars=700)[-12:], "code"))
    write_jsonl(d / "drama.jsonl", corpora.numbered(corpora.documents("drama", target_chars=700)[-6:], "drama"))
    big = corpora.numbered(docs[-40:], "prose")
    big.insert(30, {"id": "prose-3", "text": "a later record reusing an earlier id"})
    lines = [json.dumps(r) for r in big]
    lines[10:10] = ["", '{"id": "bad", "text": ', "[1, 2]"]  # a blank line and two bad records
    (d / "big.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def score_args(corpus: Path, out: Path, model: str, *extra: str) -> list[str]:
    return ["score", "--input", f"{corpus}/*", "--model", model, "--out", str(out), "--max-length", "64",
            "--context", "16", "--chunk-size", CHUNK, "--task-size", "20K", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus, prose_model):
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(score_args(corpus, out, prose_model)) == 0
    return out


def test_split_file_is_several_tasks_and_reads_as_the_whole_file(reference_run, corpus, prose_model, tmp_path):
    manifest = json.loads((reference_run / "manifest.json").read_text())
    plan = json.loads((reference_run / "_plan.json").read_text())["tasks"]
    big = [t for t in plan if t["input"].endswith("big.jsonl")]
    assert len(big) >= 2 and manifest["tasks"] == len(plan)
    whole = tmp_path / "whole"
    assert cli.main([*score_args(corpus, whole, prose_model)[:-2], "--task-size", "64M"]) == 0
    assert json.loads((whole / "manifest.json").read_text())["tasks"] == 3
    split, unsplit = snapshot(reference_run), snapshot(whole)
    assert split["rejected"] == unsplit["rejected"]
    # Same documents, rows, ids and tokens; losses equal up to float rounding (chunks, and so
    # batch shapes, differ when a file is cut differently).
    for name, keys in (("examples", 5), ("tokens", 3)):
        assert [r[:keys] for r in split[name]] == [r[:keys] for r in unsplit[name]]
        losses = [(a[-1], b[-1]) for a, b in zip(split[name], unsplit[name])]
        if name == "tokens":  # lists of losses, null where a position is not scored
            assert all([x is None for x in a] == [y is None for y in b] for a, b in losses)
            losses = [(x, y) for a, b in losses for x, y in zip(a, b) if x is not None]
        assert [a for a, _ in losses] == pytest.approx([b for _, b in losses], rel=1e-6)
    rejected = {(Path(i).name, row): reason for i, row, reason in snapshot(reference_run)["rejected"]}
    # rows are the file's line numbers (blank line 10 included), whatever task read them
    assert rejected == {("big.jsonl", 11): "invalid_json", ("big.jsonl", 12): "invalid_json",
                        ("big.jsonl", 33): "duplicate_id"}  # fmt: skip


def _markers(run: Path) -> int:
    return len(list((run / "_chunks").glob("*.json"))) if (run / "_chunks").is_dir() else 0


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_run_killed_at_any_point_resumes_to_the_uninterrupted_result(
    fraction, reference_run, corpus, prose_model, tmp_path
):
    total = _markers(reference_run)
    assert total >= 8  # enough chunks that the kill points differ
    out = tmp_path / "run"
    args = [sys.executable, "-m", "refsift.cli", *score_args(corpus, out, prose_model)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while proc.poll() is None and _markers(out) < round(fraction * total) and time.time() < deadline:
        time.sleep(0.01)
    if fraction == 0.0:
        time.sleep(1.5)  # inside the index pass or the first chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = _markers(out)
    if 0 < fraction < 1:
        assert 0 < committed < total  # killed in the middle of scoring
    if (out / ".refsift").is_file() and json.loads((out / ".refsift").read_text())["status"] != "complete":
        proc = subprocess.run([sys.executable, "-m", "refsift.cli", "sql", str(out), "SELECT 1"], capture_output=True)
        assert proc.returncode == 2 and b"incomplete" in proc.stderr and b"Traceback" not in proc.stderr
        again = subprocess.run([*args], capture_output=True, text=True)  # without --resume: refused, nothing lost
        assert again.returncode == 2 and "--resume" in again.stderr and _markers(out) == committed
    assert cli.main([*score_args(corpus, out, prose_model), "--resume"]) == 0
    assert snapshot(out) == snapshot(reference_run)
    manifest = json.loads((out / "manifest.json").read_text())
    expected = json.loads((reference_run / "manifest.json").read_text())["counts"]
    assert manifest["counts"] == expected and manifest["status"] == "complete"
    assert not (out / "_progress").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_resume_of_a_complete_run_changes_nothing(reference_run, corpus, prose_model, capsys):
    before = {p: p.stat().st_mtime_ns for p in reference_run.rglob("*") if p.name != ".lock"}
    assert cli.main([*score_args(corpus, reference_run, prose_model), "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in reference_run.rglob("*") if p.name != ".lock"} == before


def test_resume_refuses_other_settings_models_or_inputs(corpus, prose_model, code_model, tmp_path, capsys):
    data, out = tmp_path / "drama.jsonl", tmp_path / "run"
    data.write_bytes((corpus / "drama.jsonl").read_bytes())
    args = ["score", "--input", str(data), "--model", prose_model, "--out", str(out), "--max-length", "64",
            "--context", "16"]  # fmt: skip
    assert cli.main(args) == 0
    (out / ".refsift").write_text(json.dumps({"kind": "run", "status": "running"}))  # as if it had been killed
    for change, message in [
        (["--max-length", "32"], "--max-length was 64, now 32"),
        (["--prefix", "none"], "--prefix was 'auto', now 'none'"),
        (["--reference", code_model], "the run has no reference model"),
    ]:
        assert cli.main([*args, "--resume", *change]) == 2
        err = capsys.readouterr().err
        assert f"cannot resume {out}" in err and message in err, err
    os.utime(data, (1, 1))
    assert cli.main([*args, "--resume"]) == 2
    assert "changed since the run started" in capsys.readouterr().err
