"""ReadParquet on its own: every row of every matching file, as dicts or as Arrow batches."""

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.transforms.read_parquet import ReadParquet


def write(tmp_path):
    rows = [{"doc_id": f"d{i}", "n_tokens": i, "source": "code" if i % 2 else "prose"} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows[:6]), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[6:]), tmp_path / "b.parquet")
    return rows


def test_rows_of_every_file_with_the_columns_asked_for(tmp_path):
    rows = write(tmp_path)
    with Pipeline() as p:
        out = p | ReadParquet(str(tmp_path / "*.parquet"), columns=["doc_id", "n_tokens"])
        assert_that(out, equal_to([{"doc_id": r["doc_id"], "n_tokens": r["n_tokens"]} for r in rows]))


def test_batches_hold_every_row_once(tmp_path):
    rows = write(tmp_path)
    with Pipeline() as p:
        out = (
            p
            | ReadParquet(str(tmp_path / "*.parquet"), batched=True, batch_size=4)
            | beam.FlatMap(lambda table: table.column("doc_id").to_pylist())
        )
        assert_that(out, equal_to([r["doc_id"] for r in rows]))
