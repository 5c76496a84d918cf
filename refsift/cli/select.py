"""`refsift select`: a scored run -> a training mixture."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import SelectConfig
from refsift.jobs.console import format_table


def add(sub) -> None:
    p = sub.add_parser(
        "select",
        parents=[COMMON],
        formatter_class=Help,
        help="turn a scored run into a training mixture",
        description="Selects documents (--by/--where/--budget, --mix or --temperature across sources, exact "
        "duplicates removed) and, inside them, tokens (--tokens excess: Rho-1 selective language modeling), "
        "and exports training rows (input_ids, attention_mask, labels with -100 on tokens not trained on) to "
        "MIX_DIR/data. A Beam pipeline like `score`: unknown options are Beam pipeline options.",
        epilog="The table it prints: tokens_in, scored tokens of the candidates; tokens_out, every token of the "
        "exported windows (the prefix, prompts and the context a window repeats included, repeats of upsampled "
        "documents too); tokens_labelled, those trained on. LoBaSS-style band: --where 'nll_model BETWEEN 1.5 AND "
        "4.0 AND nll_finetuned < nll_model' drops documents easy under both models and documents too hard for "
        "both, before ranking by --by learnability.",
    )
    add_options(p, SelectConfig)
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import select

    cfg = from_args(SelectConfig, args)
    record = select.run(cfg, beam_args)
    groups = record["plan"].get("sources", {}) if "clusters" not in record else {}  # per cluster: see below
    notes = {s: v["note"] for s, v in groups.items()}
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
    if not any(row[4] for row in rows):
        print("warning: nothing was selected: no candidate fits the budget (loosen --where, --budget or --per-cluster)")
    if "clusters" in record:
        c = record["clusters"]
        print(f"{len(c['sizes'])} clusters of the {c['documents']} candidates ({c['embedding']}), each giving the "
              f"budget's share of its tokens: {args.out}/clusters.parquet")  # fmt: skip
        print(f"clusters of {c['smallest']} to {c['largest']} documents, as balanced as {c['effective_clusters']:.1f} "
              f"equal ones; {c['purity']:.0%} of the documents share their cluster's most common source")  # fmt: skip
    if "threshold" in record:
        print(f"global excess-loss threshold: {record['threshold']:.4f}")
    if record["export"] == "documents":
        print("a classification run: tokens are words, and the documents are exported as text")
    print(f"wrote {args.out}/data ({args.format}) and {args.out}/selection.json")
    if args.format != "hf":
        view, rows = record["view"], "rows" if record["export"] == "documents" else "windows"
        print(
            f'query it:  refsift sql {args.run} "SELECT source, count(DISTINCT doc_id) AS documents, '
            f'count(*) AS {rows} FROM {view} GROUP BY 1"'
        )
