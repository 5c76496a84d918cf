"""Selection at web scale: PreSelect's predictive strength over a ladder, distilled into a
fastText classifier that `refsift classify` runs over a corpus on the scoring engine."""

import itertools
import json
import math

import numpy as np
import pytest

from refsift import catalog, cli
from refsift.jobs import rundir
from refsift.kernels import classifier
from refsift.kernels.scores import predictive_strength
from tests.conftest import failing_commit, held_out, write_jsonl


def authors_count(losses: dict[str, float], benchmark: dict[str, float]) -> int:
    """PreSelect's train_fasttext.py, as written there: pairs (i, j) in list order."""
    models, score = list(benchmark), 0
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            if benchmark[models[i]] > benchmark[models[j]]:
                if losses[models[i]] < losses[models[j]]:
                    score += 1
            elif benchmark[models[i]] < benchmark[models[j]]:
                if losses[models[i]] > losses[models[j]]:
                    score += 1
    return score


def test_predictive_strength_is_the_authors_count_over_the_pairs_compared():
    rng = np.random.default_rng(0)
    benchmark = {"a": 75.4, "b": 76.3, "c": 77.3, "d": 77.3, "e": 80.5}  # c and d tie: not compared
    pairs = sum(1 for x, y in itertools.combinations(benchmark.values(), 2) if x != y)
    losses = {m: rng.integers(0, 4, size=200).astype(float) for m in benchmark}  # many ties in loss
    losses["e"][:5] = [0, 0, 0, 0, 0]
    got = predictive_strength([losses[m] for m in benchmark], list(benchmark.values()))
    expected = [authors_count({m: losses[m][k] for m in benchmark}, benchmark) / pairs for k in range(200)]
    assert got.tolist() == pytest.approx(expected)
    perfect = predictive_strength([np.array([3.0]), np.array([2.0]), np.array([1.0])], [1, 2, 3])
    assert perfect.tolist() == [1.0]
    nan = predictive_strength([np.array([1.0]), np.array([math.nan]), np.array([0.5])], [1, 2, 3])
    assert math.isnan(nan[0])


@pytest.fixture(scope="module")
def ladder_run(tmp_path_factory, code_model, mixed_model, prose_model, foreign_model):
    """Prose and code documents scored by a ladder whose benchmark is prose: the prose model
    best, the code model worst; a model with a tokenizer of its own rides along."""
    d = tmp_path_factory.mktemp("ladder")
    docs = [{"id": f"prose{i}", "text": t} for i, t in enumerate(held_out("prose", 20))]
    docs += [{"id": f"code{i}", "text": t} for i, t in enumerate(held_out("code", 20))]
    write_jsonl(d / "mixed.jsonl", docs)
    ladder = [f"{code_model}=1", f"{mixed_model}=2", f"{prose_model}=3", f"{foreign_model}=0"]
    args = ["score", "--input", str(d / "mixed.jsonl"), "--out", str(d / "run"), "--max-length", "64", "--context",
            "16", *itertools.chain.from_iterable(("--ladder", spec) for spec in ladder)]  # fmt: skip
    assert cli.main(args) == 0
    return d


def test_a_ladder_ranks_documents_by_how_well_they_predict_its_benchmark(ladder_run, prose_model):
    run = ladder_run / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [e["role"] for e in manifest["ladder"]] == ["ladder1", "ladder2", "ladder3", "ladder4"]
    assert manifest["tokenizer"]["own_tokens"] == ["ladder4"]  # the foreign tokenizer: per document only
    columns = [c for (c, *_) in catalog.query(str(run), "DESCRIBE tokens")[1]]
    assert "nll_ladder1" in columns and "nll_ladder4" not in columns
    rows = catalog.query(str(run), "SELECT doc_id, predictive_strength FROM examples ORDER BY doc_id")[1]
    strength = dict(rows)
    prose = [v for k, v in strength.items() if k.startswith("prose")]
    code = [v for k, v in strength.items() if k.startswith("code")]
    assert np.mean(prose) > np.mean(code) + 0.3, (prose, code)
    top = catalog.query(str(run), "SELECT doc_id FROM examples ORDER BY predictive_strength DESC, doc_id LIMIT 10")[1]
    assert sum(d.startswith("prose") for (d,) in top) >= 9
    # the same documents under a ladder whose benchmark says the opposite: code first
    flipped = dict(zip(["ladder1", "ladder2", "ladder3", "ladder4"], [3.0, 2.0, 1.0, 0.0]))
    bpb = catalog.query(str(run), "SELECT doc_id, bpb_ladder1, bpb_ladder2, bpb_ladder3, bpb_ladder4 FROM examples")[1]
    reverse = predictive_strength([np.array([r[k] for r in bpb]) for k in range(1, 5)], list(flipped.values()))
    ranked = [bpb[i][0] for i in np.argsort(-reverse, kind="stable")][:10]
    assert sum(d.startswith("code") for d in ranked) >= 9


def test_a_ladder_model_with_its_own_tokenizer_is_compared_by_bits_per_byte(ladder_run, foreign_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(foreign_model)
    model = AutoModelForCausalLM.from_pretrained(foreign_model).eval()
    rows = catalog.query(str(ladder_run / "run"), "SELECT text, n_bytes, bpb_ladder4 FROM examples LIMIT 3")[1]
    for text, n_bytes, bpb in rows:
        ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
        nats = 0.0
        with torch.no_grad():  # windows of 64 re-feeding 16 tokens of context, as the run
            start = 0
            while True:
                window = ids[start : start + 64]
                logp = torch.log_softmax(model(torch.tensor([window])).logits[0, :-1].float(), -1)
                picked = -logp.gather(-1, torch.tensor(window[1:])[:, None])[:, 0]
                nats += float(picked[(0 if start == 0 else 15) :].sum())
                if start + 64 >= len(ids):
                    break
                start += 64 - 16
        assert n_bytes == len(text.encode()) and bpb == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-4)


def test_distill_then_classify_finds_the_planted_domain(ladder_run, tmp_path, capsys):
    run, clf = ladder_run / "run", tmp_path / "clf"
    assert cli.main(["distill", str(run), "--by", "predictive_strength", "--top", "25%", "--epoch", "30",
                     "--holdout", "0.25", "--bucket", "20000", "--out", str(clf)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    card = json.loads((clf / "card.json").read_text())
    assert card["counts"]["train_positive"] == card["counts"]["train_negative"] > 0
    assert card["metrics"]["auc"] is not None and f"held-out AUC {card['metrics']['auc']:.3f}" in printed
    corpus = tmp_path / "corpus.jsonl"
    fresh = [{"id": f"p{i}", "text": t} for i, t in enumerate(held_out("prose", 12, start=120))]
    fresh += [{"id": f"c{i}", "text": t} for i, t in enumerate(held_out("code", 12, start=120))]
    write_jsonl(corpus, fresh, raw_lines=[b'{"id": "bad", "text": ', b'{"id": "empty", "text": ""}'])
    out = tmp_path / "classified"
    assert cli.main(["classify", "--classifier", str(clf), "--input", str(corpus), "--out", str(out)]) == 0
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts == {**counts, "read": 26, "scored": 24, "rejected": 2}
    top = catalog.query(str(out), "SELECT doc_id FROM examples ORDER BY classifier_score DESC LIMIT 12")[1]
    assert sum(d.startswith("p") for (d,) in top) >= 10  # precision of the planted domain
    assert (
        cli.main(["select", str(out), "--by", "classifier_score", "--budget", "6", "--out", str(tmp_path / "mix")]) == 0
    )
    chosen = catalog.query(str(out), "SELECT doc_id, text FROM selection_mix ORDER BY doc_id")[1]
    assert len(chosen) == 6 and all(d.startswith("p") for d, _ in chosen) and all(t for _, t in chosen)


def test_distill_from_labelled_files_and_classify_with_a_plain_fasttext_file(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in held_out("prose", 30)])
    write_jsonl(tmp_path / "bad.jsonl", [{"text": t} for t in held_out("code", 30)])
    clf = tmp_path / "clf"
    good, bad = str(tmp_path / "good.jsonl"), str(tmp_path / "bad.jsonl")
    args = ["distill", "--positive-files", good, "--negative-files", bad, "--epoch", "20", "--holdout", "0.3",
            "--bucket", "20000"]  # fmt: skip
    assert cli.main([*args, "--out", str(clf)]) == 0
    card = json.loads((clf / "card.json").read_text())
    assert card["metrics"]["auc"] > 0.8 and card["metrics"]["spearman"] is None
    model = classifier.load(str(clf / "model.bin"), "__label__1")
    texts = held_out("prose", 2, start=120) + held_out("code", 2, start=120)
    scores = classifier.scores(model, texts, "__label__1")
    assert min(scores[:2]) > max(scores[2:]), scores
    write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in texts])
    args = ["classify", "--classifier", str(clf / "model.bin"), "--input", str(tmp_path / "docs.jsonl"), "--out"]
    assert cli.main([*args, str(tmp_path / "nolabel")]) == 2  # a bare .bin needs --label
    assert cli.main([*args, str(tmp_path / "r"), "--label", "__label__1"]) == 0


def test_a_classification_run_stopped_midway_resumes_to_the_same_result(ladder_run, tmp_path, monkeypatch, capsys):
    clf = tmp_path / "clf"
    assert cli.main(["distill", str(ladder_run / "run"), "--by", "predictive_strength", "--bucket", "20000",
                     "--out", str(clf)]) == 0  # fmt: skip
    corpus = tmp_path / "many.jsonl"
    write_jsonl(corpus, [{"id": f"d{i}", "text": t} for i, t in enumerate(held_out("prose", 30) * 4)])
    args = ["classify", "--classifier", str(clf), "--input", str(corpus), "--chunk-size", "8K"]
    assert cli.main([*args, "--out", str(tmp_path / "whole")]) == 0
    with failing_commit(monkeypatch, 4):
        assert cli.main([*args, "--out", str(tmp_path / "cut")]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    query = "SELECT doc_id, row, classifier_score FROM examples ORDER BY doc_id"
    assert catalog.query(str(tmp_path / "cut"), query)[1] == catalog.query(str(tmp_path / "whole"), query)[1]
    assert cli.main(["verify", str(tmp_path / "cut")]) == 0


def test_a_file_that_is_not_a_fasttext_classifier_is_refused_in_one_line(tmp_path, ladder_run, capsys):
    clf = tmp_path / "clf"
    assert cli.main(["distill", str(ladder_run / "run"), "--by", "predictive_strength", "--bucket", "20000",
                     "--out", str(clf)]) == 0  # fmt: skip
    write_jsonl(tmp_path / "docs.jsonl", [{"text": "a document"}])
    cut = tmp_path / "cut.bin"
    cut.write_bytes((clf / "model.bin").read_bytes()[:50_000])
    (tmp_path / "text.bin").write_text("__label__1 not a model\n")
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    cases = [(cut, "__label__1", "is cut short"), (tmp_path / "text.bin", "__label__1", "not a fastText model"),
             (tmp_path / "random.bin", "__label__1", "not a fastText model"), (clf / "model.bin", "__label__x",
             "has no label '__label__x'"), (tmp_path / "missing.bin", "__label__1", "no such file")]  # fmt: skip
    for path, label, message in cases:
        argv = ["classify", "--classifier", str(path), "--label", label, "--input", str(tmp_path / "docs.jsonl")]
        assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2, path
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "run").exists()
    assert rundir.marker(str(clf))["kind"] == "classifier"
    # A distilled classifier whose model was cut by a few bytes (or had a count doctored) still loads and would
    # score every document: its card's digest refuses it.
    model = (clf / "model.bin").read_bytes()
    for doctored in (model[:-1], model[:100] + bytes([model[100] ^ 1]) + model[101:]):
        (clf / "model.bin").write_bytes(doctored)
        argv = ["classify", "--classifier", str(clf), "--input", str(tmp_path / "docs.jsonl")]
        assert cli.main([*argv, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert "is not the model its card.json records" in err and not (tmp_path / "run").exists(), err
