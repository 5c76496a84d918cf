"""What classifying a whole corpus costs against scoring it: `refsift classify` (a
distilled fastText classifier) and `refsift score` with SmolLM2-135M on the same
documents, as documents and tokens per second and per core, and the end-to-end cost of
"score 2% + distil + classify 100%" against "score 100%".

One corpus of `--documents` records (about 1.2 KB each, the bundled domains). SmolLM2
scores a 2% sample (the part a team would score with models), `refsift distill` learns
the sample's bits per byte (low = positive, the top 30%), and `refsift classify` runs
over every document. Scoring the whole corpus is not run: its time is the sample's rate
times the corpus (the rate of a 2% sample of the same documents; said so in the output).
Each step runs in its own process, so its peak RSS is its own. Scoring uses both cores
(torch's threads); classification one (fastText's prediction in one DirectRunner worker):
"per core" divides by that.

`--gigabytes G` also classifies a corpus of about G GB (the kind the scoring-memory
benchmark writes) and reports wall time and peak RSS.

    python benchmarks/classify_speed.py                      # 20,000 documents: about 8 minutes
    python benchmarks/classify_speed.py --gigabytes 1        # and a 1 GB corpus: 5 more
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402


def child(args) -> None:
    started = time.perf_counter()
    if args.child == "score":
        from refsift.config import ScoreConfig
        from refsift.pipelines import score

        manifest = score.run(ScoreConfig(inputs=(args.input,), out=args.out, model="smollm2-135m", batch_size=8))
        counts = manifest["counts"]
    elif args.child == "distill":
        from refsift.kernels.classifier import FastTextSettings
        from refsift.pipelines import distill

        cfg = distill.DistillConfig(
            run=args.input,
            by="bpb_model",
            order="asc",
            top="30%",
            out=args.out,
            fasttext=FastTextSettings(bucket=200_000),
        )
        card = distill.run(cfg)
        counts = {"scored": card["counts"]["candidates"], "tokens_scored": 0, "metrics": card["metrics"]}
    else:
        from refsift.pipelines import classify

        manifest = classify.run(classify.ClassifyConfig(inputs=(args.input,), out=args.out, classifier=args.classifier))
        counts = manifest["counts"]
    result = {
        "documents": counts["scored"],
        "tokens": counts["tokens_scored"],
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": common.peak_rss_mb(),
        **({"metrics": counts["metrics"]} if "metrics" in counts else {}),
    }
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=20_000)
    p.add_argument("--sample", type=float, default=0.02, help="share of the corpus scored with SmolLM2")
    p.add_argument("--gigabytes", type=float, default=0, help="also classify a corpus this large")
    p.add_argument("--child", choices=["score", "distill", "classify"], help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--classifier", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = common.write_corpus(tmp / "corpus.jsonl", args.documents)
        sample_n = max(10, round(args.sample * args.documents))
        sample = common.write_corpus(tmp / "sample.jsonl", sample_n)  # the corpus's first documents, same ids
        scored = common.child([__file__, "--child", "score", "--input", str(sample), "--out", str(tmp / "run")])
        distilled = common.child(
            [__file__, "--child", "distill", "--input", str(tmp / "run"), "--out", str(tmp / "clf")]
        )
        classified = common.child(
            [
                __file__,
                "--child",
                "classify",
                "--input",
                str(corpus),
                "--out",
                str(tmp / "all"),
                "--classifier",
                str(tmp / "clf"),
            ]  # fmt: skip
        )
        score_docs = scored["documents"] / scored["seconds"]
        score_tokens = scored["tokens"] / scored["seconds"]
        class_docs = classified["documents"] / classified["seconds"]
        print(f"corpus: {args.documents} documents ({corpus.stat().st_size / 2**20:.1f} MB); SmolLM2 scores {sample_n}")
        print(f"{'step':<26} {'documents':>9} {'seconds':>8} {'docs/s':>9} {'docs/s/core':>11} {'peak RSS MB':>11}")
        for name, r, cores in (("score 2% (SmolLM2-135M)", scored, 2), ("distill", distilled, 1),
                               ("classify 100% (fastText)", classified, 1)):  # fmt: skip
            rate = r["documents"] / r["seconds"]
            print(
                f"{name:<26} {r['documents']:>9} {r['seconds']:>8.1f} {rate:>9.1f} {rate / cores:>11.1f} "
                f"{r['peak_rss_mb']:>11.0f}"
            )
        print(f"SmolLM2 scores {score_tokens:.0f} tokens/s (both cores); classify reads {class_docs:.0f} documents/s")
        print(f"classify / score, documents per second: {class_docs / score_docs:.0f}x "
              f"({class_docs / (score_docs / 2):.0f}x per core)")  # fmt: skip
        whole = args.documents / score_docs
        cheap = scored["seconds"] + distilled["seconds"] + classified["seconds"]
        print(
            f"score 100% (at the sample's rate): {whole / 60:.1f} min; score {args.sample:.0%} + distill + classify "
            f"100%: {cheap / 60:.1f} min = {cheap / whole:.3f} of it"
        )
        m = distilled["metrics"]
        print(f"the classifier on held-out documents: AUC {m['auc']}, Spearman with bpb_model {m['spearman']}")
        if args.gigabytes:
            documents = round(args.gigabytes * 2**30 / (corpus.stat().st_size / args.documents))
            big = common.write_corpus(tmp / "big.jsonl", documents)
            r = common.child(
                [
                    __file__,
                    "--child",
                    "classify",
                    "--input",
                    str(big),
                    "--out",
                    str(tmp / "big"),
                    "--classifier",
                    str(tmp / "clf"),
                ]  # fmt: skip
            )
            print(
                f"{big.stat().st_size / 2**30:.2f} GB, {r['documents']} documents: classified in {r['seconds']:.0f} s "
                f"({r['documents'] / r['seconds']:.0f} docs/s), peak RSS {r['peak_rss_mb']:.0f} MB"
            )


if __name__ == "__main__":
    main()
