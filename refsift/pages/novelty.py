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

from refsift.pages import analysis
from refsift.pages import html as h

CGE_MODES = ("cge", "cge-iterative")


def _finite(x):
    return x if isinstance(x, int | float) and math.isfinite(x) else None


def sample_entry(row: dict) -> dict:
    tokens = [
        {"text": t, "logp_ft": _finite(f), "logp_base": _finite(b), "score": _finite(s)}
        for t, f, b, s in zip(row["token_text"], row["logp_ft"], row["logp_base"], row["score"])
    ]
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
                f"{n}-grams": [
                    {"ngram": g, "log_ratio": round(r, 3), "count": c, "count_other": o}
                    for g, r, c, o in analysis.over_represented(cge, other, n=n)
                ]
                for n in (1, 2, 3)
            }
    for mode in ("cge", "cge-iterative", "baseline", "base"):
        texts = [s["text"] for s in by_mode.get(mode, [])]
        if len(texts) >= 2:
            summary["diversity"][mode] = {
                **{f"distinct_{n}": round(analysis.distinct_n(texts, n), 4) for n in (1, 2, 3)},
                "mean_pairwise_similarity": round(analysis.mean_pairwise_similarity(analysis.tfidf(texts)), 4),
            }
    cge_samples = [s for s in samples if s["mode"] in CGE_MODES]
    groups = analysis.clusters([s["text"] for s in cge_samples])
    for g in groups["groups"]:
        g["members"] = [cge_samples[i]["id"] for i in g["members"]]
    summary["clusters"] = groups
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
        (t["text"], t["score"], f"log p_ft={t['logp_ft']:.3f}  log p_base={t['logp_base']:.3f}  score={t['score']:.3f}")
        if t["score"] is not None
        else (t["text"], None, "")
        for t in s["tokens"]
    ]
    meta = [s["mode"], f"mean contrast {s['mean_contrast']:.3f}" if s["mean_contrast"] is not None else ""]
    if s["iteration"] is not None:
        meta.insert(1, f"iteration {s['iteration']}")
    if s["prompt"]:
        meta.append(f"prompt: {s['prompt']}")
    meta.append(f"{s['n_tokens']} tokens" + ("" if s["finished"] else ", cut at max length"))
    return (
        f"<div class='sample' id='{h.esc(s['id'])}'><div class='meta'>{h.esc(' · '.join(m for m in meta if m))}</div>"
        f"{h.shaded_tokens(tokens, scale)}</div>"
    )


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
        "<h2>Checkpoints</h2>" + h.table(["role", "model", "weights / revision", "path"], models),
        "<h2>What is new</h2>",
        h.table(
            ["mode", "samples", "mean contrast"], [[m, n, s["mean_contrast"].get(m)] for m, n in s["counts"].items()]
        ),
        _ngram_tables(s["over_represented"]),
        f"<h3>Groups of similar CGE samples ({h.esc(s['clusters']['method'])})</h3>",
    ]
    for g in s["clusters"]["groups"]:
        example = by_id[g["members"][0]]["text"][:240]
        body.append(
            f"<p><b>{g['size']} samples</b> · terms: <code>{h.esc(', '.join(g['top_terms']))}</code><br>"
            f"e.g. {h.esc(example)}</p>"
        )
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
    for name, over in s["over_represented"].items():
        grams = ", ".join(h.md(r["ngram"]) for r in over["1-grams"][:10])
        lines += [f"Over-represented words ({name.replace('_', ' ')}): {grams}", ""]
    for mode in ("cge-iterative", "cge", "extract"):
        chosen = [x for x in report["samples"] if x["mode"] == mode][:10]
        if chosen:
            lines += [f"## {mode}", ""]
            for x in chosen:
                iteration = f", iteration {x['iteration']}" if x["iteration"] is not None else ""
                lines += [
                    f"**{h.md(x['id'])}** (mean contrast {x['mean_contrast'] or 0:.3f}{iteration})",
                    "",
                    _md_text(x["text"]),
                    "",
                ]
    return "\n".join(lines)


def write(report: dict, out: str) -> None:
    out_dir = Path(out)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    (out_dir / "report.md").write_text(render_md(report), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(report), encoding="utf-8")
