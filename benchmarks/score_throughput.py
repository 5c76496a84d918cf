"""Scored tokens per second of `refsift score` (DirectRunner) against a plain batched
transformers loop over the same windows, with the same model and batch sizes.

Each measurement runs in its own process so that peak RSS is its own. The plain loop gets
every advantage: the windows are tokenized and cut (by refsift's own planner, BOS prefix
included) before its clock starts, batched in the same length-sorted order, and it only
runs forward passes and a log-softmax. The pipeline's time is its whole wall time: Beam's
start-up, reading, tokenizing, scoring, writing Parquet, the catalog.

Two corpora: documents that fit one window, and documents about 8 windows long, where
each window after the first re-feeds `--context` tokens of the one before. That re-fed
context is work both sides do (it is in the "fed / scored" column), not pipeline overhead.

The pipeline pays a start-up the plain loop's clock does not see (importing torch and
transformers, checking and loading the models, Beam's runner): it is measured on its own,
with a corpus of four documents, and the "steady" column divides by the time after it.
Over a real corpus the start-up is seconds against hours.

    python benchmarks/score_throughput.py                    # tiny model and SmolLM2-135M
    python benchmarks/score_throughput.py --models tiny      # a minute
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

CORPORA = {"one window": 800, "windowed": 12000}  # characters per document


def plain_loop(model_spec: str, corpus: str, batch_size: int, max_length: int, context: int) -> dict:
    import numpy as np
    import torch

    from refsift import models
    from refsift.kernels.encode import prefix_id
    from refsift.kernels.windows import length_batches, plan_windows

    tokenizer = models.load_tokenizer(model_spec)
    model = models.load_model(model_spec, device="cpu")
    bos = prefix_id(tokenizer, "auto")
    windows = []
    for line in open(corpus):
        ids = [bos] + tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
        windows += [(ids[w.start : w.end], w.score_from) for w in plan_windows(len(ids), max_length, context)]
    order = length_batches(np.array([len(ids) for ids, _ in windows]), batch_size * max_length)
    pad = models.pad_id(tokenizer)
    tokens = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for index in order:
            batch = [windows[i] for i in index]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, input_ids[:, 1:, None])
            del logp
            tokens += sum(len(ids) - first for ids, first in batch)
    fed = sum(len(ids) for ids, _ in windows)
    return {"tokens": tokens, "fed": fed, "seconds": time.perf_counter() - start}


def pipeline(model_spec: str, corpus: str, batch_size: int, max_length: int, context: int, out: str) -> dict:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    cfg = ScoreConfig(
        inputs=(corpus,), out=out, model=model_spec, batch_size=batch_size, max_length=max_length, context=context
    )
    start = time.perf_counter()
    manifest = score.run(cfg)
    return {"tokens": manifest["counts"]["tokens_scored"], "seconds": time.perf_counter() - start}


def child(args) -> None:
    shape = (args.batch_size, args.max_length, args.context)
    if args.child == "plain":
        result = plain_loop(args.model, args.input, *shape)
    else:
        result = pipeline(args.model, args.input, *shape, args.out)
    result["peak_rss_mb"] = common.peak_rss_mb()
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    p.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1: 600k tokens tiny, 60k SmolLM2)")
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
    shape = ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--context", str(args.context)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"batch size {args.batch_size}, max length {args.max_length}, context {args.context}")
        print(
            f"{'model':<14} {'corpus':<11} {'scored':>8} {'fed/scored':>10} {'plain tok/s':>11} {'pipeline':>8} "
            f"{'ratio':>6} {'steady':>7} {'ratio':>6} {'plain RSS MB':>12} {'pipeline RSS MB':>15}"
        )
        for name in args.models:
            spec = common.small_model(tmp / "tiny") if name == "tiny" else name
            few = str(common.write_corpus(tmp / "few.jsonl", 4, chars=800))
            startup = common.child(
                [
                    __file__,
                    "--child",
                    "pipeline",
                    "--model",
                    spec,
                    "--input",
                    few,
                    "--out",
                    str(tmp / f"few-{name}"),
                    *shape,
                ]
            )["seconds"]
            tokens, tokens_per_char = (600_000, 0.4) if name == "tiny" else (60_000, 0.27)
            for corpus_name, chars in CORPORA.items():
                documents = max(4, round(args.scale * tokens / (chars * tokens_per_char)))
                corpus = str(common.write_corpus(tmp / f"{corpus_name}.jsonl", documents, chars=chars))
                given = ["--model", spec, "--input", corpus, "--out", str(tmp / f"run-{name}-{chars}"), *shape]
                plain = common.child([__file__, "--child", "plain", *given])
                piped = common.child([__file__, "--child", "pipeline", *given])
                assert plain["tokens"] == piped["tokens"], (plain, piped)
                rate = plain["tokens"] / plain["seconds"]
                end_to_end = piped["tokens"] / piped["seconds"]
                steady = piped["tokens"] / (piped["seconds"] - startup)
                print(
                    f"{name:<14} {corpus_name:<11} {piped['tokens']:>8} {plain['fed'] / plain['tokens']:>10.3f} "
                    f"{rate:>11.0f} {end_to_end:>8.0f} {end_to_end / rate:>6.2f} {steady:>7.0f} {steady / rate:>6.2f} "
                    f"{plain['peak_rss_mb']:>12.0f} {piped['peak_rss_mb']:>15.0f}",
                    flush=True,
                )
            print(f"{name}: pipeline start-up {startup:.1f} s (four documents, end to end)")


if __name__ == "__main__":
    main()
