"""What `refsift score` costs per scored token beyond the model's forward pass and the
tokenizer, with a near-free model (1 layer, 16 wide) so the pipeline's own work shows.

1. The pipeline's marginal cost per token: two corpus sizes, whole `refsift score` runs
   (DirectRunner, each in its own process); the difference cancels start-up and the
   catalog, which do not grow with the corpus.
2. The same chunks through the same functions without Beam, timing each step: the
   tokenizer (encoding, and reading ids and offsets out of it), the model (`token_nll` on
   ready batches), and what refsift does around them (parsing, windows, batches, losses to
   the host, summaries, Parquet).
3. overhead = marginal - model - tokenizer, in microseconds per scored token.

    python benchmarks/score_overhead.py                      # 1,500 and 6,000 documents
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402


def pipeline(corpus: str, model: str, out: str) -> None:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    started = time.perf_counter()
    manifest = score.run(ScoreConfig(inputs=(corpus,), out=out, model=model))
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"tokens": manifest["counts"]["tokens_scored"], "seconds": seconds}))


def steps(corpus: str, model_dir: str, out: str) -> None:
    """The pipeline's steps as plain function calls on the same chunks, each timed."""
    import numpy as np
    import torch

    from refsift import models
    from refsift.config import ScoreConfig
    from refsift.corpus.formats import chunked, payloads
    from refsift.corpus.records import Fields
    from refsift.corpus.tasks import plan_tasks
    from refsift.kernels.encode import prefix_id
    from refsift.kernels.nll import token_nll
    from refsift.kernels.windows import length_batches, padded
    from refsift.pipelines.score import table_schemas
    from refsift.transforms.commit_chunks import commit
    from refsift.transforms.read_corpus import read_chunk
    from refsift.transforms.summarize_examples import examples_table
    from refsift.transforms.tokenize_windows import tokenize_chunk

    cfg = ScoreConfig(inputs=(corpus,), out=out, model=model_dir)
    tokenizer = models.load_tokenizer(model_dir)
    model = models.load_model(model_dir, device="cpu")
    prefix, pad = prefix_id(tokenizer, "auto"), models.pad_id(tokenizer)
    schemas = table_schemas(["model"])
    Path(out).mkdir(parents=True, exist_ok=True)
    budget = cfg.batch_size * cfg.max_length
    t: dict[str, float] = defaultdict(float)
    tokens = 0

    def timed(name, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        t[name] += time.perf_counter() - start
        return result

    def floor(texts):  # what any caller pays: encoding, and reading ids and offsets out of it
        for e in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
            e.ids, e.offsets  # noqa: B018

    def batches_of(w):
        return [padded(w, i, pad) for i in length_batches(w.lengths, budget)]

    def forward(batches):
        return [token_nll(model, torch.from_numpy(ids), torch.from_numpy(c).long(), targets=torch.from_numpy(tg))
                for ids, c, tg, _ in batches]  # fmt: skip

    def to_host(batches, outs, n):
        nll = np.full(n, np.nan, dtype=np.float32)
        for (_, cells, _, flat), out in zip(batches, outs):
            nll[flat] = out.cpu().numpy()[cells]
        return nll

    (task,), _ = plan_tasks([corpus])
    for index, final, items in chunked(payloads(task, Fields().columns()), cfg.chunk_size):
        chunk = timed("parse records", read_chunk, task, index, final, items, Fields(), 0, {})
        timed("tokenizer", floor, [d["text"] for d in chunk.documents])
        timed("encode + windows (tokenizer included)", tokenize_chunk, chunk, tokenizer, prefix, 512, 64)
        w = chunk.windows
        batches = timed("batches", batches_of, w)
        outs = timed("model", forward, batches)
        w.nll["model"] = timed("losses to the host", to_host, batches, outs, len(w.token_ids))
        chunk.tables["examples"] = timed("summarize", examples_table, chunk, ["model"], None, schemas["examples"])
        timed("write shards and marker", commit, chunk, out, schemas)
        tokens += int(w.scored.sum())
    print("RESULT " + json.dumps({"tokens": tokens, "seconds": t}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=1500, help="documents (about 1.2 KB each) in the small corpus")
    p.add_argument("--factor", type=int, default=4, help="the large corpus has this many times more")
    p.add_argument("--child", nargs=4, metavar=("KIND", "CORPUS", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        return pipeline(*rest) if kind == "pipeline" else steps(*rest)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = common.near_free_model(tmp / "model")
        small = common.write_corpus(tmp / "small.jsonl", args.documents)
        large = common.write_corpus(tmp / "large.jsonl", args.documents * args.factor)
        a = common.child([__file__, "--child", "pipeline", str(small), model, str(tmp / "run-small")])
        b = common.child([__file__, "--child", "pipeline", str(large), model, str(tmp / "run-large")])
        s = common.child([__file__, "--child", "steps", str(large), model, str(tmp / "steps")])
        marginal = (b["seconds"] - a["seconds"]) / (b["tokens"] - a["tokens"]) * 1e6
        per = {name: seconds / s["tokens"] * 1e6 for name, seconds in s["seconds"].items()}
        encode = per.pop("encode + windows (tokenizer included)")
        per["encode + windows"] = encode - per["tokenizer"]
        own = sum(us for name, us in per.items() if name not in ("model", "tokenizer"))
        print(f"near-free model (1 layer, 16 wide); {a['tokens']:,} and {b['tokens']:,} scored tokens")
        print("us per scored token, each step timed on its own (no Beam):")
        for name in ("tokenizer", "model", "parse records", "encode + windows", "batches", "losses to the host",
                     "summarize", "write shards and marker"):  # fmt: skip
            print(f"  {name:<26} {per[name]:7.3f}")
        print(f"refsift's own steps:         {own:7.3f} us per token  (target <= 0.3)")
        print(f"whole pipeline, marginal:    {marginal:7.3f} us per token  ({1 / marginal:.3f}M tok/s; Beam and all,")
        print(f"  two runs' difference, so within a few % of the model's own {per['model']:.2f} us)")


if __name__ == "__main__":
    main()
