"""The page of a dedup run: counts, the distribution of cluster sizes, and the largest
clusters, each member beside the kept document with what differs marked (a word-level
diff of their first characters)."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from refsift import catalog
from refsift.jobs import rundir
from refsift.pages import html as h

CLUSTERS_SHOWN = 8
MEMBERS_SHOWN = 3
CHARS = 1200
_WORDS = re.compile(r"\s*\S+\s*|\s+")

DIFF_STYLE = """
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
ins { background: rgba(38,139,210,.25); text-decoration: none; }
del { background: rgba(220,50,47,.25); text-decoration: none; }
.gap { color: #888; }
"""


CONTEXT = 6  # words of shared text kept on each side of a difference
GAP = "<span class='gap'> … </span>"


def marked(kept: str, other: str) -> tuple[str, str] | None:
    """Both texts escaped, the words only one of them has marked: <del> in the kept
    document, <ins> in the other, and the text they share cut to `CONTEXT` words beside
    each difference. None when they hold the same words: words are compared without their
    whitespace, so a copy that differs only in spacing or line breaks is the same."""
    a, b = _WORDS.findall(kept), _WORDS.findall(other)
    matcher = difflib.SequenceMatcher(None, [w.strip() for w in a], [w.strip() for w in b], autojunk=False)
    opcodes = matcher.get_opcodes()
    if all(op == "equal" for op, *_ in opcodes):
        return None
    left, right = [], []
    for k, (op, i1, i2, j1, j2) in enumerate(opcodes):
        if op == "equal":
            shared = _shared(a[i1:i2], first=k == 0, last=k == len(opcodes) - 1)
            left.append(shared)
            right.append(shared)
            continue
        x, y = h.esc("".join(a[i1:i2])), h.esc("".join(b[j1:j2]))
        left.append(f"<del>{x}</del>" if x else "")
        right.append(f"<ins>{y}</ins>" if y else "")
    return "".join(left), "".join(right)


def _shared(words: list[str], *, first: bool, last: bool) -> str:
    """Shared words, escaped: only the `CONTEXT` next to a difference on either side."""
    head = [] if first else words[:CONTEXT]
    tail = [] if last else words[-CONTEXT:]
    if len(head) + len(tail) >= len(words):
        return h.esc("".join(words))
    return (h.esc("".join(head)) if head else "") + GAP + (h.esc("".join(tail)) if tail else "")


def render(run_dir: str) -> str:
    manifest = json.loads(Path(run_dir, "manifest.json").read_text())
    c = manifest["counts"]
    con = catalog.connect(run_dir)
    try:
        sizes = con.execute("SELECT cluster_size, count(*) FROM duplicates WHERE kept GROUP BY 1 ORDER BY 1").fetchall()
        largest = con.execute(
            "SELECT cluster_id, cluster_size FROM duplicates WHERE kept ORDER BY cluster_size DESC, cluster_id LIMIT ?",
            [CLUSTERS_SHOWN],
        ).fetchall()
        shown = {
            cluster_id: con.execute(
                "SELECT doc_key, doc_id, source, kept, exact, jaccard FROM duplicates WHERE cluster_id = ? "
                "ORDER BY kept DESC, jaccard, doc_key LIMIT ?",
                [cluster_id, MEMBERS_SHOWN + 1],
            ).fetchall()
            for cluster_id, _ in largest
        }
        # The heads of the shown documents only, by key (a join would hold every document's head in memory);
        # the keys are written out, integers from the run itself, so DuckDB skips row groups by their statistics.
        keys = ",".join(str(int(row[0])) for rows in shown.values() for row in rows) or "NULL"
        heads = dict(con.execute(f"SELECT doc_key, head FROM documents WHERE doc_key IN ({keys})").fetchall())
        parts = []
        for cluster_id, size in largest:
            rows = [(*row[1:], heads[row[0]]) for row in shown[cluster_id]]
            kept_head = rows[0][5][:CHARS]
            pairs = []
            for doc_id, source, _, exact, jaccard, head in rows[1:]:
                diff = None if exact else marked(kept_head, head[:CHARS])
                how = "an exact copy" if exact else f"estimated Jaccard {jaccard:.2f}" if jaccard is not None else ""
                meta = f"<div class='meta'>{h.user(doc_id)} · {h.user(source)} · {how}"
                if diff is None:  # nothing to show beside the kept document
                    same = "identical" if exact else f"the same words in the first {CHARS} characters"
                    pairs.append(f"{meta}: {same}</div>")
                    continue
                pairs.append(
                    f"{meta}</div><div class='pair'><div class='tokens'>{diff[0]}</div>"
                    f"<div class='tokens'>{diff[1]}</div></div>"
                )
            parts.append(
                f"<details open><summary><b>{h.user(cluster_id)}</b> and {size - 1} copies "
                f"(kept: {h.user(rows[0][0])})</summary>{''.join(pairs)}</details>"
            )
    finally:
        con.close()
    m = manifest["minhash"]
    settings = manifest["settings"]
    body = (
        f"<h1>Near-duplicates</h1><p>Created {h.esc(manifest['created'])} by refsift "
        f"{h.esc(manifest['refsift_version'])}. {h.esc(settings['method'])}: {m['ngram']}-grams of "
        f"{h.esc(m['unit'])}s, {m['bands']} bands of {m['rows']} rows (pairs are found half the time at Jaccard "
        f"{m['threshold']:.2f}); the kept document of a cluster is the {h.esc(settings['keep'])}.</p>"
        f"<p>Read {c['read']} = kept {c['kept']} + near-duplicates {c['near_duplicates']} (of which exact copies "
        f"{c['exact_duplicates']}) + rejected {c['rejected']}. {c['clusters']} clusters hold {c['in_clusters']} "
        "documents.</p><h2>Cluster sizes</h2>"
        + h.table(["documents in the cluster", "clusters"], [list(r) for r in sizes])
        + "<h2>The largest clusters</h2><p>Each copy beside the kept document (left): words only the kept "
        f"document has are marked red, words only the copy has blue, shared text cut to {CONTEXT} words beside "
        "each difference (…); an exact copy is only named.</p>" + ("".join(parts) or "<p>No duplicates.</p>")
    )
    return h.page("refsift dedup", body, style=DIFF_STYLE)


def write(run_dir: str) -> Path:
    path = rundir.claim_file(str(Path(run_dir) / "report.html"))
    path.write_text(render(run_dir), encoding="utf-8")
    return path
