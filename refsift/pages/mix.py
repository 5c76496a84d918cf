"""The mixture page (`OUT/report.html`): the proposed weights against natural, how well the
fit predicts the proxies' loss (fitted and held-out mixtures), and the validation of the
proposed mixture against natural and uniform over seeds."""

from __future__ import annotations

from pathlib import Path

from refsift.pages import html as h
from refsift.reports.ablation import said
from refsift.reports.mix import fit_said


def write(record: dict, out: str) -> Path:
    fit, searched = record["fit"], record["searched"]
    points = [(s["predicted"], s["loss"]) for s in searched]
    colors = ["#dc322f" if s["heldout"] else "#268bd2" for s in searched]
    weights = [(f"{s} (proposed)", w) for s, w in record["weights"].items()]
    weights += [(f"{s} (natural)", w) for s, w in record["natural"].items()]
    seeds = len(next(iter(record["validation"].values())))
    validation = h.table(
        ["mixture", *(f"seed {i}" for i in range(1, seeds + 1)), "mean"],
        [[arm, *(f"{x:.4f}" for x in losses), f"{sum(losses) / len(losses):.4f}"]
         for arm, losses in record["validation"].items()],
    )  # fmt: skip
    body = (
        f"<h1>Mixture</h1><p>Created {h.esc(record['created'])} by refsift {h.esc(record['refsift_version'])}: "
        f"{len(searched)} proxies ({h.esc(record['settings']['proxy'])}, {record['settings']['tokens']:,} tokens "
        f"each). Proposed: <code>{h.esc(record['mix'])}</code> (<code>refsift select RUN --mix-from {h.esc(out)}"
        "</code>).</p>"
        + "".join(f"<p class='finding'>{h.esc(said(c))}.</p>" for c in record["comparisons"])
        + f"<h2>Weights</h2>{h.bars(weights, label='share')}"
        f"<h2>The fit</h2><p>{h.esc(fit_said(fit))} (red).</p>"
        f"{h.scatter(points, x_label='predicted loss', y_label='observed loss', colors=colors)}"
        f"<h2>Validation</h2><p>Target loss (nats per token) of a proxy per seed.</p>{validation}"
    )
    path = Path(out, "report.html")
    path.write_text(h.page("refsift mix", body), encoding="utf-8")
    return path
