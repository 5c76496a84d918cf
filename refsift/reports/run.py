"""A scoring run's finding: which source scores highest on the run's main score, each
source's mean with its 90% interval, and whether the sources are apart. Read through the
run's DuckDB catalog."""

from __future__ import annotations

import math

from refsift import catalog
from refsift.schemas import DERIVED_SCORES


def score_columns(con) -> list[str]:
    names = [d[0] for d in con.execute("SELECT * FROM examples LIMIT 0").description]
    present = [c for c in names if c.startswith(("nll_", "bpb_")) or c in DERIVED_SCORES]
    return [c for c in present if con.execute(f'SELECT count("{c}") FROM examples').fetchone()[0] > 0]


MEANING = {
    "excess_loss": "the reference model finds it easier than the model to train: the most left to learn (Rho-1)",
    "learnability": "the fine-tune lowered its loss most, relative to where it started (LoBaSS)",
    "learning_percentage": "the most of its learning happened by the first checkpoint",
    "novelty": "the fine-tuned model likes it most relative to the base",
    "predictive_strength": "its losses order the ladder's models most as their benchmark scores do (PreSelect)",
    "nll_model": "the model finds it hardest",
}
Z90 = 1.6449  # a normal distribution's middle 90%


def main_score(columns: list[str]) -> str:
    """The score a run's finding is about: its first derived score, else nll_model, else its
    first score; None when it has none."""
    return next((c for c in (*DERIVED_SCORES, "nll_model", *columns) if c in columns), None)


def finding(con, columns: list[str]) -> str:
    """One sentence on the run: which source scores highest on its main score, with each
    source's mean and its 90% interval (mean ± 1.645 standard errors over documents), and
    whether the sources are apart."""
    column = main_score(columns)
    if column is None:
        return "No document has a score."
    stats = con.execute(
        f'SELECT source, avg("{column}"), stddev_samp("{column}"), count("{column}") FROM examples '
        f'WHERE isfinite("{column}") GROUP BY 1 ORDER BY 2 DESC, 1'
    ).fetchall()
    if not stats:
        return f"No document has a finite {column}."

    def spread(mean, sd, n):
        half = Z90 * sd / math.sqrt(n) if n > 1 and sd is not None else math.nan
        return mean - half, mean + half

    def said(source, mean, sd, n):
        low, high = spread(mean, sd, n)
        interval = f", 90% interval {low:.3f} .. {high:.3f}" if math.isfinite(low) else ""
        return f"{source} (mean {column} {mean:.3f}{interval}, {n} documents)"

    top = stats[0]
    if len(stats) == 1:
        return f"One source: {said(*top)}."
    meaning = f": {MEANING[column]}" if column in MEANING else ""
    sentence = f"{said(*top)} scores highest{meaning}; lowest is {said(*stats[-1])}."
    if spread(*top[1:])[0] <= spread(*stats[1][1:])[1]:
        sentence += f" {top[0]} and {stats[1][0]} are not clearly apart: their intervals overlap."
    return sentence


def run_finding(run_dir: str) -> str:
    """`finding` for a run directory."""
    con = catalog.connect(run_dir)
    try:
        return finding(con, score_columns(con))
    finally:
        con.close()
