"""`ClusterDuplicates`: the committed `bands` and `documents` shards of a dedup run ->
one `duplicates` row per document that has a near-duplicate.

    band names ──> BandEdges (one band per worker: its keys sorted, equal keys joined)
        ──> AllEdges (one array) ──> Clusters (connected components, the kept document,
        estimated Jaccard to it) ──> duplicates rows

How it scales. A band is read whole by one worker: 16 bytes a document (its 64-bit key and
its document number), 160 MB for 10 million documents, and the 15 bands (14 LSH bands and
the exact band) are independent, so they spread over workers. Only pairs of documents that
collide reach `Clusters`: connected components of the duplicate graph are found by
vectorised label propagation with pointer jumping (`refsift.kernels.minhash.components`,
O(log) rounds over the edge arrays), in memory that grows with the documents that have a
duplicate, not with the corpus (tens of millions of edges fit in a few GB). It then reads
the `documents` shards twice, keeping only the rows of kept documents (their signatures)
and then of cluster members: never text beyond what the report needs.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from refsift.config import KEEP_RULES
from refsift.kernels import minhash


def _read(path: str, columns: list[str]):
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return pq.read_table(handle, columns=columns)


def _member_rows(documents: list[str], members: np.ndarray, columns: list[str]):
    """The rows of `documents` shards whose doc_key is among `members` (sorted)."""
    for path in documents:
        table = _read(path, columns)
        keys = table.column("doc_key").to_numpy()
        hit = np.flatnonzero(np.isin(keys, members, assume_unique=False))
        if len(hit):
            yield table.take(hit)


class _BandEdgesFn(beam.DoFn):
    def __init__(self, bands: list[str]):
        self._bands = bands
        self._edges = Metrics.counter("ClusterDuplicates", "edges")

    def process(self, band: str):
        keys, docs = [], []
        for path in self._bands:
            table = _read(path, [f"key_{band}", f"doc_{band}"])
            keys.append(table.column(0).to_numpy())
            docs.append(table.column(1).to_numpy())
        if not keys:
            return
        edges = minhash.band_edges(np.concatenate(keys), np.concatenate(docs))
        self._edges.inc(len(edges))
        yield edges


class _AllEdges(beam.CombineFn):
    def create_accumulator(self):
        return []

    def add_input(self, acc, edges):
        acc.append(edges)
        return acc

    def merge_accumulators(self, accs):
        return [e for acc in accs for e in acc]

    def extract_output(self, acc):
        if not acc:
            return np.zeros((0, 2), dtype=np.int64)
        return np.unique(np.concatenate(acc), axis=0)


class _ClustersFn(beam.DoFn):
    def __init__(self, documents: list[str], keep: str):
        self._documents, self._keep = documents, keep
        self._members = Metrics.counter("ClusterDuplicates", "documents_in_clusters")

    def process(self, edges: np.ndarray):
        members, roots = minhash.clusters(edges)
        if not len(members):
            return
        self._members.inc(len(members))
        if self._keep == "longest":  # the longest document of each cluster; ties go to the first
            sizes = np.zeros(len(members), dtype=np.int64)
            for rows in _member_rows(self._documents, members, ["doc_key", "n_bytes"]):
                sizes[np.searchsorted(members, rows.column("doc_key").to_numpy())] = rows.column("n_bytes").to_numpy()
            order = np.lexsort((members, -sizes, roots))  # by cluster, longest first, then input order
            first = np.r_[True, roots[order][1:] != roots[order][:-1]]
            chosen = dict(zip(roots[order][first].tolist(), members[order][first].tolist()))
            kept = np.array([chosen[r] for r in roots.tolist()], dtype=np.int64)
        else:  # the first in input order: a component's smallest document number
            kept = roots
        cluster_size = dict(zip(*np.unique(kept, return_counts=True)))
        wanted = ["doc_key", "doc_id", "content_hash", "minhash"]
        reference = {}
        for rows in _member_rows(self._documents, np.unique(kept), wanted):
            for key, doc_id, digest, signature in zip(*(rows.column(c).to_pylist() for c in wanted)):
                reference[key] = (doc_id, digest, np.asarray(signature, dtype=np.uint64))
        kept_of = dict(zip(members.tolist(), kept.tolist()))
        columns = ["doc_key", "doc_id", "source", "input", "row", "n_bytes", "content_hash", "minhash"]
        for rows in _member_rows(self._documents, members, columns):
            for key, doc_id, source, path, row, n_bytes, digest, signature in zip(
                *(rows.column(c).to_pylist() for c in columns)
            ):
                head = kept_of[key]
                kept_id, kept_digest, kept_signature = reference[head]
                jaccard = (
                    minhash.estimated_jaccard(np.asarray(signature, dtype=np.uint64), kept_signature)
                    if len(signature) and len(kept_signature)
                    else (1.0 if digest == kept_digest else None)
                )
                yield {
                    "doc_id": doc_id,
                    "source": source,
                    "input": path,
                    "row": row,
                    "cluster_id": kept_id,
                    "cluster_size": int(cluster_size[head]),
                    "kept": key == head,
                    "exact": digest == kept_digest,
                    "jaccard": jaccard,
                    "n_bytes": n_bytes,
                    "doc_key": key,
                }


class ClusterDuplicates(beam.PTransform):
    """Band names -> `duplicates` rows (`refsift.schemas.dedup.DUPLICATES_SCHEMA`).

    Args:
      bands: the run's committed `bands` shards.
      documents: the run's committed `documents` shards.
      keep: which document of a cluster is kept: "first" (in input order) or "longest"
        (most bytes; ties go to the first).
    """

    def __init__(self, *, bands: list[str], documents: list[str], keep: str = "first"):
        super().__init__()
        if keep not in KEEP_RULES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_RULES)}")
        self._bands, self._documents, self._keep = list(bands), list(documents), keep

    def expand(self, band_names):
        return (
            band_names
            | "BandEdges" >> beam.ParDo(_BandEdgesFn(self._bands))
            | "AllEdges" >> beam.CombineGlobally(_AllEdges())
            | "Clusters" >> beam.ParDo(_ClustersFn(self._documents, self._keep))
        )
