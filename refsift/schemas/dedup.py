"""The tables of a near-duplicate run (`refsift dedup`).

`documents/*.parquet`: one row per document read: its `doc_key` (a number that orders
documents as the input does: task, chunk, position), id, provenance, size, the exact
duplicate key `content_hash` (SHA-1 of the text with whitespace folded), the MinHash
signature (`minhash`, bands x rows; empty for a document shorter than an n-gram) and the
text's first `HEAD` characters (for the report; the corpus stays where it is).

`bands/*.parquet`: per chunk, for every LSH band `b` (and the exact band `x`), the
columns `key_<b>` (the band's 64-bit key) and `doc_<b>` (the document's `doc_key`),
each pair sorted by key on its own, so that the clustering job merges chunks band by band
in a stream.

`duplicates/*.parquet`: one row per document that has a near-duplicate: its cluster (the
kept document's id), the cluster's size, whether it is the one kept, whether it is an
exact copy of it, and its Jaccard similarity to it estimated from the signatures.
"""

import pyarrow as pa

HEAD = 2000

DOCUMENTS_SCHEMA = pa.schema(
    [
        pa.field("doc_key", pa.int64(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("n_bytes", pa.int64(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),  # words
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("minhash", pa.list_(pa.uint64()), nullable=False),
        pa.field("head", pa.string(), nullable=False),
    ]
)


def bands_schema(bands: int) -> pa.Schema:
    names = [*map(str, range(bands)), "x"]
    return pa.schema(
        [field for b in names for field in (pa.field(f"key_{b}", pa.uint64()), pa.field(f"doc_{b}", pa.int64()))]
    )


DUPLICATES_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("cluster_id", pa.string(), nullable=False),  # the kept document's doc_id
        pa.field("cluster_size", pa.int32(), nullable=False),
        pa.field("kept", pa.bool_(), nullable=False),
        pa.field("exact", pa.bool_(), nullable=False),  # the same text as the kept document (whitespace folded)
        pa.field("jaccard", pa.float64()),  # estimated similarity to the kept document; null without a signature
        pa.field("n_bytes", pa.int64(), nullable=False),
        pa.field("doc_key", pa.int64(), nullable=False),
    ]
)
