"""`refsift distill`: a score (or labelled files) -> a fastText classifier with its held-out evaluation."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import DistillConfig


def add(sub) -> None:
    p = sub.add_parser(
        "distill",
        parents=[COMMON],
        formatter_class=Help,
        help="train a fastText classifier on a run's score, to classify a whole corpus cheaply",
        description="Trains a fastText classifier to tell the documents at the top of a score (a column of the "
        "run's examples, or any SQL expression over them: predictive_strength, excess_loss, learnability, ...) "
        "from those at the bottom, or, with --positive-files and --negative-files, labelled documents (as DCLM's "
        "and FineWeb-Edu's classifiers are made). A seeded share of the "
        "documents (--holdout) is kept out of training; on it the command reports the AUC of telling positives from "
        "negatives and the Spearman correlation of the classifier's score with the column. Writes CLF/model.bin and "
        "CLF/card.json; refsift classify runs it over a corpus. Defaults follow PreSelect's code: negatives are the "
        "lowest-scored documents, as many as the positives; fastText trains 3 epochs at lr 0.1 with word bigrams "
        "(PreSelect's positives are the perfectly ordered documents: --by predictive_strength --top max).",
    )
    add_options(p, DistillConfig)
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.pipelines import distill

    cfg = from_args(DistillConfig, args)
    card = distill.run(cfg)
    c, m = card["counts"], card["metrics"]
    print(
        f"trained on {c['train_positive']} positives and {c['train_negative']} negatives "
        f"(of {c['candidates']} candidates); held out {c['held_out']}"
    )
    spearman = "" if m["spearman"] is None else f", Spearman with {cfg.by} {m['spearman']:.3f}"
    auc = "n/a (no held-out positive and negative)" if m["auc"] is None else f"{m['auc']:.3f}"
    print(f"held-out AUC {auc}{spearman}")
    if m.get("brier") is not None:
        print(f"as probabilities: Brier {m['brier']:.3f}, expected calibration error {m['ece']:.3f}; held-out scores "
              f"{m['score_low']:.6g} .. {m['score_high']:.6g} (5th to 95th percentile)")  # fmt: skip
    if m.get("learned_little"):
        print("warning: the classifier learned little: its scores hardly vary, so a threshold on them (0.5, say) "
              "means nothing even where the AUC is high; train longer (--epoch 25 --lr 0.5) or on more "
              "documents")  # fmt: skip
    print(f"wrote {args.out}/model.bin and {args.out}/card.json")
    print(f"classify a corpus:  refsift classify --classifier {args.out} --input 'corpus/*.jsonl' --out RUN")
