"""Attribution (UnTrac, UnTrac-Inv) on a planted case: the fine-tuned model learned Python
code; its sources are that code, the prose it was also trained on, and Spanish it never saw."""

import contextlib
import io
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from refsift import catalog, cli, models
from refsift.demo import corpora
from refsift.kernels.training import causal_lm_loss, collate
from refsift.kernels.unlearn import UnlearnSettings, unlearn
from tests.browser import open_page
from tests.conftest import held_out, write_jsonl

PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = tmp_path_factory.mktemp("planted")
    code = corpora.documents("code")[:80]  # what code_finetuned was trained on, with prose[:40]
    code = [PAYLOAD + "\n" + text for text in code]  # whichever documents are sampled and shown carry it
    write_jsonl(d / "code.jsonl", corpora.numbered(code, "code"))
    write_jsonl(d / "prose.jsonl", corpora.numbered(corpora.documents("prose")[:40], "prose"))
    write_jsonl(d / "spanish.jsonl", corpora.numbered(held_out("spanish", 30), "es"))  # never trained on
    write_jsonl(d / "target.jsonl", corpora.numbered(held_out("code", 8), "t"))
    with open(d / "target.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "t-broken", "text": \n')  # not a document: left out, and said so
    return d


def attribute(planted, model, out, *extra):
    args = ["attribute", "--model", model, "--target", str(planted / "target.jsonl"), "--sources",
            *(str(planted / f"{s}.jsonl") for s in ("code", "prose", "spanish")), "--out", str(out),
            "--source-samples", "24", "--max-length", "128", "--context", "16", *extra]  # fmt: skip
    assert cli.main(args) == 0
    return json.loads((out / "attribution.json").read_text())["attribution"]


@pytest.fixture(scope="module")
def results(planted, code_finetuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("attribution")
    weights = models.weights_hash(models.Path(code_finetuned))
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        inverse = attribute(planted, code_finetuned, out / "inv", "--unlearn-steps", "20")
    direct = attribute(planted, code_finetuned, out / "untrac", "--method", "untrac")
    assert models.weights_hash(models.Path(code_finetuned)) == weights  # the model on disk never changes
    (out / "printed.txt").write_text(printed.getvalue())
    return out, inverse, direct


def ranking(rows):
    return [r["source"] for r in sorted((r for r in rows if r["target"] == "all"), key=lambda r: r["rank"])]


def test_both_methods_rank_the_planted_source_first(results):
    _, inverse, direct = results
    for rows in (inverse, direct):
        top = next(r for r in rows if r["rank"] == 1)
        assert top["source"] == "code" and top["influence"] > 0 and top["loss_after"] > top["loss_before"]
        others = [r["influence"] for r in rows if r["source"] != "code"]
        assert top["influence"] > 2 * max(others), rows
    assert ranking(inverse)[0] == ranking(direct)[0] == "code"  # the two methods agree on the most influential


def test_records_that_are_not_documents_are_counted_and_reported(results):
    out, _, _ = results
    record = json.loads((out / "inv" / "attribution.json").read_text())
    assert record["rejected"] == {"target": {"invalid_json": 1}, "sources": {}}
    assert {r["n_documents"] for r in record["attribution"] if r["source"] == "code"} == {24}


def test_views_answer_a_ranking_query(results, capsys):
    out, _, _ = results
    query = (
        "SELECT source, round(influence, 4) AS influence FROM attribution WHERE target = 'all' ORDER BY influence DESC"
    )
    assert cli.main(["sql", str(out / "inv"), query]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[0] == "code"
    per_source = dict(
        catalog.query(str(out / "inv"), "SELECT source, count(*) FROM attribution_documents GROUP BY 1")[1]
    )
    assert per_source == {"code": 24, "prose": 24, "spanish": 24}
    (rise,) = catalog.query(str(out / "inv"), "SELECT avg(rise) FROM attribution_documents WHERE source = 'code'")[1][0]
    assert rise > 0


def test_the_page_renders_offline_and_shows_payloads_as_text(results):
    out, inverse, _ = results
    seen = open_page(out / "inv" / "report.html")
    assert seen["requests"] == [(out / "inv" / "report.html").resolve().as_uri()]
    assert seen["scripts"] == 0 and seen["dialogs"] == [] and seen["errors"] == []
    assert "Which sources taught it" in seen["text"] and "code" in seen["text"]
    assert any(PAYLOAD in text for text in seen["token_texts"])  # the planted document, escaped


def test_unlearning_climbs_the_loss_on_a_copy_and_micro_batches_change_nothing(code_finetuned, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(code_finetuned).eval()
    before = {n: p.clone() for n, p in model.named_parameters()}
    rows = [
        {"input_ids": ids, "labels": ids}
        for ids in tokenizer(held_out("code", 4), add_special_tokens=False)["input_ids"]
    ]
    rows = [{k: v[:100] for k, v in r.items()} for r in rows]
    batch = collate(rows)

    def loss(m):
        with torch.no_grad():
            return causal_lm_loss(
                m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"]
            ).item()

    settings = UnlearnSettings(steps=3, lr=1e-2, batch_size=4, optimizer="sgd")
    whole = unlearn(model, rows, settings)
    parts = unlearn(model, rows, UnlearnSettings(steps=3, lr=1e-2, batch_size=4, optimizer="sgd", micro_batch=1))
    assert loss(whole) > loss(model) + 0.01  # gradient ascent
    for (name, a), b in zip(whole.named_parameters(), parts.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # the caller's model untouched


def test_paper_procedure_averages_micro_batch_means_with_dropout_seeded(code_finetuned, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(code_finetuned).eval()
    ids = tokenizer(held_out("code", 2), add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": ids[0][:90], "labels": ids[0][:90]}, {"input_ids": ids[1][:20], "labels": ids[1][:20]}]
    sgd = {"steps": 1, "lr": 1e-2, "batch_size": 2, "optimizer": "sgd", "micro_batch": 1}

    def weights(m):
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    # without dropout, one SGD step climbs the mean of the two rows' own means (the short row weighs as
    # much as the long one); "refsift" climbs the mean over all their tokens
    quiet = AutoModelForCausalLM.from_pretrained(code_finetuned, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    expected = {}
    for name, share in (("paper", lambda n: 1 / 2), ("refsift", lambda n: (n - 1) / 108)):
        copy = AutoModelForCausalLM.from_pretrained(code_finetuned).eval()
        for row in rows:
            batch = collate([row])
            loss = causal_lm_loss(copy(input_ids=batch["input_ids"]).logits, batch["labels"])
            (-loss * share(len(row["input_ids"]))).backward()
        with torch.no_grad():
            expected[name] = weights(copy) - 1e-2 * torch.cat([p.grad.flatten() for p in copy.parameters()])
    for name in ("paper", "refsift"):
        got = weights(unlearn(quiet, rows, UnlearnSettings(**sgd, procedure=name)))
        torch.testing.assert_close(got, expected[name], atol=1e-6, rtol=1e-5, msg=name)
    assert not torch.allclose(expected["paper"], expected["refsift"], atol=1e-6)

    # with dropout: the seed draws the masks, so the same seed gives the same model and another does not
    paper = {**sgd, "procedure": "paper"}
    same = [weights(unlearn(model, rows, UnlearnSettings(**paper, seed=3))) for _ in range(2)]
    other = weights(unlearn(model, rows, UnlearnSettings(**paper, seed=4)))
    assert torch.equal(same[0], same[1]) and not torch.allclose(same[0], other, atol=1e-7)
    assert not model.training and unlearn(model, rows, UnlearnSettings(**paper)).training is False


def test_paper_procedure_unlearns_each_document_truncated(planted, code_finetuned, tmp_path):
    from refsift.kernels.unlearn import training_rows
    from refsift.pipelines import attribute as attribution

    texts = held_out("code", 3)
    docs = [{"doc_id": str(i), "source": "t", "text": t, "prompt": None, "messages": None} for i, t in enumerate(texts)]
    cfg = attribution.AttributeConfig(model=code_finetuned, targets=("x",), sources=("x",), out="", max_length=32,
                                      context=8, procedure="paper", method="untrac")  # fmt: skip
    assert cfg.unlearning.micro_batch == 1 and cfg.unlearning.procedure == "paper"  # the authors' per-device batch
    _, tok = attribution.load(cfg)
    windows = attribution.prepare("t", docs, tok, None, cfg).chunk.windows
    every, first = training_rows(windows), training_rows(windows, truncate=32)
    assert len(every) > len(first) == 3 and all(len(r["input_ids"]) == 32 for r in first)
    assert [r["input_ids"] for r in first] == [r["input_ids"] for r, w in zip(every, windows.window) if w == 0]
    rows = attribute(planted, code_finetuned, tmp_path / "paper", "--procedure", "paper", "--unlearn-steps", "20")
    assert ranking(rows)[0] == "code"
    settings = json.loads((tmp_path / "paper" / "attribution.json").read_text())["settings"]
    assert settings["unlearning"]["procedure"] == "paper" and settings["unlearning"]["micro_batch"] == 2


def test_novelty_report_says_where_it_came_from(planted, prose_model, code_finetuned, tmp_path):
    out = tmp_path / "novelty"
    sources = [str(planted / f"{s}.jsonl") for s in ("code", "prose", "spanish")]
    assert cli.main(["novelty", "--base", prose_model, "--finetuned", code_finetuned, "--out", str(out),
                     "--num-samples", "6", "--max-new-tokens", "24", "--source-samples", "16",
                     "--attribute", *sources]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    rows = report["attribution"]
    assert {r["target"] for r in rows} >= {"all"} and ranking(rows)[0] == "code"
    assert catalog.query(str(out), "SELECT count(*) FROM attribution WHERE target = 'all'")[1] == [(3,)]
    seen = open_page(out / "report.html")
    assert "Where it came from" in seen["text"] and seen["scripts"] == 0


def test_attribution_intervals_come_from_resampled_documents(results):
    out, inverse, direct = results
    for rows in (inverse, direct):  # UnTrac-Inv resamples each source's documents, UnTrac the shared target's
        for r in rows:
            assert r["influence_low"] <= r["influence"] <= r["influence_high"], r
        assert sum(r["p_first"] for r in rows) == pytest.approx(1.0)
        top = min(rows, key=lambda r: r["rank"])
        assert top["p_first"] == max(r["p_first"] for r in rows) and top["influence_low"] > 0
    seen = open_page(out / "inv" / "report.html")
    assert "Finding. code taught it most" in seen["text"] and "90% interval" in seen["text"]
    printed = (out / "printed.txt").read_text()
    assert "p_first" in printed and "code taught it most" in printed  # the CLI prints the finding too


def test_unequal_unlearning_is_said_and_both_methods_are_compared(results, planted, code_finetuned, tmp_path):
    from refsift.reports.attribution import finding

    _, inverse, direct = results
    steps = {r["source"]: r["unlearn_steps"] for r in direct}  # UnTrac by default: one epoch over each source
    assert len(set(steps.values())) > 1, steps
    assert "unequal numbers of steps" in finding(sorted(direct, key=lambda r: r["rank"]))
    assert len({r["unlearn_steps"] for r in inverse}) == 1  # UnTrac-Inv unlearns the target once
    assert "unequal" not in finding(sorted(inverse, key=lambda r: r["rank"]))

    out = tmp_path / "both"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        rows = attribute(planted, code_finetuned, out, "--method", "both", "--unlearn-steps", "equal")
    by_method = {m: [r for r in rows if r["method"] == m] for m in ("untrac-inv", "untrac")}
    assert all(len(v) == 3 for v in by_method.values())
    # equal: every source unlearned for one epoch over the smallest, the steps its own epoch would be at most
    assert {r["unlearn_steps"] for r in by_method["untrac"]} == {min(steps.values())}
    record = json.loads((out / "attribution.json").read_text())
    (found,) = record["agreement"]
    assert found["first"] == {"untrac-inv": "code", "untrac": "code"} and found["agree"]
    ranks = {m: {r["source"]: r["rank"] for r in v} for m, v in by_method.items()}
    d2 = sum((ranks["untrac"][s] - ranks["untrac-inv"][s]) ** 2 for s in ranks["untrac"])
    assert found["spearman"] == pytest.approx(1 - 6 * d2 / (3 * 8))
    assert "UnTrac and UnTrac-Inv agree: code first by both" in printed.getvalue()
    seen = open_page(out / "report.html")
    assert "UnTrac and UnTrac-Inv agree" in seen["text"] and "target.jsonl" in seen["text"]
    assert "all samples" not in seen["text"]  # the target is named by its file


def test_a_disagreement_between_the_methods_is_the_finding():
    from refsift.reports.attribution import agreement, methods_finding

    def rows(method, order):
        return [{"target": "all", "method": method, "source": s, "rank": k} for k, s in enumerate(order, 1)]

    rho = agreement(rows("untrac-inv", "abc") + rows("untrac", "cba"))[0]
    assert rho["spearman"] == pytest.approx(-1.0) and not rho["agree"]  # reversed rankings
    text = methods_finding(rho)
    assert text.startswith("UnTrac and UnTrac-Inv disagree: UnTrac-Inv puts a first, UnTrac puts c first")
    assert "act on neither ranking alone" in text and "--unlearn-steps equal" not in text  # no steps recorded
    unequal = [{**r, "unlearn_steps": 10 * r["rank"]} for r in rows("untrac", "cba")]
    assert "--unlearn-steps equal" in methods_finding(agreement(rows("untrac-inv", "abc") + unequal)[0])
    same = agreement(rows("untrac-inv", "abcd") + rows("untrac", "abdc"))[0]
    assert same["agree"] and same["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))
