"""`refsift score`: a corpus -> per-token losses under every role, in a run directory."""

from __future__ import annotations

from datetime import datetime

from refsift.cli.common import COMMON, Help, add_options, from_args, print_counts, sample_inputs, seconds
from refsift.config import ScoreConfig


def add(sub) -> None:
    p = sub.add_parser(
        "score",
        parents=[COMMON],
        formatter_class=Help,
        help="score a corpus with reference models into a run directory",
        description="Reads a corpus, cuts it into token windows, records every token's loss under each role's "
        "model, and writes Parquet shards and a DuckDB catalog. With no --input and no --model it scores the "
        "bundled sample corpus with the offline SmolLM2-135M. Work is cut into tasks (files, and byte ranges of "
        "large uncompressed JSONL or text files; a compressed file cannot be split and is one task) and committed "
        "in chunks, so an interrupted run finishes with --resume. Unknown options are Beam pipeline options "
        "(e.g. --runner DataflowRunner --project P --region R --temp_location gs://... --setup_file ./setup.py, "
        "or --direct_running_mode multi_processing --direct_num_workers 2).",
    )
    add_options(p, ScoreConfig)
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import score

    out = args.out or f"refsift-runs/score-{datetime.now():%Y%m%d-%H%M%S}"
    cfg = from_args(
        ScoreConfig,
        args,
        inputs=tuple(args.inputs or sample_inputs()),
        out=out,
    )

    def announce(cfg):
        roles = ", ".join(f"{role}={spec}" for role, spec in cfg.roles.items())
        print(f"scoring {' '.join(cfg.inputs)}\n  roles: {roles}\n  out:   {out}", flush=True)

    manifest = score.run(cfg, beam_args, on_start=announce)
    if manifest.get("dry_run"):
        steps = [s for s in manifest["steps"] if "/" not in s]
        print(f"dry run: the job was built and not submitted; {manifest['tasks']} tasks, steps {', '.join(steps)}")
        return
    c = print_counts(out, manifest, "scored")
    print(f"tokens scored: {c['tokens_scored']} in {c['windows']} windows, {seconds(manifest)}")
    if "read_error" in c["rejected_by_reason"]:
        print(f"warning: some inputs could not be read to their end; see {out}'s rejected table (reason read_error)")
    print(f'query it:  refsift sql {out} "SELECT source, count(*), avg(nll_model) FROM examples GROUP BY 1"')
