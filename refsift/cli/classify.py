"""`refsift classify`: a fastText classifier over a whole corpus, on the scoring engine."""

from __future__ import annotations

from datetime import datetime

from refsift.cli.common import COMMON, Help, add_chunk_job_options, add_corpus_options, from_args, print_counts, seconds


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
    p.add_argument("--classifier", required=True, help="a refsift distill directory, or a fastText .bin file")
    p.add_argument("--label", help="the label whose probability is the score (default: the card's; needed for a .bin)")
    p.add_argument("--input", nargs="+", dest="inputs", required=True, metavar="PATH", help="file patterns")
    p.add_argument("--out", help="run directory (default: refsift-runs/classify-<time>)")
    add_corpus_options(p)
    add_chunk_job_options(p, "classification run")
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import classify

    out = args.out or f"refsift-runs/classify-{datetime.now():%Y%m%d-%H%M%S}"
    cfg = from_args(classify.ClassifyConfig, args, inputs=tuple(args.inputs), out=out)

    def announce(cfg):
        print(f"classifying {' '.join(cfg.inputs)}\n  classifier: {cfg.classifier}\n  out:        {out}", flush=True)

    manifest = classify.run(cfg, beam_args, on_start=announce)
    c = print_counts(out, manifest, "classified")
    print(f"words classified: {c['tokens_scored']}, {seconds(manifest)}")
    print(f"select from it:  refsift select {out} --by classifier_score --budget 10% --out MIX")
