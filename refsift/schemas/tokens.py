"""`tokens/*.parquet`: one row per scored window.

`token_ids`, `char_start`, `char_end` and every `nll_<role>` list are aligned position by
position and hold every token fed to the model, context included. Positions count the
model's input sequence: for a plain document position 0 is the prefix token (BOS, with
`--prefix auto`), so its first token is at position 1; instruction and chat data have no
prefix (the sequence is TRL's: see `refsift.kernels.encode`), and the EOS appended to a
response spans the empty range at the end of the text. A position whose loss this window does not report
is null in each `nll_<role>`: the prefix token (or, with `--prefix none`, the document's
first token, which has no left context), prompt tokens and chat turns that are not the
assistant's (context, not scored), and the `context` tokens a window repeats from the one
before (scored there). Character spans index `examples.text`; the prefix token spans 0..0.
"""

import pyarrow as pa


def tokens_schema(roles: list[str]) -> pa.Schema:
    return pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("window", pa.int32(), nullable=False),
            pa.field("token_start", pa.int32(), nullable=False),  # sequence position of token_ids[0]
            pa.field("token_ids", pa.list_(pa.int32()), nullable=False),
            pa.field("char_start", pa.list_(pa.int32()), nullable=False),
            pa.field("char_end", pa.list_(pa.int32()), nullable=False),
            *(pa.field(f"nll_{role}", pa.list_(pa.float32())) for role in roles),
        ]
    )
