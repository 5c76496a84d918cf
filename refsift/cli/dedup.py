"""`refsift dedup`: near-duplicate (and exact duplicate) clusters of a corpus, before anything is scored."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import DedupConfig


def add(sub) -> None:
    p = sub.add_parser(
        "dedup",
        parents=[COMMON],
        formatter_class=Help,
        help="find near-duplicate documents (MinHash LSH), so that only one copy is ever scored",
        description="MinHash signatures over word (or character) n-grams, LSH bands, clusters of documents that "
        "share a band (connected components: A~B and B~C are one cluster) and exact copies, and one document kept per "
        "cluster. Writes DIR/duplicates (doc_id, cluster_id, cluster_size, kept, exact, estimated Jaccard to the kept "
        "document), DIR/documents, DIR/rejected, a catalog for refsift sql, and DIR/report.html with the largest "
        "clusters, each copy beside the kept document with only what differs shown (an exact copy is named). "
        "refsift score --dedup DIR (and classify, distill, select) then skips the copies. "
        "The defaults are datatrove's: word 5-grams, 14 bands of 8 rows (pairs with Jaccard 0.8 are found 92% of "
        "the time, 0.72 half the time). The engine of refsift score: tasks, chunks, --resume, locks; unknown "
        "options are Beam pipeline options.",
    )
    add_options(p, DedupConfig, skip=("dedup",))
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.pages import dedup as page
    from refsift.pipelines import dedup

    cfg = from_args(DedupConfig, args)

    def announce(cfg):
        print(f"deduplicating {' '.join(cfg.inputs)}\n  out: {cfg.out}", flush=True)

    manifest = dedup.run(cfg, beam_args, on_start=announce)
    c = manifest["counts"]
    if manifest.get("already_complete"):
        print(f"{args.out} is already complete: nothing to resume")
    print(
        f"documents: read {c['read']} = kept {c['kept']} + near_duplicate {c['near_duplicates']} (exact copies "
        f"{c['exact_duplicates']}) + rejected {c['rejected']}"
    )
    print(f"clusters: {c['clusters']}, holding {c['in_clusters']} documents")
    print(f"report: {page.write(args.out)}")
    print(f"score without the copies:  refsift score --input ... --dedup {args.out}")
