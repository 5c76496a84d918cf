"""Peak memory of `refsift select` as the run grows: synthetic runs 1x, 10x and 30x the size
of the test suite's selection run (~260 documents of ~100 tokens), each selected in its own
process (token selection by excess loss in a source mixture, plus a global threshold).

Flat peak RSS across sizes means selection streams shards rather than loading them; what
grows is only the chosen documents' ids.

    python benchmarks/select_memory.py
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from refsift import catalog
from refsift.demo import corpora, tiny
from refsift.jobs import rundir
from refsift.pipelines.score import table_schemas

ROLES = ["model", "reference"]
SOURCES = ("prose", "code", "math")
BASE_DOCS = 260


def synthetic_run(directory: Path, documents: int, tokens: int = 100, shard_docs: int = BASE_DOCS) -> None:
    """Tokens/examples shards of equal size with random losses, a catalog and a manifest: a
    valid run. (Beam reads one Parquet row group at a time, so memory follows shard size.)"""
    rng = random.Random(0)
    schemas = table_schemas(ROLES)
    for table in ("tokens", "examples"):
        (directory / table).mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, documents, shard_docs)):
        windows, examples = [], []
        for d in range(start, min(documents, start + shard_docs)):
            source = SOURCES[d % len(SOURCES)]
            nll_m = [None] + [rng.uniform(0, 8) for _ in range(tokens - 1)]
            nll_r = [None] + [rng.uniform(0, 8) for _ in range(tokens - 1)]
            windows.append(
                {
                    "doc_id": f"d{d}",
                    "window": 0,
                    "token_start": 0,
                    "token_ids": list(range(tokens)),
                    "char_start": list(range(tokens)),
                    "char_end": list(range(1, tokens + 1)),
                    "nll_model": nll_m,
                    "nll_reference": nll_r,
                }
            )
            mean_m, mean_r = sum(nll_m[1:]) / (tokens - 1), sum(nll_r[1:]) / (tokens - 1)
            examples.append(
                {
                    "doc_id": f"d{d}",
                    "source": source,
                    "text": f"{source} document {d} " + "x" * tokens,
                    "input": "synthetic",
                    "row": d,
                    "n_tokens": tokens - 1,
                    "n_bytes": tokens + 20,
                    "nll_model": mean_m,
                    "nll_reference": mean_r,
                    "bpb_model": None,
                    "bpb_reference": None,
                    "excess_loss": mean_m - mean_r,
                    "learnability": None,
                    "learning_percentage": None,
                    "novelty": None,
                }
            )
        pq.write_table(
            pa.Table.from_pylist(windows, schemas["tokens"]), directory / "tokens" / f"part-{shard:05d}.parquet"
        )
        pq.write_table(
            pa.Table.from_pylist(examples, schemas["examples"]), directory / "examples" / f"part-{shard:05d}.parquet"
        )
    catalog.build(str(directory), schemas, {"token_scores": catalog.token_scores_sql(ROLES)})
    tokenizer = tiny.train_tokenizer(corpora.documents("prose")[:20], vocab_size=300)
    tokenizer.save_pretrained(directory / "tokenizer")
    (directory / "tokenizer" / "config.json").write_text("{}")  # a model spec directory needs one
    manifest = {
        "roles": {r: {"spec": r} for r in ROLES},
        "tokenizer": {"spec": str(directory / "tokenizer"), "vocab_fingerprint": "synthetic", "prefix_token_id": None},
        "settings": {},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    rundir.write_json(str(directory / rundir.MARKER), {"kind": "run", "status": "complete"})  # a finished run


def child(run_dir: str, out: str) -> None:
    from refsift.pipelines import select

    started = time.perf_counter()
    select.run(
        select.SelectConfig(
            run=run_dir,
            out=out,
            tokens="excess",
            ratio=0.6,
            scope="global",
            by="excess_loss",
            mix="prose=0.5,code=0.3,math=0.2",
            budget="50%",
        )
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": peak}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="1,10,30")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    print(f"{'scale':>5} {'documents':>9} {'tokens':>9} {'seconds':>8} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in map(int, args.scales.split(",")):
            run_dir = Path(tmp) / f"run{scale}"
            synthetic_run(run_dir, BASE_DOCS * scale)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(run_dir), str(Path(tmp) / f"mix{scale}")],
                capture_output=True,
                text=True,
            )
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                sys.exit(proc.stderr[-3000:])
            result = json.loads(lines[-1][7:])
            print(
                f"{scale:>5} {BASE_DOCS * scale:>9} {BASE_DOCS * scale * 100:>9} {result['seconds']:>8.1f} "
                f"{result['peak_rss_mb']:>11.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
