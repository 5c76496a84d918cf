"""WriteShards on its own: rows -> Parquet shards that hold exactly the rows (keys not in the
schema dropped), or JSON lines; the final file names are its output."""

import json
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.transforms.write_shards import WriteShards

SCHEMA = pa.schema([("doc_id", pa.string()), ("score", pa.float64())])
ROWS = [{"doc_id": f"d{i}", "score": i / 10, "extra": "dropped"} for i in range(25)]


def test_parquet_shards_hold_every_row_once(tmp_path):
    with Pipeline() as p:
        names = p | beam.Create(ROWS) | WriteShards(directory=str(tmp_path / "t"), schema=SCHEMA, rows_per_file=10)
        assert_that(names | beam.Map(lambda name: Path(name).suffix), equal_to([".parquet"] * 3))
    table = pq.read_table(tmp_path / "t")
    assert table.schema.equals(SCHEMA)
    assert sorted(table.to_pylist(), key=lambda r: r["doc_id"]) == sorted(
        ({"doc_id": r["doc_id"], "score": r["score"]} for r in ROWS), key=lambda r: r["doc_id"]
    )
    assert not [f for f in (tmp_path / "t").iterdir() if not f.name.endswith(".parquet")]  # no temporary files


def test_json_lines_without_a_schema(tmp_path):
    with Pipeline() as p:
        _ = p | beam.Create(ROWS[:5]) | WriteShards(directory=str(tmp_path / "j"), schema=None)
    lines = [json.loads(line) for f in (tmp_path / "j").iterdir() for line in f.read_text().splitlines()]
    assert sorted(lines, key=lambda r: r["doc_id"]) == ROWS[:5]
