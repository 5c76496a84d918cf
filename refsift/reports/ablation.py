"""An ablation's finding: for each eval set, which arms train a better proxy than which, and
how sure that is (the paired interval over seeds and documents, and wins out of seeds)."""

from __future__ import annotations

from refsift.kernels.ablation import BETTER, WORSE


def said(c: dict) -> str:
    """One comparison in words."""
    spread = f"{c['difference']:+.4f} nats per token, 90% interval {c['low']:+.4f} .. {c['high']:+.4f}"
    wins = f"lower in {c['wins']} of {c['seeds']} seeds"
    if c["verdict"] == BETTER:
        return f"{c['a']} trains a better proxy than {c['b']} on {c['eval']} ({spread}; {wins})"
    if c["verdict"] == WORSE:
        return f"{c['a']} trains a worse proxy than {c['b']} on {c['eval']} ({spread}; {wins})"
    return (
        f"{c['a']} and {c['b']} show no detectable difference on {c['eval']} ({spread}; {wins}): these seeds and "
        f"documents would not show a difference smaller than about {c['detectable']:.4f}"
    )


def finding(comparisons: list[dict]) -> str:
    """The comparisons that tell arms apart, then how many do not."""
    apart = [c for c in comparisons if c["verdict"] != "no detectable difference"]
    if not comparisons:
        return "Nothing to compare."
    if not apart:
        widest = max(c["detectable"] for c in comparisons)
        return (
            f"No arm trains a detectably better proxy than another on any eval set: with these seeds and documents "
            f"a difference smaller than about {widest:.4f} nats per token would not show. More seeds, more tokens "
            "or more held-out documents narrow that."
        )
    sentences = [said(c) + "." for c in apart]
    rest = len(comparisons) - len(apart)
    if rest:
        sentences.append(
            f"{rest} other comparison{'s' if rest > 1 else ''} show{'' if rest > 1 else 's'} no detectable difference."
        )
    return " ".join(sentences)
