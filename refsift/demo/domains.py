"""A character n-gram naive Bayes domain classifier, to say which domain a generated text
comes from (novelty rates in benchmarks and the demo). Small, deterministic, no deps."""

from __future__ import annotations

import math
from collections import Counter

from refsift.demo import corpora


def _grams(text: str, orders: tuple[int, ...]) -> Counter:
    text = f" {text.lower()} "
    return Counter(text[i : i + n] for n in orders for i in range(len(text) - n + 1))


class DomainClassifier:
    """Multinomial naive Bayes over character 1- to 4-grams with add-one smoothing.

    Args:
      orders: the n-gram lengths used.
    """

    def __init__(self, orders: tuple[int, ...] = (1, 2, 3, 4)):
        self.orders = orders
        self.log_prob: dict[str, dict[str, float]] = {}
        self.unseen: dict[str, float] = {}

    def fit(self, texts_by_domain: dict[str, list[str]]) -> DomainClassifier:
        counts = {d: sum((_grams(t, self.orders) for t in texts), Counter()) for d, texts in texts_by_domain.items()}
        vocab = len(set().union(*counts.values())) + 1
        for domain, c in counts.items():
            total = sum(c.values()) + vocab
            self.log_prob[domain] = {g: math.log((n + 1) / total) for g, n in c.items()}
            self.unseen[domain] = math.log(1 / total)
        return self

    def scores(self, text: str) -> dict[str, float]:
        """Mean log-likelihood per n-gram under each domain (equal priors)."""
        grams = _grams(text, self.orders)
        n = sum(grams.values()) or 1
        return {d: sum(c * lp.get(g, self.unseen[d]) for g, c in grams.items()) / n for d, lp in self.log_prob.items()}

    def predict(self, text: str) -> str:
        scores = self.scores(text)
        return max(scores, key=scores.get)

    @classmethod
    def bundled(cls, domains: tuple[str, ...] = corpora.DOMAINS, docs: int = 200) -> DomainClassifier:
        """Trained on `docs` documents spread evenly over each bundled domain's slice."""
        texts = {}
        for domain in domains:
            all_docs = corpora.documents(domain, target_chars=600)
            texts[domain] = all_docs[:: max(1, len(all_docs) // docs)][:docs]
        return cls().fit(texts)


def rates(labels: list[str]) -> dict[str, float]:
    """Share of each label."""
    counts = Counter(labels)
    return {label: n / len(labels) for label, n in counts.most_common()} if labels else {}
