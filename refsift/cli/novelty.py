"""`refsift novelty`: what did fine-tuning add? (contrastive generation)"""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_device_options, from_args
from refsift.errors import RefsiftError
from refsift.jobs.console import format_table


def add(sub) -> None:
    p = sub.add_parser(
        "novelty",
        parents=[COMMON],
        formatter_class=Help,
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
        help="keep generating after EOS, to --max-new-tokens, as the authors' static CGE (their iterative CGE stops, "
        "as refsift does by default: in beam mode an EOS beam is set aside and the sample is the best of the finished "
        "and running beams by score per token, as transformers' BeamSearchScorer)",
    )
    p.add_argument("--temperature", type=float, default=1.0, help="of the contrastive and the plain samples")
    p.add_argument("--top-k", type=int, default=0, help="keep the k best next tokens; 0 keeps all")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus: keep the best tokens up to this mass")
    p.add_argument(
        "--max-new-tokens", type=int, default=255, help="tokens per sample at most (default %(default)s, the authors')"
    )
    p.add_argument("--prompt", action="append", default=[], help="condition on this text (repeatable)")
    p.add_argument("--prompts", dest="prompts_file", help="file with one prompt per line")
    p.add_argument("--seed", type=int, default=0, help="sample i draws from seed + i, whatever its batch")
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
    p.add_argument(
        "--attribute-method", default="untrac-inv", choices=["untrac-inv", "untrac"], help="see refsift attribute"
    )
    p.add_argument("--unlearn-steps", type=int, help="with --attribute (default: the method's)")
    p.add_argument("--unlearn-lr", type=float, default=5e-5, help="with --attribute (default %(default)s)")
    p.add_argument("--source-samples", type=int, default=256, help="with --attribute: documents per source")
    add_device_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a novelty report refsift made before")
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
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
