"""The run report: one self-contained page for a scoring run (`refsift report RUN_DIR`).

Counts and rejections; per-source distributions of every score present; nll_model against
nll_reference per document (the picture behind RHO-LOSS/LoBaSS bands); the top and bottom
documents by each score with tokens shaded by excess loss; the registered selections.
Everything is read through the run's DuckDB catalog.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

from refsift import catalog
from refsift.errors import RefsiftError
from refsift.jobs import rundir
from refsift.pages import html as h
from refsift.reports.run import finding, score_columns

PALETTE = ["#268bd2", "#dc322f", "#859900", "#b58900", "#6c71c4", "#2aa198", "#d33682", "#cb4b16", "#657b83"]


def _distributions(con, columns: list[str], sources: list[str]) -> str:
    parts = []
    for column in columns:
        lo, hi = con.execute(
            f'SELECT quantile_cont("{column}", 0.01), quantile_cont("{column}", 0.99) FROM examples'
        ).fetchone()
        cells = []
        for source in sources:
            values = [
                v for (v,) in con.execute(f'SELECT "{column}" FROM examples WHERE source = ?', [source]).fetchall()
            ]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            mean = sum(finite) / len(finite) if finite else float("nan")
            cells.append(
                f"<div><b>{h.user(source)}</b> mean {mean:.3f}<br>"
                f"{h.histogram(finite, lo=lo, hi=hi, width=220, height=90, bins=16)}</div>"
            )
        parts.append(f"<h3>{h.esc(column)}</h3><div class='row'>{''.join(cells)}</div>")
    return "".join(parts)


def _scatter(con, sources: list[str]) -> str:
    rows = con.execute("SELECT source, nll_model, nll_reference FROM examples").fetchall()
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    points = [(x, y) for _, x, y in rows]
    svg = h.scatter(points, x_label="nll_model", y_label="nll_reference", colors=[colors[s] for s, _, _ in rows])
    legend = " ".join(f"<span style='color:{c}'>●</span> {h.user(s)}" for s, c in colors.items())
    return (
        "<h2>nll_model against nll_reference</h2><p>One dot per document. Below the diagonal the reference "
        "model finds a document easier than the model to train: high excess loss, worth learning (Rho-1, "
        "RHO-LOSS). Documents near the top right are hard for both (noise); bottom left, easy for both "
        f"(already known): LoBaSS-style bands cut both.</p>{svg}<p>{legend}</p>"
    )


SHOWN_CHARACTERS = 1500  # of each document shown
SHADED_BYTES = 2_000_000  # of token spans on the page; past it, documents are shown as plain text


def _shaded(text: str, tokens: list[tuple], shade_by: str, scale: float) -> str:
    pieces = h.covering_pieces(text, tokens, limit=SHOWN_CHARACTERS)
    shown = [(t, s, f"{shade_by}={s:.3f}  nll_model={m:.3f}" if s is not None else "") for t, s, m in pieces]
    return h.shaded_tokens(shown, scale)


def _extremes(con, columns: list[str], has_reference: bool, per_end: int) -> str:
    shade_by = "excess" if has_reference else "nll_model"
    scale = con.execute(f"SELECT quantile_cont(abs({shade_by}), 0.95) FROM token_scores").fetchone()[0] or 1.0
    shown = {}  # (column, label) -> the documents shown there
    for column in columns:
        for label, order in (("highest", "DESC"), ("lowest", "ASC")):
            shown[column, label] = con.execute(
                f'SELECT doc_id, source, text, "{column}" FROM examples WHERE "{column}" IS NOT NULL '
                f'ORDER BY "{column}" {order}, doc_id LIMIT ?',
                [per_end],
            ).fetchall()
    ids = sorted({doc_id for rows in shown.values() for doc_id, *_ in rows})
    tokens = catalog.document_tokens(con, ids, f"{shade_by}, nll_model")
    parts = [h.legend(scale, f"token shading: {shade_by} (hover for values)")]
    spent = 0
    for (column, label), rows in shown.items():
        docs = ""
        for doc_id, source, text, value in rows:
            if spent < SHADED_BYTES:
                body = _shaded(text, tokens[doc_id], shade_by, scale)
                spent += len(body)
            else:  # the page is big enough: the rest without per-token spans
                cut = " …" if len(text) > 300 else ""
                body = f"<div class='tokens'>{h.esc(text[:300] + cut)}</div>"
            meta = f"{h.user(doc_id)} · {h.user(source)} · {h.esc(column)} = {value:.4f}"
            docs += f"<div class='sample'><div class='meta'>{meta}</div>{body}</div>"
        parts.append(f"<details><summary><b>{h.esc(column)}</b>: {label} {len(rows)}</summary>{docs}</details>")
    return "".join(parts)


def _selection_record(run_dir: str, pattern: str | None) -> dict:
    """The selection.json beside a selection's export ({} when it cannot be read)."""
    if pattern is None:
        return {}
    try:
        record = json.loads((Path(run_dir, pattern).parent.parent / "selection.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _selection_command(settings: dict) -> str:
    """The `refsift select` command that makes a selection, from the settings its
    selection.json records (the same whether it ran from the CLI, the demo or the API)."""
    words = ["refsift", "select", str(settings["run"]), "--out", str(settings["out"])]
    for key, value in settings.items():
        if key in ("run", "out") or value is None or value is False or value in ("", [], ()):
            continue
        words += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return f"<p>Made by <code>{h.user(shlex.join(words))}</code></p>"


def _clusters(c: dict) -> str:
    """A --per-cluster selection's clusters: how balanced, and how they follow the sources."""
    if "by_cluster" not in c:
        return ""
    table = h.table(
        ["cluster", "documents", "most common source", "its share"],
        [[name, r["documents"], r["top_source"], f"{r['purity']:.0%}"] for name, r in c["by_cluster"].items()],
    )
    return (
        f"<p>{c['k']} clusters of {c['documents']} candidates ({h.esc(c['embedding'])}): {c['smallest']} to "
        f"{c['largest']} documents, as balanced as {c['effective_clusters']:.1f} equal clusters; "
        f"{c['purity']:.0%} of the documents share their cluster's most common source.</p>{table}"
    )


def _selections(con, run_dir: str) -> str:
    views = [
        v
        for (v,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE view_name LIKE 'selection_%' ORDER BY 1"
        ).fetchall()
    ]
    if not views:
        return "<p>No selection registered yet (<code>refsift select RUN_DIR --out MIX</code> registers one).</p>"
    patterns = {name: pattern for name, pattern, _ in catalog.metadata(run_dir)[0]}
    parts = []
    for view in views:
        try:
            rows = con.execute(
                "SELECT source, count(DISTINCT doc_id), count(*), count(*) FILTER (WHERE label <> -100) "
                f'FROM (SELECT source, doc_id, unnest(labels) AS label FROM "{view}") GROUP BY 1 ORDER BY 1'
            ).fetchall()
        except Exception as err:  # the selection's files were moved or deleted
            parts.append(f"<h3>{h.esc(view)}</h3><p>unreadable: {h.esc(str(err).splitlines()[0])}</p>")
            continue
        total = sum(r[3] for r in rows) or 1
        table = h.table(
            ["source", "documents", "tokens", "labelled tokens", "share of labelled"],
            [[s, d, t, n, f"{n / total:.1%}"] for s, d, t, n in rows],
        )
        record = _selection_record(run_dir, patterns.get(view))
        made = _selection_command(record["settings"]) if isinstance(record.get("settings"), dict) else ""
        clusters = _clusters(record["clusters"]) if isinstance(record.get("clusters"), dict) else ""
        parts.append(f"<h3>{h.esc(view)}</h3>{made}{table}{clusters}")
    return "".join(parts)


def render(run_dir: str, *, per_end: int = 3) -> str:
    manifest = json.loads(Path(run_dir, "manifest.json").read_text())
    con = catalog.connect(run_dir)
    try:
        counts = manifest["counts"]
        sources = [s for (s,) in con.execute("SELECT DISTINCT source FROM examples ORDER BY 1").fetchall()]
        per_source = con.execute(
            "SELECT source, count(*), sum(n_tokens), sum(n_bytes) FROM examples GROUP BY 1 ORDER BY 1"
        ).fetchall()
        rejected = con.execute(
            "SELECT reason, count(*), any_value(input), any_value(record) FROM rejected GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        columns = score_columns(con)
        has_reference = "reference" in manifest["roles"]
        roles = [
            [r, m.get("spec", ""), m.get("weights_sha256", m.get("revision", ""))] for r, m in manifest["roles"].items()
        ]
        body = [
            "<h1>Run report</h1>",
            f"<p class='finding'><b>Finding.</b> {h.esc(finding(con, columns))}</p>",
            f"<p>Run directory <code>{h.esc(Path(run_dir).resolve())}</code>. Created {h.esc(manifest['created'])} "
            f"by refsift {h.esc(manifest['refsift_version'])} in "
            f"{manifest['wall_time_s']:.1f} s. Documents read {counts['read']} = scored {counts['scored']} + "
            f"rejected {counts['rejected']}; {counts['tokens_scored']} tokens scored in {counts['windows']} "
            "windows.</p>",
            h.row(
                h.table(["role", "model", "weights / revision"], roles),
                h.table(["source", "documents", "scored tokens", "bytes"], per_source),
            ),
            "<h2>Rejected records</h2>",
            h.table(["reason", "count", "an input", "a record"], [[r, n, i, rec[:120]] for r, n, i, rec in rejected])
            if rejected
            else "<p>None.</p>",
            "<h2>Score distributions by source</h2>",
            _distributions(con, columns, sources),
        ]
        if has_reference:
            body.append(_scatter(con, sources))
        body += ["<h2>Top and bottom documents</h2>", _extremes(con, columns, has_reference, per_end)]
        body += ["<h2>Selections</h2>", _selections(con, run_dir)]
        return h.page(f"refsift run report: {Path(run_dir).resolve().name}", "\n".join(body))
    finally:
        con.close()


def write(run_dir: str, out: str | None = None) -> Path:
    path = rundir.claim_file(out or str(Path(run_dir) / "report.html"))
    page = render(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as err:
        raise RefsiftError(f"cannot write {path}: {err.strerror}") from None
    return path
