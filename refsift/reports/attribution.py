"""An attribution's findings: which source taught the model what a target shows, how sure
that is (the share of resamples it stays first in), and whether UnTrac and UnTrac-Inv agree."""

from __future__ import annotations

from refsift.kernels.unlearn import METHODS
from refsift.reports import interval

SETTLED = 0.9  # a source first in at least this share of resamples is named as the finding


NAMES = {"untrac": "UnTrac", "untrac-inv": "UnTrac-Inv"}


def finding(rows: list[dict]) -> str:
    """One sentence on a target's ranking (rows sorted by rank), with how sure it is, and a
    second when its sources were unlearned for unequal numbers of steps."""
    steps = sorted({r["unlearn_steps"] for r in rows if r.get("unlearn_steps") is not None})
    if len(steps) > 1:
        return (
            f"{_ranking(rows)} The sources were unlearned for unequal numbers of steps ({steps[0]} to {steps[-1]}): "
            "a source unlearned longer can rise more for that alone; --unlearn-steps equal compares them at one budget."
        )
    return _ranking(rows)


def methods_finding(agreement: dict) -> str:
    """One sentence on whether UnTrac and UnTrac-Inv agree for a target."""
    first, rho = agreement["first"], agreement["spearman"]
    if agreement["agree"]:
        source = next(iter(first.values()))
        return f"UnTrac and UnTrac-Inv agree: {source} first by both (Spearman {rho:+.2f} between their rankings)."
    each = ", ".join(f"{NAMES[m]} puts {source} first" for m, source in first.items())
    if agreement.get("equal_steps", True):
        advice = "measure more documents (--source-samples, --target-samples)"
    else:
        advice = "try equal unlearning steps (--unlearn-steps equal) and more documents"
    return (
        f"UnTrac and UnTrac-Inv disagree: {each} (Spearman {rho:+.2f} between their rankings). Their intervals "
        f"resample documents and cannot see this: act on neither ranking alone; {advice}."
    )


def _ranking(rows: list[dict]) -> str:
    top = rows[0]
    low, high, p = top.get("influence_low"), top.get("influence_high"), top.get("p_first")
    if p is None:  # written before refsift measured spreads
        return f"{top['source']} ranks first (influence {top['influence']:+.3f} nats per token)."
    spread = f"influence {top['influence']:+.3f} nats per token, 90% interval {interval(low, high)}"
    if high is not None and high < 0:  # unlearning every source lowered the measured loss
        return (
            f"No source raised the measured loss when unlearned: even the highest influence, {top['source']}'s "
            f"({spread}), is below zero. By this measure none of them taught it what the target shows."
        )
    if len(rows) > 1 and p < SETTLED:
        contenders = sorted(rows, key=lambda r: -(r.get("p_first") or 0))[:3]
        shares = ", ".join(f"{r['source']} {r['p_first']:.0%}" for r in contenders)
        return (
            f"No source clearly ranks first: {top['source']} does ({spread}), but over resamples of the measured "
            f"documents the first place goes to {shares}. Measure more documents (--source-samples, "
            "--target-samples) before acting on this ranking."
        )
    if high is not None and low <= 0 <= high:
        return f"{top['source']} ranks first, but its influence is not distinguishable from none ({spread})."
    first = f"first in {p:.0%} of resamples" if len(rows) > 1 else "the only source"
    return f"{top['source']} taught it most: {spread}; {first}."


def agreement(attribution: list[dict]) -> list[dict]:
    """Per target, whether UnTrac and UnTrac-Inv rank the sources alike: each method's first
    source and Spearman's rho between their rankings (ranks are distinct: 1 - 6 sum d^2 /
    (n (n^2 - 1))). The bootstrap intervals of either method cannot see a disagreement: they
    resample documents, not the method."""
    out = []
    for target in dict.fromkeys(r["target"] for r in attribution):
        ranks = {
            method: {r["source"]: r["rank"] for r in attribution if r["target"] == target and r["method"] == method}
            for method in METHODS
        }
        if not all(ranks.values()):
            continue
        n = len(ranks[METHODS[0]])
        d2 = sum((ranks[METHODS[0]][s] - ranks[METHODS[1]][s]) ** 2 for s in ranks[METHODS[0]])
        first = {method: min(r, key=r.get) for method, r in ranks.items()}
        steps = {r.get("unlearn_steps") for r in attribution if r["target"] == target and r["method"] == "untrac"}
        out.append(
            {
                "target": target,
                "first": first,
                "spearman": 1 - 6 * d2 / (n * (n * n - 1)) if n > 1 else 1.0,
                "agree": len(set(first.values())) == 1,
                "equal_steps": len(steps) == 1,  # UnTrac unlearned every source for as many steps
            }
        )
    return out
