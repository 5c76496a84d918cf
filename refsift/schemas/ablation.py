"""The tables of `refsift ablate`: one row per proxy (`runs`), its loss on every held-out
document (`doc_losses`), and its held-out loss along training (`curves`). Losses are nats
per scored token, scored as `refsift score` scores (the same windows and prefix)."""

import pyarrow as pa

RUNS_SCHEMA = pa.schema(
    [
        ("arm", pa.string()),
        ("seed", pa.int32()),
        ("steps", pa.int32()),
        ("tokens_fed", pa.int64()),  # every token of every row the proxy read
        ("tokens_trained", pa.int64()),  # those it was trained on (a token selection labels fewer)
        ("max_epochs", pa.float64()),  # how often the arm's most repeated data was seen
        ("train_loss", pa.float64()),  # the last step's
        ("wall_time_s", pa.float64()),
    ]
)

DOC_LOSSES_SCHEMA = pa.schema(
    [
        ("arm", pa.string()),
        ("seed", pa.int32()),
        ("eval", pa.string()),  # the --eval file's stem
        ("source", pa.string()),
        ("doc_id", pa.string()),
        ("nll", pa.float64()),
        ("n_tokens", pa.int64()),
    ]
)

CURVES_SCHEMA = pa.schema(
    [
        ("arm", pa.string()),
        ("seed", pa.int32()),
        ("step", pa.int32()),
        ("tokens_fed", pa.int64()),
        ("eval", pa.string()),
        ("nll", pa.float64()),  # over the eval set's scored tokens
    ]
)
