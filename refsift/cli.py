"""The `refsift` command line: one subcommand per job, each a thin layer over a pipeline.

Arguments the scoring command does not know are Beam pipeline options and pass through
(`--runner`, `--direct_running_mode`, `--project`, ...).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import datetime
from importlib import resources

import refsift
from refsift.errors import RefsiftError

PASS_THROUGH = {"score"}  # subcommands whose unknown arguments are Beam pipeline options


def sample_inputs() -> list[str]:
    """The bundled sample corpus scored when `refsift score` gets no --input."""
    return [str(resources.files("refsift") / "data" / "sample" / "*.jsonl.gz")]


def _checkpoint(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="score a corpus with reference models into a run directory",
        description="Reads a corpus, cuts it into token windows, records every token's loss under each role's "
        "model, and writes Parquet shards and a DuckDB catalog. With no --input and no --model it scores the "
        "bundled sample corpus with the offline SmolLM2-135M. Unknown options are Beam pipeline options "
        "(e.g. --runner DataflowRunner --project P --region R --temp_location gs://... --setup_file ./setup.py, "
        "or --direct_running_mode multi_processing --direct_num_workers 2).",
    )
    p.add_argument("--input", nargs="+", dest="inputs", metavar="PATH", help="file patterns (local, gs://, globs)")
    p.add_argument("--out", help="run directory (default: refsift-runs/score-<time>)")
    p.add_argument("--model", default="smollm2-135m", help="the model you intend to train (theta); default %(default)s")
    p.add_argument("--reference", help="Rho-1 reference / RHO-LOSS irreducible-loss model")
    p.add_argument("--finetuned", help="theta after fine-tuning on the candidate data")
    p.add_argument("--checkpoint", action="append", default=[], type=_checkpoint, metavar="NAME=PATH",
                   help="intermediate checkpoint of theta (repeat, in training order)")
    p.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "text", "hf"])
    p.add_argument("--text-field", default="text")
    p.add_argument("--id-field", help="default: `id` when a record has one, else a hash of path and row")
    p.add_argument("--source-field", help="domain label field; default: the input file's stem")
    p.add_argument("--text-per-line", action="store_true", help="with --format text: one document per line")
    p.add_argument("--hf-split", default="train", help="split of a Hugging Face dataset")
    p.add_argument("--max-length", type=int, default=512, help="tokens per window (default %(default)s)")
    p.add_argument("--context", type=int, default=64, help="left-context tokens between windows (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default %(default)s)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of an existing --out")
    p.set_defaults(run=run_score)


def run_score(args, beam_args: list[str]) -> None:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    out = args.out or f"refsift-runs/score-{datetime.now():%Y%m%d-%H%M%S}"
    cfg = ScoreConfig(
        inputs=tuple(args.inputs or sample_inputs()), out=out, model=args.model, reference=args.reference,
        finetuned=args.finetuned, checkpoints=tuple(args.checkpoint), format=args.format,
        text_field=args.text_field, id_field=args.id_field, source_field=args.source_field,
        text_per_line=args.text_per_line, hf_split=args.hf_split, max_length=args.max_length,
        context=args.context, batch_size=args.batch_size, device=args.device, dtype=args.dtype,
        trust_remote_code=args.trust_remote_code, overwrite=args.overwrite,
    )  # fmt: skip
    roles = ", ".join(f"{role}={spec}" for role, spec in cfg.roles.items())
    print(f"scoring {' '.join(cfg.inputs)}\n  roles: {roles}\n  out:   {out}", flush=True)
    manifest = score.run(cfg, beam_args)
    c = manifest["counts"]
    reasons = ", ".join(f"{k} {v}" for k, v in c["rejected_by_reason"].items()) or "none"
    print(f"documents: read {c['read']} = scored {c['scored']} + rejected {c['rejected']} ({reasons})")
    print(f"tokens scored: {c['tokens_scored']} in {c['windows']} windows, {manifest['wall_time_s']:.1f} s")
    print(f"query it:  refsift sql {out} \"SELECT source, count(*), avg(nll_model) FROM examples GROUP BY 1\"")


def add_sql(sub) -> None:
    p = sub.add_parser(
        "sql",
        help="query a run's catalog (read-only)",
        description="Runs one read-only SQL statement against a run's DuckDB catalog: views examples, tokens, "
        "rejected, token_scores and any registered selections. Statements that write are refused.",
    )
    p.add_argument("run_dir")
    p.add_argument("query")
    p.add_argument("--format", default="table", choices=["table", "csv", "json"])
    p.set_defaults(run=run_sql)


def _cell(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    text = str(value).replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= 60 else text[:57] + "..."


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """Columns aligned, numbers right-aligned, long text cut."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(columns))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells), f"({len(rows)} rows)"])


def run_sql(args, _beam_args) -> None:
    from refsift import catalog

    columns, rows = catalog.query(args.run_dir, args.query)
    if args.format == "table":
        print(format_table(columns, rows))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        print(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refsift",
        description="Score corpora with reference language models, select training data, audit fine-tunes.",
    )
    p.add_argument("--version", action="version", version=f"refsift {refsift.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_score(sub)
    add_sql(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    if extra and args.command not in PASS_THROUGH:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.run(args, extra)
    except RefsiftError as err:
        print(f"refsift: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
