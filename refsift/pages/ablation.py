"""The ablation page (`OUT/report.html`): the finding first, then each comparison's paired
difference with its interval, the held-out loss curves of every arm, and the runs."""

from __future__ import annotations

from pathlib import Path

from refsift.pages import html as h


def _curves(curves: list[dict], arms: list[str]) -> str:
    """Per eval set, each arm's held-out loss along training (mean over seeds)."""
    sums: dict[tuple, list[float]] = {}
    for r in curves:
        sums.setdefault((r["eval"], r["arm"], r["tokens_fed"]), []).append(r["nll"])
    parts = []
    for name in sorted({e for e, _, _ in sums}):
        charts = []
        for arm in arms:
            points = sorted((fed, sum(v) / len(v)) for (e, a, fed), v in sums.items() if e == name and a == arm)
            charts.append(f"<div><b>{h.user(arm)}</b><br>{h.line_chart(points, x_label='tokens', y_label='nll')}</div>")
        parts.append(f"<h3>{h.user(name)}</h3><div class='row'>{''.join(charts)}</div>")
    return "".join(parts)


def write(record: dict, curves: list[dict], runs: list[dict], out: str) -> Path:
    comparisons = record["comparisons"]
    items = [(f"{c['a']} - {c['b']} ({c['eval']})", c["difference"]) for c in comparisons]
    intervals = [(c["low"], c["high"]) for c in comparisons]
    table = h.table(
        ["a", "b", "eval", "difference", "low", "high", "wins", "seeds", "verdict"],
        [[c["a"], c["b"], c["eval"], f"{c['difference']:+.4f}", f"{c['low']:+.4f}", f"{c['high']:+.4f}", c["wins"],
          c["seeds"], c["verdict"]] for c in comparisons],
    )  # fmt: skip
    columns = ["arm", "seed", "steps", "tokens_fed", "tokens_trained", "max_epochs", "train_loss"]
    runs = sorted(([r[c] for c in columns] for r in runs), key=lambda r: (r[0], r[1]))
    arms = list(record["arms"])
    body = (
        f"<h1>Ablation</h1><p>Created {h.esc(record['created'])} by refsift {h.esc(record['refsift_version'])}: "
        f"{len(arms)} arms ({h.user(', '.join(arms))}), {record['settings']['seeds']} seeds, "
        f"{record['settings']['tokens']:,} tokens per proxy ({h.esc(record['settings']['proxy'])}), "
        f"{record['eval_documents']} held-out documents.</p>"
        f"<p class='finding'><b>Finding.</b> {h.esc(record['finding'])}</p>"
        "<h2>Paired differences</h2><p>Mean held-out loss of a minus b over seeds and documents (nats per token; "
        "below zero, a is better), with a 90% interval that resamples seeds and documents.</p>"
        f"{h.bars(items, label='difference', intervals=intervals)}{table}"
        f"<h2>Held-out loss along training</h2>{_curves(curves, arms)}"
        f"<h2>Runs</h2>{h.table(columns, runs)}"
    )
    path = Path(out, "report.html")
    path.write_text(h.page("refsift ablation", body), encoding="utf-8")
    return path
