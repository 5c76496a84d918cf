"""`refsift finetune`: train a causal LM on one or more selection exports."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help


def add(sub) -> None:
    p = sub.add_parser(
        "finetune",
        parents=[COMMON],
        formatter_class=Help,
        help="fine-tune a causal LM on a selection export",
        description="Trains on MIX_DIR's export with the loss averaged over labelled tokens only (the selective "
        "LM loss for a token selection) and saves save_pretrained checkpoints usable as --finetuned/--checkpoint.",
    )
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        metavar="MIX_DIR",
        help="one or more mixture directories written by refsift select",
    )
    p.add_argument("--model", required=True, help="model to start from (hub id, directory, smollm2-135m)")
    p.add_argument("--out", required=True, help="checkpoint directory (final weights; checkpoint-N inside)")
    p.add_argument("--steps", type=int, help="optimizer steps (default: --epochs over the data)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the data, when --steps is not given")
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate of AdamW (default %(default)s)")
    p.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="after warmup, the learning rate stays (constant) or falls to 0 along a cosine (default %(default)s)",
    )
    p.add_argument("--warmup-ratio", type=float, default=0.0, help="share of the steps warming up linearly")
    p.add_argument("--batch-size", type=int, default=8, help="rows per forward pass")
    p.add_argument("--grad-accum", type=int, default=1, help="forward passes per optimizer step")
    p.add_argument("--save-every", type=int, help="also save checkpoint-N every N steps")
    p.add_argument("--seed", type=int, default=0, help="of the initial order of rows and of dropout")
    p.add_argument("--device", default="auto", help="auto (cuda when present, else cpu), cpu, cuda, cuda:1, mps")
    p.add_argument(
        "--log-every",
        type=int,
        help="steps between training lines (step, loss, lr, tokens/s, ETA; also in OUT/train.log); "
        "default a tenth of the steps, at most one line per 10 s",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint directory refsift made before")
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.pipelines import finetune

    options = ("steps", "epochs", "lr", "schedule", "warmup_ratio", "batch_size", "grad_accum", "save_every", "seed")
    options += ("device", "overwrite", "log_every")
    record = finetune.run(data=args.data, model=args.model, out=args.out, **{k: getattr(args, k) for k in options})
    losses = record["losses"]
    print(f"trained {record['steps']} steps on {record['rows_trained']} rows: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"saved {args.out} (use it as --finetuned or --checkpoint NAME={args.out})")
