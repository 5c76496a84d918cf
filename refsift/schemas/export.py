"""`MIX_DIR/data/*.parquet`: training rows of a selection, windowed like the scoring run.

Hugging Face causal-LM conventions: `labels` are the token ids, -100 where a token is not
trained on (not selected, or context a window repeats from the one before); the model
shifts them itself. `datasets.load_dataset("parquet", data_files="MIX_DIR/data/*.parquet")`
loads the folder as is.
"""

import pyarrow as pa

# A classification run has no tokens: its selection exports the documents, as text.
DOCUMENT_EXPORT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),  # words
    ]
)

EXPORT_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("window", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),  # the window's span of the document
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("attention_mask", pa.list_(pa.int8()), nullable=False),
        pa.field("labels", pa.list_(pa.int32()), nullable=False),
    ]
)
