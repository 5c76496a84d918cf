"""`rejected/*.parquet`: every input record that was not scored, and why.

`record` is the raw record, cut to 4 KiB, with undecodable bytes shown as \\x escapes.
"""

import pyarrow as pa

REJECT_REASONS = (
    "invalid_json",  # a JSONL line that does not parse, or is not an object
    "invalid_utf8",  # bytes that are not UTF-8
    "missing_text",  # no text field
    "non_string_text",  # the text field is not a string
    "empty_text",  # empty or whitespace only
    "missing_id",  # --id-field was given and the record has no such field
    "duplicate_id",  # an id seen earlier (the first occurrence, by input and row, is kept)
    "too_short",  # fewer than two tokens: nothing to score
)

RECORD_LIMIT = 4096

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("input", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)
