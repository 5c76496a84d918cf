"""`refsift ablate`: does this selection or mixture train a better model? (paired proxies)"""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import AblateConfig


def add(sub) -> None:
    p = sub.add_parser(
        "ablate",
        parents=[COMMON],
        formatter_class=Help,
        help="train a small proxy model per arm and seed, and compare the arms on held-out documents",
        description="Trains one small proxy model per arm and seed on the same token budget (--tokens), from the "
        "same initialisation for a seed, and measures each on the --eval documents as refsift score scores them. "
        "For every pair of arms and every eval set it reports the paired difference of held-out loss, a 90%% "
        "interval from a bootstrap over seeds and documents, wins out of seeds, and a verdict: better, worse or "
        "no detectable difference. Writes DIR/runs, DIR/doc_losses, DIR/curves (Parquet) behind a catalog, "
        "DIR/report.json and DIR/report.html. Unknown options are Beam pipeline options: each proxy is one "
        "element, so proxies train in parallel on the runner's workers.",
    )
    add_options(p, AblateConfig)
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.jobs.console import format_table
    from refsift.pipelines import ablate

    record = ablate.run(from_args(AblateConfig, args), beam_args)
    columns = ["a", "b", "eval", "difference", "low", "high", "wins", "seeds", "verdict"]
    print(format_table(columns, [tuple(c[k] for k in columns) for c in record["comparisons"]]))
    print(f"finding: {record['finding']}")
    print(f"report: {args.out}/report.html (and report.json; runs, doc_losses, curves in {args.out}/catalog.duckdb)")
