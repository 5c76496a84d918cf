"""`examples/*.parquet` of a classification run (`refsift classify`): one row per document
with the classifier's score, and no per-token table.

`classifier_score` is the classifier's probability of its positive label (higher = more
like the documents it was trained to find). `n_tokens` counts the document's words (what a
fastText classifier reads: runs of non-space characters), so that budgets and mixtures of
`refsift select` work on a classification run as on a scoring run; `n_bytes` its UTF-8
bytes. `text` is the document as read.
"""

import pyarrow as pa

CLASSIFIED_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),  # provenance: file it was read from
        pa.field("row", pa.int64(), nullable=False),  # provenance: record index in that file
        pa.field("n_tokens", pa.int32(), nullable=False),  # words
        pa.field("n_bytes", pa.int64(), nullable=False),
        pa.field("classifier_score", pa.float64(), nullable=False),
    ]
)
