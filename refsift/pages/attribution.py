"""Where it came from: the attribution section (sources ranked by influence, per target set,
with the documents of the most influential source that rose most), for the novelty report
and for the page of `refsift attribute`."""

from __future__ import annotations

from pathlib import Path

from refsift.pages import html as h
from refsift.reports.attribution import NAMES, finding, methods_finding

EXPLAIN = {
    "untrac": "UnTrac: each source was unlearned (gradient ascent on a copy of the model) and the target set's loss "
    "measured after; a source's influence is how much that loss rose.",
    "untrac-inv": "UnTrac-Inv: the target set was unlearned (gradient ascent on a copy of the model) and every "
    "source's loss measured after; a source's influence is how much its own loss rose.",
}
TOP_DOCUMENTS = 5


def section(
    attribution: list[dict],
    documents: list[dict],
    *,
    title: str = "Where it came from",
    agreement: list[dict] = (),
    all_label: str = "all samples",
) -> str:
    """The attribution's section: per method and target, its finding, bars and table; with
    both methods, whether they agree first. `all_label` names the target "all"."""
    if not attribution:
        return ""
    parts = [f"<h2>{h.esc(title)}</h2>"]
    for a in agreement:
        label = all_label if a["target"] == "all" else a["target"]
        parts.append(f"<p class='finding'><b>{h.user(label)}.</b> {h.esc(methods_finding(a))}</p>")
    for method in dict.fromkeys(r["method"] for r in attribution):
        parts.append(_method_section([r for r in attribution if r["method"] == method], documents, all_label))
    return "".join(parts)


def _method_section(attribution: list[dict], documents: list[dict], all_label: str) -> str:
    method = attribution[0]["method"]
    targets = list(dict.fromkeys(r["target"] for r in attribution))
    parts = [
        f"<p>{h.esc(EXPLAIN[method])} Higher = more influential. Intervals hold the "
        "middle 90% of the influence over 1,000 resamples of the measured documents; they do not cover another "
        "unlearning seed, procedure or method.</p>"
    ]
    for target in targets:
        rows = sorted((r for r in attribution if r["target"] == target), key=lambda r: r["rank"])
        label = all_label if target == "all" else target
        parts.append(
            f"<h3>{h.esc(NAMES[method])} · target: {h.user(label)}</h3>"
            f"<p class='finding'><b>Finding.</b> {h.esc(finding(rows))}</p>"
        )
        chart = h.bars(
            [(r["source"], r["influence"]) for r in rows],
            intervals=[(r.get("influence_low"), r.get("influence_high")) for r in rows],
            label="influence (rise in nats per token), 90% interval",
        )
        table = h.table(
            [
                "rank",
                "source",
                "influence",
                "90% interval",
                "first in",
                "loss before",
                "loss after",
                "documents",
                "unlearning steps",
            ],
            [
                [
                    r["rank"],
                    r["source"],
                    r["influence"],
                    h.interval(r.get("influence_low"), r.get("influence_high")),
                    "" if r.get("p_first") is None else f"{r['p_first']:.0%}",
                    r["loss_before"],
                    r["loss_after"],
                    r["n_documents"],
                    r.get("unlearn_steps", ""),
                ]
                for r in rows
            ],
        )
        parts.append(h.row(chart, table))
        top = rows[0]["source"]
        risen = sorted(
            (d for d in documents if d["target"] == target and d["source"] == top), key=lambda d: -(d["rise"] or 0)
        )[:TOP_DOCUMENTS]
        if risen:
            items = "".join(_document(d) for d in risen)
            parts.append(
                f"<details><summary>Documents of <b>{h.user(top)}</b> whose loss rose most</summary>{items}</details>"
            )
    return "".join(parts)


def _document(d: dict) -> str:
    meta = f"{h.user(d['doc_id'])} · loss {d['rise']:+.3f} nats/token after unlearning"
    text = d["text"][:400] + ("…" if len(d["text"]) > 400 else "")
    return f"<div class='sample'><div class='meta'>{meta}</div><div class='tokens'>{h.esc(text)}</div></div>"


def write(record: dict, documents: list[dict], out: str) -> Path:
    model, settings = record["model"], record["settings"]
    targets = ", ".join(settings["targets"])
    body = (
        f"<h1>Attribution</h1><p>Model {h.esc(model.get('spec'))} ({h.esc(model.get('weights_sha256', ''))}), "
        f"created {h.esc(record['created'])} by refsift {h.esc(record['refsift_version'])}. Target: "
        f"{h.user(targets)}; sources: {h.user(', '.join(settings['sources']))}.</p>"
        + section(
            record["attribution"],
            documents,
            title="Which sources taught it",
            agreement=record.get("agreement", ()),
            all_label=targets,
        )
    )
    path = Path(out, "report.html")
    path.write_text(h.page("refsift attribution", body), encoding="utf-8")
    return path
