"""Does attribution name the source that taught a fine-tuned model its novelty?

A small GPT-2 base is trained on English prose, drama and arithmetic. It is fine-tuned on
more of the same plus one planted source of a domain it never saw (Python code, or
offensive Spanish jokes). The sources offered to attribution are those five fine-tuning
sources and a decoy (German, in neither model's training). Two target sets: the CGE
novelty samples of the fine-tuned model against its base (`refsift novelty`), and held-out
documents of the planted domain.

Methods, each ranking the sources (rank 1 = named as the most influential):
- UnTrac-Inv and UnTrac (`refsift attribute`, the authors' defaults: Adafactor, lr 5e-5,
  UnTrac-Inv 50 steps, UnTrac one epoch over 64 documents per source), each with refsift's
  deterministic procedure and with the authors' (`--procedure paper`: dropout on, documents
  truncated, a step's loss the mean of micro-batch means);
- mean novelty: each source's mean nll_base - nll_finetuned from `refsift score`, which a
  user could compute instead (it ignores the target);
- n-gram overlap: the share of the target's character 5-grams that occur in the source.

Over seeds and both planted domains: how often each method ranks the planted source first,
its mean rank, and how often the decoy comes last; then, case by case, whether the two
procedures rank the sources alike (same first source, Spearman correlation of the rankings).

    python benchmarks/attribution.py                  # about 25 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForCausalLM

import refsift
from refsift.demo import corpora, tiny
from refsift.kernels.contrastive import DecodeSettings
from refsift.pipelines import attribute as attribution
from refsift.pipelines import novelty
from refsift.reports.novelty import CGE_MODES

GENERAL = ("prose", "drama", "math")
PLANTED = ("code", "es_offensive")
DECOY = "german"


def documents(texts: list[str], name: str) -> list[dict]:
    blank = {"prompt": None, "messages": None, "input": name}
    return [{**blank, "doc_id": f"{name}-{i}", "source": name, "text": t, "row": i} for i, t in enumerate(texts)]


def char_grams(texts: list[str], n: int = 5) -> set[str]:
    return {t[i : i + n] for text in texts for t in [" ".join(text.lower().split())] for i in range(len(t) - n + 1)}


def rank_of(scores: dict[str, float], source: str) -> int:
    order = sorted(scores, key=lambda s: (-scores[s], s))
    return order.index(source) + 1


METHODS = [("untrac-inv", "refsift"), ("untrac-inv", "paper"), ("untrac", "refsift"), ("untrac", "paper")]


def label(method: str, procedure: str) -> str:
    name = {"untrac-inv": "UnTrac-Inv", "untrac": "UnTrac"}[method]
    return name if procedure == "refsift" else f"{name} paper"


def spearman(a: dict[str, float], b: dict[str, float]) -> float:
    ra = {s: rank_of(a, s) for s in a}
    rb = {s: rank_of(b, s) for s in a}
    n = len(a)
    return 1 - 6 * sum((ra[s] - rb[s]) ** 2 for s in a) / (n * (n * n - 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=int, default=16, help="CGE samples per fine-tuned model")
    args = p.parse_args()
    tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:60] for d in corpora.DOMAINS), []), 1024)
    results: dict[tuple[str, str], list[tuple[int, int]]] = {}
    agreement: dict[tuple[str, str], list[tuple[bool, float]]] = {}
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in range(args.seeds):
            base = tiny.new_model(tokenizer, layers=2, width=128, heads=4, seed=seed)
            tiny.pretrain(base, tokenizer, sum((corpora.documents(d, 600)[:150] for d in GENERAL), []),
                          steps=300, lr=2e-3, seed=seed)  # fmt: skip
            base_dir = str(tiny.save(base, tokenizer, tmp / f"base-{seed}"))
            for planted in PLANTED:
                d = tmp / f"{planted}-{seed}"
                texts = {name: corpora.documents(name, 600)[150:210] for name in GENERAL}
                texts[planted] = corpora.documents(planted, 600)[:60]
                ft = AutoModelForCausalLM.from_pretrained(base_dir)
                tiny.pretrain(ft, tokenizer, sum(texts.values(), []), steps=250, lr=1e-3, seed=seed)
                ft_dir = str(tiny.save(ft, tokenizer, d / "finetuned"))
                texts[DECOY] = corpora.documents(DECOY, 600)[:60]
                sources = {name: documents(t, name) for name, t in texts.items()}
                for name, docs in sources.items():
                    corpora.write_jsonl(d / f"{name}.jsonl", [{"id": x["doc_id"], "text": x["text"]} for x in docs])

                started = time.time()
                config = novelty.NoveltyConfig(base=base_dir, finetuned=ft_dir, out=str(d / "novelty"),
                                               num_samples=args.samples, base_samples=0, seed=seed,
                                               decode=DecodeSettings(max_new_tokens=96))  # fmt: skip
                report = novelty.run(config)
                samples = [s["text"] for s in report["samples"] if s["mode"] in CGE_MODES and s["text"].strip()]
                targets = {
                    "novelty samples": documents(samples, "samples"),
                    "held-out": documents(corpora.documents(planted, 600)[-16:], "held-out"),  # not trained on
                }
                with refsift.score([str(d / f"{n}.jsonl") for n in sources], out=str(d / "run"), model=base_dir,
                                   finetuned=ft_dir, max_length=256, context=32) as run:  # fmt: skip
                    novelty_by_source = dict(run.sql("SELECT source, avg(novelty) FROM examples GROUP BY 1").fetchall())
                for target, docs in targets.items():
                    ranks = {"mean novelty": novelty_by_source}
                    grams = char_grams([x["text"] for x in docs])
                    ranks["n-gram overlap"] = {
                        name: len(grams & char_grams([x["text"] for x in s])) / len(grams)
                        for name, s in sources.items()
                    }
                    print(f"  samples and scoring: {time.time() - started:.0f} s", flush=True)
                    for method, procedure in METHODS:
                        started = time.time()
                        in_memory = ("(documents above)",)  # attribute() takes the documents themselves
                        cfg = attribution.AttributeConfig(model=ft_dir, targets=in_memory, sources=in_memory, out="",
                                                          method=method, source_samples=64, seed=seed,
                                                          max_length=256, context=32, procedure=procedure)  # fmt: skip
                        model, tok = attribution.load(cfg)
                        rows, _ = attribution.attribute(model, tok, {"all": docs}, sources, cfg)
                        ranks[label(method, procedure)] = {r["source"]: r["influence"] for r in rows}
                        print(f"  {method} ({procedure}) on {target}: {time.time() - started:.0f} s", flush=True)
                    for method, _ in METHODS[::2]:
                        a, b = ranks[label(method, "refsift")], ranks[label(method, "paper")]
                        agreement.setdefault((label(method, "refsift"), target), []).append(
                            (max(a, key=a.get) == max(b, key=b.get), spearman(a, b))
                        )
                    for method, scores in ranks.items():
                        results.setdefault((method, target), []).append(
                            (rank_of(scores, planted), rank_of(scores, DECOY))
                        )
                        order = " > ".join(sorted(scores, key=lambda s: -scores[s]))
                        lines.append(f"seed {seed} {planted:<13} {target:<16} {method:<15} {order}")
                print(f"seed {seed}, planted {planted}: done", flush=True)
    sources_n = len(GENERAL) + 2
    print(f"\n{args.seeds} seeds x planted {', '.join(PLANTED)}; {sources_n} sources; rank 1 = most influential")
    print(f"{'method':<15} {'target':<16} {'planted first':>13} {'mean rank':>9} {'decoy last':>10}")
    for (method, target), found in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        first = sum(r == 1 for r, _ in found)
        last = sum(dr == sources_n for _, dr in found)
        mean = sum(r for r, _ in found) / len(found)
        print(f"{method:<15} {target:<16} {first:>7}/{len(found):<5} {mean:>9.2f} {last:>6}/{len(found)}")
    print("\nrefsift's procedure against the authors' (--procedure paper), same cases:")
    print(f"{'method':<15} {'target':<16} {'same first':>10} {'Spearman mean':>13} {'min':>6}")
    for (method, target), found in sorted(agreement.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rho = [r for _, r in found]
        same = sum(s for s, _ in found)
        print(f"{method:<15} {target:<16} {same:>6}/{len(found):<3} {sum(rho) / len(rho):>13.2f} {min(rho):>6.2f}")
    print("\nrankings, case by case:")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
