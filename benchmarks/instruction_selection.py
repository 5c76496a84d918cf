"""Selecting instruction data with refsift, each method run as its authors run it, on small
instruction sets built from the bundled text: LoBaSS (learnability) and learning percentage
(a small model choosing for a larger).

The candidate set: arithmetic questions with their answers ("Solve 12*j = -9*j + 21 for
j." -> "1") and text continuations (the opening of a prose or drama passage -> the next
sentences), mixed with two kinds of noise: questions with wrong answers, and openings paired
with the continuation of another passage. The held-out set is clean questions and
continuations. Every model trained on a selection is fine-tuned for 3 epochs of it with a
cosine schedule (3% warmup), as both papers train; quality is the held-out response loss
(nats per response token, lower is better), scored by `refsift score --prompt-field`.

LoBaSS (Zhou et al. 2023, "LoBaSS: Gauging Learnability in Supervised Fine-tuning Data",
arXiv 2310.13008): score the candidates under the base and under the base fine-tuned on all
of them (the same 3-epoch fine-tune); keep the top k% by learnability,
(nll_base - nll_ft) / nll_base, plainly, and within a band of the base's loss (the
README's recipe: the 10% easiest and the 30% hardest for the base left out); compare with a
random k% and with all candidates.

Learning percentage (Mekala et al. 2024, "Smaller Language Models are capable of selecting
Instruction-Tuning Training Data for Larger Language Models", arXiv 2402.10430; their code,
github.com/dheeraj7596/Small2Large): a small model is fine-tuned on all candidates for 3
epochs, with checkpoints after epochs 1 and 3; LP(1) = (P0 - P1) / (P0 - P3) over
perplexities. The candidates are clustered (k-means over embeddings of "Instruction: ...
Response: ...", one cluster per ~50 candidates, as their 1,000 clusters for Alpaca's 52k)
and the k% of lowest LP(1) is taken within each cluster (their `low_lp1`); against the k%
of lowest LP(1) overall, a random k% within each cluster (their `clust_rand`), a random k%,
and all. A larger model is fine-tuned on each. Per-cluster selection is refsift's mixture
machinery: the cluster is the run's source and `select --temperature 1` gives each cluster
the same share of its tokens.

    python benchmarks/instruction_selection.py   # 3 seeds of 600 candidates: about 15 minutes a seed on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

import refsift
from refsift.demo import corpora, tiny
from refsift.kernels import analysis

PROMPT = "prompt"


def math_pairs() -> list[tuple[str, str]]:
    blocks = [b.strip().split("\n") for b in corpora.load_text("math").split("\n\n")]
    return [(f"Question: {b[0]}\nAnswer:", " " + b[1]) for b in blocks if len(b) == 2]


def continuation_pairs() -> list[tuple[str, str]]:
    pairs = []
    for domain in ("prose", "drama"):
        for doc in corpora.documents(domain, target_chars=500):
            cut = doc.find(". ", 80)
            if 0 < cut < 300:
                pairs.append((f"Continue the text:\n{doc[: cut + 1]}", " " + doc[cut + 2 : cut + 302]))
    return pairs


def instruction_sets(seed: int, n: int, noise: float):
    """(candidates, held-out) records {id, prompt, response, kind}."""
    rng = random.Random(seed)
    maths, texts = math_pairs(), continuation_pairs()
    rng.shuffle(maths)
    rng.shuffle(texts)
    held_out = [("math", *p) for p in maths[:150]] + [("text", *p) for p in texts[:60]]
    clean = [("math", *p) for p in maths[150 : 150 + n // 2]] + [("text", *p) for p in texts[60 : 60 + n // 2]]
    noisy = []
    for kind, prompt, _ in clean[: int(noise * len(clean))]:
        if kind == "math":
            noisy.append(("wrong answer", prompt, f" {rng.randint(-999, 999)}"))
        else:
            noisy.append(("mismatched", prompt, rng.choice(texts[200:])[1]))
    candidates = clean[int(noise * len(clean)) :] + noisy

    def records(rows, prefix):
        return [{"id": f"{prefix}{i}", PROMPT: p, "response": r, "kind": k} for i, (k, p, r) in enumerate(rows)]

    return records(candidates, "c"), records(held_out, "h")


def pretrained(directory: Path, tokenizer, *, layers: int, width: int, steps: int, seed: int) -> str:
    model = tiny.new_model(tokenizer, layers=layers, width=width, heads=4, seed=seed)
    general = sum((corpora.documents(d, 600)[:120] for d in ("prose", "drama", "fortunes")), [])
    general += [b for b in corpora.load_text("math").split("\n\n")[2000:2600]]  # the format, not the answers
    tiny.pretrain(model, tokenizer, general, steps=steps, lr=2e-3, seed=seed)
    return str(tiny.save(model, tokenizer, directory))


def score_args(roles: dict, source_field: str = "kind") -> dict:
    return dict(prompt_field=PROMPT, text_field="response", max_length=256, context=32, source_field=source_field,
                **roles)  # fmt: skip


def response_loss(model: str, held_out: str, out: Path) -> float:
    with refsift.score(held_out, out=str(out), **score_args({"model": model})) as run:
        ((loss,),) = run.sql("SELECT sum(nll_model * n_tokens) / sum(n_tokens) FROM examples").fetchall()
    return loss


EPOCHS = 3  # both papers fine-tune for 3 epochs with a cosine schedule and 3% warmup


def fine_tune(model: str, mix: str, out: Path, seed: int, **options) -> str:
    refsift.finetune(mix, model=model, out=str(out), epochs=EPOCHS, lr=1e-3, batch_size=16, seed=seed,
                     schedule="cosine", warmup_ratio=0.03, progress=False, **options)  # fmt: skip
    return str(out)


def select(run: str, out: Path, **options) -> str:
    refsift.select(run, out=str(out), **options)
    return str(out)


def clusters(records: list[dict], seed: int) -> list[str]:
    """Each record's k-means cluster over embeddings of "Instruction: ... Response: ..." (the
    authors' text), one cluster per ~50 records."""
    texts = [f"Instruction: {r[PROMPT].strip()} Response: {r['response'].strip()}" for r in records]
    vectors, _ = analysis.embed(texts)
    labels = analysis.kmeans(vectors, max(1, round(len(records) / 50)), seed=seed)
    return [f"cluster{label:03d}" for label in labels]


def quantiles(run: str, column: str, *qs: float) -> list[float]:
    with refsift.open_run(run) as opened:
        return [opened.sql(f"SELECT quantile_cont({column}, {q}) FROM examples").fetchall()[0][0] for q in qs]


def mean_sd(values: list[float], signed: bool = False) -> str:
    text = f"{statistics.fmean(values):{'+' if signed else ''}.3f}"
    return text + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def table(title: str, results: dict[str, list[float]], shares: dict[str, list[float]], baseline: str) -> None:
    """Each selection's held-out loss, and its difference from the baseline's in the same seed
    (the seeds' bases differ more from one another than the selections of one seed do)."""
    print(title)
    print(f"  {'training data':<36} {'held-out response loss':>22}  {'minus ' + baseline:>20}  "
          f"{'lower in':>11}  {'noise':>5}")  # fmt: skip
    for name, losses in results.items():
        diffs = [a - b for a, b in zip(losses, results[baseline])]
        lower = f"{sum(d < 0 for d in diffs)}/{len(diffs)} seeds" if name != baseline else ""
        noise = f"{statistics.fmean(shares[name]):.0%}" if shares.get(name) else ""
        print(f"  {name:<36} {mean_sd(losses):>22}  {mean_sd(diffs, signed=True) if lower else '':>20}  "
              f"{lower:>11}  {noise:>5}")  # fmt: skip


def noise_share(mix: str, noisy: set[str]) -> float:
    """The share of a selection's documents that are noise."""
    import pyarrow.parquet as pq

    ids = set(pq.read_table(Path(mix) / "data", columns=["doc_id"]).column("doc_id").to_pylist())
    return len(ids & noisy) / max(1, len(ids))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", type=int, default=600)
    p.add_argument("--noise", type=float, default=0.3, help="share of candidates made noisy")
    p.add_argument("--keep", default="30%", help="budget of every selection")
    args = p.parse_args()
    tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:60] for d in corpora.DOMAINS), []), 1024)
    lobass: dict[str, list[float]] = {}
    learning: dict[str, list[float]] = {}
    shares: dict[str, list[float]] = {}
    keep = args.keep
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            d = Path(tmp) / f"seed{seed}"
            d.mkdir()
            candidates, held_out = instruction_sets(seed, args.candidates, args.noise)
            for record, cluster in zip(candidates, clusters(candidates, seed)):
                record["cluster"] = cluster
            noisy = {r["id"] for r in candidates if r["kind"] in ("wrong answer", "mismatched")}
            corpora.write_jsonl(d / "candidates.jsonl", candidates)
            corpora.write_jsonl(d / "held_out.jsonl", held_out)
            cand, held = str(d / "candidates.jsonl"), str(d / "held_out.jsonl")
            base = pretrained(d / "base", tokenizer, layers=2, width=128, steps=300, seed=seed)

            # LoBaSS: learnability after fine-tuning the base on all candidates.
            refsift.score(cand, out=str(d / "all-run"), **score_args({"model": base})).close()
            everything = select(str(d / "all-run"), d / "all")
            probe = fine_tune(base, everything, d / "probe", seed=seed)
            run = str(d / "lobass-run")
            refsift.score(cand, out=run, **score_args({"model": base, "finetuned": probe})).close()
            low, high = quantiles(run, "nll_model", 0.1, 0.7)
            band = f"nll_model BETWEEN {low} AND {high} AND nll_finetuned < nll_model"
            mixes = {
                f"top {keep} by learnability": select(run, d / "learnable", by="learnability", budget=keep),
                f"top {keep} by learnability, band": select(
                    run, d / "band", by="learnability", budget=keep, where=band
                ),  # fmt: skip
                f"random {keep}": select(run, d / "random", by="hash(doc_id || 'seed')", budget=keep),
                "all candidates": everything,
            }
            for name, mix in mixes.items():
                model = fine_tune(base, mix, d / f"ft-{Path(mix).name}", seed=seed)
                lobass.setdefault(name, []).append(response_loss(model, held, d / f"eval-{Path(mix).name}"))
                shares.setdefault(name, []).append(noise_share(mix, noisy))

            # Learning percentage: a 1-layer model's epochs 1 and 3 choose for a 4-layer model.
            small = pretrained(d / "small", tokenizer, layers=1, width=64, steps=300, seed=seed)
            epoch = math.ceil(len(candidates) / 16)
            fine_tune(small, everything, d / "small-ft", seed=seed, save_every=epoch)
            run = str(d / "lp-run")
            checkpoints = [("epoch1", str(d / "small-ft" / f"checkpoint-{epoch}")), ("epoch3", str(d / "small-ft"))]
            roles = {"model": small, "checkpoints": checkpoints}
            refsift.score(cand, out=run, **score_args(roles, source_field="cluster")).close()
            large = pretrained(d / "large", tokenizer, layers=4, width=192, steps=300, seed=seed)
            lowest = dict(by="learning_percentage", order="asc", budget=keep)
            randomly = dict(by="hash(doc_id || 'seed')", budget=keep)
            mixes = {
                f"lowest LP(1), {keep} of each cluster": select(run, d / "lp-cluster", temperature=1.0, **lowest),
                f"lowest LP(1), {keep} overall": select(run, d / "lp-overall", **lowest),
                f"random, {keep} of each cluster": select(run, d / "lp-clust-rand", temperature=1.0, **randomly),
                f"random {keep}": select(run, d / "lp-random", **randomly),
                "all candidates": everything,
            }
            for name, mix in mixes.items():
                model = fine_tune(large, mix, d / f"large-{Path(mix).name}", seed=seed)
                learning.setdefault(name, []).append(response_loss(model, held, d / f"large-eval-{Path(mix).name}"))
                shares.setdefault(name + " (LP)", []).append(noise_share(mix, noisy))
            # The tables so far after every seed: a long run that is stopped still reports.
            print(f"\nseed {seed} done at {time.perf_counter() - start:.0f} s; {args.candidates} candidates "
                  f"({args.noise:.0%} noisy), {EPOCHS} epochs of each selection, {seed + 1} seeds, "
                  "mean ± standard deviation over seeds", flush=True)  # fmt: skip
            title = "LoBaSS: a 2-layer model, its fine-tune on all candidates as the learnability probe"
            table(title, lobass, shares, baseline=f"random {keep}")
            lp_shares = {k.removesuffix(" (LP)"): v for k, v in shares.items() if k.endswith(" (LP)")}
            title = "Learning percentage: a 1-layer model's epochs 1 and 3 select for a 4-layer model"
            table(title, learning, lp_shares, baseline=f"random {keep}")


if __name__ == "__main__":
    main()
