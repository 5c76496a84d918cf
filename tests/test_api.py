"""The Python API: thin layers over the same pipelines as the CLI."""

import pandas as pd
import pyarrow as pa
import pytest

import refsift
from refsift.errors import RefsiftError
from tests.conftest import held_out, write_jsonl


def test_score_select_and_query_from_python(tmp_path, prose_model, code_model):
    write_jsonl(tmp_path / "docs.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(held_out("prose", 4))])
    with refsift.score(
        str(tmp_path / "docs.jsonl"),
        out=str(tmp_path / "run"),
        model=prose_model,
        reference=code_model,
        max_length=64,
        context=8,
    ) as run:
        assert isinstance(run.sql("SELECT * FROM examples").df(), pd.DataFrame)
        table = run.arrow("SELECT doc_id, excess_loss FROM examples ORDER BY excess_loss DESC")
        assert isinstance(table, pa.Table) and table.num_rows == 4
        with pytest.raises(RefsiftError, match="refused"):
            run.sql("DROP VIEW examples")
    record = refsift.select(str(tmp_path / "run"), out=str(tmp_path / "mix"), by="excess_loss", budget="2")
    assert record["view"] == "selection_mix"
    with refsift.open_run(str(tmp_path / "run")) as run:
        assert "selection_mix" in run.tables
        top = run.sql("SELECT doc_id FROM examples ORDER BY excess_loss DESC LIMIT 2").fetchall()
        assert {d for (d,) in top} == {d for (d,) in run.sql("SELECT DISTINCT doc_id FROM selection_mix").fetchall()}
    with pytest.raises(TypeError, match="unknown option"):
        refsift.select(str(tmp_path / "run"), out=str(tmp_path / "x"), budjet="2")


def test_beam_example_composes_the_transforms(tmp_path, prose_model):
    import glob
    import json
    import subprocess
    import sys
    from pathlib import Path

    write_jsonl(tmp_path / "docs.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(held_out("prose", 3))])
    example = Path(__file__).parent.parent / "examples" / "beam_pipeline.py"
    args = ["--input", str(tmp_path / "docs.jsonl"), "--model", prose_model, "--out", str(tmp_path / "out")]
    proc = subprocess.run([sys.executable, str(example), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for path in glob.glob(f"{tmp_path}/out*.jsonl") for line in open(path)]
    assert {r["doc_id"] for r in rows} == {"d0", "d1", "d2"}
    assert all(0 <= r["surprising"] <= 1 for r in rows)
