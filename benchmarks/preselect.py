"""Selection at web scale on a planted case: predictive strength (PreSelect), its distilled
fastText classifier, excess loss, a DCLM-style target-vs-random classifier, DSIR and
random selection, each choosing 15% of a mixed pool; the same small model is trained on
each choice and tested on held-out documents of the target domain. Also: how well a
distilled classifier agrees with the score it learned (held-out Spearman and AUC), for
excess loss, learnability and predictive strength.

The planted case. The target domain is math (its held-out loss is the "benchmark"). A
ladder of five small models is trained on mixtures that hold 0% to 50% math, the rest a
random draw of the other domains, so that models differ in what they are good at, as
real ladders do (Llama 1 and 2, other corpora). Each model's benchmark score is minus its
held-out math loss. The pool mixes seven domains, math about 8% of it; refsift scores it
with the ladder (`--ladder`), the 0%-math model as `--model` (the ladder's first), a model
trained on math as `--reference`, and the model fine-tuned on a little math and prose as
`--finetuned`. Selections:
- preselect: the top 15% by predictive_strength (ties broken at random);
- preselect-fasttext: `refsift distill` on predictive_strength (`--top max`, PreSelect's
  positives), then `refsift classify` over the pool, the top 15%;
- excess-loss: the top 15% by nll_model - nll_reference (Rho-1 / RHO-LOSS);
- dclm-fasttext: `refsift distill` with held-out math documents as positives and a random
  pool sample as negatives, then `refsift classify`, the top 15%;
- dsir: importance resampling on hashed unigrams and bigrams (Xie et al. 2023: 10,000
  buckets, log p_target - log p_pool, Gumbel top-k);
- random: 15% at random.
Then a fresh 2-layer GPT-2 trains for `--steps` on each selection (refsift's own training
loop), and the held-out math loss and general loss are measured. Seeds vary the random
choices, the classifiers, the model's initialisation and data order; the ladder and the
scored pool are built once. The benchmark is not tuned until PreSelect wins.

    python benchmarks/preselect.py              # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import zlib
from pathlib import Path

import numpy as np

from refsift import api, catalog
from refsift.demo import corpora, tiny
from refsift.kernels.classifier import FastTextSettings
from refsift.pipelines import classify, distill

TARGET = "math"
OTHERS = ("prose", "drama", "fortunes", "german", "spanish", "code")
SHARES = (0.0, 0.1, 0.2, 0.35, 0.5)  # math in each ladder model's training mixture
SHAPE = dict(layers=2, width=96, heads=4)
SMALL_FASTTEXT = dict(bucket=100_000)


def split(seed: int = 0) -> dict:
    rng = random.Random(seed)
    docs = {d: corpora.documents(d, target_chars=400) for d in (TARGET, *OTHERS)}
    for texts in docs.values():
        rng.shuffle(texts)
    return {
        "train": {d: texts[:150] for d, texts in docs.items()},  # the ladder's training data
        "pool": {d: texts[150:350] if d != TARGET else texts[150:250] for d, texts in docs.items()},
        "test": {d: texts[-40:] for d, texts in docs.items()},
    }


def mean_nll(model, tokenizer, texts: list[str]) -> float:
    import torch

    from refsift.kernels.nll import token_nll

    total, count = 0.0, 0
    bos = tokenizer.bos_token_id
    for text in texts:
        ids = torch.tensor([[bos] + tokenizer(text, add_special_tokens=False)["input_ids"][:255]])
        nll = token_nll(model.eval(), ids)[0, 1:]
        total, count = total + nll.sum().item(), count + nll.numel()
    return total / count


def trained(tokenizer, texts: list[str], steps: int, seed: int):
    model = tiny.new_model(tokenizer, **SHAPE, seed=seed)
    tiny.pretrain(model, tokenizer, texts, steps=steps, lr=2e-3, seed=seed)
    return model


def ladder_mixture(data: dict, share: float, rng: random.Random) -> list[str]:
    n = 300
    target = rng.sample(data["train"][TARGET], min(round(share * n), len(data["train"][TARGET])))
    weights = [rng.random() for _ in OTHERS]  # a random mixture of the other domains
    others = []
    for domain, w in zip(OTHERS, weights):
        others += rng.sample(data["train"][domain], round((n - len(target)) * w / sum(weights)))
    return target + others


def dsir(pool: list[str], target: list[str], k: int, seed: int, buckets: int = 10_000) -> list[int]:
    """Hashed n-gram importance resampling: log p_target(x) - log p_pool(x) under hashed
    unigram+bigram bags of words, then k documents without replacement (Gumbel top-k)."""

    def features(text: str) -> np.ndarray:
        words = text.lower().split()
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        counts = np.zeros(buckets)
        for g in grams:
            counts[zlib.crc32(g.encode()) % buckets] += 1
        return counts

    def log_probs(texts: list[str]) -> np.ndarray:
        total = sum(features(t) for t in texts) + 1.0  # add-one smoothing
        return np.log(total / total.sum())

    bags = [features(t) for t in pool]
    target_lp, pool_lp = log_probs(target), log_probs(pool)
    weights = np.array([b @ (target_lp - pool_lp) for b in bags])
    gumbel = np.random.default_rng(seed).gumbel(size=len(pool))
    return list(np.argsort(-(weights + gumbel))[:k])


def top(values: dict[str, float], k: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    keyed = [(v, rng.random(), doc_id) for doc_id, v in values.items() if v is not None and math.isfinite(v)]
    return [doc_id for *_, doc_id in sorted(keyed, reverse=True)[:k]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="training steps on each selection")
    p.add_argument("--share", type=float, default=0.15, help="of the pool selected")
    args = p.parse_args()
    data = split()
    pool = [(f"{d}-{i}", d, t) for d, texts in data["pool"].items() for i, t in enumerate(texts)]
    text_of = {doc_id: t for doc_id, _, t in pool}
    domain_of = {doc_id: d for doc_id, d, _ in pool}
    k = round(args.share * len(pool))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        all_train = sum(data["train"].values(), [])
        tokenizer = tiny.train_tokenizer(all_train, vocab_size=1024)
        rng = random.Random(0)
        ladder = []
        for i, share in enumerate(SHARES):
            model = trained(tokenizer, ladder_mixture(data, share, rng), steps=250, seed=10 + i)
            score = -mean_nll(model, tokenizer, data["test"][TARGET])
            ladder.append((str(tiny.save(model, tokenizer, tmp / f"ladder{i}")), score))
        print("ladder (math share -> benchmark = -held-out math loss):")
        print("  " + ", ".join(f"{s:.0%} -> {b:.3f}" for s, (_, b) in zip(SHARES, ladder)), flush=True)
        reference = trained(tokenizer, data["train"][TARGET], steps=250, seed=20)
        ref_dir = str(tiny.save(reference, tokenizer, tmp / "reference"))
        finetuned = trained(tokenizer, ladder_mixture(data, 0.0, random.Random(1)), steps=250, seed=10)
        tiny.pretrain(finetuned, tokenizer, data["train"][TARGET][:40] + data["train"]["prose"][:40], steps=60, lr=1e-3)
        ft_dir = str(tiny.save(finetuned, tokenizer, tmp / "finetuned"))
        corpora.write_jsonl(tmp / "pool.jsonl", [{"id": i, "text": t, "domain": d} for i, d, t in pool])
        run = str(tmp / "run")
        api.score(
            [str(tmp / "pool.jsonl")],
            out=run,
            ladder=tuple(ladder),
            reference=ref_dir,
            finetuned=ft_dir,
            max_length=128,
            context=16,
        ).close()
        columns = "doc_id, predictive_strength, excess_loss, learnability"
        rows = catalog.query(run, f"SELECT {columns} FROM examples")[1]
        scores = {name: {r[0]: r[j] for r in rows} for j, name in enumerate(columns.split(", ")[1:], start=1)}

        print("\nagreement of a distilled classifier with the score it learned (held-out 30%):")
        print(f"  {'score':<20} {'Spearman':>9} {'AUC':>6}")
        for column in ("excess_loss", "learnability", "predictive_strength"):
            cfg = distill.DistillConfig(
                run=run,
                by=column,
                top="30%",
                holdout=0.3,
                out=str(tmp / f"agree-{column}"),
                fasttext=FastTextSettings(epoch=20, **SMALL_FASTTEXT),
            )
            card = distill.run(cfg)
            m = card["metrics"]
            print(f"  {column:<20} {m['spearman']:>9.3f} {m['auc']:>6.3f}", flush=True)

        results: dict[str, list[dict]] = {}
        for seed in range(args.seeds):
            chosen = {
                "preselect": top(scores["predictive_strength"], k, seed),
                "excess-loss": top(scores["excess_loss"], k, seed),
                "random": random.Random(seed).sample(list(text_of), k),
            }
            distill.run(
                distill.DistillConfig(
                    run=run,
                    by="predictive_strength",
                    top="max",
                    seed=seed,
                    out=str(tmp / f"ps-{seed}"),
                    fasttext=FastTextSettings(epoch=20, seed=seed, **SMALL_FASTTEXT),
                )
            )
            negatives = random.Random(seed).sample([t for _, _, t in pool], 150)
            corpora.write_jsonl(tmp / "positives.jsonl", [{"text": t} for t in data["train"][TARGET]])
            corpora.write_jsonl(tmp / "negatives.jsonl", [{"text": t} for t in negatives])
            distill.run(
                distill.DistillConfig(
                    positives_files=(str(tmp / "positives.jsonl"),),
                    negatives_files=(str(tmp / "negatives.jsonl"),),
                    seed=seed,
                    out=str(tmp / f"dclm-{seed}"),
                    overwrite=True,
                    fasttext=FastTextSettings(epoch=20, seed=seed, **SMALL_FASTTEXT),
                )
            )
            for name, clf in (("preselect-fasttext", f"ps-{seed}"), ("dclm-fasttext", f"dclm-{seed}")):
                out = str(tmp / f"classified-{name}-{seed}")
                classify.run(
                    classify.ClassifyConfig(inputs=(str(tmp / "pool.jsonl"),), out=out, classifier=str(tmp / clf))
                )
                values = dict(catalog.query(out, "SELECT doc_id, classifier_score FROM examples")[1])
                chosen[name] = top(values, k, seed)
            ids = list(text_of)
            chosen["dsir"] = [ids[i] for i in dsir([text_of[i] for i in ids], data["train"][TARGET], k, seed)]
            for name in ("preselect", "preselect-fasttext", "excess-loss", "dclm-fasttext", "dsir", "random"):
                model = trained(tokenizer, [text_of[i] for i in chosen[name]], steps=args.steps, seed=100 + seed)
                results.setdefault(name, []).append(
                    {
                        "target": mean_nll(model, tokenizer, data["test"][TARGET]),
                        "general": mean_nll(model, tokenizer, sum((data["test"][d][:10] for d in OTHERS), [])),
                        "target_share": sum(domain_of[i] == TARGET for i in chosen[name]) / k,
                    }
                )
            print(f"seed {seed} done", flush=True)

    print(f"\nselect {k} of {len(pool)} pool documents ({args.share:.0%}; math is "
          f"{sum(d == TARGET for d in domain_of.values()) / len(pool):.0%} of the pool), train {args.steps} steps, "
          f"{args.seeds} seeds")  # fmt: skip
    print(f"{'selection':<20} {'math loss':>17} {'general loss':>17} {'math share':>11}")
    for name, runs in sorted(results.items(), key=lambda kv: statistics.mean(r["target"] for r in kv[1])):
        cells = []
        for key in ("target", "general"):
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        share = statistics.mean(r["target_share"] for r in runs)
        print(f"{name:<20} {cells[0]:>17} {cells[1]:>17} {share:>11.0%}")


if __name__ == "__main__":
    main()
