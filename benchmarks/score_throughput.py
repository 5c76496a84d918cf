"""Scored tokens per second of `refsift score` (DirectRunner) against a plain batched
transformers loop over the same windows, with the same model and batch size.

Each measurement runs in its own process so that peak RSS is its own. The plain loop is
given every advantage: the windows are tokenized and cut before the clock starts, batched
in the same length-sorted order, and it only runs forward passes and a log-softmax. The
pipeline's time is its whole wall time: reading, tokenizing, scoring, writing Parquet and
building the catalog.

    python benchmarks/score_throughput.py                    # tiny model and SmolLM2-135M
    python benchmarks/score_throughput.py --models tiny      # seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refsift import corpora

DOMAINS = ("prose", "drama", "german", "code", "math", "spanish")


def write_corpus(directory: Path, docs_per_domain: int) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for domain in DOMAINS:
        docs = corpora.documents(domain, target_chars=2500)[:docs_per_domain]
        corpora.write_jsonl(directory / f"{domain}.jsonl", corpora.numbered(docs, domain))
    return str(directory / "*.jsonl")


def tiny_model(directory: Path) -> str:
    from refsift import tiny

    tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:30] for d in DOMAINS), []), vocab_size=2048)
    model = tiny.new_model(tokenizer, layers=4, width=256, heads=4, positions=1024)
    return str(tiny.save(model, tokenizer, directory / "tiny"))


def plain_loop(model_spec: str, pattern: str, batch_size: int, max_length: int, context: int) -> dict:
    import glob

    import torch

    from refsift import models
    from refsift.kernels.windows import plan_windows

    tokenizer = models.load_tokenizer(model_spec)
    model = models.load_model(model_spec, device="cpu")
    windows = []
    for path in sorted(glob.glob(pattern)):
        for line in open(path):
            ids = tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
            windows += [(ids[w.start : w.end], w.score_from) for w in plan_windows(len(ids), max_length, context)]
    windows.sort(key=lambda w: len(w[0]))
    pad = tokenizer.pad_token_id or 0
    tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            batch = windows[i : i + batch_size]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, input_ids[:, 1:, None])
            del logp
            tokens += sum(len(ids) - first for ids, first in batch)
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def pipeline(model_spec: str, pattern: str, batch_size: int, max_length: int, context: int, out: str) -> dict:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    cfg = ScoreConfig(
        inputs=(pattern,),
        out=out,
        model=model_spec,
        batch_size=batch_size,
        max_length=max_length,
        context=context,
        overwrite=True,
    )
    start = time.perf_counter()
    manifest = score.run(cfg)
    return {"tokens": manifest["counts"]["tokens_scored"], "seconds": time.perf_counter() - start}


def child(args) -> None:
    fn = plain_loop if args.child == "plain" else pipeline
    extra = (args.out,) if args.child == "pipeline" else ()
    result = fn(args.model, args.input, args.batch_size, args.max_length, args.context, *extra)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def measure(kind: str, model: str, pattern: str, args, out: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--model",
        model,
        "--input",
        pattern,
        "--out",
        out,
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--context",
        str(args.context),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    p.add_argument("--docs-per-domain", type=int, default=20, help="documents of ~2500 characters per domain")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--child", choices=["plain", "pipeline"], help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pattern = write_corpus(tmp / "corpus", args.docs_per_domain)
        print(
            f"corpus: {len(DOMAINS)} domains x {args.docs_per_domain} documents; batch size {args.batch_size}, "
            f"max length {args.max_length}, context {args.context}"
        )
        print(
            f"{'model':<14} {'tokens':>7} {'plain tok/s':>11} {'pipeline tok/s':>14} {'ratio':>6} "
            f"{'plain RSS MB':>12} {'pipeline RSS MB':>15}"
        )
        for name in args.models:
            spec = tiny_model(tmp) if name == "tiny" else name
            plain = measure("plain", spec, pattern, args, str(tmp / "run"))
            piped = measure("pipeline", spec, pattern, args, str(tmp / "run"))
            plain_rate, piped_rate = plain["tokens"] / plain["seconds"], piped["tokens"] / piped["seconds"]
            assert plain["tokens"] == piped["tokens"], (plain, piped)
            print(
                f"{name:<14} {piped['tokens']:>7} {plain_rate:>11.0f} {piped_rate:>14.0f} "
                f"{piped_rate / plain_rate:>6.2f} {plain['peak_rss_mb']:>12.0f} {piped['peak_rss_mb']:>15.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
