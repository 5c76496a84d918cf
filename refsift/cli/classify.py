"""`refsift classify`: a fastText classifier over a whole corpus, on the scoring engine."""

from __future__ import annotations

from datetime import datetime

from refsift.cli.common import COMMON, Help, add_options, from_args, print_counts, seconds
from refsift.config import ClassifyConfig


def add(sub) -> None:
    p = sub.add_parser(
        "classify",
        parents=[COMMON],
        formatter_class=Help,
        help="score a whole corpus with a fastText classifier (from refsift distill, or any .bin)",
        description="Runs a fastText classifier over every document of a corpus and writes a run directory whose "
        "examples table has classifier_score per document (its probability of the positive label), so that "
        "refsift select RUN --by classifier_score --budget 10%% selects from it and refsift sql queries it. The "
        "same engine as refsift score: tasks, chunks, --resume, locks, rejected rows, the catalog; no language "
        "model and no torch. Unknown options are Beam pipeline options.",
    )
    add_options(p, ClassifyConfig)
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import classify

    out = args.out or f"refsift-runs/classify-{datetime.now():%Y%m%d-%H%M%S}"
    cfg = from_args(ClassifyConfig, args, out=out)

    def announce(cfg):
        print(f"classifying {' '.join(cfg.inputs)}\n  classifier: {cfg.classifier}\n  out:        {out}", flush=True)

    manifest = classify.run(cfg, beam_args, on_start=announce)
    c = print_counts(out, manifest, "classified")
    print(f"words classified: {c['tokens_scored']}, {seconds(manifest)}")
    print(f"select from it:  refsift select {out} --by classifier_score --budget 10% --out MIX")
