"""`refsift select` and `refsift finetune` on a run scored with tiny models."""

import json
import math
import re
from collections import Counter

import datasets
import pyarrow.parquet as pq
import pytest
import torch

from refsift import catalog, cli
from refsift.config import ScoreConfig, SelectConfig
from refsift.demo import corpora
from refsift.kernels import training
from refsift.pipelines import finetune, score
from refsift.pipelines.select import run as select
from tests.conftest import write_jsonl


def short_docs(domain: str, n: int) -> list[str]:
    """Short documents (~250 characters, from the end of the slice, which no tiny model trained
    on), so that token budgets can be met to within 1%."""
    return corpora.documents(domain, target_chars=250)[-n:]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, prose_model, code_model):
    d = tmp_path_factory.mktemp("select")
    prose, code = short_docs("prose", 120), short_docs("code", 120)
    math_docs = short_docs("math", 20)
    records = [{"id": f"p{i}", "text": t} for i, t in enumerate(prose)]
    records += [{"id": "pdup", "text": "  " + prose[0].replace(" ", "   ") + "\n"}]  # same text, other whitespace
    write_jsonl(d / "prose.jsonl", records)
    write_jsonl(d / "code.jsonl", [{"id": f"c{i}", "text": t} for i, t in enumerate(code)])
    write_jsonl(d / "math.jsonl", [{"id": f"m{i}", "text": t} for i, t in enumerate(math_docs)])
    cfg = ScoreConfig(
        inputs=(f"{d}/*.jsonl",), out=str(d / "run"), model=prose_model, reference=code_model, max_length=48, context=8
    )
    score.run(cfg)
    return d / "run"


def query(run_dir, sql):
    return catalog.query(str(run_dir), sql)[1]


def export(mix_dir):
    return datasets.load_dataset("parquet", data_files=f"{mix_dir}/data/*.parquet", split="train")


def test_token_selection_per_window_is_exact_and_scored_only(run_dir, tmp_path):
    record = select(SelectConfig(run=str(run_dir), out=str(tmp_path / "mix"), tokens="excess", ratio=0.6))
    rows = export(tmp_path / "mix")
    assert set(rows.column_names) >= {"doc_id", "source", "text", "input_ids", "attention_mask", "labels"}
    windows = {
        (d, w): (ids, nm, nr)
        for d, w, ids, nm, nr in query(
            run_dir, 'SELECT doc_id, "window", token_ids, nll_model, nll_reference FROM tokens'
        )
    }
    assert len(rows) == len([key for key in windows if key[0] != "pdup"])  # every window but the duplicate's
    for row in rows:
        ids, nll_model, nll_ref = windows[(row["doc_id"], row["window"])]
        assert row["input_ids"] == ids
        scored = [i for i, m in enumerate(nll_model) if m is not None]
        chosen = [i for i, label in enumerate(row["labels"]) if label != -100]
        assert len(chosen) == math.ceil(0.6 * len(scored) - 1e-9)
        assert set(chosen) <= set(scored)
        excess = {i: nll_model[i] - nll_ref[i] for i in scored}
        if chosen and len(chosen) < len(scored):
            assert min(excess[i] for i in chosen) >= max(excess[i] for i in set(scored) - set(chosen))
    assert record["per_source"]["prose"]["duplicates"]["documents"] == 1


def test_global_scope_uses_one_recorded_threshold(run_dir, tmp_path):
    record = select(
        SelectConfig(
            run=str(run_dir), out=str(tmp_path / "mix"), tokens="excess", ratio=0.6, scope="global", dedup="none"
        )
    )
    threshold = record["threshold"]
    excess = [e for (e,) in query(run_dir, "SELECT excess FROM token_scores")]
    assert 0.55 < sum(e >= threshold for e in excess) / len(excess) < 0.65
    labelled = sum(s["after"]["selected_tokens"] for s in record["per_source"].values())
    assert labelled == sum(e >= threshold for e in excess)


def test_document_budgets(run_dir, tmp_path):
    ranked = [
        d
        for (d,) in query(
            run_dir, "SELECT doc_id FROM examples WHERE doc_id != 'pdup' ORDER BY excess_loss DESC, doc_id"
        )
    ]
    select(SelectConfig(run=str(run_dir), out=str(tmp_path / "top5"), by="excess_loss", budget="5"))
    assert set(export(tmp_path / "top5")["doc_id"]) == set(ranked[:5])
    select(
        SelectConfig(
            run=str(run_dir), out=str(tmp_path / "pct"), by="excess_loss", budget="10%", where="source <> 'math'"
        )
    )
    non_math = [d for d in ranked if not d.startswith("m")]
    assert set(export(tmp_path / "pct")["doc_id"]) == set(non_math[: math.ceil(0.1 * len(non_math))])
    select(
        SelectConfig(
            run=str(run_dir),
            out=str(tmp_path / "tok"),
            by="nll_model - 0.5 * nll_reference",
            order="asc",
            budget="2000tok",
        )
    )
    chosen = set(export(tmp_path / "tok")["doc_id"])
    order = query(
        run_dir,
        "SELECT doc_id, n_tokens FROM examples WHERE doc_id != 'pdup' "
        "ORDER BY nll_model - 0.5 * nll_reference ASC, doc_id",
    )
    total = 0
    for doc_id, n in order:  # the prefix of the ranking that fits in 2000 tokens
        if total + n > 2000:
            break
        total += n
        assert doc_id in chosen
    assert len(chosen) == len(order[: len(chosen)]) and total <= 2000


def test_mixture_shares_within_one_percent(run_dir, tmp_path):
    available = dict(query(run_dir, "SELECT source, sum(n_tokens) FROM examples GROUP BY 1"))
    budget = int(min(available["prose"] / 0.7, available["code"] / 0.3) * 0.9)  # both sources suffice
    record = select(
        SelectConfig(run=str(run_dir), out=str(tmp_path / "mix"), mix="prose=0.7,code=0.3", budget=f"{budget}tok")
    )
    chosen = {s: v["selected_documents"]["tokens"] for s, v in record["per_source"].items() if "after" in v}
    assert chosen.keys() == {"prose", "code"} and sum(chosen.values()) <= budget
    assert abs(chosen["prose"] / sum(chosen.values()) - 0.7) < 0.01, chosen
    assert sum(chosen.values()) > 0.98 * budget
    exported = {s: sum(len(r["labels"]) for r in export(tmp_path / "mix") if r["source"] == s) for s in chosen}
    assert exported == {s: v["after"]["tokens"] for s, v in record["per_source"].items() if "after" in v}


def test_short_source_is_upsampled_or_renormalised(run_dir, tmp_path):
    math_tokens = query(run_dir, "SELECT sum(n_tokens) FROM examples WHERE source = 'math'")[0][0]
    budget = f"{math_tokens * 5}tok"  # math's share (0.4) needs twice what math holds
    up = select(
        SelectConfig(run=str(run_dir), out=str(tmp_path / "up"), mix="math=0.4,prose=0.6", budget=budget, upsample=True)
    )
    assert up["plan"]["sources"]["math"]["repeats"] == pytest.approx(2.0, rel=0.01)
    assert up["per_source"]["math"]["selected_documents"]["with_repeats"] == 2 * 20
    renorm = select(SelectConfig(run=str(run_dir), out=str(tmp_path / "re"), mix="math=0.4,prose=0.6", budget=budget))
    assert "exhausted" in renorm["plan"]["sources"]["math"]["note"]
    assert renorm["plan"]["sources"]["prose"]["budget"] == math_tokens * 5 - math_tokens


def test_temperature_mixture_and_export_formats(run_dir, tmp_path):
    record = select(SelectConfig(run=str(run_dir), out=str(tmp_path / "t"), temperature=2.0, format="jsonl"))
    assert set(record["plan"]["shares"]) == {"prose", "code", "math"}
    assert record["plan"]["shares"]["math"] > 0.1  # flattened from math's small share of tokens
    jsonl = datasets.load_dataset("json", data_files=f"{tmp_path}/t/data/*.jsonl", split="train")
    assert len(jsonl) > 0 and "labels" in jsonl.column_names
    select(SelectConfig(run=str(run_dir), out=str(tmp_path / "hf"), budget="3", by="excess_loss", format="hf"))
    assert len(set(datasets.load_from_disk(str(tmp_path / "hf" / "data"))["doc_id"])) == 3


def test_per_cluster_takes_the_budget_share_of_every_cluster(run_dir, tmp_path, capsys):
    """Small2Large's selection: the best by --by within each k-means cluster of the candidates'
    embeddings, each cluster giving the same share of its tokens; ranked overall, the same
    budget goes almost all to one kind of document."""
    mix = tmp_path / "clustered"
    args = ["--by", "excess_loss", "--budget", "30%", "--per-cluster", "3"]
    assert cli.main(["select", str(run_dir), "--out", str(mix), *args]) == 0
    assert "3 clusters of the 260 candidates (tf-idf)" in capsys.readouterr().out
    record = json.loads((mix / "selection.json").read_text())
    table = pq.read_table(mix / "clusters.parquet")
    clusters = dict(zip(table["doc_id"].to_pylist(), table["cluster"].to_pylist()))
    rows = query(run_dir, "SELECT doc_id, source, n_tokens, excess_loss FROM examples WHERE doc_id != 'pdup'")
    assert set(clusters) == {r[0] for r in rows} and record["clusters"]["documents"] == 260  # the copy left out
    assert dict(query(run_dir, "SELECT doc_id, cluster FROM clusters_clustered")) == clusters  # a catalog view
    # The clusters follow what the documents are: none mixes prose and code.
    by_cluster = {c: [r for r in rows if clusters[r[0]] == c] for c in set(clusters.values())}
    for members in by_cluster.values():
        kinds = Counter(r[1] for r in members)
        assert min(kinds["prose"], kinds["code"]) <= 0.05 * len(members), kinds
    # selection.json says how balanced the clusters are and how they follow the sources, counted here again
    profile = record["clusters"]
    for cluster, members in by_cluster.items():
        (source, top), size = Counter(r[1] for r in members).most_common(1)[0], len(members)
        assert profile["by_cluster"][cluster] == {"documents": size, "top_source": source, "purity": top / size}
    sizes = [len(m) for m in by_cluster.values()]
    assert (profile["smallest"], profile["largest"]) == (min(sizes), max(sizes))
    shares = [n / sum(sizes) for n in sizes]
    assert profile["effective_clusters"] == pytest.approx(math.exp(-sum(q * math.log(q) for q in shares)))
    purity = sum(Counter(r[1] for r in m).most_common(1)[0][1] for m in by_cluster.values()) / 260
    assert profile["purity"] == pytest.approx(purity)
    assert cli.main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    assert f"as balanced as {profile['effective_clusters']:.1f} equal clusters" in page
    chosen = {r[0] for r in query(run_dir, "SELECT DISTINCT doc_id FROM selection_clustered")}
    for cluster, members in by_cluster.items():
        tokens = sum(r[2] for r in members)
        taken = [r for r in members if r[0] in chosen]
        limit = record["plan"]["limits"][cluster]
        assert limit == pytest.approx(0.3 * tokens, abs=2) and sum(r[2] for r in taken) <= limit
        assert sum(r[2] for r in taken) > limit - max(r[2] for r in members)  # filled to within one document
        left = [r for r in members if r[0] not in chosen]
        assert min(r[3] for r in taken) >= max(r[3] for r in left)  # the best of the cluster, by --by
    prose = [r[0] for r in rows if r[1] == "prose"]
    overall = {r[0] for r in sorted(rows, key=lambda r: -r[3])[: math.ceil(0.3 * len(rows))]}  # ranked overall
    assert sum(d in overall for d in prose) < 5 and sum(d in chosen for d in prose) >= 0.15 * len(prose)
    for bad, message in [
        (["--per-cluster", "0"], "at least 1"),
        (["--per-cluster", "3", "--temperature", "1"], "give no --mix or --temperature"),
        (["--per-cluster", "3", "--budget", "10"], "a mixture splits tokens"),
    ]:
        assert cli.main(["select", str(run_dir), "--out", str(tmp_path / "x"), *bad]) == 2
        assert message in capsys.readouterr().err


def test_selection_is_registered_in_the_run_catalog(run_dir, tmp_path, capsys):
    assert (
        cli.main(
            [
                "select",
                str(run_dir),
                "--out",
                str(tmp_path / "best"),
                "--by",
                "excess_loss",
                "--budget",
                "4",
                "--tokens",
                "excess",
            ]
        )
        == 0
    )
    assert "query it:" in capsys.readouterr().out
    assert query(run_dir, "SELECT count(DISTINCT doc_id) FROM selection_best") == [(4,)]
    saved = json.loads((tmp_path / "best" / "selection.json").read_text())
    assert saved["run_manifest_sha256"] and saved["settings"]["budget"] == "4" and saved["view"] == "selection_best"


def test_bad_selection_arguments_are_one_line_errors(run_dir, tmp_path, capsys):
    for args, message in [
        (["--by", "no_such_column"], "--by/--where"),
        (["--budget", "lots"], "budget"),
        (["--mix", "prose=0.5,code=0.2"], "sum to"),
        (["--mix", "prose=0.5,code=0.5", "--budget", "3"], "a mixture splits tokens"),
    ]:
        assert cli.main(["select", str(run_dir), "--out", str(tmp_path / "x"), *args]) == 2
        assert message in capsys.readouterr().err


def test_training_loss_is_mean_nll_over_selected_tokens(run_dir, tmp_path, prose_model):
    from transformers import AutoModelForCausalLM

    select(SelectConfig(run=str(run_dir), out=str(tmp_path / "mix"), tokens="excess", ratio=0.5))
    rows = finetune.load_export(str(tmp_path / "mix"))[:4]
    batch = training.collate(rows)
    model = AutoModelForCausalLM.from_pretrained(prose_model).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = training.causal_lm_loss(logits, batch["labels"]).item()
        hf_loss = model(**batch).loss.item()
    logp = torch.log_softmax(logits, -1)
    by_hand = [
        -logp[b, i - 1, t].item()
        for b in range(len(rows))
        for i, t in enumerate(batch["labels"][b].tolist())
        if t != -100 and i > 0
    ]
    assert loss == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)
    assert hf_loss == pytest.approx(loss, rel=1e-5)  # the same convention as Hugging Face models
    all_tokens = training.causal_lm_loss(logits, torch.where(batch["attention_mask"] > 0, batch["input_ids"], -100))
    assert abs(all_tokens.item() - loss) > 1e-3  # the selection matters


def test_finetune_lowers_loss_and_checkpoints_score_as_finetuned(run_dir, tmp_path, prose_model, capsys):
    select(SelectConfig(run=str(run_dir), out=str(tmp_path / "mix"), where="source = 'code'", tokens="excess"))
    ckpt = tmp_path / "ckpt"
    assert (
        cli.main(
            [
                "finetune",
                "--data",
                str(tmp_path / "mix"),
                "--model",
                prose_model,
                "--out",
                str(ckpt),
                "--steps",
                "30",
                "--lr",
                "3e-3",
                "--batch-size",
                "8",
                "--save-every",
                "10",
                "--log-every",
                "10",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "trained 30 steps" in captured.out
    # Training says how it goes, as Hugging Face's Trainer does: on stderr and in OUT/train.log.
    lines = [line.removeprefix("refsift: ") for line in captured.err.splitlines() if "finetune: step" in line]
    assert [line.split(" · ")[0] for line in lines] == [f"finetune: step {n}/30" for n in (10, 20, 30)], captured.err
    assert all(re.search(r"loss \d+\.\d{4} · lr 3\.00e-03 · [\d,.k]+ tok/s · (ETA|done in)", line) for line in lines)
    assert (ckpt / "train.log").read_text().splitlines() == lines
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "checkpoint-10" / "model.safetensors").is_file()
    rows = finetune.load_export(str(tmp_path / "mix"))
    batch = training.collate(rows[:16])

    def loss(path):
        from transformers import AutoModelForCausalLM

        with torch.no_grad():
            return AutoModelForCausalLM.from_pretrained(path)(**batch).loss.item()

    assert loss(ckpt) < loss(prose_model) - 0.2
    out = tmp_path / "rescored"
    assert (
        cli.main(
            [
                "score",
                "--input",
                str(run_dir.parent / "code.jsonl"),
                "--model",
                prose_model,
                "--finetuned",
                str(ckpt),
                "--checkpoint",
                f"c10={ckpt}/checkpoint-10",
                "--checkpoint",
                f"c30={ckpt}",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    novelty, lp = query(out, "SELECT avg(novelty), avg(learning_percentage) FROM examples")[0]
    assert novelty > 0.2 and 0 < lp < 1.5


def test_a_selection_made_with_a_relative_path_is_read_from_anywhere(run_dir, tmp_path, monkeypatch):
    import shutil

    run = shutil.copytree(run_dir, tmp_path / "work" / "run")
    monkeypatch.chdir(run.parent)
    select(SelectConfig(run="run", out="mix", budget="50%"))  # selection.json records "run", as given
    query = "SELECT count(DISTINCT doc_id) FROM selection_mix"
    here = catalog.query("run", query)[1][0][0]
    monkeypatch.chdir(tmp_path)  # where "run" names nothing: the manifest's digest ties the two
    assert here > 0 and catalog.query(str(run), query)[1][0][0] == here
