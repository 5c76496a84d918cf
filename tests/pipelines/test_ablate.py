"""`refsift ablate` end to end at a small size: proxies per arm and seed, paired comparisons,
the tables behind a catalog, and the refusals made before any work."""

import json

import pytest

from refsift import catalog, cli
from refsift.kernels.ablation import SAME
from tests.conftest import write_jsonl

TOKENS = 3000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, prose_model):
    from refsift.demo import corpora

    d = tmp_path_factory.mktemp("ablate")
    for domain in ("code", "prose", "spanish"):
        write_jsonl(d / f"{domain}.jsonl", [{"id": f"{domain}{i}", "text": t} for i, t in
                                           enumerate(corpora.documents(domain)[:40])])  # fmt: skip
    held = [{"id": f"t{domain}{i}", "text": t[:400], "domain": domain}
            for domain in ("code", "prose") for i, t in enumerate(corpora.documents(domain)[150:156])]  # fmt: skip
    write_jsonl(d / "target.jsonl", held)
    run = d / "run"
    assert cli.main(["score", "--input", str(d / "code.jsonl"), str(d / "prose.jsonl"), "--model", prose_model,
                     "--out", str(run), "--max-length", "128", "--context", "16"]) == 0  # fmt: skip
    assert cli.main(["select", str(run), "--out", str(d / "mix"), "--budget", "50%", "--by", "nll_model"]) == 0
    return d


def ablate(corpus, prose_model, out, *arms, extra=()):
    argv = ["ablate", *(a for arm in arms for a in ("--arm", arm)), "--input", *(str(corpus / f"{d}.jsonl") for d in
            ("code", "prose", "spanish")), "--eval", str(corpus / "target.jsonl"), "--source-field", "domain",
            "--tokenizer", prose_model, "--tokens", str(TOKENS), "--seeds", "2", "--proxy", "1x32", "--block", "64",
            "--max-length", "128", "--context", "16", "--out", str(out), *extra]  # fmt: skip
    return cli.main(argv)


def test_arms_are_compared_seed_by_seed_and_the_same_arm_twice_shows_nothing(corpus, prose_model, tmp_path, capsys):
    out = tmp_path / "ab"
    assert ablate(corpus, prose_model, out, f"sel={corpus / 'mix'}", "natural=natural", "again=natural") == 0
    assert "finding:" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    evals = {c["eval"] for c in report["comparisons"]}
    assert evals == {"target", "target/code", "target/prose"}  # the file, and each source within it
    assert len(report["comparisons"]) == 3 * len(evals)  # every pair of three arms
    for c in report["comparisons"]:
        assert set(c) >= {"a", "b", "eval", "difference", "low", "high", "wins", "seeds", "verdict"}
        assert c["low"] <= c["difference"] <= c["high"] and c["seeds"] == 2
        if (c["a"], c["b"]) == ("natural", "again"):  # one initialisation and one data order per seed
            assert (c["difference"], c["verdict"], c["wins"]) == (0.0, SAME, 0)
    runs = catalog.query(str(out), "SELECT arm, seed, tokens_fed, max_epochs FROM runs ORDER BY 1, 2")[1]
    assert [(arm, seed) for arm, seed, *_ in runs] == [(a, s) for a in ("again", "natural", "sel") for s in (0, 1)]
    for _, _, fed, epochs in runs:
        assert fed >= TOKENS - 64 * 3 and 0 < epochs <= 4  # the budget, to a block per source
    n_docs = catalog.query(str(out), "SELECT count(DISTINCT doc_id) FROM doc_losses")[1][0][0]
    assert n_docs == 12 and catalog.query(str(out), "SELECT count(*) FROM doc_losses")[1][0][0] == 3 * 2 * 12
    curves = catalog.query(str(out), "SELECT count(DISTINCT step) FROM curves WHERE arm = 'natural'")[1][0][0]
    assert curves >= 2
    assert "Finding." in (out / "report.html").read_text()


@pytest.mark.parametrize(
    "arms, extra, message",
    [
        (["only=natural"], [], "two or more --arm"),
        (["a=natural", "b=nowhere/mix"], [], "no such selection directory"),
        (["a=natural", "b=code=0.5,latin=0.5"], [], "names sources --input does not have"),
        (["a=natural", "b=uniform"], ["--tokens", "10000000"], "times to make --tokens 10000000"),
        (["a=natural", "a=uniform"], [], "a name of its own"),
        (["a=natural", "b=uniform"], ["--eval", "nowhere.jsonl"], "nowhere.jsonl"),
    ],
)
def test_refusals_come_before_any_work(corpus, prose_model, tmp_path, capsys, arms, extra, message):
    out = tmp_path / "refused"
    assert ablate(corpus, prose_model, out, *arms, extra=extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_arms_scored_with_another_tokenizer_are_refused(corpus, prose_model, foreign_model, tmp_path, capsys):
    """A proxy reads one tokenizer: a selection from a run scored with another is refused."""
    run = tmp_path / "foreign-run"
    assert cli.main(["score", "--input", str(corpus / "code.jsonl"), "--model", foreign_model, "--out", str(run),
                     "--max-length", "128", "--context", "16"]) == 0  # fmt: skip
    assert cli.main(["select", str(run), "--out", str(tmp_path / "foreign-mix")]) == 0
    capsys.readouterr()
    out = tmp_path / "refused"
    arms = (f"mine={corpus / 'mix'}", f"theirs={tmp_path / 'foreign-mix'}")
    assert ablate(corpus, prose_model, out, *arms) == 2
    assert "different tokenizers" in capsys.readouterr().err and not out.exists()
