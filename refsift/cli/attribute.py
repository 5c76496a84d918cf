"""`refsift attribute`: which training sources taught a model what a target set shows."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import AttributeConfig
from refsift.jobs.console import format_table


def add(sub) -> None:
    p = sub.add_parser(
        "attribute",
        parents=[COMMON],
        formatter_class=Help,
        help="which training sources taught a model what a target set shows (UnTrac, UnTrac-Inv)",
        description="Unlearns by gradient ascent on an in-memory copy of --model (never on disk) and measures loss "
        "changes: UnTrac-Inv (default) unlearns the target once and ranks sources by how much their own loss rises; "
        "UnTrac unlearns each source and ranks them by how much the target's loss rises. Writes DIR/attribution/ and "
        "DIR/attribution_documents/ (Parquet), catalog.duckdb (views attribution, attribution_documents), "
        "report.html and attribution.json. Defaults are the authors': Adafactor, lr 5e-5, no clipping; UnTrac one "
        "epoch over each source in batches of 1, UnTrac-Inv 50 steps of 256 target documents.",
    )
    add_options(p, AttributeConfig)
    p.set_defaults(handler=run)


def run(args, _beam_args) -> None:
    from refsift.pipelines import attribute

    cfg = from_args(AttributeConfig, args)
    record = attribute.run(cfg)
    from refsift.reports.attribution import NAMES, finding, methods_finding

    columns = ["rank", "source", "influence", "influence_low", "influence_high", "p_first", "n_documents"]
    columns += ["unlearn_steps"]
    for method in cfg.methods:
        rows = [r for r in record["attribution"] if r["target"] == "all" and r["method"] == method]
        if len(cfg.methods) > 1:
            print(f"{NAMES[method]}:")
        print(format_table(columns, [tuple(r[c] for c in columns) for r in rows]))
        print(finding(rows))
    for agreement in record.get("agreement", ()):
        print(methods_finding(agreement))
    print(f"report: {args.out}/report.html")
    print(f'query it:  refsift sql {args.out} "SELECT source, influence FROM attribution ORDER BY influence DESC"')
