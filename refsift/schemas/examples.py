"""`examples/*.parquet`: one row per scored document, with its mean losses and derived scores.

`text` is what the model reads after the prefix token: the document; with instruction
data the prompt followed by the response (`prompt` holds the prompt; the EOS the model
reads after it is not text); with
chat data the conversation rendered by the tokenizer's chat template (`messages` holds the
turns). `n_tokens` counts the scored tokens (the response's, the assistant turns') and
`n_bytes` the UTF-8 bytes they cover. `nll_<role>` is the mean NLL in nats per scored
token; `bpb_<role>` is bits per byte (total nats / (ln 2 x n_bytes)), comparable across
tokenizers; a ladder model with a tokenizer of its own has no per-token losses (they would
not line up with `tokens`), only these per-document ones. The derived scores come from
`refsift.kernels.scores.derive` and are null when their roles are absent.
"""

import pyarrow as pa

from refsift.kernels.scores import DERIVED as DERIVED_SCORES

MESSAGES_TYPE = pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))


def examples_schema(roles: list[str]) -> pa.Schema:
    return pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("prompt", pa.string()),  # instruction data: the prompt, the start of `text`
            pa.field("messages", MESSAGES_TYPE),  # chat data: the conversation `text` renders
            pa.field("input", pa.string(), nullable=False),  # provenance: file it was read from
            pa.field("row", pa.int64(), nullable=False),  # provenance: record index in that file
            pa.field("n_tokens", pa.int32(), nullable=False),  # scored tokens
            pa.field("n_bytes", pa.int64(), nullable=False),  # UTF-8 bytes of the scored text
            *(pa.field(f"nll_{role}", pa.float64()) for role in roles),
            *(pa.field(f"bpb_{role}", pa.float64()) for role in roles),
            *(pa.field(name, pa.float64()) for name in DERIVED_SCORES),
        ]
    )
