"""MinHashDocuments and ClusterDuplicates on their own: chunks -> signature and band tables ->
(written as a dedup job commits them) -> one duplicates row per document that has a copy."""

import random

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.corpus.chunk import Chunk
from refsift.kernels.minhash import MinHashSettings
from refsift.transforms.cluster_duplicates import ClusterDuplicates
from refsift.transforms.minhash_documents import MinHashDocuments

SETTINGS = MinHashSettings(ngram=3, bands=8, rows=4, unit="word", seed=1)


def texts():
    rng = random.Random(0)
    # letters only: MinHash's normalisation drops digits, as datatrove's does
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(400)]
    original = " ".join(rng.choice(words) for _ in range(120))
    edited = original.split()
    edited[60] = "changed"  # one word in 120: Jaccard of 3-grams about 0.95
    other = " ".join(rng.choice(words) for _ in range(120))
    return {"a": original, "b": " ".join(edited), "c": other, "d": original, "e": "short"}


def chunks():
    docs = [{"doc_id": i, "source": "s", "input": "in.jsonl", "row": n, "text": t} for n, (i, t) in
            enumerate(texts().items())]  # fmt: skip
    return [Chunk(task=0, index=0, final=False, read=3, documents=docs[:3]),
            Chunk(task=0, index=1, final=True, read=2, documents=docs[3:])]  # fmt: skip


def write_tables(tmp_path):
    """Runs MinHashDocuments and writes each chunk's tables where a dedup job commits them."""
    with Pipeline() as p:
        out = p | beam.Create(chunks()) | MinHashDocuments(settings=SETTINGS)

        def write(chunk):
            for table, rows in chunk.tables.items():
                (tmp_path / table).mkdir(exist_ok=True)
                pq.write_table(rows, tmp_path / table / f"{chunk.index}.parquet")
            return sorted(chunk.tables), chunk.tables["documents"].num_rows

        assert_that(out | beam.Map(write), equal_to([(["bands", "documents"], 3), (["bands", "documents"], 2)]))
    return {t: sorted(str(f) for f in (tmp_path / t).iterdir()) for t in ("bands", "documents")}


def clustered(p, shards, keep):
    band_names = [*map(str, range(SETTINGS.bands)), "x"]
    rows = (
        p | beam.Create(band_names) | ClusterDuplicates(bands=shards["bands"], documents=shards["documents"], keep=keep)
    )
    return rows | beam.Map(lambda r: (r["doc_id"], r["cluster_id"], r["cluster_size"], r["kept"], r["exact"]))


def test_near_and_exact_copies_form_one_cluster_keeping_the_first(tmp_path):
    shards = write_tables(tmp_path)
    with Pipeline() as p:
        assert_that(clustered(p, shards, "first"), equal_to([
            ("a", "a", 3, True, True), ("b", "a", 3, False, False), ("d", "a", 3, False, True)]))  # fmt: skip


def test_keep_longest_keeps_the_document_with_most_bytes(tmp_path):
    shards = write_tables(tmp_path)
    longest = max(("a", "b"), key=lambda i: (len(texts()[i].encode()), i == "a"))
    with Pipeline() as p:
        rows = clustered(p, shards, "longest") | beam.Filter(lambda r: r[3]) | beam.Map(lambda r: r[0])
        assert_that(rows, equal_to([longest]))
