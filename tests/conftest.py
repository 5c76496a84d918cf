"""Shared fixtures: a tokenizer and tiny GPT-2 models trained once per test session on the
bundled corpora (seconds), and small corpora written into temporary directories."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refsift.demo import corpora, tiny

if os.environ.get("PYTEST_XDIST_WORKER"):  # test processes in parallel (pytest -n): one torch thread each
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """The demo, the longest module by far, first: with pytest -n it then runs beside the rest
    rather than alone at the end."""
    items.sort(key=lambda item: item.path.name != "test_tour.py")


# Documents [0, 100) of a domain train the tiny models; tests read held-out ones from 150 on.
HELD_OUT = 150


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tokenizer():
    texts = sum((corpora.documents(d)[:60] for d in corpora.DOMAINS), [])
    return tiny.train_tokenizer(texts, vocab_size=512)


def _trained(models_dir, tokenizer, name, texts, steps, seed=0):
    model = tiny.new_model(tokenizer, seed=seed)
    tiny.pretrain(model, tokenizer, texts, steps=steps, seed=seed)
    return str(tiny.save(model, tokenizer, models_dir / name))


@pytest.fixture(scope="session")
def prose_model(models_dir, tokenizer):
    return _trained(models_dir, tokenizer, "prose", corpora.documents("prose")[:100], steps=150)


@pytest.fixture(scope="session")
def code_model(models_dir, tokenizer):
    return _trained(models_dir, tokenizer, "code", corpora.documents("code")[:100], steps=100, seed=1)


@pytest.fixture(scope="session")
def mixed_model(models_dir, tokenizer):
    texts = corpora.documents("prose")[:50] + corpora.documents("code")[:50]
    return _trained(models_dir, tokenizer, "mixed", texts, steps=60, seed=2)


@pytest.fixture(scope="session")
def foreign_model(models_dir):
    """A model whose tokenizer has a different vocabulary."""
    other = tiny.train_tokenizer(corpora.documents("german")[:40], vocab_size=300)
    return str(tiny.save(tiny.new_model(other), other, models_dir / "foreign"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`refsift ARGS` in this process (a new one costs seconds of imports): its exit code and
    everything it printed, as `subprocess.run` reports a child's."""
    from refsift import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args))
        except SystemExit as exit:  # --help, --version and argparse's own errors
            code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
            if isinstance(exit.code, str):
                err.write(exit.code)
    return subprocess.CompletedProcess(["refsift", *args], code, out.getvalue(), err.getvalue())


def snapshot(run) -> dict:
    """Everything a scoring run computed, in a canonical order (examples' nll_model last)."""
    from refsift import catalog

    q = {
        "examples": "SELECT doc_id, input, row, n_tokens, n_bytes, nll_model FROM examples ORDER BY doc_id",
        "tokens": 'SELECT doc_id, "window", token_ids, nll_model FROM tokens ORDER BY doc_id, "window"',
        "rejected": "SELECT input, row, reason FROM rejected ORDER BY input, row",
    }
    return {name: catalog.query(str(run), sql)[1] for name, sql in q.items()}


@contextlib.contextmanager
def failing_commit(monkeypatch, nth: int):
    """Within the block, the `nth` shard write of a chunk job fails with an I/O error, as a
    full or broken disk would make it."""
    from refsift.transforms import commit_chunks

    real, calls = commit_chunks.write_table, []

    def write_table(table, path):
        calls.append(path)
        if len(calls) == nth:
            raise OSError(5, "Input/output error")
        return real(table, path)

    monkeypatch.setattr(commit_chunks, "write_table", write_table)
    try:
        yield
    finally:
        monkeypatch.setattr(commit_chunks, "write_table", real)


def held_out(domain: str, n: int, start: int = HELD_OUT) -> list[str]:
    return corpora.documents(domain)[start : start + n]


def write_jsonl(path, records, *, raw_lines=()) -> str:
    corpora.write_jsonl(path, records, raw_lines)
    return str(path)


def write_parquet(path, records) -> str:
    pq.write_table(pa.Table.from_pylist(records), path)
    return str(path)


@pytest.fixture(scope="session")
def mixed_corpus(tmp_path_factory):
    """Held-out documents in three formats, plus one bad record of every kind.

    Returns (input directory, expected rejections as {(file name, row): reason}).
    """
    d = tmp_path_factory.mktemp("corpus")
    prose = held_out("prose", 5)
    prose.append(" ".join(held_out("prose", 4, start=170)))  # long: several windows at max_length 64
    write_jsonl(d / "prose.jsonl", [{"id": f"p{i}", "text": t} for i, t in enumerate(prose)])
    write_jsonl(d / "code.jsonl.gz", [{"id": f"c{i}", "text": t} for i, t in enumerate(held_out("code", 5))])
    write_parquet(d / "spanish.parquet", [{"id": f"s{i}", "text": t} for i, t in enumerate(held_out("spanish", 3))])
    (d / "story.txt").write_text(held_out("drama", 1)[0], encoding="utf-8")
    bad = [
        {"id": "b0", "body": "no text field"},
        {"id": "b1", "text": 42},
        {"id": "b2", "text": ""},
        {"id": "b3", "text": "  \n\t "},
        {"id": "p0", "text": "reuses the id of the first prose document"},
        {"id": "b5", "text": "a"},  # one token: scored after the BOS prefix (too short without one)
    ]
    raw = [b'{"id": "b6", "text": "cut off', b'{"id": "b7", "text": "caf\xe9 latin-1"}', b"[1, 2]"]
    write_jsonl(d / "web.jsonl", bad, raw_lines=raw)
    expected = {
        ("web.jsonl", 0): "missing_text",
        ("web.jsonl", 1): "non_string_text",
        ("web.jsonl", 2): "empty_text",
        ("web.jsonl", 3): "empty_text",
        ("web.jsonl", 4): "duplicate_id",
        ("web.jsonl", 6): "invalid_json",
        ("web.jsonl", 7): "invalid_utf8",
        ("web.jsonl", 8): "invalid_json",
    }
    return d, expected


@pytest.fixture(scope="session")
def code_finetuned(models_dir, tokenizer, prose_model):
    """The prose model fine-tuned further on prose and Python code: code is what it learned."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(prose_model)
    texts = corpora.documents("prose")[:40] + corpora.documents("code")[:80]
    # Training draws dropout masks from torch's global generator: seeded here, the model does not
    # depend on which tests ran before in this process.
    torch.manual_seed(5)
    tiny.pretrain(model, tokenizer, texts, steps=120, seed=5)
    return str(tiny.save(model, tokenizer, models_dir / "code_finetuned"))


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def chat_model(models_dir, prose_model):
    """The prose model with a ChatML chat template."""
    from transformers import AutoTokenizer

    path = models_dir / "chat"
    if not path.exists():
        shutil.copytree(prose_model, path)
        tok = AutoTokenizer.from_pretrained(path)
        tok.chat_template = CHATML
        tok.save_pretrained(path)
    return str(path)
