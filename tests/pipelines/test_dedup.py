"""Near-duplicate removal before anything is scored: MinHash LSH clusters against a
brute-force Jaccard, chains, conservation, resuming, and the copies that `score`, `select`
and `classify` then skip."""

import itertools
import json
import random

import numpy as np
import pytest

from refsift import catalog, cli
from refsift.kernels import minhash
from tests.browser import open_page
from tests.conftest import failing_commit, held_out, write_jsonl

SETTINGS = minhash.MinHashSettings()


def edited(text: str, share: float, rng: random.Random) -> str:
    words = text.split()
    for k in rng.sample(range(len(words)), max(1, round(share * len(words)))):
        words[k] = rng.choice(["lorem", "ipsum", "dolor", "amet"])
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Documents, copies of some at several edit rates, a chain (A, B = A edited at the start,
    C = B edited at the end, A and C far apart), exact copies, and bad records."""
    rng = random.Random(0)
    base = held_out("prose", 30) + held_out("code", 10)
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(base)]
    for i, share in enumerate([0.005, 0.01, 0.02, 0.05, 0.2, 0.5]):
        docs.append({"id": f"e{i}", "text": edited(base[i], share, rng)})
    a = " ".join(held_out("drama", 3))
    words = a.split()
    half = len(words) // 2
    b = " ".join(words[: half // 2] + [rng.choice(["x", "y"]) for _ in range(3)] + words[half // 2 :])
    b_words = b.split()
    c = " ".join(b_words[: half + half // 2] + ["z"] * 3 + b_words[half + half // 2 + 3 :])
    docs += [{"id": "chainA", "text": a}, {"id": "chainB", "text": b}, {"id": "chainC", "text": c}]
    docs += [{"id": "x0", "text": base[20]}, {"id": "x1", "text": "  " + base[20].replace(" ", "\n", 3)}]
    d = tmp_path_factory.mktemp("planted")
    write_jsonl(d / "web.jsonl", docs, raw_lines=[b'{"id": "bad", "text": ', b'{"id": "empty", "text": ""}'])
    out = d / "dedup"
    assert cli.main(["dedup", "--input", str(d / "web.jsonl"), "--out", str(out), "--chunk-size", "8K"]) == 0
    return d, docs


def word_jaccard(a: str, b: str) -> float:
    x, y = set(minhash.shingles(a, SETTINGS).tolist()), set(minhash.shingles(b, SETTINGS).tolist())
    return len(x & y) / len(x | y) if x | y else 0.0


def test_clusters_agree_with_brute_force_jaccard(planted):
    d, docs = planted
    cluster = dict(catalog.query(str(d / "dedup"), "SELECT doc_id, cluster_id FROM duplicates")[1])
    together = 0
    for x, y in itertools.combinations(docs, 2):
        j = word_jaccard(x["text"], y["text"])
        same = x["id"] in cluster and cluster.get(x["id"]) == cluster.get(y["id"])
        # LSH with 14 bands of 8 rows finds a pair with Jaccard 0.9 with probability 1 - (1 - 0.9^8)^14
        # (0.99999) and one with Jaccard 0.3 with probability at most 14 * 0.3^8 (0.001): both are asserted
        if j >= 0.9:
            assert same, (x["id"], y["id"], j)
            together += 1
        if j <= 0.3 and same:  # only through a chain of similar documents
            assert {x["id"], y["id"]} == {"chainA", "chainC"}, (x["id"], y["id"], j)
    assert together >= 5
    found = {doc_id for doc_id in cluster}
    assert {"e0", "e1", "d0", "d1"} <= found and "e5" not in found  # a copy half rewritten is not one


def test_a_chain_is_one_cluster_and_exact_copies_are_marked(planted):
    d, docs = planted
    texts = {r["id"]: r["text"] for r in docs}
    assert word_jaccard(texts["chainA"], texts["chainC"]) < word_jaccard(texts["chainA"], texts["chainB"])
    rows = catalog.query(
        str(d / "dedup"), "SELECT doc_id, cluster_id, cluster_size, kept, exact, jaccard FROM duplicates"
    )[1]
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id["chainA"][0] == by_id["chainB"][0] == by_id["chainC"][0] == "chainA"  # kept: first in input order
    assert by_id["chainA"][1] == 3 and by_id["chainA"][2] and not by_id["chainC"][2]
    assert by_id["x0"][0] == "d20" and by_id["x1"][3] and by_id["x1"][4] == 1.0  # whitespace aside, an exact copy


def test_counts_are_conserved_and_the_report_shows_the_differences(planted):
    d, _ = planted
    manifest = json.loads((d / "dedup" / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["read"] == c["kept"] + c["near_duplicates"] + c["rejected"] and c["rejected"] == 2
    assert c["near_duplicates"] == c["in_clusters"] - c["clusters"] > 0
    assert cli.main(["verify", str(d / "dedup")]) == 0
    seen = open_page(d / "dedup" / "report.html")
    assert seen["requests"] == [(d / "dedup" / "report.html").resolve().as_uri()] and seen["errors"] == []
    assert "The largest clusters" in seen["text"] and "estimated Jaccard" in seen["text"]
    html = (d / "dedup" / "report.html").read_text()
    assert "<ins>" in html and "<del>" in html
    assert "an exact copy: identical" in seen["text"]  # named, not printed again beside the kept document


def test_the_page_shows_only_what_differs():
    from refsift.pages.dedup import CONTEXT, marked

    words = [f"w{i}" for i in range(100)]
    kept, copy = " ".join(words), " ".join(words[:50] + ["changed"] + words[51:])
    left, right = marked(kept, copy)
    assert "<del>w50 </del>" in left and "<ins>changed </ins>" in right
    shown = [w for w in words if f"{w} " in left.replace("<del>", "").replace("</del>", "")]
    assert shown == words[50 - CONTEXT : 51 + CONTEXT]  # the shared text cut to CONTEXT words each side
    assert marked(kept, "  " + kept.replace(" ", "\n")) is None  # the same words, spacing aside


def test_score_skips_the_copies_and_refuses_a_dedup_of_other_inputs(planted, prose_model, tmp_path, capsys):
    d, docs = planted
    out = tmp_path / "run"
    base = ["score", "--input", str(d / "web.jsonl"), "--model", prose_model, "--max-length", "64", "--context", "16"]
    assert cli.main([*base, "--out", str(out), "--dedup", str(d / "dedup")]) == 0
    removed = catalog.query(str(out), "SELECT count(*) FROM rejected WHERE reason = 'near_duplicate'")[1][0][0]
    manifest = json.loads((d / "dedup" / "manifest.json").read_text())
    assert removed == manifest["counts"]["near_duplicates"]
    details = catalog.query(str(out), "SELECT detail FROM rejected WHERE reason = 'near_duplicate'")[1]
    assert all(detail.startswith("a copy of ") for (detail,) in details)
    scored = json.loads((out / "manifest.json").read_text())["counts"]["scored"]
    assert scored == manifest["counts"]["kept"]
    other = tmp_path / "other.jsonl"
    write_jsonl(other, docs[:3])
    argv = ["score", "--input", str(other), "--model", prose_model, "--out", str(tmp_path / "r2"), "--dedup"]
    assert cli.main([*argv, str(d / "dedup")]) == 2
    assert "was not made from" in capsys.readouterr().err


def test_select_leaves_out_near_copies_and_exact_ones_by_default(planted, prose_model, tmp_path):
    d, _ = planted
    run = tmp_path / "run"
    argv = ["score", "--input", str(d / "web.jsonl"), "--model", prose_model, "--max-length", "128", "--out", str(run)]
    assert cli.main(argv) == 0

    def duplicates(mix: str, *extra) -> int:
        assert cli.main(["select", str(run), "--out", str(tmp_path / mix), *extra]) == 0
        stats = json.loads((tmp_path / mix / "selection.json").read_text())["per_source"]
        return sum(s.get("duplicates", {}).get("documents", 0) for s in stats.values())

    exact, near, none = (
        duplicates("exact"),
        duplicates("near", "--dedup", "near"),
        duplicates("none", "--dedup", "none"),
    )
    assert none == 0 and exact == 2 and near > exact  # x0 and x1 are the exact copies (of d20)
    assert near == json.loads((d / "dedup" / "manifest.json").read_text())["counts"]["near_duplicates"]


def test_a_dedup_run_stopped_midway_resumes_to_the_same_clusters(planted, tmp_path, monkeypatch, capsys):
    d, _ = planted
    args = ["dedup", "--input", str(d / "web.jsonl"), "--out", str(tmp_path / "cut"), "--chunk-size", "8K"]
    with failing_commit(monkeypatch, 5):
        assert cli.main(args) == 2 and "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--resume"]) == 0
    query = "SELECT doc_id, cluster_id, cluster_size, kept, exact, jaccard FROM duplicates ORDER BY doc_id"
    assert catalog.query(str(tmp_path / "cut"), query)[1] == catalog.query(str(d / "dedup"), query)[1]


def test_components_and_band_edges_are_exact():
    edges = minhash.band_edges(np.array([7, 3, 7, 7, 3, 9], dtype=np.uint64), np.array([5, 1, 2, 9, 4, 3]))
    assert sorted(map(tuple, edges.tolist())) == [(1, 4), (2, 5), (2, 9)]
    members, roots = minhash.clusters(np.array([[10, 11], [11, 12], [30, 31], [12, 13]]))
    assert members.tolist() == [10, 11, 12, 13, 30, 31] and roots.tolist() == [10, 10, 10, 10, 30, 30]
    chain = np.array([[i, i + 1] for i in range(1000)])[::-1]  # a long chain, given in the worst order
    assert set(minhash.clusters(chain)[1].tolist()) == {0}


def test_a_copy_cannot_hide_behind_invisible_or_compatibility_characters():
    text = held_out("prose", 1)[0]
    hidden = {
        "zero-width spaces": " ".join("\u200b".join(word) for word in text.split(" ")),
        "soft hyphens and joiners": text.replace("e", "e\u00ad").replace("o", "\u200do"),
        "fullwidth letters": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text),
    }
    original = set(minhash.shingles(text, SETTINGS).tolist())
    assert len(original) > 50
    for how, copy in hidden.items():
        assert copy != text and set(minhash.shingles(copy, SETTINGS).tolist()) == original, how
