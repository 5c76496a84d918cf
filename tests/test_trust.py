"""Trust nothing refsift did not write: compressed inputs cut short, records too large to
hold, run directories copied from someone else, output paths, models that do not fit
their config, interrupts and full disks, and text that would rewrite what is shown."""

import bz2
import errno
import gc
import gzip
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard

from refsift import catalog, cli
from refsift.corpus.formats import ReadError, Reading, TooLarge, payloads
from refsift.corpus.records import id_text
from refsift.corpus.tasks import plan_tasks
from refsift.demo import corpora
from refsift.jobs import rundir
from refsift.pages import html as h
from tests.browser import open_page
from tests.conftest import held_out, write_jsonl

TEXTS = held_out("prose", 6, start=180)
CODECS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lambda data: lzma.compress(data, format=lzma.FORMAT_XZ),
    "lzma": lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE),
    "zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
    "deflate": zlib.compress,
}


def score(model, inputs, out, *extra) -> int:
    return cli.main(["score", "--input", *map(str, inputs), "--model", model, "--out", str(out), "--max-length", "64",
                     "--context", "16", *extra])  # fmt: skip


def records(n: int) -> bytes:
    return b"".join(
        json.dumps({"id": f"r{i}", "text": f"record {i}: " + TEXTS[i % 6]}).encode() + b"\n" for i in range(n)
    )


def read_all(path: Path, reading: Reading = Reading()) -> list:
    task = plan_tasks([str(path)])[0][0]
    return [payload for _, payload in payloads(task, ["text", "id"], reading)]


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_every_codec_reads_whole_and_reports_a_cut_or_corrupt_file_where_it_breaks(tmp_path, codec):
    data = records(300)
    packed = CODECS[codec](data)
    whole = tmp_path / f"whole.jsonl.{codec}"
    whole.write_bytes(packed)
    assert b"\n".join(read_all(whole)) + b"\n" == data
    cut = tmp_path / f"cut.jsonl.{codec}"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    got = read_all(cut)
    assert isinstance(got[-1], ReadError) and 0 <= len(got) - 1 < 300, got[-1]
    assert all(isinstance(p, bytes) for p in got[:-1])
    corrupt = tmp_path / f"corrupt.jsonl.{codec}"
    damaged = bytearray(packed)
    for i in range(len(damaged) // 2, len(damaged) // 2 + 8):
        damaged[i] ^= 0x5A
    corrupt.write_bytes(bytes(damaged))
    got = read_all(corrupt)
    if codec != "lzma":  # the others check their data (CRC or checksum): damage is never read as other records
        assert isinstance(got[-1], ReadError), got[-1]


def test_a_truncated_zstd_file_is_counted_and_reported_by_score(tmp_path, prose_model, capsys):
    packed = zstandard.ZstdCompressor().compress(records(300))
    (tmp_path / "cut.jsonl.zst").write_bytes(packed[: len(packed) // 2])
    out = tmp_path / "run"
    assert score(prose_model, [tmp_path / "cut.jsonl.zst"], out) == 0
    assert "warning: some inputs could not be read to their end" in capsys.readouterr().out
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["rejected_by_reason"].get("read_error") == 1
    assert counts["read"] == counts["scored"] + counts["rejected"]


def test_unreadable_compressions_and_inputs_given_twice_are_refused(tmp_path, prose_model, capsys):
    (tmp_path / "a.jsonl.lz4").write_bytes(b"\x04\x22\x4d\x18junk")
    write_jsonl(tmp_path / "a.jsonl", [{"text": TEXTS[0]}])
    for inputs, message in [
        ([tmp_path / "a.jsonl.lz4"], "cannot read .lz4 files"),
        ([tmp_path / "a.jsonl", tmp_path / "a.jsonl"], "is given twice"),
        ([tmp_path / "a.jsonl", tmp_path / "*.jsonl"], "is given by"),
    ]:
        assert score(prose_model, inputs, tmp_path / "run") == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_stray_positional_path_is_refused_not_ignored(tmp_path, prose_model, capsys):
    write_jsonl(tmp_path / "mine.jsonl", [{"text": TEXTS[0]}])
    assert cli.main(["score", str(tmp_path / "mine.jsonl"), "--model", prose_model, "--out", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "unexpected argument" in captured.err and "--input" in captured.err
    assert captured.out == "" and not (tmp_path / "r").exists()  # refused before anything, header included


def test_a_record_over_the_limit_is_too_large_and_never_held_whole(tmp_path, prose_model):
    huge = json.dumps({"id": "huge", "text": "x" * (16 * 2**20)}).encode()
    lines = [
        json.dumps({"id": "a", "text": TEXTS[0]}).encode(),
        huge,
        json.dumps({"id": "b", "text": TEXTS[1]}).encode(),
    ]
    path = tmp_path / "web.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    tracemalloc.start()
    got = read_all(path, Reading(max_record_bytes=2**20))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 2**20, peak  # the 16 MB line went past in pieces
    assert [type(p) for p in got] == [bytes, TooLarge, bytes] and got[1].size == len(huge) + 1
    (tmp_path / "big.txt").write_text("y" * (3 * 2**20))
    assert isinstance(read_all(tmp_path / "big.txt", Reading(max_record_bytes=2**20))[0], TooLarge)
    out = tmp_path / "run"  # byte-range tasks that begin inside the huge line read the same records
    assert score(prose_model, [path], out, "--max-record-bytes", "1M", "--task-size", "1M") == 0
    assert len(json.loads((out / "_plan.json").read_text())["tasks"]) > 10
    rows = catalog.query(str(out), "SELECT row, reason, detail, length(record) FROM rejected")[1]
    assert len(rows) == 1 and rows[0][:2] == (1, "too_large") and "--max-record-bytes" in rows[0][2]
    assert rows[0][3] <= 4096
    assert {d for (d,) in catalog.query(str(out), "SELECT doc_id FROM examples")[1]} == {"a", "b"}


def test_ids_keep_their_json_form_and_a_number_and_its_string_are_one_id(tmp_path, prose_model):
    assert [id_text(v) for v in ("1", 1, True, [1, 2], {"a": None}, 1.5)] == [
        "1",
        "1",
        "true",
        "[1,2]",
        '{"a":null}',
        "1.5",
    ]
    ids = [1, "1", True, [1, 2]]
    write_jsonl(tmp_path / "ids.jsonl", [{"id": i, "text": TEXTS[k]} for k, i in enumerate(ids)])
    assert score(prose_model, [tmp_path / "ids.jsonl"], tmp_path / "run") == 0
    scored = {d for (d,) in catalog.query(str(tmp_path / "run"), "SELECT doc_id FROM examples")[1]}
    assert scored == {"1", "true", "[1,2]"}
    rejected = catalog.query(str(tmp_path / "run"), "SELECT row, reason, detail FROM rejected")[1]
    assert [(r, reason) for r, reason, _ in rejected] == [(1, "duplicate_id")] and "first at" in rejected[0][2]


@pytest.fixture(scope="module")
def trusted(tmp_path_factory, prose_model):
    """A small run in several chunks, and a pristine copy to compare with."""
    d = tmp_path_factory.mktemp("trusted")
    write_jsonl(d / "prose.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(TEXTS)])
    out = d / "run"
    assert score(prose_model, [d / "prose.jsonl"], out, "--chunk-size", "2K") == 0
    assert len(list((out / "_chunks").glob("*.json"))) >= 3
    return d


def losses(run: Path) -> list:
    return catalog.query(str(run), "SELECT doc_id, nll_model FROM examples ORDER BY doc_id")[1]


def copied(trusted: Path, tmp_path: Path) -> Path:
    shutil.copytree(trusted / "run", tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "run"


def test_resume_redoes_an_edited_or_deleted_shard_and_verify_names_it(trusted, tmp_path, prose_model, capsys, caplog):
    run = copied(trusted, tmp_path)
    assert cli.main(["verify", str(run)]) == 0
    assert "sound" in capsys.readouterr().out
    shards = sorted((run / "examples").glob("part-*.parquet"))
    table = pq.read_table(shards[0])
    doubled = table.set_column(
        table.schema.get_field_index("nll_model"), "nll_model", pc.multiply(table["nll_model"], 2)
    )
    pq.write_table(doubled, shards[0])
    gone = sorted((run / "tokens").glob("part-*.parquet"))[-1]
    gone.unlink()
    assert cli.main(["verify", str(run)]) == 1
    report = capsys.readouterr().out
    assert f"examples/{shards[0].name} is not what its chunk wrote" in report
    assert f"tokens/{gone.name} is missing" in report and "--resume" in report
    assert score(prose_model, [trusted / "prose.jsonl"], run, "--chunk-size", "2K", "--resume") == 0
    warned = caplog.text
    assert "is not what its chunk wrote" in warned and "is missing" in warned and "scored again" in warned
    assert losses(run) == losses(trusted / "run") and gone.exists()
    assert cli.main(["verify", str(run)]) == 0


def test_sql_reads_nothing_outside_a_copied_run(trusted, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret line\n")
    outside = tmp_path / "outside.parquet"
    shutil.copy(next((trusted / "run" / "examples").glob("part-*.parquet")), outside)

    def refused(run: Path) -> str:
        assert cli.main(["sql", str(run), "SELECT count(*) FROM examples"]) == 2
        err = capsys.readouterr().err
        assert "the secret line" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        return err

    run = copied(trusted, tmp_path / "a")
    shard = next((run / "examples").glob("part-*.parquet"))
    shard.unlink()
    shard.symlink_to(outside)  # a shard swapped for a link to a file outside
    assert "through a symbolic link" in refused(run)
    run = copied(trusted, tmp_path / "b")
    shutil.rmtree(run / "examples")
    (run / "examples").symlink_to(trusted / "run" / "examples")  # a linked table directory
    assert "through a symbolic link" in refused(run)
    run = copied(trusted, tmp_path / "c")
    with duckdb.connect(str(run / catalog.CATALOG)) as con:  # the catalog itself names a file outside
        con.execute(
            f"UPDATE {catalog.TABLES_META} SET pattern = '../../../../../../..{secret}' WHERE name = 'rejected'"
        )
    assert "leads out of the run directory" in refused(run)
    with duckdb.connect(str(run / catalog.CATALOG)) as con:
        con.execute(f"UPDATE {catalog.TABLES_META} SET pattern = '{secret}', format = 'json' WHERE name = 'rejected'")
    assert "not a path inside the run" in refused(run)
    run = copied(trusted, tmp_path / "d")
    sorted((run / "examples").glob("part-*.parquet"))[0].write_bytes(b"PAR1 not parquet at all PAR1")
    refused(run)


def test_sql_stops_at_its_time_limit_and_spills_into_a_directory_it_removes(trusted, capsys):
    started = time.time()
    code = cli.main(["sql", str(trusted / "run"), "SELECT count(*) FROM range(100000000) a, range(1000000) b",
                     "--timeout", "1"])  # fmt: skip
    assert code == 2 and time.time() - started < 20
    assert "longer than 1 s" in capsys.readouterr().err
    con = catalog.connect(str(trusted / "run"), memory_limit="64MB")
    spill = con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    assert Path(spill).name.startswith("refsift-duckdb-") and Path(spill).is_dir()
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0].startswith("61")
    con.close()
    del con
    gc.collect()
    assert not Path(spill).exists()


def test_select_and_distill_stop_a_ranking_expression_at_its_time_limit(trusted, tmp_path, capsys):
    slow = "nll_model + (SELECT count(*) FROM range(100000000) a, range(1000000) b)"
    for argv in (
        ["select", str(trusted / "run"), "--by", slow, "--budget", "50%"],
        ["select", str(trusted / "run"), "--where", f"{slow} > 0", "--budget", "50%"],
        ["distill", str(trusted / "run"), "--by", slow, "--bucket", "5000"],
    ):
        started = time.time()
        assert cli.main([*argv, "--timeout", "1", "--out", str(tmp_path / "out")]) == 2, argv
        assert time.time() - started < 20
        err = capsys.readouterr().err
        assert "longer than 1 s and was stopped (--timeout)" in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()


def test_a_report_writes_only_where_refsift_may(trusted, tmp_path, capsys):
    run = copied(trusted, tmp_path)
    shard = next((run / "examples").glob("part-*.parquet"))
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my own notes</p>")
    link = tmp_path / "link.html"
    link.symlink_to(mine)
    protected = [run / catalog.CATALOG, shard, trusted / "prose.jsonl", mine, link, run / "examples" / "new.html"]
    before = {p: p.read_bytes() for p in protected if p.exists()}
    for target in protected:
        assert cli.main(["report", str(run), "--out", str(target)]) == 2, target
        err = capsys.readouterr().err
        assert "refusing" in err or "inside" in err, err
    assert {p: p.read_bytes() for p in before} == before and not (run / "examples" / "new.html").exists()
    page = tmp_path / "pages" / "run.html"
    for _ in range(2):  # a new file, then the page refsift wrote there before
        assert cli.main(["report", str(run), "--out", str(page)]) == 0
    assert cli.main(["report", str(run)]) == 0 and (run / "report.html").is_file()


def test_overwrite_never_deletes_a_model_inside_the_run(trusted, tmp_path, prose_model, capsys):
    run = copied(trusted, tmp_path)
    inside = run / "model"
    shutil.copytree(prose_model, inside)
    assert score(str(inside), [trusted / "prose.jsonl"], run, "--overwrite") == 2
    assert "which this command reads" in capsys.readouterr().err
    assert (inside / "config.json").is_file() and (run / "manifest.json").is_file()


def broken_models(base: str, root: Path) -> dict[str, tuple[Path, str]]:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    made = {}
    corrupt = root / "corrupt"
    shutil.copytree(base, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    made["corrupt"] = (corrupt, "a weights file is damaged")
    for name, change, message in [
        ("wider", {"n_embd": 96}, "do not fit its config.json"),
        ("deeper", {"n_layer": 3}, "are not in its weights files"),
        ("shallower", {"n_layer": 1}, "that its config.json does not ask for"),
    ]:
        shutil.copytree(base, root / name)
        config = json.loads((root / name / "config.json").read_text())
        (root / name / "config.json").write_text(json.dumps({**config, **change}))
        made[name] = (root / name, message)
    small = root / "small_vocab"
    GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=128, n_embd=32, n_layer=1, n_head=1)).save_pretrained(small)
    AutoTokenizer.from_pretrained(base).save_pretrained(small)
    made["small_vocab"] = (small, "100 token embeddings but its tokenizer")
    return made


def test_models_that_do_not_fit_are_refused_in_one_line_before_any_work(trusted, tmp_path, prose_model, capsys):
    for name, (model, message) in broken_models(prose_model, tmp_path / "models").items():
        assert score(str(model), [trusted / "prose.jsonl"], tmp_path / name) == 2, name
        captured = capsys.readouterr()
        assert message in captured.err and len(captured.err.strip().splitlines()) == 1, (name, captured.err)
        assert captured.out == "" and not (tmp_path / name).exists()


def test_a_worker_that_cannot_load_its_model_ends_the_run_in_one_line(trusted, tmp_path, prose_model, capsys):
    model = tmp_path / "model"
    shutil.copytree(prose_model, model)
    from refsift.config import ScoreConfig
    from refsift.errors import RefsiftError
    from refsift.pipelines import score as pipeline

    cfg = ScoreConfig(inputs=(str(trusted / "prose.jsonl"),), out=str(tmp_path / "run"), model=str(model))
    with pytest.raises(RefsiftError) as raised:  # the directory vanishes after the checks, before a worker loads it
        pipeline.run(cfg, on_start=lambda _: shutil.rmtree(model))
    message = str(raised.value)
    assert "the run stopped" in message and str(model) in message and "--resume" in message
    assert "\n" not in message and rundir.marker(str(tmp_path / "run"))["status"] == "running"


def test_a_full_disk_stops_the_run_in_one_line_and_resume_finishes_it(
    trusted, tmp_path, prose_model, monkeypatch, capsys
):
    from refsift.transforms import commit_chunks

    real, calls = commit_chunks.write_table, []

    def full_after_two(table, path):
        calls.append(path)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path)

    monkeypatch.setattr(commit_chunks, "write_table", full_after_two)
    out = tmp_path / "run"
    assert score(prose_model, [trusted / "prose.jsonl"], out, "--chunk-size", "2K") == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(commit_chunks, "write_table", real)
    assert score(prose_model, [trusted / "prose.jsonl"], out, "--chunk-size", "2K", "--resume") == 0
    assert losses(out) == losses(trusted / "run")


def test_ctrl_c_stops_the_run_in_one_line_and_resume_finishes_it(tmp_path, prose_model):
    write_jsonl(tmp_path / "many.jsonl", [{"id": f"d{i}", "text": TEXTS[i % 6]} for i in range(160)])
    out = tmp_path / "run"
    args = [sys.executable, "-m", "refsift.cli", "score", "--input", str(tmp_path / "many.jsonl"), "--model",
            prose_model, "--out", str(out), "--max-length", "64", "--context", "16", "--chunk-size", "4K"]  # fmt: skip
    # Ctrl-C as a terminal sends it, whatever started the suite: a shell's background job (a CI
    # script run with &) ignores SIGINT, and so would every process it starts.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.time() + 120
    while not list(out.glob("_chunks/*.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [err.strip()] and "interrupted" in err and "--resume" in err, err
    assert rundir.marker(str(out))["status"] == "running"
    assert cli.main([*args[3:], "--resume"]) == 0
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["read"] == counts["scored"] == 160


def test_an_attribution_source_that_yields_nothing_or_would_merge_is_refused(tmp_path, prose_model, capsys):
    write_jsonl(tmp_path / "target.jsonl", [{"text": TEXTS[0]}])
    write_jsonl(tmp_path / "good.jsonl", [{"text": TEXTS[1]}])
    write_jsonl(tmp_path / "instruct.jsonl", [{"instruction": "x", "output": TEXTS[2]}])
    (tmp_path / "other").mkdir()
    write_jsonl(tmp_path / "other" / "good.jsonl", [{"text": TEXTS[3]}])
    base = [
        "attribute",
        "--model",
        prose_model,
        "--target",
        str(tmp_path / "target.jsonl"),
        "--out",
        str(tmp_path / "a"),
    ]
    for sources, message in [
        (["good.jsonl", "instruct.jsonl"], f"source {tmp_path / 'instruct.jsonl'} yields no document (missing_text 1)"),
        (["good.jsonl", "good.jsonl"], "is given twice"),
        (["good.jsonl", "other/good.jsonl"], "would both be source 'good'"),
    ]:
        assert cli.main([*base, "--sources", *(str(tmp_path / s) for s in sources)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() or rundir.marker(str(tmp_path / "a"))["status"] != "complete"


def test_user_text_cannot_reorder_or_hide_what_a_page_shows(tmp_path, prose_model):
    assert h.esc("a\u202eb\x00c\x1b[31m") == "a\u27e8U+202E\u27e9b\u2400c\u241b[31m"
    assert h.user("\u05e9\u05dc\u05d5\u05dd") == "<bdi>\u05e9\u05dc\u05d5\u05dd</bdi>"
    ids = ["rtl\u202e", "nul\x00esc\x1b", "\u05e9\u05dc\u05d5\u05dd"]
    write_jsonl(tmp_path / "web.jsonl", [{"id": i, "text": TEXTS[k]} for k, i in enumerate(ids)])
    out = tmp_path / "run"
    assert score(prose_model, [tmp_path / "web.jsonl"], out) == 0
    values = dict(catalog.query(str(out), "SELECT doc_id, nll_model FROM examples")[1])
    seen = open_page(Path(cli_report(out)))
    text = seen["unfolded_text"]
    assert "\u202e" not in text and "\x00" not in text and "\x1b" not in text
    shown = f"rtl\u27e8U+202E\u27e9 \u00b7 web \u00b7 nll_model = {values['rtl' + chr(0x202E)]:.4f}"
    assert shown in text and "nul\u2400esc\u241b \u00b7 web" in text, text[:3000]


def cli_report(run: Path) -> str:
    assert cli.main(["report", str(run)]) == 0
    return str(run / "report.html")


def test_every_option_says_its_default_and_has_help():
    parser = cli.parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, command in commands.items():
        text = " ".join(command.format_help().split())
        for action in command._actions:
            if not action.option_strings or action.option_strings[0] == "-h":
                continue
            assert action.help, (name, action.option_strings)
            if action.default not in (None, False, [], ()):
                assert "default" in action.help or f"(default {action.default})" in text, (name, action.option_strings)


def test_a_doctored_catalog_runs_nothing_and_verify_names_it(trusted, tmp_path, capsys):
    """A copied run's catalog.duckdb can say anything: the metadata table replaced by a view
    over a file outside the run, or a derived view that reads one. Nothing of the file is
    read, `sql` fails in one line, and `verify` says what is wrong."""
    import duckdb

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    for doctored in ("metadata", "view"):
        run = copied(trusted, tmp_path / doctored)
        with duckdb.connect(str(run / catalog.CATALOG)) as con:
            reading = f"read_csv({catalog.literal(str(secret))}, header=false, columns={{'line': 'VARCHAR'}})"
            leak = f"SELECT * FROM {reading}"
            if doctored == "metadata":
                con.execute(f"DROP TABLE {catalog.VIEWS_META}")
                row = f"'leak' AS name, {catalog.literal(leak)} AS sql, 1 AS position"
                con.execute(f"CREATE VIEW {catalog.VIEWS_META} AS SELECT {row} FROM {reading}")
            else:
                con.execute(f"INSERT INTO {catalog.VIEWS_META} VALUES ('leak', ?, 99)", [leak])
        capsys.readouterr()
        code = cli.main(["sql", str(run), "SELECT * FROM leak"])
        out, err = capsys.readouterr()
        assert code == 2 and "TOP-SECRET" not in out + err and len(err.strip().splitlines()) == 1, (doctored, err)
        assert cli.main(["verify", str(run)]) == 1, doctored
        out = capsys.readouterr().out
        assert "sound" not in out and "TOP-SECRET" not in out, out
        if doctored == "metadata":
            assert f"{catalog.VIEWS_META} is not the table refsift writes" in out


def test_bad_settings_and_broken_outputs_end_in_one_line_not_a_traceback(trusted, tmp_path, prose_model, capsys):
    """Settings a worker would fail on are refused on the launcher, before a directory is
    made; a reader that leaves, a full device and a page asked of the wrong directory each
    end in at most one line."""
    prose = str(trusted / "prose.jsonl")
    refused = {
        "runner": ["score", "--input", prose, "--model", prose_model, "--runner", "nosuch"],
        "callable runner": ["score", "--input", prose, "--model", prose_model, "--runner=os.getcwd"],
        "dedup seed": ["dedup", "--input", prose, "--seed", "-1"],
        "dedup size": ["dedup", "--input", prose, "--bands", "100000", "--rows", "100000"],
        "finetune lr": ["finetune", "--data", str(tmp_path), "--model", prose_model, "--lr", "nan"],
        "no scheduler": ["score", "--input", prose, "--model", prose_model, "--runner", "dask", "--dask-address",
                         "127.0.0.1:9"],
        "a,comma": ["score", "--input", prose, "--model", prose_model],
    }  # fmt: skip
    for name, argv in refused.items():
        out = tmp_path / name.replace(" ", "_")
        assert cli.main([*argv, "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and not out.exists(), (name, err)
    run = copied(trusted, tmp_path / "copy")
    assert cli.main(["sql", str(run), "SELECT 1", "--timeout", "inf"]) == 2
    assert "--timeout" in capsys.readouterr().err
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "roles"}))
    assert cli.main(["report", str(run)]) == 2 and "classification run" in capsys.readouterr().err
    dedup = tmp_path / "dedup"
    assert cli.main(["dedup", "--input", prose, "--out", str(dedup)]) == 0
    page = (dedup / "report.html").read_bytes()
    assert cli.main(["report", str(dedup)]) == 2 and "has its page already" in capsys.readouterr().err
    assert (dedup / "report.html").read_bytes() == page
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    for out in (mine, tmp_path):  # a file; a directory of the user's own
        assert cli.main(["demo", "--out", str(out)]) == 2
        assert "--out" in capsys.readouterr().err and mine.read_text() == "mine"

    refsift = str(Path(sys.executable).with_name("refsift"))
    query = [refsift, "sql", str(trusted / "run"), "SELECT * FROM token_scores"]
    reader = subprocess.Popen(query, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader.stdout.readline()
    reader.stdout.close()  # as `| head -1` does
    assert reader.wait() == 141 and reader.stderr.read() == b""
    with open("/dev/full", "w") as full:
        done = subprocess.run(query, stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "refsift: error: No space left on device", done.stderr


def test_a_shard_without_its_digest_or_behind_a_link_is_damaged_and_resume_replaces_it(
    trusted, tmp_path, prose_model, capsys
):
    run = copied(trusted, tmp_path)
    markers = sorted((run / "_chunks").glob("*.json"))
    first = json.loads(markers[0].read_text())
    first.pop("digests")  # the marker lost its digests ...
    markers[0].write_text(json.dumps(first))
    flipped = run / "examples" / first["files"]["examples"]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # ... and its shard a byte
    flipped.write_bytes(bytes(data))
    second = json.loads(markers[1].read_text())
    linked = run / "tokens" / second["files"]["tokens"]
    elsewhere = tmp_path / "elsewhere.parquet"
    shutil.move(linked, elsewhere)
    linked.symlink_to(elsewhere)  # the same bytes, reached through a link
    assert cli.main(["verify", str(run)]) == 1
    report = capsys.readouterr().out
    first_name, second_name = markers[0].stem, markers[1].stem
    assert f"chunk {first_name}: " in report and "has no digest in its chunk's marker" in report, report
    assert f"chunk {second_name}: tokens/{linked.name} is a symbolic link" in report and "sound" not in report
    assert score(prose_model, [trusted / "prose.jsonl"], run, "--chunk-size", "2K", "--resume") == 0
    assert not linked.is_symlink() and elsewhere.exists()  # replaced by a shard of its own; the target untouched
    assert losses(run) == losses(trusted / "run") and cli.main(["verify", str(run)]) == 0


def test_a_page_replaces_only_a_page_refsift_sealed(trusted, tmp_path, capsys):
    run = copied(trusted, tmp_path)
    quoting = tmp_path / "input.jsonl"  # an input whose first record quotes a page's head
    quoting.write_text(json.dumps({"text": "<meta name='generator' content='refsift 0.2.0'> a page"}) + "\n")
    assert cli.main(["report", str(run), "--out", str(quoting)]) == 2
    assert "not a page refsift wrote" in capsys.readouterr().err and "a page" in quoting.read_text()
    page = tmp_path / "page.html"
    assert cli.main(["report", str(run), "--out", str(page)]) == 0
    assert rundir.sealed_page(page.read_bytes())
    page.write_bytes(page.read_bytes().replace(b"Run report", b"Run r\xc3\xa9port", 1))  # edited since
    assert cli.main(["report", str(run), "--out", str(page)]) == 2
    capsys.readouterr()


def test_an_output_never_replaces_or_nests_in_what_the_command_reads_or_another_kind(
    trusted, tmp_path, prose_model, capsys
):
    prose = trusted / "prose.jsonl"
    dedup = tmp_path / "dedup"
    assert cli.main(["dedup", "--input", str(prose), "--out", str(dedup)]) == 0
    before = sorted(p.relative_to(dedup) for p in dedup.rglob("*"))
    cases = [
        ("the dedup run it reads", ["--dedup", str(dedup), "--overwrite"], dedup, "reads"),
        ("inside another run", [], dedup / "examples" / "new", "lies inside"),
        ("another kind", ["--overwrite"], dedup, "not a scoring run"),
    ]
    for name, extra, out, message in cases:
        code = score(prose_model, [prose], out, *extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert sorted(p.relative_to(dedup) for p in dedup.rglob("*")) == before  # nothing deleted, nothing added
    model = tmp_path / "model"
    shutil.copytree(prose_model, model)
    argv = ["novelty", "--base", prose_model, "--finetuned", str(model), "--out", str(model), "--overwrite"]
    assert cli.main(argv) == 2 and "which this command reads" in capsys.readouterr().err
    assert (model / "model.safetensors").is_file()


def test_promises_about_inputs_and_settings_hold(trusted, tmp_path, prose_model, monkeypatch, capsys):
    prose = trusted / "prose.jsonl"
    monkeypatch.chdir(trusted)
    twice = [["prose.jsonl", "./prose.jsonl"], [str(prose), str(trusted / "*.jsonl")]]  # one file, two spellings
    for inputs in twice:
        assert cli.main(["score", "--input", *inputs, "--model", prose_model, "--out", str(tmp_path / "x")]) == 2
        assert "is given" in capsys.readouterr().err and not (tmp_path / "x").exists()
    ladder = ["--ladder", f"{prose_model}=1", "--ladder", f"{prose_model}/=2", "--ladder", f"{tmp_path / 'copy'}=3"]
    shutil.copytree(prose_model, tmp_path / "copy")
    assert cli.main(["score", "--input", str(prose), *ladder, "--out", str(tmp_path / "lad")]) == 2
    assert "are the same model" in capsys.readouterr().err
    run = str(trusted / "run")
    refused = [
        (["select", run, "--per-cluster", "6", "--budget", "30%"], "as many clusters as the 6 candidates"),
        (["distill", run, "--by", "1.0"], "nothing tells them apart"),
        (["select", run, "--by", "1) AS score FROM examples; SELECT (1"], "must be one SQL expression"),
        (["distill", run, "--by", "excess_loss", "--where", "TRUE) FROM examples; DROP TABLE x; SELECT (1"],
         "must be one SQL expression"),
    ]  # fmt: skip
    for argv, message in refused:
        assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_distill_refuses_settings_fasttext_would_crash_or_fail_on(tmp_path, capsys):
    positives = write_jsonl(tmp_path / "pos.jsonl", [{"text": t} for t in corpora.documents("code")[:30]])
    negatives = write_jsonl(tmp_path / "neg.jsonl", [{"text": t} for t in corpora.documents("prose")[:30]])
    (tmp_path / "empty.jsonl").write_text("")
    files = ["--positive-files", positives, "--negative-files", negatives]
    cases = [
        (["--bucket", "100000000"], "more than 500,000,000"),  # 40 GB of weights: a MemoryError
        (["--bucket", str(2**31)], "--bucket must be between"),
        (["--dim", str(2**31)], "--dim must be between"),
        (["--word-ngrams", str(2**31)], "--word-ngrams must be between"),
        (["--epoch", str(2**31)], "--epoch must be between"),
        (["--seed", "-1"], "argument --seed: must be at least 0, not -1"),
        (["--lr", "inf"], "--lr must be between"),
        (["--lr", "nan"], "--lr must be between"),
    ]
    for extra, message in cases:
        assert cli.main(["distill", *files, *extra, "--out", str(tmp_path / "clf")]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "clf").exists(), err
    same = ["--positive-files", positives, "--negative-files", positives]
    assert cli.main(["distill", *same, "--out", str(tmp_path / "clf")]) == 2
    assert "30 documents are both positives and negatives" in capsys.readouterr().err
    empty = ["--positive-files", str(tmp_path / "empty.jsonl"), "--negative-files", negatives]
    assert cli.main(["distill", *empty, "--out", str(tmp_path / "clf")]) == 2
    assert "yields no document" in capsys.readouterr().err


def test_a_classifier_that_learned_little_says_so_beside_its_auc(tmp_path, capsys):
    import numpy as np

    from refsift.kernels.classifier import calibration

    scores, labels = np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, True, False, False])
    found = calibration(scores, labels, bins=2)
    assert found["brier"] == pytest.approx(np.mean((scores - labels) ** 2))
    assert found["ece"] == pytest.approx(0.5 * abs(0.2 - 0) + 0.5 * abs(0.85 - 1))  # two bins, two each
    assert not found["learned_little"]
    flat = np.full(10, 0.5) + np.linspace(0, 1e-4, 10)  # 0.49998 .. 0.50004, as a short training leaves them
    assert calibration(flat, np.arange(10) % 2 == 0)["learned_little"]
    positives = write_jsonl(tmp_path / "pos.jsonl", [{"text": t} for t in corpora.documents("code")[:40]])
    negatives = write_jsonl(tmp_path / "neg.jsonl", [{"text": t} for t in corpora.documents("prose")[:40]])
    files = ["--positive-files", positives, "--negative-files", negatives]
    preselect = ["--epoch", "3", "--lr", "0.1"]  # PreSelect's settings, made for hundreds of thousands of documents
    assert cli.main(["distill", *files, *preselect, "--out", str(tmp_path / "short")]) == 0
    out = capsys.readouterr().out
    card = json.loads((tmp_path / "short" / "card.json").read_text())["metrics"]
    assert card["learned_little"] and "warning: the classifier learned little" in out and "Brier" in out
    # the defaults for a sample of 72 training documents: 25 epochs at 0.5, and the classifier learns
    assert cli.main(["distill", *files, "--out", str(tmp_path / "default")]) == 0
    assert "learned little" not in capsys.readouterr().out
    settings = json.loads((tmp_path / "default" / "card.json").read_text())["settings"]
    assert (settings["epoch"], settings["lr"]) == (25, 0.5)
