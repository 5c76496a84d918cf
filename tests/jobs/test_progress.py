"""What a user watching a job sees: the live progress line on a terminal and in a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refsift.jobs import progress
from tests.conftest import held_out, write_jsonl

REFSIFT = str(Path(sys.executable).with_name("refsift"))
N = 56  # the held-out prose and code documents there are


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    docs = held_out("prose", 40) + held_out("code", 40)
    assert len(docs) == N
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "docs.jsonl", [{"text": t} for t in docs])


def score(corpus: str, model: str, out: Path, stderr, **env: str) -> subprocess.Popen:
    # Small chunks, so that counts arrive while the job runs rather than all at its end.
    argv = [REFSIFT, "score", "--input", corpus, "--model", model, "--out", str(out), "--chunk-size", "20000"]
    env = {**os.environ, **env}
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env)


def test_the_progress_line_rewrites_itself_on_a_terminal(corpus, prose_model, tmp_path):
    master, slave = pty.openpty()
    proc = score(corpus, prose_model, tmp_path / "run", slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert proc.wait() == 0, seen
    lines = re.findall(rb"\r\x1b\[K(scoring [^\r\n]*)", seen)
    assert lines and all(b"records" in line and b"model" in line and b"tok/s" in line for line in lines), seen
    assert seen.endswith(b"\r\x1b[K") or b"\r\x1b[K\n" not in seen  # cleared before the summary
    assert b"Traceback" not in seen


def test_the_progress_line_is_printed_in_a_pipe(corpus, prose_model, tmp_path):
    # In a log the line comes every 30 s by default; a job this short prints none ...
    proc = score(corpus, prose_model, tmp_path / "quiet", subprocess.PIPE)
    out, err = proc.communicate()
    assert proc.returncode == 0 and f"documents: read {N} " in out.decode(), err
    assert not [line for line in err.decode().splitlines() if line.startswith("scoring ")], err
    # ... and every 0.2 s with REFSIFT_PROGRESS_EVERY=0.2, then once more at the end.
    proc = score(corpus, prose_model, tmp_path / "run", subprocess.PIPE, REFSIFT_PROGRESS_EVERY="0.2")
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    lines = [line for line in err.decode().splitlines() if line.startswith("scoring ")]
    assert len(lines) >= 2, err
    assert "\x1b" not in err.decode() and "\r" not in err.decode()  # no terminal control in a log
    assert re.search(rf"100% · records {N}/{N} · model [\d,.k]+ tok", lines[-1]), lines  # the last says it is done
    assert f"documents: read {N} = scored {N}" in out.decode()


def test_the_line_follows_stderr_as_the_job_redirects_it(tmp_path, capsys, monkeypatch):
    """Descriptor 2 goes to the workers' log while a job runs; the line must go where
    `sys.stderr` points then, not where it pointed when the line was made."""
    run = tmp_path / "run"
    (run / progress.DIRECTORY).mkdir(parents=True)
    progress.write_total(str(run), 10)
    (run / progress.DIRECTORY / "commit-1.json").write_text('{"records": 4, "tokens_model": 400}')
    line = progress.Line(str(run), ["model"], log_every=0.1, activity="classifying")
    terminal = io.StringIO()
    with line:
        monkeypatch.setattr(sys, "stderr", terminal)  # what console.worker_output does
        for _ in range(40):
            if terminal.getvalue():
                break
            time.sleep(0.05)
    shown = terminal.getvalue().splitlines()
    assert shown and shown[0].startswith("classifying 40% · records 4/10 · model 400 tok"), shown
    assert capsys.readouterr().err == ""


def test_a_resumed_run_says_this_attempts_time_and_counts_in_words():
    from refsift.cli.common import seconds
    from refsift.jobs.console import plural

    assert seconds({"wall_time_s": 12.34}) == "12.3 s"
    resumed = {"wall_time_s": 373.2, "attempt_wall_time_s": 153.0, "resumed": 1}
    assert seconds(resumed) == "153.0 s (this attempt; 373.2 s over 2 attempts)"
    assert (plural(1, "chunk"), plural(3, "chunk"), plural(1200, "chunk")) == ("1 chunk", "3 chunks", "1,200 chunks")


def test_training_lines_come_every_tenth_at_most_every_interval_and_at_the_end(tmp_path, monkeypatch):
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))  # one second per call
    log = progress.StepLog("finetune", 100, min_interval=25, path=tmp_path / "train.log")
    for step in range(1, 101):
        log(step, loss=5.0 - step / 50, lr=1e-4, tokens=1000)
    steps = [int(line.split("step ")[1].split("/")[0]) for line in log.lines]
    # every 10 steps is due, but 25 s must pass between lines; the last step always has its line
    assert steps == [30, 60, 90, 100], log.lines
    assert (
        log.lines[-1].startswith("finetune: step 100/100 · loss 3.0000 · lr 1.00e-04 · ") and "done in" in log.lines[-1]
    )
    assert (tmp_path / "train.log").read_text().splitlines() == log.lines
    every = progress.StepLog("unlearn", 20, every=5)
    for step in range(1, 21):
        every(step, loss=1.0, lr=1e-4, tokens=10)
    assert [line.split(" · ")[0] for line in every.lines] == [f"unlearn: step {n}/20" for n in (5, 10, 15, 20)]
