"""`refsift mix`: the mixture of the inputs' sources that minimises a target's loss (RegMix)."""

from __future__ import annotations

from refsift.cli.common import COMMON, Help, add_options, from_args
from refsift.config import MixConfig


def add(sub) -> None:
    p = sub.add_parser(
        "mix",
        parents=[COMMON],
        formatter_class=Help,
        help="search the mixture of the inputs' sources that trains the best model for a target (proxy models)",
        description="Trains a small proxy model on each of --proxies mixtures of the inputs' sources (RegMix: "
        "Dirichlet draws around the natural distribution within --max-epochs, natural and uniform among them), "
        "fits the target's loss against the weights (LightGBM or the data mixing law, whichever ranks left-out "
        "runs better), reports how well the fit ranks mixtures it never saw, proposes the mean of the best "
        "simulated mixtures, and validates it against natural and uniform over --validate-seeds. Writes "
        "DIR/mixture.json (weights, mix, fit, validation), tables behind a catalog and DIR/report.html; "
        "refsift select RUN --mix-from DIR uses the weights. Each proxy is one Beam element, committed as it "
        "finishes: --resume continues a killed search. Unknown options are Beam pipeline options.",
    )
    add_options(p, MixConfig)
    p.set_defaults(handler=run)


def run(args, beam_args: list[str]) -> None:
    from refsift.jobs.console import format_table
    from refsift.pipelines import mix
    from refsift.reports.ablation import said
    from refsift.reports.mix import fit_said

    record = mix.run(from_args(MixConfig, args), beam_args)
    print(f"proposed: {record['mix']}")
    print(f"fit: {fit_said(record['fit'])}")
    rows = [(arm, *losses) for arm, losses in record["validation"].items()]
    seeds = len(rows[0]) - 1
    print(format_table(["mixture", *(f"seed {i}" for i in range(1, seeds + 1))], rows))
    for c in record["comparisons"]:
        print(said(c))
    print(f"report: {args.out}/report.html; select with it: refsift select RUN --mix-from {args.out} --out MIX")
