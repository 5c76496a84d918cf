"""MinHash signatures and LSH bands of documents, and the clusters their collisions make:
the kernels of near-duplicate removal (`refsift dedup`). Plain functions over numpy
arrays, no Beam.

The scheme is datatrove's (`MinhashDedupSignature`), with its defaults, so that the two
find the same pairs: a document is simplified (lower case, digits to 0, punctuation to
spaces, accents dropped, whitespace folded), cut into word 5-grams, and each n-gram hashed
to 64 bits; 112 hash functions (a * h + b) mod (2^61 - 1),
with (a, b) drawn from numpy's RandomState(seed) as datatrove draws them (uint64 arithmetic
wraps, as there), give the signature, its minimum over the n-grams; the signature is cut
into 14 bands of 8 rows. Two documents share a band with probability s^8 for Jaccard
similarity s, so they collide in at least one of 14 bands with probability 1 - (1 - s^8)^14:
0.92 at s = 0.8, 0.50 at s = 0.72, 0.03 at s = 0.5. A document with fewer words than an
n-gram has no signature (as in datatrove); exact duplicates are found by a content hash
whatever their length. Character n-grams (`unit="char"`) suit languages without spaces.

Where refsift differs, for speed: datatrove hashes each n-gram's joined text; refsift
hashes each word once (xxhash64) and combines an n-gram's word hashes in numpy (a
polynomial in uint64, then splitmix64's finalizer), one hash call per word instead of per
n-gram. Any good 64-bit hash serves MinHash alike. Signatures are computed for a whole chunk
at once: every document's n-gram hashes are concatenated, permuted in blocks of `BLOCK`
n-grams (a [block, 112] uint64 array, 14 MB), and reduced per document with
`np.minimum.reduceat`.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import regex

MERSENNE = np.uint64((1 << 61) - 1)
BLOCK = 16_384
_DIGITS = regex.compile(r"\p{Nd}+(?:[.,]\p{Nd}+)?")
_MARKS = regex.compile(r"\p{Mn}+")
_FORMAT = regex.compile(r"\p{Cf}+")
_PUNCTUATION = regex.compile(r"[\p{P}\p{S}]")
_SPACES = regex.compile(r"\s+")


# Bounds that keep a signature's arrays small on every worker: datatrove's defaults use 112
# hashes and 5-grams; 1,024 hashes is 8 KB a document.
MAX_HASHES = 1024
MAX_NGRAM = 64


@dataclass(frozen=True)
class MinHashSettings:
    """Args:
    ngram: n-gram size (words, or characters with unit "char").
    bands: LSH bands.
    rows: signature rows per band.
    unit: "word" or "char".
    seed: of the hash functions' parameters; every worker must use the same.
    """

    ngram: int = 5
    bands: int = 14
    rows: int = 8
    unit: str = "word"
    seed: int = 1

    def __post_init__(self):
        if min(self.ngram, self.bands, self.rows) < 1 or self.unit not in ("word", "char"):
            raise ValueError("--ngram, --bands and --rows must be positive, --unit word or char")
        if self.ngram > MAX_NGRAM or self.hashes > MAX_HASHES:
            raise ValueError(f"--ngram is at most {MAX_NGRAM} and --bands x --rows at most {MAX_HASHES} hashes")
        if not 0 <= self.seed < 2**32:
            raise ValueError("--seed must be between 0 and 2**32 - 1")

    @property
    def hashes(self) -> int:
        return self.bands * self.rows

    @cached_property
    def parameters(self) -> tuple[np.ndarray, np.ndarray]:
        generator = np.random.RandomState(self.seed)
        a = generator.randint(1, MERSENNE, dtype=np.uint64, size=(1, self.hashes))
        b = generator.randint(0, MERSENNE, dtype=np.uint64, size=(1, self.hashes))
        return a, b

    def threshold(self) -> float:
        """The Jaccard similarity at which a pair is found half the time: (1/bands)^(1/rows)."""
        return (1 / self.bands) ** (1 / self.rows)


def simplify(text: str) -> str:
    """Compatibility forms folded (NFKC: fullwidth letters, ligatures) and invisible format
    characters dropped (zero-width spaces and joiners, soft hyphens, direction marks), lower
    case, numbers to 0, punctuation and symbols to spaces, accents dropped, whitespace
    folded: what makes near-copies look alike, and what a copy cannot hide behind."""
    if not text.isascii():
        text = _FORMAT.sub("", unicodedata.normalize("NFKC", text))
    text = _DIGITS.sub("0", text.lower())
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFD", text))
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


_STEP = np.uint64(0x9E3779B97F4A7C15)  # odd constants of splitmix64
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    h = (h ^ (h >> np.uint64(30))) * _MIX1
    h = (h ^ (h >> np.uint64(27))) * _MIX2
    return h ^ (h >> np.uint64(31))


def shingles(text: str, settings: MinHashSettings) -> np.ndarray:
    """64-bit hashes of the document's n-grams (empty when it is shorter than one)."""
    import xxhash

    simple = simplify(text)
    if settings.unit == "word":
        words = simple.split(" ") if simple else []
        units = np.fromiter((xxhash.xxh64_intdigest(w.encode()) for w in words), dtype=np.uint64, count=len(words))
    else:
        units = np.frombuffer(simple.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = settings.ngram
    count = len(units) - n + 1
    if count < 1:
        return np.zeros(0, dtype=np.uint64)
    grams = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            grams = grams * _STEP + units[i : i + count]
        return _finalize(grams)


def signatures(texts: list[str], settings: MinHashSettings) -> tuple[np.ndarray, np.ndarray]:
    """([documents, bands x rows] uint64 MinHash signatures, bool: has a signature)."""
    a, b = settings.parameters
    per_doc = [shingles(t, settings) for t in texts]
    counts = np.array([len(s) for s in per_doc], dtype=np.int64)
    has = counts > 0
    out = np.zeros((len(texts), settings.hashes), dtype=np.uint64)
    if not has.any():
        return out, has
    flat = np.concatenate([s for s in per_doc if len(s)])
    owner = np.repeat(np.flatnonzero(has), counts[has])
    minima = np.full((len(texts), settings.hashes), np.iinfo(np.uint64).max, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 products wrap, as datatrove's do
        for start in range(0, len(flat), BLOCK):
            block = flat[start : start + BLOCK, None]
            permuted = (block * a + b) % MERSENNE
            docs = owner[start : start + BLOCK]
            bounds = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
            np.minimum.at(minima, docs[bounds], np.minimum.reduceat(permuted, bounds, axis=0))
    out[has] = minima[has]
    return out, has


def band_keys(sigs: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """[documents, bands] uint64: one 64-bit key per band (its rows combined as n-gram
    hashes are), so that documents collide in a band when its rows are equal (a false
    collision: about 2^-64)."""
    rows = sigs.reshape(len(sigs), settings.bands, settings.rows)
    keys = np.arange(settings.bands, dtype=np.uint64)[None, :].repeat(len(sigs), axis=0)
    with np.errstate(over="ignore"):
        for r in range(settings.rows):
            keys = keys * _STEP + rows[:, :, r]
        return _finalize(keys)


def unique_keys(doc_keys: np.ndarray) -> np.ndarray:
    """A key per document that collides with no other: the band key of a document without a
    signature, so that such documents never look alike."""
    with np.errstate(over="ignore"):
        return _finalize(doc_keys.astype(np.uint64) * _STEP + _MIX2)


def content_hash(text: str) -> str:
    """Exact-duplicate key: the text with runs of whitespace folded to one space."""
    return hashlib.sha1(" ".join(text.split()).encode()).hexdigest()


def content_key(digest: str) -> int:
    """The 64-bit band key of a content hash."""
    return int(digest[:16], 16)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The share of signature rows two documents agree on: an estimate of their Jaccard
    similarity over n-grams (standard error about 0.05 with 112 rows)."""
    return float(np.mean(a == b))


def components(pairs: np.ndarray, n: int) -> np.ndarray:
    """Connected components of `n` nodes joined by `pairs` ([edges, 2] int64): the label of
    each node is the smallest node of its component. Label propagation with pointer
    jumping, vectorised: each round takes every edge's smaller label to both ends, then
    follows labels to their own labels until they settle; a chain of length L settles in
    O(log L) rounds. Memory: the edges and one label per node."""
    labels = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return labels
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:  # pointer jumping: a label's label is a smaller node of the same component
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels


def band_edges(keys: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """[edges, 2] int64 document pairs that share a key of one band (every document's key in
    that band): a run of equal keys d0 < d1 < ... gives the edges (d0, d1), (d0, d2), ...:
    a star, which connects them as well as every pair would. Memory: 16 bytes a document."""
    order = np.lexsort((docs, keys))
    keys, docs = keys[order], docs[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    first = np.repeat(docs[starts], np.diff(np.r_[starts, len(keys)]))
    other = docs != first
    return np.stack([first[other], docs[other]], axis=1).astype(np.int64)


def clusters(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members, roots): every document in an edge, sorted, and the smallest document of
    its connected component (chains A~B, B~C make one cluster)."""
    if len(edges) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    members, dense = np.unique(edges, return_inverse=True)
    labels = components(dense.reshape(-1, 2), len(members))
    return members, members[labels]  # np.unique sorts: the smallest dense id is the smallest document
