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

`--parts loop` sets `refsift classify` against the plainest program that does the same
work: a Python loop that reads the JSONL, parses each line with `json` and calls fastText's
`predict` on each document (datatrove's FastTextClassifierFilter does the same per
document), on one corpus of `--loop-documents` records (197,200 by default, about 250 MB)
and one fastText classifier (trained here on the bundled domains, 200,000 buckets). Each
program runs in its own process, `--rounds` times in turn; the medians are compared.
refsift runs in one process and with two DirectRunner worker processes (its default on a
machine of two cores or more when the corpus is two tasks or more); peak RSS is the
launcher's and the largest worker's.

    python benchmarks/classify_speed.py                      # 20,000 documents: about 8 minutes
    python benchmarks/classify_speed.py --gigabytes 1        # and a 1 GB corpus: 5 more
    python benchmarks/classify_speed.py --parts loop         # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402

LOOP = """
import json, resource, sys, time
import fasttext
corpus, model_file, label = sys.argv[1:4]
started = time.perf_counter()
model = fasttext.load_model(model_file)
scores = []
with open(corpus, encoding="utf-8") as handle:
    for line in handle:
        labels, probs = model.predict(json.loads(line)["text"].replace("\\n", " "), k=-1)
        scores.append(dict(zip(labels, probs)).get(label, 0.0))
print("RESULT " + json.dumps({"documents": len(scores), "seconds": time.perf_counter() - started,
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def train_classifier(path: Path) -> str:
    """A fastText classifier of prose and math (`__label__hq`) against the other domains."""
    from refsift.demo import corpora
    from refsift.kernels import classifier

    lines = [
        f"__label__{'hq' if domain in ('prose', 'math') else 'lq'} {classifier.one_line(text)}"
        for domain in ("prose", "drama", "german", "code", "math")
        for text in corpora.documents(domain, 1200)
    ]
    path.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = classifier.train(str(path.with_suffix(".txt")), classifier.FastTextSettings(bucket=200_000))
    model.save_model(str(path))
    return str(path)


def against_loop(args, tmp: Path) -> None:
    corpus = tmp / "loop.jsonl"
    common.write_planted_corpus(corpus, args.loop_documents)
    model = train_classifier(tmp / "classifier.bin")
    multi = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

    def refsift(out: str, *beam_args: str):
        def run(k: int) -> dict:
            argv = ["--child", "classify", "--input", str(corpus), "--out", str(tmp / f"{out}-{k}")]
            return common.child([__file__, *argv, "--classifier", model, *beam_args])

        return run

    programs = {
        "plain loop (json + predict)": lambda k: common.child(["-c", LOOP, str(corpus), model, "__label__hq"]),
        "refsift classify, 1 process": refsift("one", "--direct_num_workers=1"),
        "refsift classify, 2 processes": refsift("two", *multi),
    }
    results = {name: [] for name in programs}
    for k in range(args.rounds):
        for name, run in programs.items():
            results[name].append(run(k))
    print(
        f"{args.loop_documents} documents ({corpus.stat().st_size / 2**20:.1f} MB), {args.rounds} rounds each, in turn"
    )
    print(f"{'program':<30} {'median s':>8} {'min s':>7} {'max s':>7} {'docs/s':>8} {'of loop':>7} "
          f"{'peak RSS MB':>11} {'worker MB':>9}")  # fmt: skip
    loop = statistics.median(r["seconds"] for r in results["plain loop (json + predict)"])
    for name, rs in results.items():
        seconds = [r["seconds"] for r in rs]
        median = statistics.median(seconds)
        print(
            f"{name:<30} {median:>8.1f} {min(seconds):>7.1f} {max(seconds):>7.1f} {rs[0]['documents'] / median:>8.0f} "
            f"{loop / median:>7.2f} {max(r['peak_rss_mb'] for r in rs):>11.0f} "
            f"{max(r.get('worker_rss_mb', 0) for r in rs):>9.0f}"
        )


def child(args, beam_args) -> None:
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

        label = None if Path(args.classifier).is_dir() else "__label__hq"
        config = classify.ClassifyConfig(inputs=(args.input,), out=args.out, classifier=args.classifier, label=label)
        manifest = classify.run(config, beam_args)
        counts = manifest["counts"]
    result = {
        "documents": counts["scored"],
        "tokens": counts["tokens_scored"],
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": common.peak_rss_mb(),
        "worker_rss_mb": common.peak_rss_mb(children=True),
        **({"metrics": counts["metrics"]} if "metrics" in counts else {}),
    }
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["score"], choices=["score", "loop"])
    p.add_argument("--documents", type=int, default=20_000)
    p.add_argument("--sample", type=float, default=0.02, help="share of the corpus scored with SmolLM2")
    p.add_argument("--gigabytes", type=float, default=0, help="also classify a corpus this large")
    p.add_argument("--loop-documents", type=int, default=197_200, help="loop: documents")
    p.add_argument("--rounds", type=int, default=3, help="loop: runs of each program")
    p.add_argument("--child", choices=["score", "distill", "classify"], help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--classifier", help=argparse.SUPPRESS)
    args, beam_args = p.parse_known_args()
    if args.child:
        return child(args, beam_args)
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts:
            print(f"\n== {part}", flush=True)
            {"score": against_score, "loop": against_loop}[part](args, Path(tmp))


def against_score(args, tmp: Path) -> None:
    corpus = common.write_corpus(tmp / "corpus.jsonl", args.documents)
    sample_n = max(10, round(args.sample * args.documents))
    sample = common.write_corpus(tmp / "sample.jsonl", sample_n)  # the corpus's first documents, same ids
    scored = common.child([__file__, "--child", "score", "--input", str(sample), "--out", str(tmp / "run")])
    distilled = common.child([__file__, "--child", "distill", "--input", str(tmp / "run"), "--out", str(tmp / "clf")])
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
