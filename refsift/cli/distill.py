"""`refsift distill`: a score (or labelled files) -> a fastText classifier with its held-out evaluation."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_corpus_options


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
    p.add_argument("run_dir", nargs="?", help="a scoring run (or give --positive-files and --negative-files)")
    p.add_argument("--out", required=True, help="classifier directory to write")
    p.add_argument("--by", help="column or SQL expression over examples columns: higher = positive (see --order)")
    p.add_argument("--where", help="SQL condition over examples columns: the candidates")
    p.add_argument("--order", default="desc", choices=["desc", "asc"], help="asc: the lowest --by are the positives")
    p.add_argument(
        "--top",
        default="10%",
        help="the positives: a share (10%%), a number of documents, or max (every document at the column's maximum)",
    )
    p.add_argument(
        "--negatives",
        default="bottom",
        choices=["bottom", "random"],
        help="bottom: the lowest-scored documents; random: a random sample of the others (as many as positives)",
    )
    labelled = p.add_argument_group("labelled documents, instead of a run")
    labelled.add_argument(
        "--positive-files", nargs="+", dest="positives_files", default=[], metavar="PATH", help="the positives"
    )
    labelled.add_argument(
        "--negative-files", nargs="+", dest="negatives_files", default=[], metavar="PATH", help="the negatives"
    )
    p.add_argument("--holdout", type=float, default=0.1, help="share of documents kept out of training for evaluation")
    p.add_argument("--seed", type=int, default=0, help="of the held-out split, ties and fastText")
    g = p.add_argument_group("fastText")
    g.add_argument("--epoch", type=int, default=3, help="passes over the training documents")
    g.add_argument("--lr", type=float, default=0.1, help="learning rate")
    g.add_argument("--word-ngrams", type=int, default=2, help="longest word n-gram feature")
    g.add_argument("--dim", type=int, default=100, help="word vector size")
    g.add_argument("--min-count", type=int, default=1, help="words seen fewer times are dropped")
    g.add_argument(
        "--bucket",
        type=int,
        default=2_000_000,
        help="hash buckets of word n-grams; the model file is about 4 x bucket x dim bytes (800 MB by default: a "
        "sample of thousands of documents does well with 100000)",
    )
    g.add_argument("--threads", type=int, default=1, help="training threads (1: the same classifier for a seed)")
    add_corpus_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a classifier directory refsift made before")
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.cli.common import from_args
    from refsift.kernels.classifier import FastTextSettings
    from refsift.pipelines import distill

    fasttext = FastTextSettings(
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        min_count=args.min_count,
        bucket=args.bucket,
        threads=args.threads,
        seed=args.seed,
    )
    cfg = from_args(
        distill.DistillConfig,
        args,
        run=args.run_dir,
        positives_files=tuple(args.positives_files),
        negatives_files=tuple(args.negatives_files),
        fasttext=fasttext,
    )
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
