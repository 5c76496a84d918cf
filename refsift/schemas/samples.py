"""`REPORT_DIR/samples/*.parquet`: one row per generated (or extracted) text of a novelty run.

`mode` is "cge" (static contrastive generation), "cge-iterative", "baseline" (plain samples
from the fine-tuned model), "base" (plain samples from the base model) or "extract" (a
candidate document). Per token: its id, its text, its bytes, log p under each model and the
contrastive score log p_ft - gamma * log p_base. `mean_contrast` is the mean of
log p_ft - log p_base over the generated tokens.
"""

import pyarrow as pa

SAMPLE_MODES = ("cge", "cge-iterative", "baseline", "base", "extract")

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("iteration", pa.int32()),  # generation order in iterative mode
        pa.field("seed", pa.int64()),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("token_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("token_text", pa.list_(pa.string()), nullable=False),
        # the bytes each token stands for (null where they cannot be recovered exactly): a sample
        # whose bytes are not valid UTF-8 is shown as those bytes, not as U+FFFD
        pa.field("token_bytes", pa.list_(pa.binary())),
        pa.field("logp_ft", pa.list_(pa.float32()), nullable=False),
        pa.field("logp_base", pa.list_(pa.float32()), nullable=False),
        pa.field("score", pa.list_(pa.float32()), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("finished", pa.bool_(), nullable=False),  # ended with EOS
        pa.field("mean_contrast", pa.float64()),
    ]
)
