"""Peak RSS of `refsift score` as the corpus grows: 1x, 4x and 16x the documents.

Memory should not grow with the corpus: documents never cross a shuffle, a worker holds one
chunk at a time, and only ids feed the duplicate check. Each scale runs in its own process
(DirectRunner), with a near-free model (1 layer, 16 wide) so the runs stay short.

    python benchmarks/score_memory.py                       # 1,500 / 6,000 / 24,000 documents
    python benchmarks/score_memory.py --documents 500 --scales 1,4
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


def measure(corpus: str, model: str, out: str) -> None:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    started = time.perf_counter()
    manifest = score.run(ScoreConfig(inputs=(corpus,), out=out, model=model, max_length=512, context=64))
    result = {
        "documents": manifest["counts"]["scored"],
        "tokens": manifest["counts"]["tokens_scored"],
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": common.peak_rss_mb(),
    }
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=1500, help="documents at scale 1 (about 1.2 KB each)")
    p.add_argument("--scales", default="1,4,16")
    p.add_argument("--child", nargs=3, metavar=("CORPUS", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return measure(*args.child)
    scales = [int(s) for s in args.scales.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = common.near_free_model(tmp / "model")
        print(f"{'scale':>5} {'documents':>9} {'JSONL MB':>8} {'tokens':>10} {'seconds':>8} {'peak RSS MB':>11}")
        rows = []
        for scale in scales:
            corpus = common.write_corpus(tmp / f"corpus-{scale}.jsonl", args.documents * scale)
            r = common.child([__file__, "--child", str(corpus), model, str(tmp / f"run-{scale}")])
            rows.append(r)
            size = corpus.stat().st_size / 2**20
            print(
                f"{scale:>5} {r['documents']:>9} {size:>8.1f} {r['tokens']:>10} {r['seconds']:>8.1f} "
                f"{r['peak_rss_mb']:>11.0f}",
                flush=True,
            )
        print(f"peak RSS {scales[-1]}x / {scales[0]}x: {rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
