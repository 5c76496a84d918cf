"""Distilling a score into a fastText classifier: `refsift distill`.

    run's examples (text, a column or expression) -> positives (the top), negatives (the
    bottom, or a random sample), a held-out share -> fastText -> CLF/model.bin, CLF/card.json

This is the second half of selecting at web scale (PreSelect, DCLM, FineWeb-Edu): score a
sample of the corpus with language models, train a cheap classifier on it, and run the
classifier over everything (`refsift classify`). The defaults are PreSelect's
(`train_fasttext.py`): negatives are the lowest-scored documents, as many as the
positives; fastText trains 3 epochs at lr 0.1 with word bigrams. PreSelect takes as
positives the documents whose predictive strength is perfect: `--top max` (every document
at the column's maximum) does that; the default, `--top 10%`, suits continuous scores.
The classifier can also come from labelled files (`--positive-files`, `--negative-files`), as
DCLM's and FineWeb-Edu's are made.

Evaluation is part of the command: a seeded share of the documents (`--holdout`) never
reaches training. On them the card records the AUC of telling the positives from the
negatives (chosen by the same rule), and, distilling a run, the Spearman correlation of
the classifier's score with the column over every held-out document.

It runs in one process: training reads one text file, and a distilled sample is small (a
run of millions of documents needs a few GB for its texts). Memory holds the chosen and
held-out texts, never the whole run.
"""

from __future__ import annotations

import hashlib
import math
import random
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from refsift import catalog
from refsift.config import DistillConfig, parse_top
from refsift.errors import RefsiftError
from refsift.jobs import reading, rundir
from refsift.kernels import classifier
from refsift.transforms.rank_documents import ranking_query, ranking_sql

MODEL_FILE = "model.bin"
CARD = "card.json"
POSITIVE, NEGATIVE = "__label__1", "__label__0"


def held_out(doc_id: str, seed: int, share: float) -> bool:
    """Whether a document is held out: a seeded hash of its id, so the split depends on
    neither order nor runner."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def choose(scores: np.ndarray, top: str, negatives: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of positives and negatives among candidates scored `scores` (higher =
    positive; NaN never chosen): the top by `top`, and as many negatives from the bottom
    or drawn at random from the rest. Ties at a cut are broken by a seeded draw."""
    finite = np.flatnonzero(np.isfinite(scores))
    rng = np.random.default_rng(seed)
    order = finite[np.lexsort((rng.random(len(finite)), -scores[finite]))]  # best first, ties shuffled
    kind, value = parse_top(top)
    if kind == "max":
        n = int(np.sum(scores[finite] == scores[order[0]])) if len(order) else 0
    elif kind == "fraction":
        n = math.ceil(value * len(order))
    else:
        n = int(value)
    n = min(n, len(order) // 2)
    positives = order[:n]
    rest = order[n:]
    if negatives == "bottom":
        chosen = rest[len(rest) - n :] if n else rest[:0]
    else:
        chosen = rng.choice(rest, size=n, replace=False) if n else rest[:0]
    return positives, np.sort(chosen)


def _run_documents(cfg: DistillConfig) -> tuple[list[str], list[str], np.ndarray]:
    """(doc ids, texts, column values) of the run's candidates (passing --where)."""
    rundir.require(cfg.run, "run")
    ranking_sql(cfg.by, cfg.where, cfg.order)  # each one SQL expression, or refused here
    score = f"({cfg.by})" if cfg.order == "desc" else f"-({cfg.by})"
    where = f"WHERE COALESCE(({cfg.where}), FALSE)" if cfg.where else ""
    con = catalog.connect(cfg.run)
    try:
        ids, texts, values = [], [], []
        with ranking_query(con, cfg.timeout):
            result = con.execute(f"SELECT doc_id, text, CAST({score} AS DOUBLE) FROM examples {where} ORDER BY doc_id")
            while rows := result.fetchmany(10_000):
                for doc_id, text, value in rows:
                    ids.append(doc_id)
                    texts.append(text)
                    values.append(math.nan if value is None else value)
    finally:
        con.close()
    if cfg.dedup:  # the copies a dedup run did not keep are no candidates
        skip = reading.removed(cfg.dedup)
        keep = [i for i, doc_id in enumerate(ids) if doc_id not in skip]
        ids, texts, values = [ids[i] for i in keep], [texts[i] for i in keep], [values[i] for i in keep]
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        raise RefsiftError(f"--by {cfg.by} is NULL for every candidate document of {cfg.run}")
    return ids, texts, values


def _file_documents(paths: tuple[str, ...], cfg: DistillConfig, role: str) -> tuple[list[str], list[str]]:

    documents, _ = reading.read_documents(list(paths), cfg, 0, role, seed=cfg.seed)
    docs = [d for group in documents.values() for d in group]
    return [f"{d['input']}:{d['row']}" for d in docs], [d["text"] for d in docs]


def examples(cfg: DistillConfig) -> dict:
    """The labelled examples, split into training and held-out documents."""
    if cfg.run is not None:
        ids, texts, values = _run_documents(cfg)
        held = np.array([held_out(i, cfg.seed, cfg.holdout) for i in ids], dtype=bool)
        train = np.flatnonzero(~held)
        pos, neg = choose(values[train], cfg.top, cfg.negatives, cfg.seed)
        if not len(pos):
            raise RefsiftError(f"{cfg.run}: too few documents with a {cfg.by} to choose positives and negatives from")
        # held-out documents are labelled by the training thresholds: positive at or above the
        # positives' lowest value; negative at or below the negatives' highest (bottom), or below
        # the positives' cut (random); the band between is left out of the AUC
        cut_pos = values[train][pos].min()
        cut_neg = values[train][neg].max() if cfg.negatives == "bottom" else np.nextafter(cut_pos, -math.inf)
        if values[train][neg].min() >= cut_pos:  # e.g. --by 1.0: which documents are "top" would be arbitrary
            raise RefsiftError(
                f"--by {cfg.by}: the positives and the negatives score the same (every negative at least "
                f"{float(cut_pos):.4g}, the positives' lowest): nothing tells them apart; rank by a score that varies"
            )
        test = np.flatnonzero(held & np.isfinite(values))
        return {
            "train": [(POSITIVE, texts[train[i]]) for i in pos] + [(NEGATIVE, texts[train[i]]) for i in neg],
            "test_texts": [texts[i] for i in test],
            "test_values": values[test],
            "test_positive": values[test] >= cut_pos,
            "test_labelled": (values[test] >= cut_pos) | (values[test] <= cut_neg),
            "candidates": len(ids),
            "thresholds": {"positive_at_least": float(cut_pos), "negative_at_most": float(cut_neg)},
        }
    pos_ids, pos_texts = _file_documents(cfg.positives_files, replace(cfg, source_field=None), "positives")
    neg_ids, neg_texts = _file_documents(cfg.negatives_files, replace(cfg, source_field=None), "negatives")
    both = set(pos_texts) & set(neg_texts)
    if both:
        raise RefsiftError(
            f"{len(both)} documents are both positives and negatives (the same text in --positive-files and "
            "--negative-files): a classifier cannot learn to tell them apart"
        )
    train, test = [], []
    for label, ids, texts in ((POSITIVE, pos_ids, pos_texts), (NEGATIVE, neg_ids, neg_texts)):
        for doc_id, text in zip(ids, texts):
            (test if held_out(doc_id, cfg.seed, cfg.holdout) else train).append((label, text))
    labels = np.array([label == POSITIVE for label, _ in test], dtype=bool)
    return {
        "train": train,
        "test_texts": [text for _, text in test],
        "test_values": None,
        "test_positive": labels,
        "test_labelled": np.ones(len(test), dtype=bool),
        "candidates": len(pos_ids) + len(neg_ids),
    }


def write_training_file(path: Path, train: list[tuple[str, str]], seed: int) -> None:
    lines = [f"{label} {classifier.one_line(text)}\n" for label, text in train]
    random.Random(seed).shuffle(lines)  # fastText reads the file in order: mix the classes
    path.write_text("".join(lines), encoding="utf-8")


def run(cfg: DistillConfig) -> dict:
    """Trains, evaluates and writes the classifier directory; returns card.json's content."""
    started = time.time()
    if not rundir.is_local(cfg.out):
        raise RefsiftError("a classifier is written to a local directory")
    data = examples(cfg)
    n_pos = sum(1 for label, _ in data["train"] if label == POSITIVE)
    if n_pos == 0 or n_pos == len(data["train"]):
        raise RefsiftError("training needs both positives and negatives")
    settings = cfg.fasttext.for_documents(len(data["train"]))  # the epochs and learning rate left open
    protect = [*cfg.positives_files, *cfg.negatives_files, *([cfg.run] if cfg.run else [])]
    protect += [cfg.dedup] if cfg.dedup else []
    with rundir.claim(cfg.out, kind="classifier", overwrite=cfg.overwrite, protect=protect) as claim:
        out = Path(claim.path)
        with tempfile.TemporaryDirectory() as tmp:
            training_file = Path(tmp) / "train.txt"
            write_training_file(training_file, data["train"], cfg.seed)
            model = classifier.train(str(training_file), settings)
        model.save_model(str(out / MODEL_FILE))
        predicted = classifier.scores(model, data["test_texts"], POSITIVE)
        labelled = data["test_labelled"]
        metrics = {
            "auc": classifier.auc(predicted[labelled], data["test_positive"][labelled]),
            "spearman": None if data["test_values"] is None else classifier.spearman(predicted, data["test_values"]),
            **classifier.calibration(predicted[labelled], data["test_positive"][labelled]),
        }
        source = (
            {"run": str(Path(cfg.run).resolve()), "by": cfg.by, "where": cfg.where, "order": cfg.order}
            if cfg.run
            else {"positives": list(cfg.positives_files), "negatives": list(cfg.negatives_files)}
        )
        card = {
            **rundir.header(),
            "kind": "fasttext",
            "model": MODEL_FILE,
            "label": POSITIVE,
            "preprocess": "newlines to spaces (one line per document)",
            "source": source,
            "rule": {"top": cfg.top, "negatives": cfg.negatives, **data.get("thresholds", {})},
            "settings": {
                **asdict(settings),
                "holdout": cfg.holdout,
                "seed": cfg.seed,
            },
            "counts": {
                "candidates": data["candidates"],
                "train_positive": n_pos,
                "train_negative": len(data["train"]) - n_pos,
                "held_out": len(data["test_texts"]),
                "held_out_positive": int(data["test_positive"][labelled].sum()),
                "held_out_negative": int((~data["test_positive"][labelled]).sum()),
            },
            "metrics": {k: (None if v is None or math.isnan(v) else round(v, 4)) for k, v in metrics.items()},
            "model_sha256": hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest(),
            "wall_time_s": round(time.time() - started, 2),
        }
        rundir.write_json(str(out / CARD), card)
        claim.complete()
    return card
