"""`MIX_DIR/clusters.parquet`: each candidate document's cluster, for `select --per-cluster`.

Written on the launcher before the job (k-means over the candidates' embeddings); the job
reads it as the groups across which the budget is split, and it stays beside the mixture
to be read with the selection (`read_parquet('MIX_DIR/clusters.parquet')`).
"""

import pyarrow as pa

CLUSTERS_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("cluster", pa.string(), nullable=False),  # cluster0 ... cluster<K-1>, zero-padded
    ]
)
