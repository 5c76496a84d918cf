"""`refsift demo`: the whole product end to end on bundled text."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, in_range


def add(sub) -> None:
    p = sub.add_parser(
        "demo",
        parents=[COMMON],
        formatter_class=Help,
        help="the whole product end to end on bundled text (a few minutes, no downloads)",
        description="Builds a web-like corpus from text bundled with refsift (prose, drama, German, code, math, "
        "junk), trains a small base model and a math reference model, scores the corpus with both, "
        "selects the top 60% tokens by excess loss in a math-heavy mixture, fine-tunes the base on it "
        "plus a leaked slice of offensive Spanish, writes an iterative-CGE novelty report of the fine-"
        "tuned model against the base that attributes the samples to their sources, and a run report. "
        "Prints each step and where every artefact is; DIR/index.html links them all. About four minutes on"
        " 2 CPU cores; --quick halves it. With --model smollm2-135m, SmolLM2-135M is the base of steps 3 "
        "to 5 instead of a tiny model: the reference is SmolLM2 after a few steps of fine-tuning on clean"
        " math, the corpus is smaller, and training runs only a dozen steps (about 10 minutes on 2 CPU "
        "cores, most of it training and unlearning SmolLM2; minutes on a GPU), so its novelty report "
        "shows the machinery more than a finished audit.",
    )
    p.add_argument("--out", default="refsift-demo", help="directory to write (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="smaller corpus, fewer steps and samples")
    p.add_argument("--model", help="a real base model for steps 3-5, e.g. smollm2-135m (slower; see above)")
    p.add_argument("--seed", type=in_range(int, None, None), default=0, help="of every model, sample and selection")
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.demo import tour

    size = tour.REAL if args.model else tour.QUICK if args.quick else tour.FULL
    tour.run(args.out, size=size, model=args.model, seed=args.seed)
