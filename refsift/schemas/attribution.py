"""`attribution/*.parquet` and `attribution_documents/*.parquet`: which training sources
taught a model what a target set shows (UnTrac and UnTrac-Inv, `refsift.kernels.unlearn`).

One `attribution` row per (target, source): `target` is the target set ("all", or a group
of novelty samples), `influence` the rise in loss that unlearning brings (higher = more
influential): UnTrac, the target's loss after unlearning the source minus before;
UnTrac-Inv, the source's loss after unlearning the target minus before. Losses are nats per
scored token over the set being measured (the target for UnTrac, the source for
UnTrac-Inv); `n_documents`, `n_tokens` count that set.

`attribution_documents` (UnTrac-Inv) has each source document's own loss before and after
unlearning the target: the documents that rise most are the ones that taught it most.

`refsift attribute --method both` writes the rows of both methods; `method` tells them apart.
"""

import pyarrow as pa

ATTRIBUTION_SCHEMA = pa.schema(
    [
        pa.field("target", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("influence", pa.float64()),
        # the middle 90% of the influence over resamples of the measured documents (bootstrap)
        pa.field("influence_low", pa.float64()),
        pa.field("influence_high", pa.float64()),
        pa.field("p_first", pa.float64()),  # share of those resamples in which this source ranks first
        pa.field("loss_before", pa.float64()),
        pa.field("loss_after", pa.float64()),
        pa.field("n_documents", pa.int64(), nullable=False),
        pa.field("n_tokens", pa.int64(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),  # 1 = the most influential source for this target
        # optimizer steps of the unlearning this row measures (UnTrac: the source's; UnTrac-Inv: the target's)
        pa.field("unlearn_steps", pa.int32()),
    ]
)

ATTRIBUTION_DOCUMENTS_SCHEMA = pa.schema(
    [
        pa.field("target", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("loss_before", pa.float64()),
        pa.field("loss_after", pa.float64()),
        pa.field("rise", pa.float64()),  # loss_after - loss_before
        pa.field("n_tokens", pa.int64(), nullable=False),
    ]
)
