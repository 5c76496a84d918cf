"""`examples/*.parquet`: one row per scored document, with its mean losses and derived scores.

`nll_<role>` is the mean NLL in nats per scored token; `bpb_<role>` is bits per UTF-8 byte
(total nats / (ln 2 x n_bytes)), comparable across tokenizers. The derived scores are
computed by `refsift.scores.derive` and are null when their roles are absent.
"""

import pyarrow as pa

DERIVED_SCORES = ("excess_loss", "learnability", "learning_percentage", "novelty")


def examples_schema(roles: list[str]) -> pa.Schema:
    return pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("input", pa.string(), nullable=False),  # provenance: file it was read from
            pa.field("row", pa.int64(), nullable=False),  # provenance: record index in that file
            pa.field("n_tokens", pa.int32(), nullable=False),  # scored tokens
            pa.field("n_bytes", pa.int64(), nullable=False),
            *(pa.field(f"nll_{role}", pa.float64()) for role in roles),
            *(pa.field(f"bpb_{role}", pa.float64()) for role in roles),
            *(pa.field(name, pa.float64()) for name in DERIVED_SCORES),
        ]
    )
