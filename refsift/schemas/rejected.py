"""`rejected/*.parquet`: every input record that was not scored, and why.

`record` is the raw record, cut to 4 KiB, with undecodable bytes shown as \\x escapes;
`detail` says more where there is more to say (the parser's message, the error that
stopped a file).
"""

import pyarrow as pa

REJECT_REASONS = (
    "invalid_json",  # a JSONL line that does not parse (or is nested too deeply, or not an object)
    "invalid_utf8",  # bytes that are not UTF-8
    "invalid_unicode",  # a string with a lone surrogate, which UTF-8 cannot encode
    "missing_text",  # no text field (or no prompt / messages field in instruction mode)
    "non_string_text",  # the text field is not a string
    "empty_text",  # empty or whitespace only
    "invalid_messages",  # chat mode: not a list of {role, content} with an assistant turn
    "missing_id",  # --id-field was given and the record has no such field
    "duplicate_id",  # an id seen earlier (the first occurrence, by input and row, is kept)
    "near_duplicate",  # a copy a dedup run did not keep (refsift dedup; the detail names the kept one)
    "too_short",  # nothing to score (one token without a prefix, or an empty response)
    "tokenizer_error",  # the tokenizer or the chat template failed on this record
    "too_large",  # a record over --max-record-bytes (skipped without being read whole)
    "read_error",  # the input could not be read from here on (truncated or corrupt file)
)

RECORD_LIMIT = 4096

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("input", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("record", pa.string(), nullable=False),
    ]
)
