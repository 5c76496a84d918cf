"""IndexCorpus and ReadCorpus on their own: the index pass (repeated ids, rows before each
task, the record total) and the reading pass (chunks of documents and rejections), with
read = documents + rejected for every chunk."""

import json

import apache_beam as beam
from apache_beam.pvalue import AsDict, AsSingleton
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.corpus.records import Fields
from refsift.corpus.tasks import plan_tasks
from refsift.transforms.index_corpus import IndexCorpus
from refsift.transforms.read_corpus import ReadCorpus


def corpus(tmp_path):
    lines = [json.dumps({"id": f"d{i}", "text": f"document number {i} " * 20}) for i in range(40)]
    lines[7] = "{not json"
    lines[12] = json.dumps({"id": "d3", "text": "the id d3 again"})  # a repeated id
    lines[20] = json.dumps({"id": "d20"})  # no text
    path = tmp_path / "prose.jsonl"
    path.write_text("\n".join(lines) + "\n")
    tasks, _ = plan_tasks([str(path)], task_size=1500)  # byte ranges: several tasks of one file
    assert len(tasks) > 3
    return tasks


def test_the_index_pass_counts_records_and_finds_repeated_ids(tmp_path):
    tasks = corpus(tmp_path)
    with Pipeline() as p:
        index = p | beam.Create(tasks) | IndexCorpus(fields=Fields())
        assert_that(index["records"], equal_to([40]), label="Records")
        assert_that(index["duplicates"] | beam.Map(lambda kv: kv[0]), equal_to(["d3"]), label="Duplicates")
        rows = index["first_rows"] | beam.Map(lambda first: sorted(first.values()))
        assert_that(rows | beam.Map(lambda r: (r[0], r == sorted(set(r)))), equal_to([(0, True)]), label="Rows")


def test_reading_keeps_every_record_as_a_document_or_a_rejection(tmp_path):
    tasks = corpus(tmp_path)
    with Pipeline() as p:
        everything = p | beam.Create(tasks)
        index = everything | IndexCorpus(fields=Fields())
        chunks = everything | ReadCorpus(
            fields=Fields(),
            first_rows=AsSingleton(index["first_rows"]),
            duplicates=AsDict(index["duplicates"]),
            chunk_size=400,
        )
        balanced = chunks | "Balanced" >> beam.Map(lambda c: c.read == len(c.documents) + len(c.rejected))
        assert_that(balanced | beam.Distinct(), equal_to([True]), label="Balanced")
        rejected = chunks | beam.FlatMap(lambda c: [(r["row"], r["reason"]) for r in c.rejected])
        assert_that(rejected, equal_to([(7, "invalid_json"), (12, "duplicate_id"), (20, "missing_text")]),
                    label="Rejected")  # fmt: skip
        rows = chunks | beam.FlatMap(lambda c: [d["row"] for d in c.documents])
        assert_that(rows, equal_to([i for i in range(40) if i not in (7, 12, 20)]), label="Documents")
