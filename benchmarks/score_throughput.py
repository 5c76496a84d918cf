"""Scored tokens per second of `refsift score` (DirectRunner) against a plain batched
transformers loop over the same windows, with the same model and batch size.

Each measurement runs in its own process so that peak RSS is its own. The plain loop is
what a user would write, and gets every advantage: the windows are tokenized and cut (by
refsift's own planner, BOS prefix included) before its clock starts, sorted by length and
batched `--batch-size` windows at a time, and it only runs forward passes and a full
log-softmax. The pipeline's time is its whole wall time: Beam's start-up, reading,
tokenizing, scoring, writing Parquet, the catalog.

Model shapes, so that both the body and the output head get to dominate:
- tiny: 4 layers, 256 wide, a 2,048-token vocabulary (3M parameters);
- body: 6 layers, 384 wide, 2,048 tokens: the transformer body dominates;
- head: 2 layers, 128 wide, a 32,768-row output head: the head dominates;
- smollm2-135m: the real model (30 layers, 576 wide, 49,152 tokens).

Two corpora: documents that fit one window, and documents about 8 windows long, where
each window after the first re-feeds `--context` tokens of the one before. That re-fed
context is work both sides do (it is in the "fed / scored" column), not pipeline overhead.

The machine is shared and noisy: each side runs `--repeats` times, alternating, and the
fastest run of each counts.

The pipeline pays a start-up the plain loop's clock does not see (importing torch and
transformers, checking and loading the models, Beam's runner): it is measured on its own,
with a corpus of four documents, and the "steady" column divides by the time after it.
Over a real corpus the start-up is seconds against hours.

    python benchmarks/score_throughput.py                    # every shape
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
# name -> (layers, width, heads, output rows, scored tokens per corpus at --scale 1)
SHAPES = {"tiny": (4, 256, 4, None, 600_000), "body": (6, 384, 6, None, 200_000), "head": (2, 128, 2, 32768, 200_000)}


def shaped_model(directory: Path, name: str) -> str:
    from transformers import GPT2Config, GPT2LMHeadModel

    from refsift.demo import tiny

    layers, width, heads, rows, _ = SHAPES[name]
    tok = common.tokenizer()
    model = tiny.new_model(tok, layers=layers, width=width, heads=heads, positions=1024)
    if rows:  # a head larger than the tokenizer: rows past its vocabulary are never targets, only computed
        config = GPT2Config(**{**model.config.to_dict(), "vocab_size": rows})
        model = GPT2LMHeadModel(config).eval()
    return str(tiny.save(model, tok, directory))


def plain_loop(model_spec: str, corpus: str, batch_size: int, max_length: int, context: int) -> dict:
    import numpy as np
    import torch

    from refsift import models
    from refsift.kernels.encode import prefix_id
    from refsift.kernels.windows import plan_windows

    tokenizer = models.load_tokenizer(model_spec)
    model = models.load_model(model_spec, device="cpu")
    bos = prefix_id(tokenizer, "auto")
    windows = []
    for line in open(corpus):
        ids = [bos] + tokenizer(json.loads(line)["text"], add_special_tokens=False)["input_ids"]
        windows += [(ids[w.start : w.end], w.score_from) for w in plan_windows(len(ids), max_length, context)]
    by_length = np.argsort([len(ids) for ids, _ in windows], kind="stable")
    order = [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
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
    p.add_argument("--models", nargs="+", default=[*SHAPES, "smollm2-135m"])
    p.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1: 600k tokens tiny, 60k SmolLM2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating; the fastest counts")
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
            spec = shaped_model(tmp / name, name) if name in SHAPES else name
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
            tokens, tokens_per_char = (SHAPES[name][4], 0.4) if name in SHAPES else (60_000, 0.27)
            for corpus_name, chars in CORPORA.items():
                documents = max(4, round(args.scale * tokens / (chars * tokens_per_char)))
                corpus = str(common.write_corpus(tmp / f"{corpus_name}.jsonl", documents, chars=chars))
                given = ["--model", spec, "--input", corpus, "--out", str(tmp / f"run-{name}-{chars}"), *shape]
                plains, pipes = [], []
                for _ in range(args.repeats):
                    plains.append(common.child([__file__, "--child", "plain", *given]))
                    pipes.append(common.child([__file__, "--child", "pipeline", *given]))
                plain, piped = (min(runs, key=lambda r: r["seconds"]) for runs in (plains, pipes))
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
