"""A distilled classifier from a small sample: how fastText's settings decide what `refsift
distill` learns from hundreds of scored documents.

The case a new user meets. A base model trained on six bundled domains and a reference
model trained on one of them (code) score a sample of `--documents` documents (an equal
share of each domain): excess loss (nll_model - nll_reference) is high where the reference
knows better, on code. `refsift distill --by excess_loss` takes the top 30% as positives,
its negatives as it is told, and trains fastText; `refsift classify` then scores 120
unseen documents (20 a domain). Measured: precision@20 of the reference's domain among the
unseen documents (the top 20 by classifier score; 1.0 is every one code), the held-out AUC
distill reports, and the spread of the classifier's scores (a classifier whose scores all
sit at 0.5 has learned little, whatever its AUC). Each fastText setting is run with the
same labels; seeds vary fastText and the held-out split.

    python benchmarks/distill_small.py                      # about 3 minutes on 2 cores
    python benchmarks/distill_small.py --documents 2400
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from refsift import catalog  # noqa: E402
from refsift.config import ClassifyConfig, DistillConfig, ScoreConfig  # noqa: E402
from refsift.demo import corpora, tiny  # noqa: E402
from refsift.kernels.classifier import FastTextSettings  # noqa: E402
from refsift.pipelines import classify, distill, score  # noqa: E402

DOMAINS = ("prose", "drama", "german", "code", "math", "spanish")
TARGET = "code"
SETTINGS = {  # name -> FastTextSettings fields (bucket small: a sample needs few)
    "default (by the sample's size)": {},
    "epoch 3, lr 0.1 (PreSelect's)": dict(epoch=3, lr=0.1),
    "epoch 10, lr 0.5": dict(epoch=10, lr=0.5),
    "epoch 25, lr 0.5": dict(epoch=25, lr=0.5),
    "epoch 50, lr 1.0": dict(epoch=50, lr=1.0),
}


def write(path: Path, records: list[dict]) -> str:
    corpora.write_jsonl(path, records)
    return str(path)


def models(tmp: Path, train: dict[str, list[str]]) -> tuple[str, str]:
    """A base model trained on every domain and a reference trained on the target's."""
    texts = [t for d in DOMAINS for t in train[d]]
    tok = tiny.train_tokenizer(texts, vocab_size=1024)
    shape = dict(layers=2, width=96, heads=4)
    base = tiny.new_model(tok, **shape, seed=0)
    tiny.pretrain(base, tok, texts, steps=300, lr=2e-3, seed=0)
    reference = tiny.new_model(tok, **shape, seed=0)
    tiny.pretrain(reference, tok, train[TARGET] * 3, steps=300, lr=2e-3, seed=0)
    return str(tiny.save(base, tok, tmp / "base")), str(tiny.save(reference, tok, tmp / "reference"))


def measure(tmp: Path, run: str, unseen: str, domain_of: dict, name: str, negatives: str, seed: int) -> dict:
    settings = FastTextSettings(bucket=100_000, seed=seed, **SETTINGS[name])
    out = tmp / f"clf-{len(list(tmp.iterdir()))}"
    card = distill.run(
        DistillConfig(
            run=run, by="excess_loss", top="30%", negatives=negatives, seed=seed, fasttext=settings, out=str(out)
        )  # fmt: skip
    )
    classified = tmp / f"cls-{len(list(tmp.iterdir()))}"
    classify.run(ClassifyConfig(inputs=(unseen,), classifier=str(out), out=str(classified)))
    _, rows = catalog.query(str(classified), "SELECT doc_id, classifier_score FROM examples")
    scores = [s for _, s in rows]
    top20 = sorted(rows, key=lambda r: -r[1])[:20]
    return {
        "precision": sum(domain_of[d] == TARGET for d, _ in top20) / 20,
        "auc": card["metrics"]["auc"],
        "spread": max(scores) - min(scores),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=240, help="scored documents distilled from")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    rng = random.Random(0)
    docs = {d: corpora.documents(d, target_chars=600) for d in DOMAINS}
    for texts in docs.values():
        rng.shuffle(texts)
    per = args.documents // len(DOMAINS)
    train = {d: texts[:60] for d, texts in docs.items()}
    sample = [{"id": f"{d}-{i}", "text": t, "source": d} for d, texts in docs.items() for i, t in
              enumerate(texts[60 : 60 + per])]  # fmt: skip
    unseen = [{"id": f"u-{d}-{i}", "text": t} for d, texts in docs.items() for i, t in enumerate(texts[-20:])]
    domain_of = {f"u-{d}-{i}": d for d in DOMAINS for i in range(20)}
    short = [d for d, texts in docs.items() if len(texts) < 80 + per]
    if short:
        sys.exit(f"not enough documents in {', '.join(short)} for --documents {args.documents}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base, reference = models(tmp, train)
        run = str(tmp / "run")
        score.run(ScoreConfig(inputs=(write(tmp / "sample.jsonl", sample),), model=base, reference=reference,
                              source_field="source", out=run, max_length=256, context=32))  # fmt: skip
        unseen_file = write(tmp / "unseen.jsonl", unseen)
        print(f"{len(sample)} scored documents ({per} a domain), reference trained on {TARGET}; 120 unseen, "
              f"{args.seeds} seeds (mean, min-max)")  # fmt: skip
        print(f"{'fastText settings':<32} {'negatives':<9} {'precision@20':>15} {'held-out AUC':>15} "
              f"{'score spread':>15}")  # fmt: skip
        for name in SETTINGS:
            for negatives in ("bottom", "random"):
                results = [measure(tmp, run, unseen_file, domain_of, name, negatives, s) for s in range(args.seeds)]
                cells = []
                for key in ("precision", "auc", "spread"):
                    values = [r[key] for r in results]
                    cells.append(f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})")
                print(f"{name:<32} {negatives:<9} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}", flush=True)


if __name__ == "__main__":
    main()
