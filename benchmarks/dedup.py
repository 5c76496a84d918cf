"""Near-duplicate removal: quality and speed against datatrove's MinHash pipeline and
text-dedup, memory as the corpus grows, and what `score --dedup` saves.

Quality. A corpus of bundled documents (about 800 characters each) with planted copies of
some of them: characters edited at 1%, 5%, 10% and 20%, sentences reordered, and pages made
from one template with different slots. The truth is the Jaccard similarity of two
documents' word 5-grams (of the simplified text), computed exactly for every pair that was
planted or that any tool reports: a pair is a duplicate at Jaccard >= 0.8. Each tool's
clusters give its pairs (every pair inside a cluster); precision and recall are of pairs.
All three use 5-grams and 14 bands of 8 rows (112 permutations).

Speed: documents per second on a corpus of `--documents` records (16% planted copies, as
for memory), everything on 2 cores: refsift dedup (the
DirectRunner in one process, and with 2 worker processes), datatrove's four stages
(LocalPipelineExecutor, 2 tasks and 2 workers), text-dedup (2 processes).

Memory: refsift dedup's peak RSS at 1x, 4x and 16x the documents (12,325 to 197,200 by
default, 16% of them planted copies: `common.write_planted_corpus`), each in its own process.

Saving: a corpus where 30% of the documents are near-copies, scored with a 4-layer model
with and without `--dedup` (the dedup run's own time included).

The peers run in their own virtual environment (they pin other versions of datasets):

    python3 -m venv peers && peers/bin/pip install "datatrove[processing]==0.10.1" spacy orjson text-dedup==0.4.0
    python benchmarks/dedup.py --peers peers/bin/python          # about 10 minutes on 2 cores
    python benchmarks/dedup.py --parts memory saving             # no peers needed
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402

from refsift.demo import corpora  # noqa: E402

THRESHOLD = 0.8
KINDS = ("chars 1%", "chars 5%", "chars 10%", "chars 20%", "reordered", "templated")


def reordered(text: str, rng: random.Random) -> str:
    parts = [p for p in text.replace("\n", " ").split(". ") if p]
    rng.shuffle(parts)
    return ". ".join(parts)


TEMPLATE = (
    "Welcome to {shop}, the best place in {city} for {thing}. Our store opens every day from nine to six, and our "
    "friendly staff will help you find the {thing} you need. We offer free delivery within {city} on orders over "
    "fifty dollars, and a full refund within thirty days if you are not satisfied. Sign up for our newsletter to "
    "hear about new arrivals, seasonal sales and events at {shop}. Call us at {phone} or write to us any time. "
    "Terms and conditions apply. All rights reserved. Copyright {shop}."
)


def planted_corpus(path: Path, originals: int, seed: int = 0) -> tuple[dict[str, str], dict[str, list]]:
    """Writes the corpus; returns texts by id and the planted pairs by kind."""
    rng = random.Random(seed)
    pool = [t for d in ("prose", "drama", "german", "code", "fortunes", "spanish") for t in corpora.documents(d, 800)]
    rng.shuffle(pool)
    texts = {f"o{i}": t for i, t in enumerate(pool[:originals])}
    planted: dict[str, list] = {k: [] for k in KINDS}
    chosen = iter(rng.sample(sorted(texts), originals // 5))
    for kind, share in zip(KINDS[:4], (0.01, 0.05, 0.10, 0.20)):
        for _ in range(originals // 30):
            source = next(chosen)
            texts[f"{source}-{kind}"] = common.char_edit(texts[source], share, rng)
            planted[kind].append((source, f"{source}-{kind}"))
    for _ in range(originals // 30):
        source = next(chosen)
        texts[f"{source}-reordered"] = reordered(texts[source], rng)
        planted["reordered"].append((source, f"{source}-reordered"))
    pages = []
    for i in range(originals // 40):
        slots = dict(shop=f"Shop {rng.randint(1, 999)}", city=rng.choice(["Lyon", "Oslo", "Lima"]),
                     thing=rng.choice(["shoes", "books", "lamps"]), phone=f"555-{rng.randint(1000, 9999)}")  # fmt: skip
        texts[f"page{i}"] = TEMPLATE.format(**slots)
        pages.append(f"page{i}")
    planted["templated"] = list(itertools.combinations(pages, 2))
    corpora.write_jsonl(path, [{"id": k, "text": v} for k, v in texts.items()])
    return texts, planted


def jaccard(a: str, b: str) -> float:
    from refsift.kernels.minhash import MinHashSettings, shingles

    x, y = set(shingles(a, MinHashSettings()).tolist()), set(shingles(b, MinHashSettings()).tolist())
    return len(x & y) / len(x | y) if x | y else 0.0


def pairs_of(clusters: dict[str, object]) -> set[tuple[str, str]]:
    groups: dict[object, list[str]] = {}
    for doc_id, cluster in clusters.items():
        groups.setdefault(cluster, []).append(doc_id)
    return {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(members, 2)}


def refsift_clusters(corpus: Path, out: Path, extra: list[str] = ()) -> tuple[dict, float]:
    from refsift import catalog, cli

    started = time.perf_counter()
    assert cli.main(["dedup", "--input", str(corpus), "--out", str(out), "--overwrite", *extra]) == 0
    seconds = time.perf_counter() - started
    return dict(catalog.query(str(out), "SELECT doc_id, cluster_id FROM duplicates")[1]), seconds


DATATROVE = """
import json, struct, sys, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
    MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
corpus, work = sys.argv[1], Path(sys.argv[2])
config = MinhashConfig()  # 5-grams, 14 buckets of 8 hashes: its defaults
started = time.perf_counter()
reader = JsonlReader(str(Path(corpus).parent), glob_pattern=Path(corpus).name, id_key="id")
for name, step, tasks in [
    ("sigs", MinhashDedupSignature(output_folder=str(work / "sigs"), config=config), 2),
    ("buckets", MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                    config=config), config.num_buckets),
    ("clusters", MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                                     config=config, save_cluster_id=True), 1),
]:
    pipeline = [reader, step] if name == "sigs" else [step]
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=2, logging_dir=str(work / f"logs-{name}"),
                          skip_completed=False).run()
seconds = time.perf_counter() - started
ids = {}  # datatrove numbers documents per task file; map them back through the reader's split
for rank in range(2):
    for i, doc in enumerate(reader.run(rank=rank, world_size=2)):
        ids[(rank, i)] = doc.id
clusters = {}
for rank in range(2):
    path = work / "remove" / f"{rank:06d}.clusters"
    if path.exists():
        data = path.read_bytes()
        for doc, cluster in struct.iter_unpack("<II", data):
            clusters[ids[(rank, doc)]] = cluster
print("RESULT " + json.dumps({"seconds": seconds, "clusters": clusters}))
"""

TEXT_DEDUP = """
import json, pickle, subprocess, sys, time
from pathlib import Path
corpus, work = sys.argv[1], Path(sys.argv[2])
started = time.perf_counter()
subprocess.run([sys.executable, "-m", "text_dedup.minhash", "--path", "json", "--data_files", corpus, "--split",
                "train", "--cache_dir", str(work / "cache"), "--output", str(work / "out"), "--column", "text",
                "--ngram", "5", "--num_perm", "112", "--b", "14", "--r", "8", "--num_proc", "2", "--min_length", "0",
                "--debug", "--hash_func", "xxh3"], check=True, capture_output=True)
seconds = time.perf_counter() - started
ids = [json.loads(line)["id"] for line in open(corpus)]
uf = pickle.load(open(work / "out" / "uf.pkl", "rb"))
parent = uf.parent if hasattr(uf, "parent") else uf["parent"] if isinstance(uf, dict) and "parent" in uf else uf
def find(x):
    while parent.get(x, x) != x:
        x = parent[x]
    return x
clusters = {ids[i]: find(i) for i in range(len(ids))}
sizes = {}
for c in clusters.values():
    sizes[c] = sizes.get(c, 0) + 1
print("RESULT " + json.dumps({"seconds": seconds, "clusters": {k: v for k, v in clusters.items() if sizes[v] > 1}}))
"""


def peer(python: str, script: str, corpus: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(script), str(corpus), str(work)], capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"peer failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def quality(args, tmp: Path) -> None:
    corpus = tmp / "planted.jsonl"
    texts, planted = planted_corpus(corpus, args.originals)
    found = {"refsift": pairs_of(refsift_clusters(corpus, tmp / "refsift")[0])}
    if args.peers:
        found["datatrove"] = pairs_of(peer(args.peers, DATATROVE, corpus, tmp / "datatrove")["clusters"])
        found["text-dedup"] = pairs_of(peer(args.peers, TEXT_DEDUP, corpus, tmp / "text-dedup")["clusters"])
    candidates = set().union(*found.values(), {tuple(sorted(p)) for ps in planted.values() for p in ps})
    similarity = {p: jaccard(texts[p[0]], texts[p[1]]) for p in candidates}
    true = {p for p, j in similarity.items() if j >= THRESHOLD}
    print(f"{len(texts)} documents, {sum(map(len, planted.values()))} planted pairs; duplicates at Jaccard >= "
          f"{THRESHOLD}: {len(true)} pairs")  # fmt: skip
    print(f"{'tool':<11} {'pairs':>6} {'precision':>9} {'recall':>7}   " + "  ".join(f"{k:>10}" for k in KINDS))
    for tool, pairs in found.items():
        hits = pairs & true
        recall_by_kind = [sum(tuple(sorted(p)) in pairs for p in planted[k]) / max(1, len(planted[k])) for k in KINDS]
        print(
            f"{tool:<11} {len(pairs):>6} {len(hits) / max(1, len(pairs)):>9.3f} {len(hits) / max(1, len(true)):>7.3f}"
            "   " + "  ".join(f"{r:>10.2f}" for r in recall_by_kind)
        )
    print("(the per-kind columns: share of the planted pairs of that kind each tool found, whatever their Jaccard)")
    mean = {k: sum(similarity[tuple(sorted(p))] for p in planted[k]) / max(1, len(planted[k])) for k in KINDS}
    print("mean true Jaccard of the planted pairs: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))


def speed(args, tmp: Path) -> None:
    corpus = tmp / "speed.jsonl"
    planted = common.write_planted_corpus(corpus, args.documents)
    rows, found = [], {}
    _, seconds = refsift_clusters(corpus, tmp / "speed-refsift", ["--direct_num_workers=1"])
    rows.append(("refsift (1 process)", seconds))
    multi = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    found["refsift"], seconds = refsift_clusters(corpus, tmp / "speed-refsift-2", multi)
    rows.append(("refsift (2 workers)", seconds))
    if args.peers:
        for tool, script, label in (("datatrove", DATATROVE, "datatrove (2 workers)"),
                                    ("text-dedup", TEXT_DEDUP, "text-dedup (2 procs)")):  # fmt: skip
            result = peer(args.peers, script, corpus, tmp / f"speed-{tool}")
            rows.append((label, result["seconds"]))
            found[tool] = result["clusters"]
    print(f"{args.documents} documents, {corpus.stat().st_size / 2**20:.1f} MB")
    print(f"{'tool':<22} {'seconds':>8} {'docs/s':>8}")
    for name, seconds in rows:
        print(f"{name:<22} {seconds:>8.1f} {args.documents / seconds:>8.0f}")
    print("\nplanted copies found (in the same cluster as their original), by kind")
    print(f"{'tool':<11} " + " ".join(f"{k:>12}" for k in planted))
    for tool, clusters in found.items():
        shares = [sum(a in clusters and clusters.get(a) == clusters.get(b) for a, b in pairs) / max(1, len(pairs))
                  for pairs in planted.values()]  # fmt: skip
        print(f"{tool:<11} " + " ".join(f"{share:>12.3f}" for share in shares))
    if "datatrove" in found:
        ours, theirs = pairs_of(found["refsift"]), pairs_of(found["datatrove"])
        print(f"pairs: refsift {len(ours):,}, datatrove {len(theirs):,}, both {len(ours & theirs):,}")


def child(args) -> None:
    from refsift import cli

    started = time.perf_counter()
    # one process, so that this process's peak RSS is the whole run's
    assert cli.main(["dedup", "--input", args.child[0], "--out", args.child[1], "--direct_num_workers=1"]) == 0
    manifest = json.loads((Path(args.child[1]) / "manifest.json").read_text())
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": common.peak_rss_mb(),
                                  "documents": manifest["counts"]["read"]}))  # fmt: skip


def memory(args, tmp: Path) -> None:
    print(f"{'scale':>5} {'documents':>9} {'MB':>6} {'seconds':>8} {'peak RSS MB':>11}")
    rss = []
    for scale in (1, 4, 16):
        corpus = tmp / f"mem-{scale}.jsonl"
        common.write_planted_corpus(corpus, args.memory_documents * scale)
        r = common.child([__file__, "--child", str(corpus), str(tmp / f"mem-{scale}")])
        rss.append(r["peak_rss_mb"])
        print(f"{scale:>5} {r['documents']:>9} {corpus.stat().st_size / 2**20:>6.1f} {r['seconds']:>8.1f} "
              f"{r['peak_rss_mb']:>11.0f}", flush=True)  # fmt: skip
    print(f"peak RSS 16x / 1x: {rss[-1] / rss[0]:.3f}")


def saving(args, tmp: Path) -> None:
    from refsift import cli

    rng = random.Random(1)
    originals = [t for d in ("prose", "drama", "german", "code") for t in corpora.documents(d, 1200)][:700]
    copies = [common.char_edit(t, 0.01, rng) for t in rng.sample(originals, 300)]  # 30% of the corpus
    corpora.write_jsonl(tmp / "copies.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(originals + copies)])
    model = common.small_model(tmp / "model")
    base = ["score", "--input", str(tmp / "copies.jsonl"), "--model", model, "--max-length", "512"]
    started = time.perf_counter()
    assert cli.main([*base, "--out", str(tmp / "all")]) == 0
    plain = time.perf_counter() - started
    started = time.perf_counter()
    assert cli.main(["dedup", "--input", str(tmp / "copies.jsonl"), "--out", str(tmp / "dd")]) == 0
    dedup_seconds = time.perf_counter() - started
    assert cli.main([*base, "--out", str(tmp / "deduped"), "--dedup", str(tmp / "dd")]) == 0
    deduped = time.perf_counter() - started
    counts = json.loads((tmp / "deduped" / "manifest.json").read_text())["counts"]
    print("1,000 documents, 300 of them near-copies (1% of characters edited); 4-layer model, 2 cores")
    skipped = counts["rejected_by_reason"].get("near_duplicate", 0)
    print(f"score everything: {plain:.1f} s; dedup {dedup_seconds:.1f} s + score the {counts['scored']} kept: "
          f"{deduped:.1f} s in all = {deduped / plain:.2f} of it ({skipped} near_duplicate rejections)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["quality", "speed", "memory", "saving"])
    p.add_argument("--peers", help="a python with datatrove and text-dedup installed")
    p.add_argument("--originals", type=int, default=1200, help="quality: original documents")
    p.add_argument("--documents", type=int, default=20_000, help="speed: documents")
    p.add_argument("--memory-documents", type=int, default=12_325, help="memory: documents at 1x (16x: 197,200)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.parts:
            print(f"\n== {part}", flush=True)
            {"quality": quality, "speed": speed, "memory": memory, "saving": saving}[part](args, Path(tmp))


if __name__ == "__main__":
    main()
