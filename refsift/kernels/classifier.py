"""A fastText classifier as a document score: training, loading, scoring, and the two
numbers that say how well it learned a score (AUC, Spearman). Plain functions, no Beam.

fastText (the `fasttext` bindings) is what PreSelect, DCLM and FineWeb-Edu's first filters
use: a bag of words and word n-grams, a linear model, thousands of documents a second on
one core. A document is one line to fastText, so newlines become spaces, in training and
in scoring alike (PreSelect's `train_fasttext.py` and datatrove's `FastTextClassifierFilter`
do the same).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field, replace

import numpy as np

from refsift.errors import RefsiftError, number

_RARE_BREAKS = re.compile("[\u2028\u2029\x85]")


def one_line(text: str) -> str:
    """The text as fastText reads a document: on one line. Line breaks become spaces (fastText
    splits words on runs of whitespace, so its words are those of the text); plain
    `str.replace` scans, a regular expression only for the rare Unicode breaks."""
    text = text.replace("\n", " ").replace("\r", " ").replace("\x0b", " ").replace("\x0c", " ")
    if not text.isascii() and ("\u2028" in text or "\u2029" in text or "\x85" in text):
        text = _RARE_BREAKS.sub(" ", text)
    return text


# The ranges fastText's C++ takes (32-bit ints) and that train in this process's memory.
LIMITS = {
    "epoch": (1, 1000),
    "lr": (1e-6, 10.0),
    "word_ngrams": (1, 10),
    "dim": (1, 1000),
    "min_count": (1, 1_000_000),
    "bucket": (1, 100_000_000),
    "threads": (1, 256),
    "seed": (0, 2**31 - 1),
}
MAX_WEIGHTS = 500_000_000  # bucket x dim floats: 2 GB


SMALL_SAMPLE = 10_000  # training documents under which fastText gets the small-sample defaults


@dataclass(frozen=True)
class FastTextSettings:
    """fastText's supervised training. The defaults are PreSelect's (`train_fasttext.py`:
    3 epochs at learning rate 0.1) from `SMALL_SAMPLE` training documents on; below, 25
    epochs at 0.5 (fastText's own advice for small data), since 3 epochs at 0.1 over a few
    hundred documents leave every score at 0.5 (benchmarks/distill_small.py: the unseen
    documents' scores spread over 0.00 of the range, against 1.00).

    Args:
      epoch: passes over the training file (None: by the sample's size, `for_documents`).
      lr: learning rate (None: by the sample's size).
      word_ngrams: longest word n-gram used as a feature.
      dim: size of the word vectors.
      min_count: words seen fewer times are dropped.
      bucket: hash buckets of word n-grams: the model holds bucket x dim floats (fastText's
        2,000,000 x 100 make an 800 MB file; a sample of thousands of documents needs far
        fewer).
      threads: training threads; 1 makes training deterministic for a seed.
      seed: fastText's random seed.
    """

    # The metadata makes `refsift distill`'s options (`refsift.cli.common.add_options`).
    epoch: int | None = field(
        default=None,
        metadata={
            "group": "fastText",
            "help": f"passes over the training documents (default: 25 under {SMALL_SAMPLE:,} training documents, "
            "else PreSelect's 3)",
        },
    )
    lr: float | None = field(
        default=None,
        metadata={"group": "fastText", "help": f"learning rate (default: 0.5 under {SMALL_SAMPLE:,}, else 0.1)"},
    )
    word_ngrams: int = field(default=2, metadata={"group": "fastText", "help": "longest word n-gram feature"})
    dim: int = field(default=100, metadata={"group": "fastText", "help": "word vector size"})
    min_count: int = field(default=1, metadata={"group": "fastText", "help": "words seen fewer times are dropped"})
    bucket: int = field(
        default=2_000_000,
        metadata={
            "group": "fastText",
            "help": "hash buckets of word n-grams; the model file is about 4 x bucket x dim bytes (800 MB by default: "
            "a sample of thousands of documents does well with 100000)",
        },
    )
    threads: int = field(
        default=1, metadata={"group": "fastText", "help": "training threads (1: the same classifier for a seed)"}
    )
    seed: int = 0

    def __post_init__(self):
        for option, value in LIMITS.items():
            low, high = value
            given = getattr(self, option)
            if given is not None and not low <= given <= high:
                name = "--" + option.replace("_", "-")
                raise RefsiftError(f"{name} must be between {number(low)} and {number(high)}, not {given}")
        if self.bucket * self.dim > MAX_WEIGHTS:
            raise RefsiftError(
                f"--bucket x --dim is {self.bucket * self.dim:,} weights, more than {MAX_WEIGHTS:,} "
                f"({4 * MAX_WEIGHTS / 2**30:.0f} GB); fewer buckets do for the samples refsift distils"
            )

    def for_documents(self, n: int) -> FastTextSettings:
        """These settings with the epochs and learning rate left open chosen for `n`
        training documents."""
        small = n < SMALL_SAMPLE
        return replace(
            self,
            epoch=self.epoch if self.epoch is not None else 25 if small else 3,
            lr=self.lr if self.lr is not None else 0.5 if small else 0.1,
        )


def train(path: str, settings: FastTextSettings):
    """A supervised fastText model from a file of `__label__X text` lines (one document a
    line; settings left open are chosen for their number, `FastTextSettings.for_documents`)."""
    import fasttext

    if settings.epoch is None or settings.lr is None:
        with open(path, "rb") as handle:
            settings = settings.for_documents(sum(1 for _ in handle))

    return fasttext.train_supervised(
        input=path,
        epoch=settings.epoch,
        lr=settings.lr,
        wordNgrams=settings.word_ngrams,
        dim=settings.dim,
        minCount=settings.min_count,
        bucket=settings.bucket,
        thread=settings.threads,
        seed=settings.seed,
        verbose=0,
    )


MAGIC, VERSIONS = 793712314, (11, 12)  # fastText's file format: magic number and versions
_ARGS = struct.Struct("<12i")  # dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn, lrUpdate


def check_file(path: str) -> None:
    """Refuses, before fastText reads it, a file that is not a fastText model or is cut
    short: fastText allocates its matrices from the header (bucket x dim floats) before it
    reads them, so a damaged or foreign file could cost gigabytes and minutes to fail."""
    with open(path, "rb") as handle:
        head = handle.read(8 + _ARGS.size)
    if len(head) < 8 + _ARGS.size or struct.unpack("<2i", head[:8]) not in {(MAGIC, v) for v in VERSIONS}:
        raise RefsiftError(f"classifier {path} is not a fastText model (no fastText header)")
    dim, *_, bucket, _, _, _ = _ARGS.unpack(head[8:])
    if dim < 1 or bucket < 0:
        raise RefsiftError(f"classifier {path} is not a fastText model (its header is not one)")
    if not path.endswith(".ftz") and os.path.getsize(path) < 4 * dim * bucket:  # a quantized model is smaller
        raise RefsiftError(f"classifier {path} is cut short: its header promises {bucket} x {dim} floats")


def load(path: str, label: str | None = None):
    """A fastText model from a `.bin` file (local; copy a remote one first), refused in one
    line when it is not one; with `label`, refused when the model has no such label."""
    import fasttext

    if not os.path.isfile(path):
        raise RefsiftError(f"classifier {path}: no such file")
    check_file(path)
    try:
        model = fasttext.load_model(path)
    except Exception as err:  # ValueError "has wrong file format", a truncated file, ...
        raise RefsiftError(f"classifier {path} is not a fastText model ({' '.join(str(err).split())[:160]})") from None
    labels = model.get_labels()
    if not labels:
        raise RefsiftError(f"classifier {path} is a fastText model without labels (an unsupervised one)")
    if label is not None and label not in labels:
        raise RefsiftError(f"classifier {path} has no label {label!r}: it has {', '.join(labels)}")
    return model


def scores(model, texts: list[str], label: str) -> np.ndarray:
    """Probability of `label` for each text (float64): higher = more like its examples."""
    if not texts:
        return np.zeros(0)
    labels, probs = model.predict([one_line(t) for t in texts], k=-1)
    out = np.zeros(len(texts))
    for i, (names, values) in enumerate(zip(labels, probs)):
        for name, value in zip(names, values):
            if name == label:
                out[i] = value
                break
    return out


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # ranks are 1-based: a run [s, e) has mean rank (s + 1 + e) / 2
    out = np.empty(len(values))
    out[order] = np.repeat(average, ends - starts)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling `positive` (bool) from the rest
    (the Mann-Whitney statistic, ties counting half); NaN without both classes."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    r = ranks(scores)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


LITTLE_SPREAD = 0.05  # held-out scores spanning less than this (5th to 95th percentile): it learned little


def calibration(scores: np.ndarray, positive: np.ndarray, bins: int = 10) -> dict:
    """How far held-out scores can be read as probabilities of the positive label: the
    Brier score (mean squared error against the 0/1 labels; 0.25 for a constant 0.5), the
    expected calibration error (the share-weighted gap between mean score and share of
    positives over `bins` equal-width bins), and the scores' spread (5th and 95th
    percentiles), with `learned_little` when that spread is under LITTLE_SPREAD."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if not len(scores):
        return {"brier": None, "ece": None, "score_low": None, "score_high": None, "learned_little": None}
    low, high = np.percentile(scores, [5, 95])
    which = np.minimum((scores * bins).astype(int), bins - 1)
    ece = sum(
        abs(scores[which == b].mean() - positive[which == b].mean()) * np.mean(which == b)
        for b in range(bins)
        if np.any(which == b)
    )
    return {
        "brier": float(np.mean((scores - positive) ** 2)),
        "ece": float(ece),
        "score_low": float(low),
        "score_high": float(high),
        "learned_little": bool(high - low < LITTLE_SPREAD),
    }
