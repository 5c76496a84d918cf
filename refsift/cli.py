"""The `refsift` command line: one subcommand per job, each a thin layer over a pipeline.

Arguments the scoring command does not know are Beam pipeline options and pass through
(`--runner`, `--direct_running_mode`, `--project`, ...).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import sys
from datetime import datetime
from importlib import resources

import refsift
from refsift.errors import RefsiftError
from refsift.terminal import format_table

PASS_THROUGH = {"score", "select", "novelty"}  # subcommands whose unknown arguments are Beam pipeline options
COMMON = argparse.ArgumentParser(add_help=False)
COMMON.add_argument("--verbose", action="store_true", help="show Beam's logs and Hugging Face's progress bars")


def from_args(cls, args: argparse.Namespace, **values):
    """A config dataclass filled from the parsed arguments of the same names, then `values`."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in vars(args).items() if k in known}, **values})


def sample_inputs() -> list[str]:
    """The bundled sample corpus scored when `refsift score` gets no --input."""
    return [str(resources.files("refsift") / "data" / "sample" / "*.jsonl.gz")]


def _checkpoint(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def add_reading_options(p) -> None:
    """How inputs are read and windowed: the same for `score` and `attribute`."""
    g = p.add_argument_group("reading and windowing inputs")
    g.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "text", "hf"])
    g.add_argument("--text-field", default="text", help="the text to score (with --prompt-field, the response)")
    g.add_argument("--prompt-field", help="instruction data: the prompt, read as context; only the response is scored")
    g.add_argument(
        "--messages-field",
        help="chat data: [{role, content}, ...] rendered with the tokenizer's chat template; only assistant turns "
        "are scored",
    )
    g.add_argument("--id-field", help="default: `id` when a record has one, else a hash of path and row")
    g.add_argument("--source-field", help="domain label field; default: the input file's stem")
    g.add_argument("--text-per-line", action="store_true", help="with --format text: one document per line")
    g.add_argument("--hf-split", default="train", help="split of a Hugging Face dataset")
    g.add_argument(
        "--prefix",
        default="auto",
        choices=["auto", "bos", "eos", "none"],
        help="token put before each document: auto = BOS, else EOS (as lm-evaluation-harness); with a prefix "
        "every token of a document is scored, with none its first token is not (default %(default)s)",
    )
    g.add_argument("--max-length", type=int, default=512, help="tokens per window (default %(default)s)")
    g.add_argument("--context", type=int, default=64, help="left-context tokens between windows (default %(default)s)")


def add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        parents=[COMMON],
        help="score a corpus with reference models into a run directory",
        description="Reads a corpus, cuts it into token windows, records every token's loss under each role's "
        "model, and writes Parquet shards and a DuckDB catalog. With no --input and no --model it scores the "
        "bundled sample corpus with the offline SmolLM2-135M. Work is cut into tasks (files, and byte ranges of "
        "large uncompressed JSONL or text files; a compressed file cannot be split and is one task) and committed "
        "in chunks, so an interrupted run finishes with --resume. Unknown options are Beam pipeline options "
        "(e.g. --runner DataflowRunner --project P --region R --temp_location gs://... --setup_file ./setup.py, "
        "or --direct_running_mode multi_processing --direct_num_workers 2).",
    )
    p.add_argument("--input", nargs="+", dest="inputs", metavar="PATH", help="file patterns (local, gs://, globs)")
    p.add_argument("--out", help="run directory (default: refsift-runs/score-<time>)")
    p.add_argument("--model", default="smollm2-135m", help="the model you intend to train (theta); default %(default)s")
    p.add_argument("--reference", help="Rho-1 reference / RHO-LOSS irreducible-loss model")
    p.add_argument("--finetuned", help="theta after fine-tuning on the candidate data")
    p.add_argument(
        "--checkpoint",
        action="append",
        dest="checkpoints",
        default=[],
        type=_checkpoint,
        metavar="NAME=PATH",
        help="checkpoint of theta (repeat, in training order); learning percentage takes the first and the last "
        "(with a single one, --finetuned is the last)",
    )
    add_reading_options(p)
    p.add_argument(
        "--batch-size", type=int, default=8, help="windows of --max-length per forward pass (default %(default)s)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument(
        "--task-size", type=_size, default="64M", help="input bytes per task, the unit a worker takes (default 64M)"
    )
    p.add_argument(
        "--chunk-size",
        type=_size,
        default="1M",
        help="input bytes per chunk, scored and committed whole: the most a killed run loses (default 1M)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run directory refsift made before")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run: score only what is missing")
    p.set_defaults(handler=run_score)


def _size(text: str) -> int:
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    number, unit = text.strip().lower().rstrip("b")[:-1], text.strip().lower().rstrip("b")[-1:]
    if unit.isdigit():
        number, unit = number + unit, ""
    try:
        value = int(float(number) * units[unit])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a size such as 64M or 1048576, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return value


def run_score(args, beam_args: list[str]) -> None:
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    out = args.out or f"refsift-runs/score-{datetime.now():%Y%m%d-%H%M%S}"
    cfg = from_args(
        ScoreConfig, args, inputs=tuple(args.inputs or sample_inputs()), out=out, checkpoints=tuple(args.checkpoints)
    )
    roles = ", ".join(f"{role}={spec}" for role, spec in cfg.roles.items())
    print(f"scoring {' '.join(cfg.inputs)}\n  roles: {roles}\n  out:   {out}", flush=True)
    manifest = score.run(cfg, beam_args)
    c = manifest["counts"]
    if manifest.get("already_complete"):
        print(f"{out} is already complete: nothing to resume")
    reasons = ", ".join(f"{k} {v}" for k, v in c["rejected_by_reason"].items()) or "none"
    print(f"documents: read {c['read']} = scored {c['scored']} + rejected {c['rejected']} ({reasons})")
    print(f"tokens scored: {c['tokens_scored']} in {c['windows']} windows, {manifest['wall_time_s']:.1f} s")
    if "read_error" in c["rejected_by_reason"]:
        print(f"warning: some inputs could not be read to their end; see {out}'s rejected table (reason read_error)")
    print(f'query it:  refsift sql {out} "SELECT source, count(*), avg(nll_model) FROM examples GROUP BY 1"')


def add_select(sub) -> None:
    p = sub.add_parser(
        "select",
        parents=[COMMON],
        help="turn a scored run into a training mixture",
        description="Selects documents (--by/--where/--budget, --mix or --temperature across sources, exact "
        "duplicates removed) and, inside them, tokens (--tokens excess: Rho-1 selective language modeling), "
        "and exports training rows (input_ids, attention_mask, labels with -100 on tokens not trained on) to "
        "MIX_DIR/data. A Beam pipeline like `score`: unknown options are Beam pipeline options.",
        epilog="LoBaSS-style band: --where 'nll_model BETWEEN 1.5 AND 4.0 AND nll_finetuned < nll_model' drops "
        "documents easy under both models and documents too hard for both, before ranking by --by learnability.",
    )
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="mixture directory to write")
    p.add_argument(
        "--tokens",
        default="all",
        choices=["all", "excess", "random"],
        help="which scored tokens get labels: all, top --ratio by excess loss, or a random --ratio",
    )
    p.add_argument("--ratio", type=float, default=0.6, help="share of scored tokens kept (default %(default)s)")
    p.add_argument(
        "--scope",
        default="window",
        choices=["window", "global"],
        help="rank tokens within each window (exact count) or against one corpus-wide threshold",
    )
    p.add_argument(
        "--by",
        help="SQL expression over examples columns to rank documents by, e.g. excess_loss; without --by every "
        "document ranks the same and ties break by doc_id (a budget then takes documents in doc_id order)",
    )
    p.add_argument("--order", default="desc", choices=["desc", "asc"])
    p.add_argument("--where", help="SQL condition over examples columns applied before ranking")
    p.add_argument("--budget", help="10%% (of documents; of tokens with a mixture), 2000000tok, or N documents")
    p.add_argument("--mix", help="token shares per source, e.g. code=0.3,prose=0.5,math=0.2")
    p.add_argument("--temperature", type=float, help="source shares proportional to tokens^(1/T) instead of --mix")
    p.add_argument(
        "--upsample",
        action="store_true",
        help="repeat the documents of a source that cannot fill its share (default: renormalise others)",
    )
    p.add_argument("--keep-duplicates", action="store_true", help="skip exact-duplicate removal")
    p.add_argument("--seed", type=int, default=0, help="for --tokens random")
    p.add_argument("--format", default="parquet", choices=["parquet", "jsonl", "hf"])
    p.add_argument("--name", help="catalog view name suffix (default: MIX_DIR's name): selection_<name>")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=run_select)


def run_select(args, beam_args: list[str]) -> None:
    from refsift.pipelines import select

    cfg = from_args(select.SelectConfig, args, run=args.run_dir, dedup=not args.keep_duplicates)
    record = select.run(cfg, beam_args)
    notes = {s: v["note"] for s, v in record["plan"].get("sources", {}).items()}
    columns = ["source", "docs_in", "tokens_in", "duplicates", "docs_out", "tokens_out", "tokens_labelled"]
    rows = []
    for source, s in record["per_source"].items():
        counts = [
            s.get(k, {}).get(f, 0)
            for k, f in (
                ("before", "documents"),
                ("before", "tokens"),
                ("duplicates", "documents"),
                ("selected_documents", "with_repeats"),
                ("after", "tokens"),
                ("after", "selected_tokens"),
            )
        ]
        rows.append((source, *counts, *([notes.get(source, "")] if notes else [])))
    print(format_table(columns + (["note"] if notes else []), rows))
    if "threshold" in record:
        print(f"global excess-loss threshold: {record['threshold']:.4f}")
    print(f"wrote {args.out}/data ({args.format}) and {args.out}/selection.json")
    if args.format != "hf":
        print(f'query it:  refsift sql {args.run_dir} "SELECT source, count(*) FROM {record["view"]} GROUP BY 1"')


def add_finetune(sub) -> None:
    p = sub.add_parser(
        "finetune",
        parents=[COMMON],
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
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--save-every", type=int, help="also save checkpoint-N every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint directory refsift made before")
    p.set_defaults(handler=run_finetune)


def run_finetune(args, _beam_args) -> None:
    from refsift.pipelines import finetune

    options = ("steps", "epochs", "lr", "batch_size", "grad_accum", "save_every", "seed", "device", "overwrite")
    record = finetune.run(data=args.data, model=args.model, out=args.out, **{k: getattr(args, k) for k in options})
    losses = record["losses"]
    print(f"trained {record['steps']} steps on {record['rows_trained']} rows: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"saved {args.out} (use it as --finetuned or --checkpoint NAME={args.out})")


def add_novelty(sub) -> None:
    p = sub.add_parser(
        "novelty",
        parents=[COMMON],
        help="report what a fine-tuned checkpoint learned (contrastive generation)",
        description="Generates text the fine-tuned model likes and the base model does not (CGE: log p_ft - "
        "gamma * log p_base over the plausible set), alongside plain samples from both models, and writes "
        "REPORT_DIR/report.html, report.md, report.json, samples/*.parquet and catalog.duckdb (view samples). "
        "Static samples fan out over Beam workers; --iterative is sequential by nature (each sample depends on "
        "the base updates before it) and runs as one worker step. With --data or --run, also ranks real "
        "documents by mean log p_ft - log p_base (extract mode). Unknown options are Beam pipeline options.",
    )
    p.add_argument("--base", required=True, help="the model before fine-tuning")
    p.add_argument("--finetuned", required=True, help="the fine-tuned checkpoint")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--num-samples", type=int, default=32, help="CGE samples (default %(default)s)")
    p.add_argument(
        "--baseline-samples", type=int, help="plain samples from the fine-tuned model (default: --num-samples)"
    )
    p.add_argument("--base-samples", type=int, help="plain samples from the base model (default: --baseline-samples)")
    p.add_argument("--iterative", action="store_true", help="iterative CGE: update a copy of the base on each find")
    p.add_argument(
        "--static-samples", type=int, help="static CGE samples (default: --num-samples, or 0 with --iterative)"
    )
    p.add_argument("--update-every", type=int, default=1, help="iterative: samples between base updates")
    p.add_argument("--update-steps", type=int, default=1, help="iterative: AdamW steps per update")
    p.add_argument("--lr", type=float, default=5e-5, help="iterative: learning rate of the base updates")
    p.add_argument("--alpha", type=float, default=0.1, help="plausibility cut relative to p_ft's top token")
    p.add_argument("--gamma", type=float, default=1.0, help="weight of log p_base")
    p.add_argument(
        "--decoding",
        dest="mode",
        default="beam",
        choices=["sample", "greedy", "beam", "beam-normalized"],
        help="beam (default): the authors' beam sampling (--num-beams), which found novelty at least as often as "
        "sample in benchmarks/novelty_detection.py at 4x the compute; sample; greedy; beam-normalized: beams drawn "
        "from each beam's normalised scores",
    )
    p.add_argument("--num-beams", type=int, default=4, help="with --decoding beam (default %(default)s, as the paper)")
    p.add_argument(
        "--no-stop-at-eos",
        dest="stop_at_eos",
        action="store_false",
        help="keep generating after EOS, to --max-new-tokens (as the paper's scripts)",
    )
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--prompt", action="append", default=[], help="condition on this text (repeatable)")
    p.add_argument("--prompts", dest="prompts_file", help="file with one prompt per line")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="samples decoded together")
    p.add_argument("--data", nargs="+", metavar="PATH", help="extract mode: candidate documents (any score input)")
    p.add_argument("--run", help="extract mode: a run scored with --model BASE --finetuned FT")
    p.add_argument("--top-documents", type=int, default=10, help="extract mode: documents shown")
    p.add_argument(
        "--attribute",
        nargs="+",
        metavar="PATH",
        default=[],
        help="training sources of the fine-tuned model (any score input; source = file stem): rank them by how much "
        "each taught what the CGE samples show, overall and per group (see refsift attribute)",
    )
    p.add_argument("--attribute-method", default="untrac-inv", choices=["untrac-inv", "untrac"])
    p.add_argument("--unlearn-steps", type=int, help="with --attribute (default: the method's)")
    p.add_argument("--unlearn-lr", type=float, default=5e-5, help="with --attribute (default %(default)s)")
    p.add_argument("--source-samples", type=int, default=256, help="with --attribute: documents per source")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=run_novelty)


def run_novelty(args, beam_args: list[str]) -> None:
    from refsift.kernels.contrastive import DecodeSettings
    from refsift.pipelines import novelty

    prompts = list(args.prompt)
    if args.prompts_file:
        try:
            prompts += [line.rstrip("\n") for line in open(args.prompts_file, encoding="utf-8") if line.strip()]
        except OSError as err:
            raise RefsiftError(f"cannot read --prompts: {err.strerror}: {args.prompts_file}") from None
    try:
        decode = from_args(DecodeSettings, args)
    except ValueError as err:
        raise RefsiftError(str(err)) from None
    cfg = from_args(
        novelty.NoveltyConfig,
        args,
        decode=decode,
        prompts=tuple(prompts),
        data=tuple(args.data or ()),
        attribute=tuple(args.attribute),
    )
    report = novelty.run(cfg, beam_args)
    summary = report["summary"]
    print(
        format_table(
            ["mode", "samples", "mean_contrast"],
            [(m, n, summary["mean_contrast"].get(m)) for m, n in summary["counts"].items()],
        )
    )
    print(f"finding: {summary['finding']}")
    grams = summary["over_represented"].get("vs_baseline", {}).get("8-char", [])[:8]
    if grams:
        print("over-represented in CGE samples:", ", ".join(repr(g["ngram"]) for g in grams))
    ranked = sorted((r for r in report.get("attribution", []) if r["target"] == "all"), key=lambda r: r["rank"])
    if ranked:
        print("where it came from:", ", ".join(f"{r['source']} ({r['influence']:+.3f})" for r in ranked))
    print(f"report: {args.out}/report.html (also report.md, report.json; samples in {args.out}/catalog.duckdb)")


def add_attribute(sub) -> None:
    p = sub.add_parser(
        "attribute",
        parents=[COMMON],
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
    p.add_argument("--method", default="untrac-inv", choices=["untrac-inv", "untrac"])
    p.add_argument("--unlearn-steps", type=int, help="default: UnTrac one epoch over a source, UnTrac-Inv 50")
    p.add_argument("--unlearn-lr", type=float, default=5e-5, help="default %(default)s")
    p.add_argument("--unlearn-batch-size", type=int, help="documents per step; default: UnTrac 1, UnTrac-Inv 256")
    p.add_argument("--micro-batch", type=int, default=8, help="documents per forward pass (default %(default)s)")
    p.add_argument("--optimizer", default="adafactor", choices=["adafactor", "adamw", "sgd"])
    p.add_argument("--max-grad-norm", type=float, default=0.0, help="0 (default): no clipping")
    p.add_argument(
        "--source-samples", type=int, default=256, help="documents per source, a seeded sample; 0: all (default 256)"
    )
    p.add_argument("--target-samples", type=int, default=0, help="documents of the target, a seeded sample; 0: all")
    add_reading_options(p)
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass when measuring losses")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=run_attribute)


def run_attribute(args, _beam_args) -> None:
    from refsift.pipelines import attribute

    cfg = from_args(attribute.AttributeConfig, args, targets=tuple(args.targets), sources=tuple(args.sources))
    record = attribute.run(cfg)
    rows = [r for r in record["attribution"] if r["target"] == "all"]
    columns = ["rank", "source", "influence", "loss_before", "loss_after", "n_documents"]
    print(format_table(columns, [tuple(r[c] for c in columns) for r in rows]))
    print(f"report: {args.out}/report.html")
    print(f'query it:  refsift sql {args.out} "SELECT source, influence FROM attribution ORDER BY influence DESC"')


def add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        parents=[COMMON],
        help="write a self-contained HTML page for a scoring run",
        description="Counts and rejections, per-source score distributions, nll_model against nll_reference, "
        "the top and bottom documents by each score with tokens shaded, and the registered selections.",
    )
    p.add_argument("run_dir")
    p.add_argument("--out", help="HTML file to write (default: RUN_DIR/report.html)")
    p.set_defaults(handler=run_report)


def run_report(args, _beam_args) -> None:
    from refsift import catalog
    from refsift.pages import run as run_report_page

    catalog.connect(args.run_dir).close()  # a clear error for a directory that is not a run
    print(f"wrote {run_report_page.write(args.run_dir, args.out)}")


def add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        parents=[COMMON],
        help="the whole product end to end on bundled text (a few minutes, no downloads)",
        description="Builds a web-like corpus from text bundled with refsift (prose, drama, German, code, math, "
        "junk), trains a small base model and a math reference model, scores the corpus with both, "
        "selects the top 60% tokens by excess loss in a math-heavy mixture, fine-tunes the base on it "
        "plus a leaked slice of offensive Spanish, writes an iterative-CGE novelty report of the fine-"
        "tuned model against the base that attributes the samples to their sources, and a run report. "
        "Prints each step and where every artefact is; DIR/index.html links them all. About 90 seconds on"
        " 2 CPU cores; --quick halves it. With --model smollm2-135m, SmolLM2-135M is the base of steps 3 "
        "to 5 instead of a tiny model: the reference is SmolLM2 after a few steps of fine-tuning on clean"
        " math, the corpus is smaller, and training runs only a dozen steps (about 10 minutes on 2 CPU "
        "cores, most of it training and unlearning SmolLM2; minutes on a GPU), so its novelty report "
        "shows the machinery more than a finished audit.",
    )
    p.add_argument("--out", default="refsift-demo", help="directory to write (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="smaller corpus, fewer steps and samples")
    p.add_argument("--model", help="a real base model for steps 3-5, e.g. smollm2-135m (slower; see above)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_demo)


def run_demo(args, _beam_args) -> None:
    from refsift.pipelines import demo

    size = demo.REAL if args.model else demo.QUICK if args.quick else demo.FULL
    demo.run(args.out, size=size, model=args.model, seed=args.seed)


def add_sql(sub) -> None:
    p = sub.add_parser(
        "sql",
        parents=[COMMON],
        help="query a run's catalog (read-only)",
        description="Runs one read-only SQL statement against a run's DuckDB catalog: views examples, tokens, "
        "rejected, token_scores and any registered selections. Statements that write are refused.",
    )
    p.add_argument("run_dir")
    p.add_argument("query")
    p.add_argument(
        "--format",
        default="table",
        choices=["table", "csv", "json", "jsonl"],
        help="jsonl: one object per row, an input any refsift command reads (e.g. samples as attribution targets)",
    )
    p.set_defaults(handler=run_sql)


def run_sql(args, _beam_args) -> None:
    from refsift import catalog

    columns, rows = catalog.query(args.run_dir, args.query)
    if args.format == "table":
        print(format_table(columns, rows))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    elif args.format == "json":
        print(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1))
    else:
        for row in rows:
            print(json.dumps(dict(zip(columns, row)), default=str, ensure_ascii=False))


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line, not the whole usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="refsift",
        description="Score corpora with reference language models, select training data, audit fine-tunes.",
    )
    p.add_argument("--version", action="version", version=f"refsift {refsift.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_score(sub)
    add_sql(sub)
    add_select(sub)
    add_finetune(sub)
    add_novelty(sub)
    add_attribute(sub)
    add_report(sub)
    add_demo(sub)
    return p


def _quiet_beam_import_warning(record: logging.LogRecord) -> bool:
    # Beam warns at import that optional GCP client libraries are missing; local runs don't need them.
    return not record.getMessage().startswith("apitools not found")


def configure_output(verbose: bool) -> None:
    """refsift's own messages (logger `refsift`, INFO) on stderr; the logs and progress bars
    of Beam and Hugging Face libraries only with --verbose. Set before those libraries load."""
    log = logging.getLogger("refsift")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("refsift: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger().addFilter(_quiet_beam_import_warning)
    if verbose:
        logging.basicConfig(level=logging.INFO)
        return
    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # already loaded (the Python API, tests): tell it directly
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    configure_output(args.verbose)
    if extra and args.command not in PASS_THROUGH:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.handler(args, extra)
    except RefsiftError as err:
        print(f"refsift: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
