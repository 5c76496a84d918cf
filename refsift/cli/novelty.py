"""`refsift novelty`: what did fine-tuning add? (contrastive generation)"""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import NoveltyConfig
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
    add_options(p, NoveltyConfig)
    p.add_argument("--prompts", dest="prompts_file", metavar="FILE", help="file with one prompt per line")
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import novelty

    prompts = list(args.prompts)
    if args.prompts_file:
        try:
            prompts += [line.rstrip("\n") for line in open(args.prompts_file, encoding="utf-8") if line.strip()]
        except OSError as err:
            raise RefsiftError(f"cannot read --prompts: {err.strerror}: {args.prompts_file}") from None
    cfg = from_args(NoveltyConfig, args, prompts=tuple(prompts))
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
