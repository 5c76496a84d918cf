"""`refsift attribute`: which training sources taught a model what a target set shows."""

from __future__ import annotations

import argparse

from refsift.cli.common import COMMON, Help, add_corpus_options, add_device_options, add_window_options, from_args
from refsift.jobs.console import format_table


def add(sub) -> None:
    p = sub.add_parser(
        "attribute",
        parents=[COMMON],
        formatter_class=Help,
        help="which training sources taught a model what a target set shows (UnTrac, UnTrac-Inv)",
        description="Unlearns by gradient ascent on an in-memory copy of --model (never on disk) and measures loss "
        "changes: UnTrac-Inv (default) unlearns the target once and ranks sources by how much their own loss rises; "
        "UnTrac unlearns each source and ranks them by how much the target's loss rises. Writes DIR/attribution/ and "
        "DIR/attribution_documents/ (Parquet), catalog.duckdb (views attribution, attribution_documents), "
        "report.html and attribution.json. Defaults are the authors': Adafactor, lr 5e-5, no clipping; UnTrac one "
        "epoch over each source in batches of 1, UnTrac-Inv 50 steps of 256 target documents.",
    )
    p.add_argument("--model", required=True, help="the trained (fine-tuned) model")
    p.add_argument("--target", nargs="+", dest="targets", required=True, metavar="PATH", help="the target set")
    p.add_argument("--sources", nargs="+", required=True, metavar="PATH", help="training data; source = file stem")
    p.add_argument("--out", required=True, help="attribution directory")
    p.add_argument(
        "--method",
        default="untrac-inv",
        choices=["untrac-inv", "untrac", "both"],
        help="untrac-inv: unlearn the target once, rank sources by their loss rise; untrac: unlearn each source; "
        "both: each, and whether they agree (when they do not, neither ranking is settled)",
    )
    p.add_argument(
        "--unlearn-steps",
        type=steps,
        help="a number of steps, or 'equal': every source (UnTrac) as many steps as one epoch over the smallest; "
        "default: UnTrac one epoch over each source, UnTrac-Inv 50",
    )
    p.add_argument("--unlearn-lr", type=float, default=5e-5, help="default %(default)s")
    p.add_argument("--unlearn-batch-size", type=int, help="documents per step; default: UnTrac 1, UnTrac-Inv 256")
    p.add_argument(
        "--micro-batch",
        type=int,
        help="rows per forward pass; default 8, with --procedure paper the authors' per-device batch (UnTrac 1, "
        "UnTrac-Inv 2), which then changes the result",
    )
    p.add_argument("--optimizer", default="adafactor", choices=["adafactor", "adamw", "sgd"], help="of the unlearning")
    p.add_argument(
        "--procedure",
        default="refsift",
        choices=["refsift", "paper"],
        help="refsift: dropout off, every window of a document unlearned, a step's loss the mean over its tokens "
        "(one answer per seed on any machine); paper: as the authors' code trains: dropout on (masks drawn from "
        "--seed), each document truncated to its first --max-length tokens, a step's loss the mean of its "
        "micro-batches' means",
    )
    p.add_argument("--max-grad-norm", type=float, default=0.0, help="0 (default): no clipping")
    p.add_argument(
        "--source-samples", type=int, default=256, help="documents per source, a seeded sample; 0: all (default 256)"
    )
    p.add_argument("--target-samples", type=int, default=0, help="documents of the target, a seeded sample; 0: all")
    add_corpus_options(p)
    add_window_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass when measuring losses")
    add_device_options(p, dtype=False)
    p.add_argument("--seed", type=int, default=0, help="of the samples and the unlearning order")
    p.add_argument("--overwrite", action="store_true", help="replace an attribution directory refsift made before")
    p.set_defaults(handler=run)


def steps(text: str) -> int | str:
    if text == "equal":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number of steps nor 'equal'") from None


def run(args, _beam_args) -> None:
    from refsift.pipelines import attribute

    cfg = from_args(attribute.AttributeConfig, args, targets=tuple(args.targets), sources=tuple(args.sources))
    record = attribute.run(cfg)
    from refsift.pages.attribution import NAMES, finding, methods_finding

    columns = ["rank", "source", "influence", "influence_low", "influence_high", "p_first", "n_documents"]
    columns += ["unlearn_steps"]
    for method in cfg.methods:
        rows = [r for r in record["attribution"] if r["target"] == "all" and r["method"] == method]
        if len(cfg.methods) > 1:
            print(f"{NAMES[method]}:")
        print(format_table(columns, [tuple(r[c] for c in columns) for r in rows]))
        print(finding(rows))
    for agreement in record.get("agreement", ()):
        print(methods_finding(agreement))
    print(f"report: {args.out}/report.html")
    print(f'query it:  refsift sql {args.out} "SELECT source, influence FROM attribution ORDER BY influence DESC"')
