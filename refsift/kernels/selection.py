"""Token and document selection arithmetic: plain functions, no Beam, no torch.

Token selection (Rho-1's selective language modeling) marks which scored positions of a
window are trained on; a position whose score is None (first token, context overlap,
padding) is never selected. Document selection fills a budget greedily in score order; a
mixture splits a token budget across sources.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass

from refsift.kernels.scores import excess_loss
from refsift.kernels.training import IGNORE


def excess(nll_model: list[float | None], nll_reference: list[float | None]) -> list[float | None]:
    """Per-token excess loss; None where the token was not scored."""
    return [
        None if m is None or r is None else excess_loss(m, r) for m, r in zip(nll_model, nll_reference, strict=True)
    ]


def top_ratio(scores: list[float | None], ratio: float) -> list[bool]:
    """Exactly ceil(ratio x scored) positions with the highest scores (earlier wins ties)."""
    scored = [i for i, s in enumerate(scores) if s is not None]
    keep = set(sorted(scored, key=lambda i: (-scores[i], i))[: math.ceil(ratio * len(scored) - 1e-9)])
    return [i in keep for i in range(len(scores))]


def above(scores: list[float | None], threshold: float) -> list[bool]:
    """Positions scoring at least `threshold` (one global cut for the whole corpus)."""
    return [s is not None and s >= threshold for s in scores]


def random_ratio(scores: list[float | None], ratio: float, seed: int, key: str) -> list[bool]:
    """ceil(ratio x scored) scored positions at random, reproducible per (seed, key)."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big"))
    scored = [i for i, s in enumerate(scores) if s is not None]
    keep = set(rng.sample(scored, math.ceil(ratio * len(scored) - 1e-9)))
    return [i in keep for i in range(len(scores))]


def labels(token_ids: list[int], selected: list[bool]) -> list[int]:
    """Hugging Face labels: the token id where selected, -100 elsewhere (no shift here)."""
    return [t if keep else IGNORE for t, keep in zip(token_ids, selected, strict=True)]


@dataclass(frozen=True)
class Budget:
    """How much to select: a fraction of documents, a number of documents, or of tokens."""

    kind: str  # "fraction" | "documents" | "tokens"
    value: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%|tok|tokens)?\s*", text)
        if not match:
            raise ValueError(f"budget {text!r}: use 10%, 2000000tok or a number of documents")
        number, unit = float(match[1]), match[2]
        if unit == "%":
            if not 0 < number <= 100:
                raise ValueError(f"budget {text!r}: a percentage must be in (0, 100]")
            return cls("fraction", number / 100)
        if number != int(number) or number < 1:
            raise ValueError(f"budget {text!r}: documents and tokens are whole positive numbers")
        return cls("tokens" if unit else "documents", int(number))

    def limit(self, total_documents: int) -> tuple[str, int]:
        """(weight, limit): 'documents' or 'tokens', and how many of them may be selected."""
        if self.kind == "fraction":
            return "documents", math.ceil(self.value * total_documents - 1e-9)
        return self.kind, int(self.value)


def fill(candidates: list[tuple], limit: int) -> list[tuple]:
    """Greedy fill: candidates (score, doc_id, weight, ...) sorted best first, taken in order
    while their total weight stays within `limit`; stops at the first that does not fit."""
    chosen, used = [], 0
    for candidate in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if used + candidate[2] > limit:
            break
        chosen.append(candidate)
        used += candidate[2]
    return chosen


def parse_mix(text: str) -> dict[str, float]:
    """'code=0.3,prose=0.5' -> {'code': 0.3, 'prose': 0.5}; shares must sum to 1."""
    shares = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = math.nan
        if not sep or not name.strip() or not 0 < share < math.inf:
            raise ValueError(f"mix {text!r}: use source=share pairs with positive shares, such as code=0.3,prose=0.7")
        shares[name.strip()] = share
    if abs(sum(shares.values()) - 1) > 1e-6:
        raise ValueError(f"mix {text!r}: shares sum to {sum(shares.values()):g}, not 1")
    return shares


def temperature_shares(available: dict[str, int], temperature: float) -> dict[str, float]:
    """Source shares proportional to tokens^(1/T): T=1 keeps the corpus mix, large T flattens it."""
    weights = {s: n ** (1 / temperature) for s, n in available.items() if n > 0}
    total = sum(weights.values())
    return {s: w / total for s, w in weights.items()}


@dataclass(frozen=True)
class SourcePlan:
    budget: int  # tokens to select from this source's own documents
    repeats: float  # >1 when upsampled: the source's selection is repeated this many times
    note: str


def plan_mixture(available: dict[str, int], shares: dict[str, float], total: int, upsample: bool) -> dict:
    """Token budgets per source for a mixture of `total` tokens.

    A source that holds fewer tokens than its share either repeats its documents (`upsample`)
    or gives up the shortfall, which the other sources share in proportion to their shares
    (renormalisation, repeated until every source fits or all are exhausted).
    """
    missing = sorted(set(shares) - set(available))
    if missing:
        raise ValueError(f"mix names sources with no documents: {', '.join(missing)}")
    plan: dict[str, SourcePlan] = {}
    if upsample:
        for source, share in shares.items():
            want = round(share * total)
            have = available[source]
            if have >= want:
                plan[source] = SourcePlan(want, 1.0, "filled")
            else:
                plan[source] = SourcePlan(have, want / have if have else 0.0, f"upsampled x{want / max(have, 1):.2f}")
        return plan
    open_shares, left = dict(shares), total
    while open_shares:
        scale = left / sum(open_shares.values())
        short = {s for s, share in open_shares.items() if available[s] < share * scale}
        if not short:
            # Renormalised only if an exhausted source's shortfall was shared out (the plan holds one).
            note = "filled (renormalised)" if plan else "filled"
            for source, share in open_shares.items():
                plan[source] = SourcePlan(round(share * scale), 1.0, note)
            break
        for source in short:
            plan[source] = SourcePlan(available[source], 1.0, "exhausted (others renormalised)")
            left -= available[source]
            del open_shares[source]
    return plan


def cluster_profile(clusters: list[str], sources: list[str]) -> dict:
    """How balanced a split into clusters is and how well it follows the sources: each
    cluster's size, its most common source and that source's share (purity); over all, the
    sizes' range, the effective number of clusters (exp of the entropy of their sizes: k
    for equal sizes, near 1 when one cluster holds almost everything) and the purity
    weighted by size. `clusters[i]` and `sources[i]` belong to one document."""
    from collections import Counter

    by_cluster: dict[str, Counter] = {}
    for cluster, source in zip(clusters, sources):
        by_cluster.setdefault(cluster, Counter())[source] += 1
    n = len(clusters)
    rows = {}
    for cluster, counts in sorted(by_cluster.items()):
        source, top = counts.most_common(1)[0]
        size = sum(counts.values())
        rows[cluster] = {"documents": size, "top_source": source, "purity": top / size}
    sizes = [r["documents"] for r in rows.values()]
    entropy = -sum(s / n * math.log(s / n) for s in sizes) if n else 0.0
    return {
        "largest": max(sizes, default=0),
        "smallest": min(sizes, default=0),
        "effective_clusters": math.exp(entropy) if n else 0.0,
        "purity": sum(r["purity"] * r["documents"] for r in rows.values()) / n if n else 0.0,
        "by_cluster": rows,
    }
