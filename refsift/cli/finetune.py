"""`refsift finetune`: train a causal LM on one or more selection exports."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import FinetuneConfig


def add(sub) -> None:
    p = sub.add_parser(
        "finetune",
        parents=[COMMON],
        formatter_class=Help,
        help="fine-tune a causal LM on a selection export",
        description="Trains on MIX_DIR's export with the loss averaged over labelled tokens only (the selective "
        "LM loss for a token selection) and saves save_pretrained checkpoints usable as --finetuned/--checkpoint.",
    )
    add_options(p, FinetuneConfig)
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.pipelines import finetune

    record = finetune.run(from_args(FinetuneConfig, args))
    losses = record["losses"]
    print(f"trained {record['steps']} steps on {record['rows_trained']} rows: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"saved {args.out} (use it as --finetuned or --checkpoint NAME={args.out})")
