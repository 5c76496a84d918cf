"""The novelty report: report.json (the data), report.md and report.html (for people).

What is new is read off the CGE samples three ways: n-grams over-represented relative to
plain samples from the fine-tuned model (baseline) and from the base model; groups of
similar samples; and per-token contrast shading. Diversity (distinct-n, mean pairwise
similarity) compares CGE with the baseline, and a chart shows mean contrast per iteration.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np

from refsift.kernels import bootstrap
from refsift.kernels.token_bytes import byte_texts, is_escaped
from refsift.pages import analysis, attribution
from refsift.pages import html as h

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


def as_made(sample: dict) -> str:
    """A sample's text, its stray bytes marked when it has any."""
    if any("bytes" in t for t in sample["tokens"]):
        return h.visible("".join(shown(t) for t in sample["tokens"]))
    return sample["text"]


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


def _scale(samples: list[dict]) -> float:
    scores = sorted(abs(t["score"]) for s in samples for t in s["tokens"] if t["score"] is not None)
    return scores[int(0.95 * (len(scores) - 1))] if scores else 1.0


def _sample_html(s: dict, scale: float) -> str:
    tokens = [
        (shown(t), t["score"], f"log p_ft={t['logp_ft']:.3f}  log p_base={t['logp_base']:.3f}  score={t['score']:.3f}")
        if t["score"] is not None
        else (shown(t), None, "")
        for t in s["tokens"]
    ]
    meta = [s["mode"], f"mean contrast {s['mean_contrast']:.3f}" if s["mean_contrast"] is not None else ""]
    if s["iteration"] is not None:
        meta.insert(1, f"iteration {s['iteration']}")
    meta = [h.esc(m) for m in meta if m]
    if s["prompt"]:
        meta.append(f"prompt: {h.user(s['prompt'])}")
    meta.append(f"{s['n_tokens']} tokens" + ("" if s["finished"] else ", cut at max length"))
    return (
        f"<div class='sample' id='{h.esc(s['id'])}'><div class='meta'>{' · '.join(meta)}</div>"
        f"{h.shaded_tokens(tokens, scale)}</div>"
    )


def _shift_paragraph(shift: dict | None) -> str:
    if not shift:
        return ""
    what = "its own plain samples" if shift["from"] == "baseline" else "the base model's samples (sign flipped)"
    return (
        f"<p>How far the fine-tuned model moved from its base: {shift['mean']:.3f} nats per token (90% interval "
        f"{h.interval(shift['low'], shift['high'], '{:.3f}')}), the mean of log p_ft − log p_base over {h.esc(what)}. "
        f"Under {SMALL_SHIFT} it has barely moved, and the finding says so.</p>"
    )


def _groups_table(groups: list[dict], by_id: dict) -> str:
    rows = []
    for k, g in enumerate(groups, start=1):
        examples = [by_id[i] for i in g["target"]] or [by_id[i] for i in g["other"]]
        example = max(examples, key=lambda x: x["mean_contrast"] or -math.inf)["text"] if examples else ""
        cut = example[:200] + ("…" if len(example) > 200 else "")
        gap = f"{g['share_target'] - g['share_other']:+.0%}"
        spread = h.interval(*(g.get("gap_interval") or (None, None)), "{:+.0%}")
        terms = ", ".join(g["top_terms"][:5]) or "none stand out against the other groups"
        rows.append([k, f"{g['share_target']:.0%}", f"{g['share_other']:.0%}", gap, spread, terms, cut])
    columns = ["group", "CGE samples", "plain samples", "difference", "90% interval"]
    return h.table([*columns, "characteristic character n-grams", "e.g."], rows)


def _ngram_tables(over: dict) -> str:
    parts = []
    for name, label in (("vs_baseline", "plain samples from the fine-tuned model"), ("vs_base", "base-model samples")):
        if name not in over:
            continue
        parts.append(f"<h3>Over-represented in CGE samples relative to {h.esc(label)}</h3>")
        tables = [
            h.table(
                [n, "log ratio", "CGE", "other"],
                [[r["ngram"], r["log_ratio"], r["count"], r["count_other"]] for r in rows[:8]],
            )
            for n, rows in over[name].items()
        ]
        parts.append(h.row(*tables))
    return "".join(parts) or "<p>(needs CGE and comparison samples)</p>"


def render_html(report: dict) -> str:
    s = report["summary"]
    samples = report["samples"]
    cge = [x for x in samples if x["mode"] in CGE_MODES]
    scale = _scale(cge or samples)
    by_id = {x["id"]: x for x in samples}
    intervals = s.get("mean_contrast_interval", {})
    models = [
        [role, m.get("spec", ""), m.get("weights_sha256", m.get("revision", "")), m.get("path", "")]
        for role, m in (("base", report["base"]), ("fine-tuned", report["finetuned"]))
    ]
    settings = [[k, json.dumps(v) if isinstance(v, list | dict) else str(v)] for k, v in report["settings"].items()]
    body = [
        "<h1>What's new in the fine-tuned model</h1>",
        f"<p>Created {h.esc(report['created'])} by refsift {h.esc(report['refsift_version'])}. Samples favour what "
        "the fine-tuned model likes and the base model does not (contrastive score log p_ft − γ·log p_base over "
        "the fine-tuned model's plausible tokens).</p>",
        f"<p class='finding'><b>Finding.</b> {h.esc(s['finding'])}</p>",
        f"<h2>Groups of samples, CGE against plain ({h.esc(s['groups']['method'])})</h2>",
        "<p>CGE samples and plain samples from the fine-tuned model, clustered together. A group holding far more "
        "of the CGE samples than of the plain ones is what the contrast with the base model brings out.</p>",
        _groups_table(s["groups"]["groups"], by_id),
        "<h2>What is new, in n-grams</h2>",
        h.table(
            ["mode", "samples", "mean contrast", "90% interval"],
            [
                [m, n, s["mean_contrast"].get(m), h.interval(*(intervals.get(m) or (None, None)), "{:.3f}")]
                for m, n in s["counts"].items()
            ],
        ),  # fmt: skip
        _shift_paragraph(s.get("shift")),
        attribution.section(report.get("attribution", []), report.get("attribution_documents", [])),
        _ngram_tables(s["over_represented"]),
        "<h2>Checkpoints</h2>" + h.table(["role", "model", "weights / revision", "path"], models),
    ]
    body.append("<h2>Diversity</h2>")
    body.append(
        h.table(
            ["mode", "distinct-1", "distinct-2", "distinct-3", "mean pairwise similarity"],
            [[m, *d.values()] for m, d in s["diversity"].items()],
        )
    )
    if s["contrast_by_iteration"]:
        body.append(
            "<h3>Mean contrast per iteration</h3><p>As the base copy learns what was found, contrast falls "
            "and later samples move to other novel properties.</p>"
        )
        body.append(h.line_chart(s["contrast_by_iteration"], x_label="iteration", y_label="mean contrast"))
    elif cge:
        points = [(i, x["mean_contrast"]) for i, x in enumerate(cge) if x["mean_contrast"] is not None]
        body.append("<h3>Mean contrast of CGE samples (sorted)</h3>")
        body.append(h.line_chart(points, x_label="sample rank", y_label="mean contrast"))
    body.append("<h2>Samples</h2>" + h.legend(scale, "token shading: contrastive score (hover a token for log-probs)"))
    if any("bytes" in t for x in samples for t in x["tokens"]):
        body.append(
            f"<p>{h.esc(h.BYTE_MARK.format(0xE2))} marks a byte the model generated that is part of no UTF-8 "
            "character (decoding would show U+FFFD there).</p>"
        )
    sections = (
        ("cge-iterative", "Iterative CGE samples, in generation order", True),
        ("cge", "CGE samples, highest mean contrast first", True),
        ("extract", "Candidate documents ranked by mean log p_ft − log p_base (extract mode)", True),
        ("baseline", "Plain samples from the fine-tuned model (baseline)", False),
        ("base", "Plain samples from the base model", False),
    )
    for mode, title, open_ in sections:
        chosen = [x for x in samples if x["mode"] == mode]
        if chosen:
            inner = "".join(_sample_html(x, scale) for x in chosen)
            body.append(
                f"<details{' open' if open_ else ''}><summary><b>{h.esc(title)}</b> ({len(chosen)})"
                f"</summary>{inner}</details>"
            )
    body.append("<h2>Settings</h2>" + h.table(["setting", "value"], settings))
    return h.page("refsift novelty report", "\n".join(body))


def _md_text(text: str, limit: int = 400) -> str:
    text = text[:limit] + ("…" if len(text) > limit else "")
    return "\n".join("    " + line for line in text.splitlines() or [""])


def render_md(report: dict) -> str:
    s = report["summary"]
    lines = [
        "# What's new in the fine-tuned model",
        "",
        f"**Finding.** {h.md(s['finding'])}",
        "",
        *(
            f"- {label}: {h.md(report[key].get('spec'))} ({h.md(report[key].get('weights_sha256', ''))})"
            for label, key in (("base", "base"), ("fine-tuned", "finetuned"))
        ),
        f"- created: {h.md(report['created'])}",
        "",
        "| mode | samples | mean contrast |",
        "|---|---|---|",
        *(f"| {m} | {n} | {(s['mean_contrast'].get(m) or 0):.3f} |" for m, n in s["counts"].items()),
        "",
    ]
    ranked = [r for r in report.get("attribution", []) if r["target"] == "all"]
    if ranked:
        order = ", ".join(
            f"{h.md(r['source'])} ({r['influence']:+.3f})" for r in sorted(ranked, key=lambda r: r["rank"])
        )
        lines += [
            f"**Where it came from** ({ranked[0]['method']}, influence in nats per token): {order}. "
            f"{h.md(attribution.finding(sorted(ranked, key=lambda r: r['rank'])))}",
            "",
        ]
    for name, over in s["over_represented"].items():
        grams = ", ".join(h.md(repr(r["ngram"])) for r in over["8-char"][:10])
        lines += [f"Over-represented character 8-grams ({name.replace('_', ' ')}): {grams}", ""]
    for mode in ("cge-iterative", "cge", "extract"):
        chosen = [x for x in report["samples"] if x["mode"] == mode][:10]
        if chosen:
            lines += [f"## {mode}", ""]
            for x in chosen:
                iteration = f", iteration {x['iteration']}" if x["iteration"] is not None else ""
                lines += [
                    f"**{h.md(x['id'])}** (mean contrast {x['mean_contrast'] or 0:.3f}{iteration})",
                    "",
                    _md_text(as_made(x)),
                    "",
                ]
    return "\n".join(lines)


def write(report: dict, out: str) -> None:
    out_dir = Path(out)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    (out_dir / "report.md").write_text(render_md(report), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(report), encoding="utf-8")
