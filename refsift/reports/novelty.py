"""The novelty report's data (report.json): what is new, read off the CGE samples three ways:
n-grams over-represented relative to plain samples from the fine-tuned model (baseline) and
from the base model; groups of similar samples; and per-token contrast. Diversity
(distinct-n, mean pairwise similarity) compares CGE with the baseline; bootstrap intervals
say how sure each number is; `finding` says it in a sentence. `refsift.pages.novelty`
renders it.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from refsift.kernels import analysis, bootstrap
from refsift.kernels.token_bytes import byte_texts, is_escaped

CGE_MODES = ("cge", "cge-iterative")
NGRAM_CHARS = (4, 8)  # character n-grams: the same in every script
STANDS_OUT = 0.10  # a group holding this much more of the CGE samples than of the plain ones


SMALL_SHIFT = 0.1  # nats per token: below it, the fine-tuned model barely departs from its base


def finding(groups: list[dict], n_cge: int, n_plain: int, shift: dict | None = None) -> str:
    """One sentence on what the samples show, from the group that most sets CGE samples
    apart from plain samples of the fine-tuned model, with how sure it is (the top group's
    `gap_interval`), and a note when the fine-tune moved little from its base (`shift`)."""
    return _group_finding(groups, n_cge, n_plain) + _shift_note(shift)


def _group_finding(groups: list[dict], n_cge: int, n_plain: int) -> str:
    if not n_cge or not groups:
        return "No CGE samples to read a finding from."
    top = groups[0]
    terms = ", ".join(f"“{t}”" for t in top["top_terms"][:4]) or "no characteristic n-grams"
    if not n_plain:
        return (
            f"{len(top['target'])} of {n_cge} CGE samples form the largest group (characteristic: {terms}); "
            "add plain samples (--baseline-samples) to see whether the fine-tuned model writes so anyway."
        )
    gap = top["share_target"] - top["share_other"]
    low, high = top.get("gap_interval") or (math.nan, math.nan)
    spread = f"{gap:+.0%}, 90% interval {low:+.0%} .. {high:+.0%}" if math.isfinite(low) else f"{gap:+.0%}"
    if gap < STANDS_OUT or not low > 0:
        return (
            f"No group of CGE samples stands out from plain samples of the fine-tuned model (the largest difference "
            f"is {spread} of the samples): this report finds no clear novelty at these sample sizes "
            f"({n_cge} CGE, {n_plain} plain)."
        )
    return (
        f"{top['share_target']:.0%} of CGE samples fall in one group (characteristic: {terms}), against "
        f"{top['share_other']:.0%} of plain samples from the fine-tuned model (difference {spread}): that is where "
        "the fine-tuned model most departs from its base."
    )


def _shift_note(shift: dict | None) -> str:
    if not shift or shift["mean"] is None or shift["mean"] >= SMALL_SHIFT:
        return ""
    return (
        f" The fine-tuned model moved little from its base: its own samples are {shift['mean']:.3f} nats per token "
        f"likelier under it than under the base (90% interval {shift['low']:.3f} .. {shift['high']:.3f}, under "
        f"{SMALL_SHIFT}); whatever the samples show is a small effect."
    )


def shift(samples: list[dict]) -> dict | None:
    """How far the fine-tuned model moved from its base, in nats per token: the mean of
    log p_ft - log p_base over the tokens of its own plain samples (an estimate of
    KL(fine-tuned || base)); from base-model samples (minus KL(base || fine-tuned)) when there
    are none. None without plain samples."""
    for mode, sign in (("baseline", 1.0), ("base", -1.0)):
        chosen = [x for x in samples if x["mode"] == mode and x["mean_contrast"] is not None and x["n_tokens"]]
        if chosen:
            sums = np.array([sign * x["mean_contrast"] * x["n_tokens"] for x in chosen])
            tokens = np.array([x["n_tokens"] for x in chosen], dtype=np.float64)
            low, high = bootstrap.interval(bootstrap.ratio(sums, tokens, bootstrap.draws(len(chosen))))
            return {"from": mode, "mean": float(sums.sum() / tokens.sum()), "low": low, "high": high}
    return None


def _finite(x):
    return x if isinstance(x, int | float) and math.isfinite(x) else None


def _add(a, b):
    return None if a is None or b is None else a + b


def merged_tokens(row: dict) -> list[dict]:
    """The sample's pieces of text with their scores: a token whose text is "" (part of a
    character split over byte-level tokens) joins the piece that completes the character,
    and its log-probabilities are added (a character's probability is its pieces' product).
    With the tokens' bytes, a piece holding bytes that form no UTF-8 character keeps them
    as "bytes" (hex) beside its decoded "text", so a page can show them as made."""
    raw = row.get("token_bytes")
    texts = byte_texts(raw) if raw else row["token_text"]
    pieces, pending = [], None
    for t, f, b, s in zip(texts, row["logp_ft"], row["logp_base"], row["score"]):
        values = [_finite(f), _finite(b), _finite(s)]
        pending = values if pending is None else [_add(x, y) for x, y in zip(pending, values)]
        if t:
            pieces.append({"text": t, **dict(zip(("logp_ft", "logp_base", "score"), pending))})
            pending = None
    if pending is not None and pieces:
        pieces[-1].update(
            zip(
                ("logp_ft", "logp_base", "score"),
                (
                    _add(x, y)
                    for x, y in zip((pieces[-1]["logp_ft"], pieces[-1]["logp_base"], pieces[-1]["score"]), pending)
                ),
            )
        )
    for piece in pieces:
        if any(map(is_escaped, piece["text"])):
            made = piece["text"].encode("utf-8", "surrogateescape")
            piece["bytes"], piece["text"] = made.hex(" "), made.decode("utf-8", "replace")
    return pieces


def shown(piece: dict) -> str:
    """A piece's text as the model made it: its bytes when they are not all UTF-8."""
    return bytes.fromhex(piece["bytes"]).decode("utf-8", "surrogateescape") if "bytes" in piece else piece["text"]


def sample_entry(row: dict) -> dict:
    tokens = merged_tokens(row)
    return {
        "id": row["sample_id"],
        "mode": row["mode"],
        "iteration": row["iteration"],
        "prompt": row["prompt"],
        "text": row["text"],
        "mean_contrast": _finite(row["mean_contrast"]),
        "n_tokens": row["n_tokens"],
        "finished": row["finished"],
        "tokens": tokens,
    }


def _order(samples: list[dict]) -> list[dict]:
    """Iterative samples in generation order; the rest by mean contrast, highest first."""

    def key(s):
        if s["mode"] == "cge-iterative":
            return (0, s["iteration"], s["id"])
        return (1, -(s["mean_contrast"] if s["mean_contrast"] is not None else -math.inf), s["id"])

    return sorted(samples, key=key)


def summarize(samples: list[dict]) -> dict:
    by_mode: dict[str, list[dict]] = {}
    for s in samples:
        by_mode.setdefault(s["mode"], []).append(s)
    cge = [s["text"] for s in samples if s["mode"] in CGE_MODES]
    summary: dict = {
        "counts": {m: len(v) for m, v in sorted(by_mode.items())},
        "mean_contrast": {
            m: statistics.fmean(x) if (x := [s["mean_contrast"] for s in v if s["mean_contrast"] is not None]) else None
            for m, v in sorted(by_mode.items())
        },
        "over_represented": {},
        "diversity": {},
    }
    for name, mode in (("vs_baseline", "baseline"), ("vs_base", "base")):
        other = [s["text"] for s in by_mode.get(mode, [])]
        if cge and other:
            summary["over_represented"][name] = {
                f"{n}-char": [
                    {"ngram": g, "log_ratio": round(r, 3), "count": c, "count_other": o}
                    for g, r, c, o in analysis.over_represented(cge, other, n=n)
                ]
                for n in NGRAM_CHARS
            }
    for mode in ("cge", "cge-iterative", "baseline", "base"):
        texts = [s["text"] for s in by_mode.get(mode, [])]
        if len(texts) >= 2:
            summary["diversity"][mode] = {
                **{f"distinct_{n}": round(analysis.distinct_n(texts, n), 4) for n in (1, 2, 3)},
                "mean_pairwise_similarity": round(analysis.mean_pairwise_similarity(analysis.tfidf(texts)), 4),
            }
    cge_samples = [s for s in samples if s["mode"] in CGE_MODES]
    plain = by_mode.get("baseline", [])
    groups = analysis.groups_against([s["text"] for s in cge_samples], [s["text"] for s in plain])
    mine, theirs = bootstrap.draws(len(cge_samples), seed=1), bootstrap.draws(len(plain), seed=2)
    for g in groups["groups"]:
        if cge_samples and plain:  # the group's share difference over resamples of both sides
            inside = np.isin(np.arange(len(cge_samples)), g["target"])[mine].mean(axis=1)
            outside = np.isin(np.arange(len(plain)), g["other"])[theirs].mean(axis=1)
            g["gap_interval"] = list(bootstrap.interval(inside - outside))
        g["target"] = [cge_samples[i]["id"] for i in g["target"]]
        g["other"] = [plain[i]["id"] for i in g["other"]]
    summary["groups"] = groups
    summary["shift"] = shift(samples)
    summary["mean_contrast_interval"] = {
        m: [
            _finite(x)
            for x in bootstrap.mean_interval([s["mean_contrast"] for s in v if s["mean_contrast"] is not None])
        ]
        for m, v in sorted(by_mode.items())
    }
    summary["finding"] = finding(groups["groups"], len(cge_samples), len(plain), summary["shift"])
    iterations: dict[int, list[float]] = {}
    for s in by_mode.get("cge-iterative", []):
        if s["mean_contrast"] is not None:
            iterations.setdefault(s["iteration"], []).append(s["mean_contrast"])
    summary["contrast_by_iteration"] = [[i, statistics.fmean(v)] for i, v in sorted(iterations.items())]
    return summary


def build(*, base: dict, finetuned: dict, settings: dict, samples: list[dict], created: str, refsift_version: str):
    entries = _order([sample_entry(r) for r in samples])
    return {
        "base": base,
        "finetuned": finetuned,
        "settings": settings,
        "created": created,
        "refsift_version": refsift_version,
        "samples": entries,
        "summary": summarize(entries),
    }
