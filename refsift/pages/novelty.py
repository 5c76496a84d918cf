"""The novelty report for people: report.md and report.html, rendered from report.json's data
(`refsift.reports.novelty`).

What is new is read off the CGE samples three ways: n-grams over-represented relative to
plain samples from the fine-tuned model (baseline) and from the base model; groups of
similar samples; and per-token contrast shading. Diversity (distinct-n, mean pairwise
similarity) compares CGE with the baseline, and a chart shows mean contrast per iteration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from refsift.pages import attribution
from refsift.pages import html as h
from refsift.reports.novelty import CGE_MODES, SMALL_SHIFT, shown


def as_made(sample: dict) -> str:
    """A sample's text, its stray bytes marked when it has any."""
    if any("bytes" in t for t in sample["tokens"]):
        return h.visible("".join(shown(t) for t in sample["tokens"]))
    return sample["text"]


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
